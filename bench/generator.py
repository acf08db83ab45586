"""How much load one Locust worker process of this suite can generate, and at what cost.

    .venv/bin/python bench/generator.py            # about 3 minutes on 2 cores

Against one local stack (memory channel layer, 2 Daphne), it measures and prints:
1. CPU seconds per pong: our user inside Locust vs a bare websocket-client loop, both in
   steady state (CPU read twice during the run; pongs counted in those seconds).
2. Offered vs achieved pings/s for one Locust process, with its CPU share and late sends,
   to find where the generator (or the server beside it on the same cores) gives out.
3. Idle sockets held by one Locust process and its RSS per socket.
Numbers depend on the machine; the server shares its cores, so read them as lower bounds.
"""

import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from load.config.settings import LayerOptions, StackConfig  # noqa: E402
from load.supervise.procs import Child  # noqa: E402
from load.supervise.stack import REPO_ROOT, Stack  # noqa: E402


def locust_run(
    stack: Stack, work: Path, name: str, users: int, rate: float, seconds: int, paths: str = "/ws/ping/"
) -> Child:
    targets = ",".join(i.ws_url("") for i in stack.instances)
    argv = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(REPO_ROOT / "locustfile.py"),
        "--headless",
        "--only-summary",
        "--targets",
        targets,
        "-u",
        str(users),
        "-r",
        str(min(users, 200)),
        "-t",
        f"{seconds}s",
        "--paths",
        paths,
        "--ping-rate",
        str(rate),
        "--pong-timeout",
        "3",
        "--results-dir",
        str(work),
        "--run-id",
        name,
        "--loglevel",
        "WARNING",
    ]
    return Child(name, argv, None, work / f"{name}.log", REPO_ROOT).start()


def rows(work: Path, name: str) -> list[dict]:
    with open(work / name / "timeseries.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def cpu_of(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def steady_state(child: Child, settle: float, window: float) -> tuple[float, float, float]:
    """(cpu seconds, wall start, wall end) of the Locust process over a steady window."""
    time.sleep(settle)  # a benchmark's warm-up, not synchronisation
    begin, cpu_begin = time.time(), cpu_of(child.pid)
    time.sleep(window)
    return cpu_of(child.pid) - cpu_begin, begin, time.time()


def pongs_between(series: list[dict], begin: float, end: float) -> int:
    return sum(int(r["pongs"]) for r in series if begin <= int(r["epoch_s"]) and int(r["epoch_s"]) + 1 <= end)


def cpu_per_pong(stack: Stack, work: Path) -> None:
    child = locust_run(stack, work, "cpu-locust", users=20, rate=10, seconds=22)
    cpu, begin, end = steady_state(child, settle=6, window=12)
    child.wait(60)
    locust_pongs = pongs_between(rows(work, "cpu-locust"), begin, end)
    bare = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).parent / "bare_client.py"),
            stack.instances[0].ws_url("/ws/ping/"),
            "10",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    baseline = json.loads(bare.stdout)
    print("1. CPU per pong (steady state)")
    print(
        f"   Locust user (20 users x 10 pings/s): {cpu:.2f} CPU s for {locust_pongs} pongs = {cpu / max(locust_pongs, 1) * 1e6:.0f} us/pong"
    )
    print(
        f"   bare websocket-client loop:          {baseline['cpu_s']:.2f} CPU s for {baseline['pongs']} pongs = "
        f"{baseline['cpu_s'] / max(baseline['pongs'], 1) * 1e6:.0f} us/pong"
    )


def capacity(stack: Stack, work: Path) -> None:
    print("2. One Locust process: offered vs achieved pings/s")
    print(f"   {'offered':>8} {'achieved':>9} {'locust CPU':>11} {'late sends':>11} {'p99 ms':>8}")
    for users, rate in ((50, 10), (100, 10), (100, 20), (200, 20), (200, 40)):
        name = f"cap-{users}x{rate}"
        child = locust_run(stack, work, name, users=users, rate=rate, seconds=16)
        cpu, begin, end = steady_state(child, settle=5, window=8)
        child.wait(60)
        steady = [r for r in rows(work, name) if begin <= int(r["epoch_s"]) and int(r["epoch_s"]) + 1 <= end]
        achieved = sum(int(r["pongs"]) for r in steady) / max(len(steady), 1)
        sent = sum(int(r["sent"]) for r in steady)
        late = sum(int(r["late_sends"]) for r in steady)
        p99 = max((float(r["p99_ms"] or 0) for r in steady), default=0)
        print(
            f"   {users * rate:>8} {achieved:>9.0f} {cpu / (end - begin) * 100:>10.0f}% {late / max(sent, 1) * 100:>10.1f}% {p99:>8.1f}"
        )


def idle_sockets(stack: Stack, work: Path) -> None:
    print("3. Idle sockets in one Locust process (one ping per user per 100 s)")
    held = {}
    for users in (200, 1000):
        name = f"idle-{users}"
        child = locust_run(stack, work, name, users=users, rate=0.01, seconds=30)
        deadline, connected = time.time() + 40, 0
        while time.time() < deadline and connected < users:
            time.sleep(0.5)
            connected = sum(
                1 for c in psutil.Process(child.pid).net_connections() if c.status == "ESTABLISHED"
            )
        held[users] = (connected, psutil.Process(child.pid).memory_info().rss)
        child.wait(60)
        print(f"   {users:>5} users: {connected} sockets open, Locust RSS {held[users][1] / 2**20:.0f} MiB")
    (few, rss_few), (many, rss_many) = held[200], held[1000]
    print(
        f"   memory per extra socket (user, its greenlets and socket): {(rss_many - rss_few) / max(many - few, 1) / 1024:.0f} KiB"
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        config = StackConfig(
            daphne_count=2, app=LayerOptions(layer="memory"), kill_after=5, log_dir=work / "server"
        )
        with Stack(config) as stack:
            print(
                f"stack: {', '.join(stack.ws_urls(''))} (memory layer); {psutil.cpu_count()} CPUs shared by server and generator"
            )
            cpu_per_pong(stack, work)
            capacity(stack, work)
            idle_sockets(stack, work)


if __name__ == "__main__":
    main()
