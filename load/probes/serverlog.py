"""Failure signatures in the Daphne logs, counted per second.

Daphne tells us things no client can see: that it killed an app which took too long to
close (FM-1), that an app crashed and with what (FM-2, FM-7), how many apps a SIGTERM
cancelled (FM-5), that channels_redis dropped group messages (FM-5), and which
handshakes never finished (FM-8). Laid next to timeseries.csv, these counts explain the
clients' errors second by second.

The stack writes one file per instance and generation (`daphne-<i>.gen<g>.log`: Daphne's
stderr logging and its stdout access log, interleaved). ServerLogFollower reads only the
bytes appended since its last poll and finds new generations as they appear, so it can
poll every second for the whole run. CommandFollower does the same for a remote server,
through a command such as `ssh host tail -n 0 -F /var/log/daphne.log`.

A signal belongs to the second of its line's timestamp (Daphne's logging format or the
access log's, both UTC because the target app sets TIME_ZONE=UTC and Django exports it
as TZ), else to the second the follower read it.

Kept free of locust and gevent: it runs in the stack's and the controller's processes.
"""

import calendar
import os
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from load.runfolder.names import DAPHNE_LOGS, SERVER_COLUMNS
from load.runfolder.names import NO_SERVER_LOG as NO_SERVER_LOG
from load.runfolder.names import SERVER_SIGNATURES as SERVER_SIGNATURES
from load.runfolder.names import SIG_EXCEPTION as EXCEPTION
from load.runfolder.names import SIG_HANDSHAKE_INCOMPLETE as HANDSHAKE_INCOMPLETE
from load.runfolder.names import SIG_KILLED_ON_THREAD as KILLED_ON_THREAD
from load.runfolder.names import SIG_KILLED_OTHER as KILLED_OTHER
from load.runfolder.names import SIG_KILLED_OWN_AWAIT as KILLED_OWN_AWAIT
from load.runfolder.names import SIG_KILLED_PENDING as KILLED_PENDING
from load.runfolder.names import SIG_OVER_CAPACITY as OVER_CAPACITY
from load.runfolder.names import SIG_OVER_CAPACITY_CHANNELS as OVER_CAPACITY_CHANNELS
from load.runfolder.names import SIG_TASK_EXCEPTION as TASK_EXCEPTION
from load.supervise.procs import Child, ExitRecord

COLUMNS = SERVER_COLUMNS  # the signatures this follower counts, in timeseries.csv order

Windows = dict[int, Counter]


# Matched anywhere in the line, not after Daphne's prefix, so that logs reformatted on
# the way (journald, a remote tail) still count.
KILLED_TEXT = "took too long to shut down and was killed"
WAIT_FOR = re.compile(r"wait_for=(.*?)> for connection <")
EXCEPTION_MESSAGE = re.compile(r"Exception inside application:(.*)")
KILLED_PENDING_COUNT = re.compile(r"Killed (\d+) pending application instances")
TASK_EXCEPTION_TEXT = "Task exception was never retrieved"
OVER_CAPACITY_COUNT = re.compile(r"(\d+) of (\d+) channels over capacity in group (\S+)")
# Memory ids differ for every object; without this each crash would be its own group.
ADDRESS = re.compile(r"0x[0-9a-fA-F]{6,}")

# In the wait_for text. The first two show the app waiting on a thread (asgiref's single
# thread-sensitive thread, or the executor); they outrank task_wakeup, which a shielded
# wait also lists (`cb=[shield.<locals>._outer_done_callback() at ..., Task.task_wakeup()]`).
THREAD_WAITS = ("shield.<locals>._outer_done_callback", "_chain_future")
OWN_AWAIT = "Task.task_wakeup"

# `127.0.0.1:48810 - - [26/Nov/2026:05:18:21] "WSCONNECTING /ws/room/lobby/" - -`
ACCESS_WS = re.compile(
    r'^(\S+) \S+ \S+ \[[^\]]*\] "(WSCONNECTING|WSCONNECT|WSDISCONNECT|WSREJECT) (.*)" \S+ \S+$'
)
ACCESS_TIME = re.compile(r"^\S+ \S+ \S+ \[(\d\d)/([A-Z][a-z]{2})/(\d{4}):(\d\d):(\d\d):(\d\d)\]")
# `2026-11-26 05:18:16,250 INFO     Listening on TCP address 127.0.0.1:40337`
LOGGING_TIME = re.compile(r"^(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)[,.]\d{3} ")
MONTHS = {
    name: i
    for i, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}

READ_LIMIT = 16 * 1024 * 1024  # per file and poll: a huge backlog is read over several polls


# -- one line ------------------------------------------------------------------------------


def classify(line: str) -> list[tuple[str, int]]:
    """The (column, count) pairs one log line adds; [] for most lines.

    Needs no state, so handshakes (which span lines) are HandshakeTracker's job.
    """
    if KILLED_TEXT in line:
        return [(killed_kind(line), 1)]
    if "Exception inside application:" in line:
        return [(EXCEPTION, 1)]
    if "pending application instances" in line:
        match = KILLED_PENDING_COUNT.search(line)
        # "Killed 0 ..." is every clean shutdown's line: nothing to count
        return [(KILLED_PENDING, int(match.group(1)))] if match and match.group(1) != "0" else []
    if TASK_EXCEPTION_TEXT in line:
        return [(TASK_EXCEPTION, 1)]
    if "channels over capacity" in line:
        match = OVER_CAPACITY_COUNT.search(line)
        return [(OVER_CAPACITY, 1), (OVER_CAPACITY_CHANNELS, int(match.group(1)))] if match else []
    return []


def killed_kind(line: str) -> str:
    """Which FM-1 kill a "took too long to shut down" line is, from what the app awaited.

    Its own await (asyncio.sleep in a handler) is the seed's bug; waiting on a thread is
    the current stack's amplifier, where a sync consumer elsewhere holds the one thread.
    """
    match = WAIT_FOR.search(line)
    if match is None:
        return KILLED_OTHER
    waiting_on = match.group(1)
    if any(marker in waiting_on for marker in THREAD_WAITS):
        return KILLED_ON_THREAD
    return KILLED_OWN_AWAIT if OWN_AWAIT in waiting_on else KILLED_OTHER


def exception_message(line: str) -> str | None:
    """The message of an `Exception inside application: ...` line, memory ids masked; else None."""
    match = EXCEPTION_MESSAGE.search(line)
    if match is None:
        return None
    message = ADDRESS.sub("0x?", match.group(1).strip())
    return message or "(no message)"  # str() of TimeoutError() and friends is empty


_seconds_cache: dict[tuple[str, ...], int] = {}


def line_second(line: str) -> int | None:
    """The UTC epoch second a Daphne logging or access line carries; None if it has none."""
    match = LOGGING_TIME.match(line)
    if match is not None:
        year, month, day, hour, minute, second = match.groups()
    else:
        match = ACCESS_TIME.match(line)
        if match is None or match.group(2) not in MONTHS:
            return None
        day, month_name, year, hour, minute, second = match.groups()
        month = str(MONTHS[month_name])
    key = (year, month, day, hour, minute, second)
    cached = _seconds_cache.get(key)
    if cached is None:
        fields = tuple(int(value) for value in key)
        if not (
            1 <= fields[1] <= 12
            and 1 <= fields[2] <= 31
            and fields[3] < 24
            and fields[4] < 60
            and fields[5] < 61
        ):
            return None
        if len(_seconds_cache) > 4096:  # busy seconds repeat; old ones never come back
            _seconds_cache.clear()
        cached = _seconds_cache[key] = calendar.timegm(fields)
    return cached


class HandshakeTracker:
    """Clients of one log file that logged WSCONNECTING, then WSDISCONNECT or WSREJECT, but
    no WSCONNECT in between: the handshake never finished (FM-8 logs nothing else).

    One per file: client ports are reused across processes, and a process that dies
    mid-handshake never logs the end.
    """

    def __init__(self) -> None:
        self._connecting: set[tuple[str, str]] = set()

    def feed(self, line: str) -> int:
        """1 when this line ends a handshake that never finished, else 0."""
        if '"WS' not in line:
            return 0
        match = ACCESS_WS.match(line)
        if match is None:
            return 0
        client, action, path = match.groups()
        key = (client, path)
        if action == "WSCONNECTING":
            self._connecting.add(key)
            return 0
        if key in self._connecting:
            self._connecting.discard(key)
            return 0 if action == "WSCONNECT" else 1
        return 0

    @property
    def pending(self) -> int:
        """Handshakes begun and not yet ended either way."""
        return len(self._connecting)


# -- files -----------------------------------------------------------------------------------


@dataclass
class _FileState:
    offset: int = 0
    inode: int | None = None
    partial: bytes = b""  # an unfinished last line, completed by a later read
    handshakes: HandshakeTracker = field(default_factory=HandshakeTracker)


def daphne_logs(server_dir: Path) -> Callable[[], list[Path]]:
    """Every generation of every instance the stack wrote in server_dir, as it appears."""
    return lambda: sorted(server_dir.glob(DAPHNE_LOGS))


class ServerLogFollower:
    """Counts signatures in a changing set of growing log files, per epoch second.

    poll() costs one stat per file when nothing changed, and reads only appended bytes.
    """

    def __init__(self, discover: Callable[[], list[Path]]):
        self._discover = discover
        self._files: dict[Path, _FileState] = {}
        self.messages: Counter = Counter()  # exception message -> count, whole run
        self._new_messages: dict[int, Counter] = {}  # second -> message -> count, not yet taken
        self.totals: Counter = Counter()  # column -> count, whole run
        self.bytes_read = 0

    @property
    def paths(self) -> list[Path]:
        """The files followed so far."""
        return list(self._files)

    def poll(self, now: float | None = None) -> Windows:
        """Counts from the lines completed since the last poll, by second.

        now (epoch seconds, default the clock) is the second of lines without a timestamp.
        """
        read_second = int(time.time() if now is None else now)
        windows: Windows = {}
        for path in self._discover():
            state = self._files.setdefault(path, _FileState())
            for line in self._new_lines(path, state):
                self._count(line, state, read_second, windows)
        return windows

    def _new_lines(self, path: Path, state: _FileState) -> list[str]:
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            return []
        if stat.st_ino != state.inode or stat.st_size < state.offset:
            # first sight, or the file was replaced or truncated (log rotation): from the top
            state.inode, state.offset, state.partial = stat.st_ino, 0, b""
        if stat.st_size == state.offset:
            return []
        with open(path, "rb") as file:
            file.seek(state.offset)
            data = file.read(READ_LIMIT)
        state.offset += len(data)
        self.bytes_read += len(data)
        *lines, state.partial = (state.partial + data).split(b"\n")
        return [line.decode("utf-8", "replace").rstrip("\r") for line in lines]

    def _count(self, line: str, state: _FileState, read_second: int, windows: Windows) -> None:
        found = classify(line)
        if state.handshakes.feed(line):
            found.append((HANDSHAKE_INCOMPLETE, 1))
        if not found:
            return
        second = line_second(line)
        window = windows.setdefault(read_second if second is None else second, Counter())
        for column, count in found:
            window[column] += count
            self.totals[column] += count
        if found[0][0] == EXCEPTION:
            message = exception_message(line) or ""
            self.messages[message] += 1
            self._new_messages.setdefault(read_second if second is None else second, Counter())[message] += 1

    def take_messages(self) -> dict[int, Counter]:
        """The exception messages counted since the last call, by second."""
        taken, self._new_messages = self._new_messages, {}
        return taken


class CommandFollower:
    """Follows a command's output, for servers whose log files are elsewhere.

    For example `["ssh", "host", "tail", "-n", "0", "-F", "/var/log/daphne.log"]`
    (`-n 0`: only what is written from now on; `-F`: survive log rotation). The command
    runs as a supervised Child, so it dies with its owner; its output goes to `output`,
    which the same file-reading code follows.
    """

    def __init__(self, argv: list[str], output: Path, name: str = "serverlog"):
        self.argv = argv
        self.output = output
        self.child = Child(name, argv, None, output, output.parent)
        self._follower = ServerLogFollower(lambda: [output])

    def start(self) -> "CommandFollower":
        # The child appends: old content would be counted again as if it were new.
        if self.output.exists() and self.output.stat().st_size > 0:
            raise FileExistsError(f"{self.output} already holds output; give the follower a new file")
        self.child.start()
        return self

    def poll(self, now: float | None = None) -> Windows:
        return self._follower.poll(now)

    @property
    def messages(self) -> Counter:
        return self._follower.messages

    def take_messages(self) -> dict[int, Counter]:
        return self._follower.take_messages()

    @property
    def totals(self) -> Counter:
        return self._follower.totals

    def alive(self) -> bool:
        return self.child.alive()

    def stop(self, kill_after: float = 2.0) -> ExitRecord:
        """SIGTERM, then SIGKILL after kill_after; a later poll() still reads what it wrote."""
        return self.child.stop("graceful", kill_after)

    def __enter__(self) -> "CommandFollower":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
