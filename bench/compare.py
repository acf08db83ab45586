"""Our Locust user side by side with a bare websocket-client loop and a minimal Locust user.

    .venv/bin/python bench/compare.py                 # about 7 minutes on 2 cores
    .venv/bin/python bench/compare.py --quick         # one rate, short windows, no idle 10,000
    .venv/bin/python bench/compare.py --ours-options "--ws-engine websockets" --ours-options ""

Needs picows (requirements-bench.txt). The echo server (picows, compiled) runs in its own
process on core 0 and echoes every text frame; each client runs alone on core 1, so the
server is never the limit (step 0 prints what it answers on its core). Per run it prints:
- steady-state client CPU per message (user + system from /proc/<pid>/stat over a middle
  window / messages the server echoed in that window; a message is one ping + its echo),
- whole-run client CPU (start-up, run and exit, from wait4), peak RSS (VmHWM),
- messages sent per second against the schedule, and the server's CPU beside the client's.
Then the highest rate ours holds on one core with the schedule kept, and the RSS of ours
holding 1,000 and 10,000 idle sockets. Figures depend on the machine and its load.

The clients, all on gevent (the I/O model ours uses; threads would fight over the GIL):
- bare: websocket-client, per socket a sender greenlet on an open-loop schedule (message k
  due at t0 + k / rate, sent late rather than skipped) and a reader greenlet parsing echoes
  (the same loop on threads cost 67 us per message at 8,000/s where gevent cost 46, here);
- minimal Locust: a User that connects in on_start and per due time sends, receives the
  echo and fires a request event (one greenlet per user; the echo is back long before the
  next due time at these rates, so the schedule holds);
- ours: locustfile.py --protocol template --ping-template '{"seq": {seq}}' --pong-field seq.
Each client gives every socket its own phase, drawn uniformly over one interval as ours
does, so the sends are spread the same way: sockets sharing a phase wake the process once
for many sends, which made an earlier minimal user look a third cheaper at 1,000/s.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import ctypes
import logging
import multiprocessing
import os
import resource
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from load.runfolder import names  # noqa: E402  (the run folder's file and column names)

SERVER_CORE, CLIENT_CORE = 0, 1
TICK = os.sysconf("SC_CLK_TCK")
SOCKETS = 50
RATES = (1000, 2000, 8000)


# ---------------------------------------------------------------- /proc readings


def cpu_split(pid: int) -> tuple[float, float]:
    """CPU seconds (user + system) of a live process itself and of its reaped children
    (fields 14 + 15 and 16 + 17 of /proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK, (int(fields[13]) + int(fields[14])) / TICK


def cpu_s(pid: int) -> float:
    return cpu_split(pid)[0]


def status_kib(pid: int, key: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except FileNotFoundError:
        return None
    return None


# ---------------------------------------------------------------- the echo server


def shared(kind: str, value: float = 0):
    return field(default_factory=lambda: multiprocessing.RawValue(kind, value))


@dataclass
class Counters:
    """Shared with the server process (fork), read and written without a lock."""

    echoed: ctypes.c_uint64 = shared("Q")  # text frames echoed
    open: ctypes.c_int64 = shared("q")  # sockets open
    # The send lateness the server sees: the bench sets the schedule's interval per socket and
    # the command (START, then STOP); the server answers by setting it back to IDLE.
    interval: ctypes.c_double = shared("d")
    command: ctypes.c_int = shared("i")
    late_p50_ms: ctypes.c_double = shared("d")
    late_p99_ms: ctypes.c_double = shared("d")
    late_max_ms: ctypes.c_double = shared("d")


IDLE, START, STOP = 0, 1, 2


def quiet_asyncio() -> None:
    # "write() called after connection lost" per frame in flight when a client hangs up
    for name in ("asyncio", "aiofastnet"):
        logging.getLogger(name).setLevel(logging.ERROR)


def serve(port: int, counters: Counters) -> None:
    os.sched_setaffinity(0, {SERVER_CORE})
    quiet_asyncio()
    resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
    from picows import WSListener, WSMsgType, ws_create_server

    echoed, opened, command = counters.echoed, counters.open, counters.command
    listeners: set[Echo] = set()
    recording = [False]

    class Echo(WSListener):
        """Echoes text frames; while recording, notes each frame's arrival against its schedule.

        Message k of a socket is due at t0 + k * interval (all three clients send seq k then),
        so arrival - k * interval is t0 plus the send's lateness; its least value in the window
        stands for t0, and every send's lateness is its excess over that least value.
        """

        def __init__(self) -> None:
            super().__init__()
            self.offsets: list[float] = []

        def on_ws_connected(self, transport) -> None:
            opened.value += 1
            listeners.add(self)

        def on_ws_disconnected(self, transport) -> None:
            opened.value -= 1
            listeners.discard(self)

        def on_ws_frame(self, transport, frame) -> None:
            if frame.msg_type == WSMsgType.TEXT:
                payload = frame.get_payload_as_bytes()
                transport.send(WSMsgType.TEXT, payload)
                echoed.value += 1
                if recording[0]:
                    seq = int(payload.rsplit(b":", 1)[1].rstrip(b"} "))  # '{"seq": 17}'
                    self.offsets.append(time.monotonic() - seq * counters.interval.value)
            elif frame.msg_type == WSMsgType.CLOSE:
                transport.send_close(frame.get_close_code(), frame.get_close_message())
                transport.disconnect()

    def lateness() -> None:
        late = []
        for listener in listeners:
            if listener.offsets:
                least = min(listener.offsets)
                late.extend(o - least for o in listener.offsets)
        late.sort()
        counters.late_p50_ms.value = late[len(late) // 2] * 1000 if late else -1
        counters.late_p99_ms.value = late[int(len(late) * 0.99)] * 1000 if late else -1
        counters.late_max_ms.value = late[-1] * 1000 if late else -1

    async def control() -> None:
        while True:
            await asyncio.sleep(0.02)
            if command.value == START:
                for listener in listeners:
                    listener.offsets = []
                recording[0] = True
                command.value = IDLE
            elif command.value == STOP:
                recording[0] = False
                lateness()
                command.value = IDLE

    async def main() -> None:
        server = await ws_create_server(lambda _request: Echo(), "127.0.0.1", port, backlog=4096)
        controller = asyncio.create_task(control())  # noqa: F841  (a reference keeps the task)
        await server.serve_forever()

    asyncio.run(main())


def flood(port: int, sockets: int, window: int, seconds: float) -> None:
    """A picows client keeping `window` frames in flight per socket: the server's ceiling."""
    os.sched_setaffinity(0, {CLIENT_CORE})
    quiet_asyncio()
    from picows import WSListener, WSMsgType, ws_connect

    payload = b'{"seq": 123456}'

    class Flood(WSListener):
        def on_ws_connected(self, transport) -> None:
            for _ in range(window):
                transport.send(WSMsgType.TEXT, payload)

        def on_ws_frame(self, transport, frame) -> None:
            transport.send(WSMsgType.TEXT, payload)

    async def main() -> None:
        clients = [await ws_connect(Flood, f"ws://127.0.0.1:{port}/") for _ in range(sockets)]
        await asyncio.sleep(seconds)
        for transport, _listener in clients:
            transport.disconnect()

    asyncio.run(main())


# ---------------------------------------------------------------- the clients


BARE = r"""
from gevent import monkey; monkey.patch_all()
import json, random, sys, time, gevent, websocket

url, sockets, rate, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
interval = sockets / rate

def reader(ws):
    while True:
        json.loads(ws.recv())["seq"]

def sender(ws, t0, stop):
    k = 0
    while True:
        k += 1
        due = t0 + k * interval
        if due >= stop:
            return
        while (delay := due - time.time()) > 0:  # a timer may fire a little early
            gevent.sleep(delay)
        ws.send(json.dumps({"seq": k}))

conns = [websocket.create_connection(url) for _ in range(sockets)]
t0 = time.time()
readers = [gevent.spawn(reader, ws) for ws in conns]
phases = [random.Random(i).uniform(0, interval) for i in range(sockets)]  # as ours: a phase per socket
gevent.joinall([gevent.spawn(sender, ws, t0 + phase, t0 + seconds) for phase, ws in zip(phases, conns)])
gevent.sleep(0.2)
for ws in conns:
    ws.close()
"""

MINIMAL_LOCUSTFILE = r"""
import itertools, json, os, random, time
import gevent, websocket
from locust import User, events, task

numbers = itertools.count()


class Echo(User):
    interval = 1.0  # set from the environment by the bench

    def on_start(self):
        self.interval = float(os.environ["BENCH_INTERVAL"])
        self.ws = websocket.create_connection(self.host)
        # As ours: a phase per socket. Without it the users' phases follow the spawn rate
        # (one start every 20 ms against a 50 ms interval puts 50 users on 5 phases).
        self.t0, self.k = time.time() + random.Random(next(numbers)).uniform(0, self.interval), 0

    @task
    def echo(self):
        self.k += 1
        due = self.t0 + self.k * self.interval
        while (delay := due - time.time()) > 0:  # a timer may fire a little early
            gevent.sleep(delay)
        start = time.perf_counter()
        self.ws.send(json.dumps({"seq": self.k}))
        reply = json.loads(self.ws.recv())
        events.request.fire(
            request_type="WS", name="echo", response_time=(time.perf_counter() - start) * 1000,
            response_length=len(reply), exception=None, context={},
        )

    def on_stop(self):
        self.ws.close()
"""


@dataclass
class Client:
    name: str
    argv: list[str]
    env: dict[str, str]
    run_folder: Path | None = None  # ours: its timeseries.csv


def bare_client(work: Path, url: str, rate: int, sockets: int, seconds: float) -> Client:
    script = work / "bare.py"
    script.write_text(BARE)
    return Client("bare", [sys.executable, str(script), url, str(sockets), str(rate), str(seconds)], {})


def minimal_client(work: Path, url: str, rate: int, sockets: int, seconds: float) -> Client:
    locustfile = work / "minimal_locustfile.py"
    locustfile.write_text(textwrap.dedent(MINIMAL_LOCUSTFILE))
    argv = [sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "--only-summary"]
    argv += [
        "--host",
        url,
        "-u",
        str(sockets),
        "-r",
        str(sockets),
        "-t",
        f"{seconds:.0f}s",
        "--loglevel",
        "WARNING",
    ]
    return Client("minimal Locust", argv, {"BENCH_INTERVAL": str(sockets / rate)})


def ours_client(
    work: Path,
    url: str,
    rate: float,
    sockets: int,
    seconds: float,
    options: str,
    spawn_rate: int | None = None,
) -> Client:
    run_id = f"ours-{time.time_ns()}"
    argv = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(REPO_ROOT / "locustfile.py"),
        "--headless",
        "--only-summary",
    ]
    argv += ["--host", url.rstrip("/"), "--paths", "/", "-u", str(sockets), "-r", str(spawn_rate or sockets)]
    argv += ["-t", f"{seconds:.0f}s", "--protocol", "template", "--ping-template", '{"seq": {seq}}']
    argv += ["--pong-field", "seq", "--ping-rate", f"{rate / sockets:g}", "--pong-timeout", "5"]
    argv += ["--results-dir", str(work), "--run-id", run_id, "--loglevel", "WARNING", *shlex.split(options)]
    name = "ours" + (f" {options}" if options else "")
    return Client(name, argv, {}, work / run_id)


# ---------------------------------------------------------------- one measured run


@dataclass
class Measured:
    client: str
    rate: float
    window_s: float = 0.0
    window_epoch: tuple[float, float] = (0.0, 0.0)  # wall clock, to pick ours' per-second rows
    late_ms: tuple[float, float, float] | None = None  # send lateness seen by the server: p50, p99, max
    load1: float | None = None  # the machine's 1-minute load average at the window's end
    echoed: int = 0  # messages the server echoed in the window
    client_cpu_s: float = 0.0  # in the window
    server_cpu_s: float = 0.0  # in the window
    run_cpu_s: float | None = None  # whole run, from wait4
    end_cpu_s: float | None = None  # the client's own CPU from its last message to its exit
    peak_rss_kib: int | None = None
    rss_kib: int | None = None  # at the window's end
    connected: int = 0
    exit_code: int | None = None
    run_folder: Path | None = None
    note: str = ""

    @property
    def sent_per_s(self) -> float:
        return self.echoed / self.window_s if self.window_s else 0.0

    @property
    def us_per_msg(self) -> float | None:
        return self.client_cpu_s / self.echoed * 1e6 if self.echoed else None

    @property
    def server_us_per_msg(self) -> float | None:
        return self.server_cpu_s / self.echoed * 1e6 if self.echoed else None


def pin_and_raise_nofile() -> None:
    os.sched_setaffinity(0, {CLIENT_CORE})
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def measure(
    client: Client,
    rate: float,
    sockets: int,
    server_pid: int,
    counters: Counters,
    settle: float,
    window: float,
    log: Path,
) -> Measured:
    """Run one client pinned to its core; read CPU over [connected + settle, + window]."""
    result = Measured(client.name, rate, run_folder=client.run_folder)
    counters.interval.value = sockets / rate
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), **client.env}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            client.argv,
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=pin_and_raise_nofile,
        )
    exited: list[tuple[int, resource.struct_rusage]] = []

    def running() -> bool:
        """Reaped with wait4 (never Popen.poll) to keep the child's rusage: its whole-run CPU."""
        if exited:
            return False
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            exited.append((os.waitstatus_to_exitcode(status), usage))
        return not pid

    deadline = time.time() + 120
    while counters.open.value < sockets and time.time() < deadline and running():
        time.sleep(0.05)  # a bench polling its own children, no test synchronisation
    result.connected = counters.open.value
    if running() and result.connected >= sockets:
        time.sleep(settle)
        counters.command.value = START
        c0, s0, e0, t0, w0 = (
            cpu_s(proc.pid),
            cpu_s(server_pid),
            counters.echoed.value,
            time.monotonic(),
            time.time(),
        )
        time.sleep(window)
        c1, s1, e1, t1 = cpu_s(proc.pid), cpu_s(server_pid), counters.echoed.value, time.monotonic()
        result.window_epoch = (w0, time.time())
        counters.command.value = STOP
        while counters.command.value != IDLE and time.monotonic() < t1 + 10:
            time.sleep(0.01)
        if counters.command.value == IDLE and counters.late_p99_ms.value >= 0:
            result.late_ms = (
                counters.late_p50_ms.value,
                counters.late_p99_ms.value,
                counters.late_max_ms.value,
            )
        result.window_s, result.echoed = t1 - t0, e1 - e0
        result.client_cpu_s, result.server_cpu_s = c1 - c0, s1 - s0
        result.rss_kib = status_kib(proc.pid, "VmRSS")
        result.load1 = os.getloadavg()[0]
    else:
        result.note = f"only {result.connected} of {sockets} sockets connected"
    peak, samples = None, []
    while running() and time.time() < deadline + 300:
        peak = status_kib(proc.pid, "VmHWM") or peak
        try:
            samples.append((counters.echoed.value, *cpu_split(proc.pid)))
        except (FileNotFoundError, ProcessLookupError):
            break
        time.sleep(0.01)
    if not exited:
        proc.kill()
        os.wait4(proc.pid, 0)
        result.note = "killed: did not exit in time"
    else:
        result.exit_code, usage = exited[0]
        result.run_cpu_s = usage.ru_utime + usage.ru_stime
        result.end_cpu_s = end_cpu(samples, result.run_cpu_s)
        if result.exit_code:
            lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
            result.note += f"; its last line: {lines[-1][:160] if lines else '(no output)'}"
    result.peak_rss_kib = peak
    proc.returncode = result.exit_code  # reaped above; Popen must not wait for it again
    while counters.open.value > 0 and time.time() < deadline + 330:
        time.sleep(0.05)  # the next run starts on a server holding no sockets
    return result


def end_cpu(samples: list[tuple[int, float, float]], run_cpu_s: float) -> float | None:
    """The client's own CPU from its last message (the first sample after the server's count
    stopped growing) to its exit. wait4 counts the children it reaped (ours' report process)
    in the whole run; the last sample's children's CPU is taken off to leave its own."""
    if not samples or samples[-1][0] == samples[0][0]:
        return None  # no message after the window: no known end of the run
    last_count, _, children = samples[-1]
    stopped_cpu = next(own for count, own, _ in samples if count == last_count)
    return run_cpu_s - children - stopped_cpu


def ours_seconds(folder: Path, begin: float, end: float) -> list[dict]:
    """The whole seconds of ours' timeseries.csv inside the window (its own schedule and send lag)."""
    with open(folder / names.TIMESERIES_CSV, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [r for r in rows if begin <= int(r[names.EPOCH_S]) and int(r[names.EPOCH_S]) + 1 <= end]


# ---------------------------------------------------------------- printing


def fmt(value: float | None, spec: str, why: str = "n/m") -> str:
    return why if value is None else format(value, spec)


def mib(kib: int | None) -> str:
    return fmt(kib / 1024 if kib is not None else None, ".0f")


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a is not None and b else "n/m"


def print_table(results: list[Measured]) -> None:
    head = (
        f"{'rate/s':>6} {'client':<34} {'sent/s':>7} {'of sched':>8} {'us/msg':>7} {'cpu %':>6} "
        f"{'late p99':>8} {'run cpu s':>9} {'end cpu s':>9} {'peak MiB':>8} {'srv us/msg':>10} {'srv %':>6} {'load1':>5} {'/bare':>6} {'/minimal':>8}"
    )
    print(head)
    print("-" * len(head))
    for rate in dict.fromkeys(r.rate for r in results):
        group = [r for r in results if r.rate == rate]
        bare = next((r.us_per_msg for r in group if r.client == "bare"), None)
        minimal = next((r.us_per_msg for r in group if r.client == "minimal Locust"), None)
        for r in group:
            ours = r.client.startswith("ours")
            print(
                f"{rate:>6.0f} {r.client[:34]:<34} {r.sent_per_s:>7.0f} {r.sent_per_s / rate * 100:>7.1f}% "
                f"{fmt(r.us_per_msg, '.0f'):>7} {fmt(r.client_cpu_s / r.window_s * 100 if r.window_s else None, '.0f'):>6} "
                f"{fmt(r.late_ms[1] if r.late_ms else None, '.1f'):>8} {fmt(r.run_cpu_s, '.2f'):>9} {fmt(r.end_cpu_s, '.2f'):>9} {mib(r.peak_rss_kib):>8} {fmt(r.server_us_per_msg, '.1f'):>10} "
                f"{fmt(r.server_cpu_s / r.window_s * 100 if r.window_s else None, '.0f'):>6} "
                f"{fmt(r.load1, '.2f'):>5} "
                f"{ratio(r.us_per_msg, bare) if ours else '':>6} {ratio(r.us_per_msg, minimal) if ours else '':>8}"
                + (f"  ({r.note})" if r.note else "")
                + (f"  exit {r.exit_code}" if r.exit_code not in (0, None) else "")
            )


def print_medians(results: list[Measured]) -> None:
    """Each client's median us/msg over the rounds, and ours' ratios of medians: one run is
    noisy (about 30 % between runs on a shared machine)."""
    print("\n   medians over the rounds (us/msg; ratios of medians)")
    for rate in dict.fromkeys(r.rate for r in results):
        per_client: dict[str, list[float]] = {}
        for r in results:
            if r.rate == rate and r.us_per_msg is not None:
                per_client.setdefault(r.client, []).append(r.us_per_msg)
        medians = {client: statistics.median(values) for client, values in per_client.items()}
        bare, minimal = medians.get("bare"), medians.get("minimal Locust")
        for client, median in medians.items():
            ours = client.startswith("ours")
            rounds = ", ".join(f"{v:.0f}" for v in per_client[client])
            print(
                f"   {rate:>6.0f} {client[:34]:<34} {median:>6.0f}  ({rounds})"
                + (f"  /bare {ratio(median, bare)}  /minimal {ratio(median, minimal)}" if ours else "")
            )


# ---------------------------------------------------------------- the steps


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_ceiling(port: int, server_pid: int, counters: Counters, seconds: float) -> None:
    ctx = multiprocessing.get_context("fork")
    flooder = ctx.Process(target=flood, args=(port, 50, 64, seconds + 3), daemon=True)
    flooder.start()
    deadline = time.time() + 20
    while counters.open.value < 50 and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(1)
    s0, e0, t0 = cpu_s(server_pid), counters.echoed.value, time.monotonic()
    time.sleep(seconds)
    s1, e1, t1 = cpu_s(server_pid), counters.echoed.value, time.monotonic()
    flooder.join(30)
    while counters.open.value > 0 and time.time() < deadline + 30:
        time.sleep(0.05)
    rate, share = (e1 - e0) / (t1 - t0), (s1 - s0) / (t1 - t0)
    print(
        f"0. echo server alone (picows, core {SERVER_CORE}), flooded by a picows client on core {CLIENT_CORE} "
        f"(50 sockets x 64 in flight): {rate:,.0f} messages/s echoed at {share * 100:.0f}% of its core "
        f"= {(s1 - s0) / max(e1 - e0, 1) * 1e6:.1f} us/message, about {rate / max(share, 0.01):,.0f}/s per full core"
    )


def side_by_side(args, work: Path, url: str, server_pid: int, counters: Counters) -> None:
    rates = (2000,) if args.quick else RATES
    print(
        f"\n1. Side by side, {SOCKETS} sockets, client on core {CLIENT_CORE} alone; window {args.window:.0f} s after "
        f"{args.settle:.0f} s settling; us/msg = client CPU per message (ping + echo) in the window"
    )
    results = []
    for rate in [rate for _ in range(args.repeat) for rate in rates]:  # rounds interleave the clients
        seconds = args.settle + args.window + 3
        clients = [
            bare_client(work, url, rate, SOCKETS, seconds),
            minimal_client(work, url, rate, SOCKETS, seconds),
            *(ours_client(work, url, rate, SOCKETS, seconds, o) for o in args.ours_options),
        ]
        for client in clients:
            log = work / f"{client.name.replace(' ', '_')[:40]}-{rate}.log"
            results.append(
                measure(client, rate, SOCKETS, server_pid, counters, args.settle, args.window, log)
            )
            print(f"   ... {client.name} at {rate}/s done", flush=True)
    print()
    print_table(results)
    if args.repeat > 1:
        print_medians(results)
    print(
        "   sent/s: messages the server echoed per second in the window; of sched: that / the rate; cpu %: of one"
        " core; late p99: ms, the sends' lateness as the server saw them arrive; run cpu s: the whole client run (start-up, run, exit) from wait4; end cpu s: the client's own CPU from its last message to its exit (children such as ours' report process left out); peak MiB: VmHWM; srv: the"
        " echo server in the same window; load1: the machine's load average"
        " at the window's end (other work on the client's core shows as lateness); /bare, /minimal: ours'"
        " us/msg over theirs"
    )


def holds(result: Measured, lag_limit_ms: float) -> tuple[bool, str]:
    """Schedule kept: >= 99% of due pings sent, and the p99 of the sends' lateness <= the limit.

    The lateness is what the server saw (arrival against each socket's schedule, see Echo);
    ours' own timeseries.csv keeps only each second's max send lag and the count of sends
    more than 50 ms late, printed beside it.
    """
    if not result.window_s or result.run_folder is None:
        return False, result.note or "no window"
    steady = ours_seconds(result.run_folder, *result.window_epoch)
    due = sum(int(r[names.PINGS] or 0) for r in steady)
    sent = sum(int(r[names.SENT] or 0) for r in steady)
    lags = sorted(float(r[names.SEND_LAG_MAX_MS] or 0) for r in steady)
    late = sum(int(r[names.LATE_SENDS] or 0) for r in steady)
    share = sent / due if due else 0.0
    p99 = result.late_ms[1] if result.late_ms else None
    ok = share >= 0.99 and p99 is not None and p99 <= lag_limit_ms
    text = (
        f"sent {share * 100:.1f}% of due over {len({r[names.EPOCH_S] for r in steady})} s; lateness at the server p50/p99/max "
        + ("/".join(f"{x:.1f}" for x in result.late_ms) + " ms" if result.late_ms else "n/m")
        + f"; ours' own per-second max send lag: median {fmt(lags[len(lags) // 2] if lags else None, '.1f')} ms,"
        f" worst {fmt(lags[-1] if lags else None, '.1f')} ms; sends > 50 ms late: {late}"
    )
    return ok, text


def highest_rate(args, work: Path, url: str, server_pid: int, counters: Counters) -> None:
    steps = (4000, 8000) if args.quick else tuple(args.max_steps)
    options = args.ours_options[0]
    print(
        f"\n2. Highest rate ours ({options or 'default options'}) holds on one core, {SOCKETS} sockets, stepping up; schedule kept"
        f" = >= 99% of due pings sent (ours' timeseries.csv) and p99 lateness of sends <= {args.lag_ms:g} ms (as the"
        " server saw them arrive)"
    )
    best = None
    for rate in steps:
        ok = False
        for attempt in (1, 2):  # a failed step runs once more: other work on the core makes lateness noisy
            seconds = args.settle + args.window + 3
            client = ours_client(work, url, rate, SOCKETS, seconds, options)
            log = work / f"max-{rate}-{attempt}.log"
            result = measure(client, rate, SOCKETS, server_pid, counters, args.settle, args.window, log)
            ok, text = holds(result, args.lag_ms)
            cpu = fmt(result.client_cpu_s / result.window_s * 100 if result.window_s else None, ".0f")
            server = fmt(result.server_cpu_s / result.window_s * 100 if result.window_s else None, ".0f")
            print(
                f"   {rate:>6}/s{' again' if attempt == 2 else ''}: {'holds' if ok else 'FAILS'}; server echoed "
                f"{result.sent_per_s:,.0f}/s; client CPU {cpu}% of its core, {fmt(result.us_per_msg, '.0f')} us/msg; "
                f"server {server}%; load1 {fmt(result.load1, '.2f')}; {text}",
                flush=True,
            )
            if ok:
                break
        if not ok:
            break
        best = rate
    print(f"   highest rate held: {f'{best:,}/s' if best else 'none of the steps'}")


def idle(args, work: Path, url: str, server_pid: int, counters: Counters) -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    counts = (1000,) if args.quick else (1000, 10000)
    options = args.ours_options[0]
    print(
        f"\n3. Idle sockets: ours ({options or 'default options'}), one ping per socket every 30 s; open files limit "
        f"(soft, hard) {hard}, each child raises its soft limit to the hard one; opened at {args.idle_spawn}/s"
    )
    held: dict[int, int] = {}
    for count in counts:
        if count + 100 > hard[1]:
            print(
                f"   {count:>6} sockets: not measured (hard open files limit {hard[1]} is below {count + 100})"
            )
            continue
        seconds = count / args.idle_spawn + args.settle + args.idle_window + 5
        client = ours_client(work, url, count / 30, count, seconds, options, spawn_rate=args.idle_spawn)
        result = measure(
            client,
            count / 30,
            count,
            server_pid,
            counters,
            args.settle,
            args.idle_window,
            work / f"idle-{count}.log",
        )
        if not result.window_s or result.rss_kib is None:
            print(f"   {count:>6} sockets: not measured ({result.note or 'no RSS read'})")
            continue
        held[count] = result.rss_kib
        print(
            f"   {count:>6} sockets: RSS {mib(result.rss_kib)} MiB in the window, peak {mib(result.peak_rss_kib)} MiB "
            f"(VmHWM, whole run); CPU {result.client_cpu_s / result.window_s * 100:.1f}% "
            f"of a core for {result.sent_per_s:.0f} pings/s ({fmt(result.us_per_msg, '.0f')} us/ping); whole run "
            f"{fmt(result.run_cpu_s, '.1f')} CPU s",
            flush=True,
        )
    if len(held) == 2:
        (few, rss_few), (many, rss_many) = sorted(held.items())
        print(
            f"   RSS per extra idle socket ({few} -> {many}): {(rss_many - rss_few) / (many - few):.1f} KiB"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="one rate, short windows, 1,000 idle sockets only"
    )
    parser.add_argument(
        "--ours-options",
        action="append",
        help="extra Locust options for ours, e.g. '--ws-engine websockets'; repeat to compare variants",
    )
    parser.add_argument(
        "--max-steps",
        type=int,
        nargs="+",
        default=[2000, 4000, 6000, 8000, 11000, 14000, 17000, 20000, 24000],
    )
    parser.add_argument("--lag-ms", type=float, default=5.0)
    parser.add_argument("--idle-spawn", type=int, default=1000, help="idle sockets opened per second")
    parser.add_argument("--only", choices=("ceiling", "side", "max", "idle"), nargs="+")
    parser.add_argument(
        "--repeat", type=int, default=1, help="rounds of the side-by-side step; medians printed"
    )
    args = parser.parse_args()
    args.ours_options = args.ours_options or [""]
    args.settle, args.window, args.idle_window = (2.0, 4.0, 5.0) if args.quick else (3.0, 10.0, 10.0)
    if len(os.sched_getaffinity(0)) < 2:
        sys.exit("bench/compare.py needs 2 cores (server on one, client on the other)")
    started = time.monotonic()
    print(
        f"bench/compare.py {shlex.join(sys.argv[1:])}; {os.cpu_count()} cores; load average at start "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}"
    )
    counters = Counters()
    port = free_port()
    server = multiprocessing.get_context("fork").Process(target=serve, args=(port, counters), daemon=True)
    server.start()
    url = f"ws://127.0.0.1:{port}/"
    try:
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            steps = args.only or ("ceiling", "side", "max", "idle")
            if "ceiling" in steps:
                server_ceiling(port, server.pid, counters, 3.0)
            if "side" in steps:
                side_by_side(args, work, url, server.pid, counters)
            if "max" in steps:
                highest_rate(args, work, url, server.pid, counters)
            if "idle" in steps:
                idle(args, work, url, server.pid, counters)
    finally:
        server.terminate()
        server.join(5)
    print(
        f"\ndone in {time.monotonic() - started:.0f} s; load average at end "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )


if __name__ == "__main__":
    main()
