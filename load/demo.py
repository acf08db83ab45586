"""`python -m load demo`: the embedded default run, the seed's scenario.

A local stack (Redis and two Daphne); websocket users on /ws/ping/, some of whose pings
sleep 30 s in the consumer (the seed's reproduction) and who, like heartbeat clients,
give up on a socket whose pong is 5 s late; users in a room; and Daphne restarted every
20 s while those consumers sleep. The summary shows the kills Daphne logged, the group
members each restart leaks into Redis, the error spikes and the recovery time of each
restart. Locust runs as a supervised child process (its log in the run folder), so
gevent never enters this process.
"""

import argparse
import json
import sys
import time
from pathlib import Path

from load.procs import Child
from load.stack import REPO_ROOT
from load.summary_table import format_summary

DEMO_PATHS = "/ws/ping/:3,/ws/ping/?sleep_ms=30000:1,/ws/room/demo/:2,/ws/ping/layer/:1"


def locust_argv(args: argparse.Namespace, run_id: str) -> list[str]:
    run_dir = Path(args.results_dir) / run_id
    argv = [
        sys.executable, "-m", "locust", "-f", str(REPO_ROOT / "locustfile.py"), "--headless",
        "--stack", "local", "--stack-daphne", str(args.daphne),
        "-u", str(args.users), "-r", str(args.users), "-t", f"{args.run_time}s",
        "--paths", DEMO_PATHS, "--ping-rate", str(args.ping_rate), "--pong-timeout", "5", "--reconnect-on-timeout",
        "--restart-every", str(args.restart_every), "--restart-mode", args.restart_mode,
        "--results-dir", str(args.results_dir), "--run-id", run_id,
        "--csv", str(run_dir / "locust"), "--html", str(run_dir / "locust_report.html"),
        "--only-summary",
    ]
    if args.asgi_threads:
        argv += ["--asgi-threads", str(args.asgi_threads)]
    if args.redis_socket_timeout:
        argv += ["--redis-socket-timeout", args.redis_socket_timeout]
    return argv


def run_demo(args: argparse.Namespace) -> int:
    run_id = time.strftime("demo-%Y%m%d-%H%M%S", time.gmtime())
    run_dir = Path(args.results_dir) / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    restarts = f"a {args.restart_mode} restart of every Daphne each {args.restart_every:g} s" if args.restart_every else "no restarts"
    print(
        f"{args.users} websocket users, {args.ping_rate:g} pings/s each, for {args.run_time:g} s against a local stack "
        f"(Redis + {args.daphne} Daphne), {restarts}\npaths {DEMO_PATHS}\nresults: {run_dir}",
        flush=True,
    )
    locust = Child("locust", locust_argv(args, run_id), None, run_dir / "locust.log", REPO_ROOT).start()
    try:
        finished = locust.wait(args.run_time + 120)
    except KeyboardInterrupt:
        print("interrupted: stopping Locust and the stack", file=sys.stderr, flush=True)
        finished = False
    if not finished:
        locust.stop("graceful", kill_after=30)
    summary_path = run_dir / "summary.json"
    if not summary_path.exists():
        print(f"no summary was written; see {locust.log_path}:\n{locust.log_tail()}", file=sys.stderr)
        return 2
    print()
    print(format_summary(json.loads(summary_path.read_text())))
    print(f"\nper-second series: {run_dir / 'timeseries.csv'} (all endpoints), {run_dir / 'endpoints.csv'} (each)")
    print(f"Locust's own report: {run_dir / 'locust_report.html'}; its log: {locust.log_path}")
    # The demo exists to show failures: finished with a summary is success here.
    return 0 if finished else 1
