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
from pathlib import Path

from load.analysis.detectors import failure_line
from load.analysis.summary_table import end_of_run_text
from load.config.options import LOCAL_STACK_OPTIONS, at_default
from load.runfolder.names import (
    CHAOS_FAILURES,
    ENDPOINTS_CSV,
    LOCUST_LOG,
    LOCUST_REPORT_HTML,
    REPORT_HTML,
    SUMMARY_JSON,
    TIMESERIES_CSV,
)
from load.runfolder.runids import new_run_id
from load.runs.headless import (
    discard_refused_run,
    interrupted_exit_code,
    locust_error,
    refusal,
    run_folder_options,
    run_locust,
)

DEMO_PATHS = "/ws/ping/:3,/ws/ping/?sleep_ms=30000:1,/ws/room/demo/:2,/ws/ping/layer/:1"


def locust_options(args: argparse.Namespace, run_id: str) -> list[str]:
    argv = [
        *run_folder_options(Path(args.results_dir), run_id),
        "--stack",
        "local",
        "--stack-daphne",
        str(args.stack_daphne),
        "-u",
        str(args.users),
        "-r",
        str(args.users),
        "-t",
        f"{args.run_time}s",
        "--paths",
        DEMO_PATHS,
        "--ping-rate",
        str(args.ping_rate),
        "--pong-timeout",
        "5",
        "--reconnect-on-timeout",
        "--restart-every",
        str(args.restart_every),
        "--restart-mode",
        args.restart_mode,
    ]
    for option in LOCAL_STACK_OPTIONS:  # the stack's knobs Locust has, where not left at their defaults
        value = getattr(args, option.dest)
        if option.dest != "stack_daphne" and not at_default(option, value):
            argv += [option.flag, str(value)]
    return argv


def run_demo(args: argparse.Namespace) -> int:
    run_id = new_run_id(Path(args.results_dir), "demo")
    run_dir = Path(args.results_dir) / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    restarts = (
        f"a {args.restart_mode} restart of every Daphne each {args.restart_every:g} s"
        if args.restart_every
        else "no restarts"
    )
    print(
        f"{args.users} websocket users, {args.ping_rate:g} pings/s each, for {args.run_time:g} s against a local stack "
        f"(Redis + {args.stack_daphne} Daphne), {restarts}\npaths {DEMO_PATHS}\nresults: {run_dir}",
        flush=True,
    )
    try:
        code = run_locust(locust_options(args, run_id), run_dir, args.run_time + 120, workers=args.workers)
        finished, interrupted = code is not None, False
    except KeyboardInterrupt:
        print("interrupted: Locust and the stack were stopped", file=sys.stderr, flush=True)
        code, finished, interrupted = None, False, True
    summary_path = run_dir / SUMMARY_JSON
    if not summary_path.exists() and code == 2:
        print(f"python -m load: error: {refusal(run_dir)}", file=sys.stderr)
        discard_refused_run(run_dir)
        return 2
    if not summary_path.exists():
        print(
            f"no summary was written: {locust_error(run_dir)} (log: {run_dir / LOCUST_LOG})",
            file=sys.stderr,
        )
        return interrupted_exit_code() if interrupted else 2
    summary = json.loads(summary_path.read_text())
    print()
    print(end_of_run_text(run_dir))
    for failure in summary.get(CHAOS_FAILURES, []):
        print(failure_line(failure))
    print(
        f"\nper-second series: {run_dir / TIMESERIES_CSV} (all endpoints), {run_dir / ENDPOINTS_CSV} (each)"
    )
    print(f"report with plots: {run_dir / REPORT_HTML}")
    if (run_dir / LOCUST_REPORT_HTML).exists():  # Locust writes it at its end, not when stopped by SIGTERM
        print(f"Locust's own report: {run_dir / LOCUST_REPORT_HTML}")
    print(f"Locust's log: {run_dir / LOCUST_LOG}")
    if interrupted:
        return interrupted_exit_code()
    # The demo exists to show failures: finished with a summary is success here, unless a
    # restart it meant to show did not happen.
    return 0 if finished and not summary.get(CHAOS_FAILURES) else 1
