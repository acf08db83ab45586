"""`python -m load ...`: parse, validate once into a StackConfig, call one function.

Exit codes follow Locust's: 0 fine, 1 the system under test failed (or a chaos action
did), 2 the user's input or our tooling is wrong (always one line on stderr, never a
traceback); a run that a signal interrupted ends with 128 + its number (130 Ctrl-C, 143
SIGTERM, 129 SIGHUP) after its summary and report are written. `stack up` and `agent`
serve until stopped, so a signal is their normal end: 0.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

from load.config import options
from load.config.options import CLI_NAMES, SWEEP_OPTIONS, add_stack_flags, add_sweep_flags
from load.config.settings import RESTART_MODES, ConfigError, StackConfig
from load.runfolder.eventlog import EventLog, format_event
from load.runfolder.names import EVENTS_JSONL, SERVER_DIR, STACK_FOLDER_PREFIX
from load.runfolder.runids import new_run_id
from load.runs.headless import interrupted_exit_code, unwind_on_signals
from load.supervise.redisserver import StackError
from load.supervise.stack import Stack
from load.wire.pingclient import ROUTES

PROG = "python -m load"
AGENT_TOKEN_VARIABLE = "LOAD_AGENT_TOKEN"
# Commands whose normal end is a signal (Ctrl-C, `docker stop`): that ends them with 0.
SERVES_UNTIL_STOPPED = ("stack", "agent")
MAX_WORKERS = 64


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def add_stack_options(parser: argparse.ArgumentParser, daphne_default: int) -> None:
    """`stack up` and `agent`: every knob of the stack (load.config.options), and where runs go."""
    add_stack_flags(parser, {"stack_daphne": daphne_default})
    parser.add_argument(
        "--results-dir", type=Path, default=Path("results"), help="where run folders go (default %(default)s)"
    )


def stack_config(args: argparse.Namespace, run_dir: Path) -> StackConfig:
    config, notes = options.stack_config(vars(args), log_dir=run_dir / SERVER_DIR)
    for note in notes:  # the target app's variables this stack uses or overrides: said, not silent
        print(note, flush=True)
    return config


def new_run_dir(results_dir: Path, prefix: str) -> Path:
    return results_dir / new_run_id(results_dir, prefix)


def print_event(event: dict) -> None:
    print(format_event(event), flush=True)


def run_stack_up(args: argparse.Namespace) -> int:
    run_dir = new_run_dir(args.results_dir, STACK_FOLDER_PREFIX)
    config = stack_config(args, run_dir)
    events = EventLog(run_dir / EVENTS_JSONL)

    def on_event(event: dict) -> None:
        events.write(event)
        print_event(event)

    with Stack(config, on_event) as stack:
        print(f"redis      {stack.redis_url or '(none: memory layer)'}", flush=True)
        for instance in stack.instances:
            print(
                f"{instance.name:<10} {instance.ws_url('/ws/ping/')}  pid {instance.started().pid}",
                flush=True,
            )
        print(f"endpoints  {' '.join(ROUTES)}  and GET /healthz", flush=True)
        print(f"logs       {config.log_dir}", flush=True)
        print("Ctrl-C stops everything.", flush=True)
        watch_until_interrupted(stack)
    return 0


def watch_until_interrupted(stack: Stack) -> None:
    reported: set[int] = set()
    while True:
        time.sleep(0.5)
        for instance in stack.instances:
            child = instance.started()
            if not child.alive() and child.pid not in reported:
                reported.add(child.pid)
                print(
                    f"{instance.name} exited by itself (code {child.returncode}); see {child.log_path}",
                    flush=True,
                )


def add_demo_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--users", type=int, default=24, help="websocket users (default %(default)s)")
    parser.add_argument("--run-time", type=int, default=60, help="seconds of load (default %(default)s)")
    parser.add_argument(
        "--ping-rate", type=float, default=1.0, help="pings per second per user (default %(default)s)"
    )
    parser.add_argument(
        "--restart-every",
        type=float,
        default=20.0,
        help="seconds between restarts of every Daphne, 0 for none (default %(default)s)",
    )
    parser.add_argument(
        "--restart-mode",
        choices=RESTART_MODES,
        default="graceful",
        help="SIGTERM then SIGKILL, or SIGKILL (default %(default)s)",
    )
    parser.add_argument(
        "--results-dir", type=Path, default=Path("results"), help="where run folders go (default %(default)s)"
    )
    add_workers_option(parser)
    add_stack_flags(parser, locust_only=True)  # passed on to Locust's --stack local


def add_workers_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="run Locust as a master with N worker processes joined over TCP on loopback, "
        "as on other hosts (default: one process)",
    )


def check_workers(args: argparse.Namespace) -> argparse.Namespace:
    if not 0 <= args.workers <= MAX_WORKERS:
        raise ConfigError("workers", args.workers, f"worker processes, 0 (one process) to {MAX_WORKERS}")
    return args


def check_demo_args(args: argparse.Namespace) -> argparse.Namespace:
    check_workers(args)
    for name in ("users", "run_time", "ping_rate"):
        if getattr(args, name) <= 0:
            raise ConfigError(name, getattr(args, name), "must be a positive number")
    if args.restart_every < 0:
        raise ConfigError("restart_every", args.restart_every, "seconds between restarts, or 0 for none")
    options.stack_config(vars(args), log_dir=Path(SERVER_DIR))  # Locust says which variables it uses
    return args


def build_parser() -> OneLineParser:
    parser = OneLineParser(prog=PROG, description="Load and chaos testing for Django Channels behind Daphne.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser(
        "demo", help="a headless Locust run against a local stack, with a summary table"
    )
    add_demo_options(demo)
    demo.set_defaults(run=run_demo_command)
    stack = commands.add_parser("stack", help="run the local stack (Redis + Daphne) in the foreground")
    actions = stack.add_subparsers(dest="action", required=True, metavar="ACTION")
    up = actions.add_parser("up", help="start Redis and N Daphne instances; Ctrl-C stops everything")
    add_stack_options(up, daphne_default=1)
    up.set_defaults(run=run_stack_up)
    agent = commands.add_parser(
        "agent", help="supervise Daphne here and serve the control API a chaos controller uses"
    )
    add_stack_options(agent, daphne_default=1)
    agent.add_argument(
        "--token",
        default=None,
        help="the bearer token every request must carry, 16+ characters (default: $LOAD_AGENT_TOKEN, which keeps it out of ps)",
    )
    agent.add_argument("--bind", default="127.0.0.1", help="address the API listens on (default %(default)s)")
    agent.add_argument(
        "--port", type=int, default=8700, help="port of the API (default %(default)s; 0: any free port)"
    )
    agent.set_defaults(run=run_agent_command)

    run = commands.add_parser(
        "run", help="one headless run from a scenario file (a Locust config with [tool.locust])"
    )
    run.add_argument("scenario", type=Path, help="e.g. scenarios/seed_restarts.toml")
    add_run_options(run)
    run.set_defaults(run=run_scenario_command)

    sweep = commands.add_parser(
        "sweep", help="the same load against each combination of knobs, then a comparison"
    )
    sweep.add_argument("--scenario", type=Path, required=True, help="the load to repeat at each point")
    add_sweep_flags(
        sweep.add_argument_group(
            "dimensions (each a stack knob: comma-separated values; 'default': the option's default)"
        )
    )
    sweep.add_argument(
        "--seed",
        type=int,
        default=1,
        help="the users' random seed, the same at every point (default %(default)s)",
    )
    add_run_options(sweep)
    sweep.set_defaults(run=run_sweep_command)

    report = commands.add_parser("report", help="report.html (plots and headline figures) of a run folder")
    report.add_argument("run_dir", type=Path)
    report.add_argument(
        "--end-text",
        action="store_true",
        help="first print the summary table and the findings, as a run ends",
    )
    report.set_defaults(run=run_report_command)

    diagnose = commands.add_parser(
        "diagnose", help="the failure modes a run folder shows, each with its evidence and fix"
    )
    diagnose.add_argument("run_dir", type=Path)
    diagnose.add_argument("--json", action="store_true", help="print the findings as JSON")
    diagnose.set_defaults(run=run_diagnose_command)

    compare = commands.add_parser("compare", help="comparison.html and comparison.csv of several run folders")
    compare.add_argument("run_dirs", type=Path, nargs="+")
    compare.add_argument(
        "--out", type=Path, default=None, help="where to write them (default: results/compare-<time>)"
    )
    compare.add_argument(
        "--knob",
        default=None,
        help="the option(s) the runs differ in, comma-separated (default: found from their manifests)",
    )
    compare.set_defaults(run=run_compare_command)
    return parser


def add_run_options(parser: argparse.ArgumentParser) -> None:
    add_workers_option(parser)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one option of the scenario, e.g. ping-rate=5",
    )
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=None,
        help="where run folders go (default: the scenario's results-dir, else results)",
    )


# Each command imports what it runs when it runs: `agent` and `stack up` never load
# matplotlib (the report) nor anything that starts Locust.


def run_demo_command(args: argparse.Namespace) -> int:
    from load.runs.demo import run_demo

    return run_demo(check_demo_args(args))


def run_scenario_command(args: argparse.Namespace) -> int:
    from load.runs.scenario import run_scenario

    return run_scenario(args.scenario, args.set, args.results_dir, check_workers(args).workers)


def run_report_command(args: argparse.Namespace) -> int:
    from load.analysis.summary_table import end_of_run_text
    from load.report.runreport import write_report

    if args.end_text:
        print(end_of_run_text(args.run_dir), flush=True)
    return print_path(write_report(args.run_dir))


def run_diagnose_command(args: argparse.Namespace) -> int:
    from load.analysis.detectors import diagnose
    from load.analysis.headline import load_run

    diagnosis = diagnose(load_run(args.run_dir))
    print(json.dumps(diagnosis.as_json(), indent=2) if args.json else diagnosis.text())
    return 0


def run_sweep_command(args: argparse.Namespace) -> int:
    from load.runs.sweep import run_sweep

    dimensions = {option.dest: getattr(args, option.dest) for option in SWEEP_OPTIONS}
    return run_sweep(
        args.scenario, dimensions, args.set, args.results_dir, args.seed, check_workers(args).workers
    )


def run_compare_command(args: argparse.Namespace) -> int:
    from load.report.compare import write_comparison

    out = args.out or new_run_dir(Path("results"), "compare")
    return print_path(write_comparison(args.run_dirs, out, args.knob))


def print_path(path: Path) -> int:
    print(path)
    return 0


def run_agent_command(args: argparse.Namespace) -> int:
    from load.agent.server import AgentConfig, run_agent

    # Taken out of the environment as soon as it is read: Redis, Daphne and everything else
    # the agent starts inherit os.environ, and none of them needs the token.
    from_env = os.environ.pop(AGENT_TOKEN_VARIABLE, "")
    token = args.token if args.token is not None else from_env
    config = stack_config(args, new_run_dir(args.results_dir, "agent"))
    return run_agent(config, AgentConfig(token, args.bind, args.port))


def main(argv: list[str] | None = None) -> int:
    # SIGTERM and SIGHUP unwind like Ctrl-C, so every `with Stack` stops its processes and
    # a run is written; SIGINT is restored in case this started with it ignored.
    unwind_on_signals()
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except ConfigError as exc:
        print(f"{PROG}: error: {exc.as_option(CLI_NAMES)}", file=sys.stderr)
        return 2
    except StackError as exc:
        first, *rest = str(exc).splitlines() or ["?"]
        print(f"{PROG}: error: {first}", file=sys.stderr)
        for line in rest:  # a failed process's log tail, for the curious
            print(f"  {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if args.command in SERVES_UNTIL_STOPPED:
            print("stopped", file=sys.stderr)
            return 0
        print("interrupted", file=sys.stderr)
        return interrupted_exit_code()
