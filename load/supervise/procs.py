"""Child processes that cannot outlive their owner.

Each child runs in its own session (process group), so a terminal's Ctrl-C reaches only
the owner, which then stops its children in order. Each child also gets
PR_SET_PDEATHSIG=SIGKILL, so a SIGKILLed owner leaves nothing behind. The kernel ties
that signal to the *thread* that forked the child, so every fork happens on one spawner
thread that lives as long as the process. An atexit hook kills whatever is still running.

Stopping follows systemd and docker: SIGTERM, a bounded wait, then SIGKILL, and the
outcome says which of these ended the process and after how long.
"""

import atexit
import ctypes
import os
import queue
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from load.runfolder.names import ALREADY_GONE, HOW_EXITED, KILLED_AFTER_TIMEOUT, SIGKILLED

PR_SET_PDEATHSIG = 1

# How a child ended: the "how" of its exited event in events.jsonl.
EXITED = HOW_EXITED


def _die_with_parent(parent_pid: int) -> Callable[[], None]:
    def preexec() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent_pid:  # the owner died between fork and prctl
            os._exit(1)

    return preexec


class _Spawner:
    """Forks every child from one long-lived thread (see the module docstring)."""

    def __init__(self) -> None:
        self._requests: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def popen(self, *args, **kwargs) -> subprocess.Popen:
        self._ensure_thread()
        reply: queue.Queue = queue.Queue(maxsize=1)
        self._requests.put((args, kwargs, reply))
        ok, value = reply.get()
        if not ok:
            raise value
        return value

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._serve, name="child-spawner", daemon=True)
                self._thread.start()

    def _serve(self) -> None:
        while True:
            args, kwargs, reply = self._requests.get()
            try:
                reply.put((True, subprocess.Popen(*args, **kwargs)))
            except BaseException as exc:  # handed back to the caller's thread
                reply.put((False, exc))


_spawner = _Spawner()
_live: set["Child"] = set()


@dataclass(frozen=True)
class ExitRecord:
    how: str
    returncode: int | None
    seconds: float  # from the first signal to the observed exit
    signal_sent_at: float  # wall clock, seconds since the epoch
    exited_at: float


class Child:
    """One supervised process with its output appended to a log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str] | None, log_path: Path, cwd: Path):
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = log_path
        self.cwd = cwd
        self.process: subprocess.Popen | None = None
        self.started_at = 0.0

    def start(self) -> "Child":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = _spawner.popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent(os.getpid()),
            )
        self.started_at = time.time()
        _live.add(self)
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} was never started"
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        """The exit code once the process has been waited for (None while it runs), as Popen's."""
        assert self.process is not None, f"{self.name} was never started"
        return self.process.returncode

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal_group(self, signum: int) -> None:
        try:
            os.killpg(self.pid, signum)
        except ProcessLookupError:
            pass

    def wait(self, timeout: float) -> bool:
        """True once the process has exited (and been reaped) within timeout seconds."""
        assert self.process is not None
        try:
            self.process.wait(timeout=max(timeout, 0))
        except subprocess.TimeoutExpired:
            return False
        _live.discard(self)
        return True

    def stop(self, mode: str = "graceful", kill_after: float = 10.0) -> ExitRecord:
        return stop_all([self], mode, kill_after)[0]

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


SignalSink = Callable[[Child, int, float], None]
OverdueHook = Callable[[Child], None]


def stop_all(
    children: Iterable[Child],
    mode: str,
    kill_after: float,
    on_signal: SignalSink | None = None,
    before_kill: OverdueHook | None = None,
) -> list[ExitRecord]:
    """Stop children together: graceful = SIGTERM then SIGKILL after kill_after; hard = SIGKILL.

    on_signal(child, signum, wall_time) is called as each signal goes out, so observers see
    the SIGTERM when it happens, not when the process finally exits. before_kill(child) runs
    when a child ignored SIGTERM for kill_after, just before its SIGKILL (a thread dump: why
    it hung is lost once it is killed).
    """
    children = list(children)
    first = signal.SIGTERM if mode == "graceful" else signal.SIGKILL
    already = {id(c) for c in children if not c.alive()}
    sent_at, sent_mono = time.time(), time.monotonic()

    def send(child: Child, signum: int) -> None:
        child.signal_group(signum)
        if on_signal is not None:
            on_signal(child, signum, time.time())

    for child in children:
        if id(child) not in already:
            send(child, first)
    records = []
    for child in children:
        how = ALREADY_GONE if id(child) in already else (EXITED if mode == "graceful" else SIGKILLED)
        if not child.wait(kill_after - (time.monotonic() - sent_mono)):
            if before_kill is not None:
                before_kill(child)
            send(child, signal.SIGKILL)
            child.wait(30)
            how = KILLED_AFTER_TIMEOUT
        records.append(ExitRecord(how, child.returncode, time.monotonic() - sent_mono, sent_at, time.time()))
    return records


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@atexit.register
def _kill_leftovers() -> None:
    for child in list(_live):
        child.signal_group(signal.SIGKILL)
        child.wait(5)
