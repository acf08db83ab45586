"""`python -m load run SCENARIO.toml [--set key=value ...]`: one headless run from a file.

A scenario is a Locust configuration file: its `[tool.locust]` table holds Locust's and
this suite's options by their command-line names (`users = 24`, `restart-every = 20`),
so `locust -f locustfile.py --config SCENARIO.toml` runs the same thing; a `[scenario]`
table describes it (Locust reads only [tool.locust]). `--set`
overrides one option for this run. The run ends with its summary, threshold breaches
and a report; the exit code is 1 when a --fail-on threshold was breached.
"""

import difflib
import functools
import json
import subprocess
import sys
import tomllib
from pathlib import Path

from load.analysis.detectors import failure_line
from load.analysis.summary_table import end_of_run_text
from load.config.options import ALIASES, LOCUST_OPTIONS
from load.config.settings import REPO_ROOT, ConfigError, check_run_label
from load.report.runreport import write_report
from load.runfolder.names import (
    CHAOS_FAILURES,
    REPORT_HTML,
    SUMMARY_JSON,
    THRESHOLD_BREACHES,
    THRESHOLD_NOTES,
)
from load.runfolder.runids import new_run_id
from load.runs.headless import (
    discard_refused_run,
    interrupted_exit_code,
    refusal,
    run_folder_options,
    run_locust,
)

TIME_LIMIT = 3600 * 6  # a scenario longer than this is a soak; run it with locust itself
# Chosen by the CLI for each run (the folder it watches), so not passed on from --set.
RUN_FOLDER_KEYS = ("results-dir", "run-label", "run-id")

# Prints the long option names Locust itself knows. It runs in a child process: importing
# locust monkey-patches this process with gevent.
_LOCUST_OPTION_NAMES = """
import json
from locust.argument_parser import get_empty_argument_parser, setup_parser_arguments
parser = get_empty_argument_parser(add_help=False, default_config_files=[])
setup_parser_arguments(parser)
print(json.dumps(sorted({o[2:] for a in parser._actions for o in a.option_strings if o.startswith("--")})))
"""


@functools.cache
def option_names() -> frozenset[str]:
    """Every long option of `locust -f locustfile.py`, by its name in a config file (ping-rate):
    Locust's own and the suite's (load.config.options)."""
    result = subprocess.run(
        [sys.executable, "-c", _LOCUST_OPTION_NAMES],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode != 0:
        raise ConfigError(
            "scenario",
            "",
            f"cannot list Locust's options: {(result.stderr.strip().splitlines() or ['?'])[-1]}",
        )
    return frozenset(json.loads(result.stdout)) | {option.name for option in LOCUST_OPTIONS}


def unknown_option(key: str) -> str | None:
    """Why `key` is no option (with the nearest one), or None when Locust or the suite knows it."""
    names = option_names()
    if key in names:
        return None
    if key in ALIASES:  # `python -m load stack up`'s spelling (daphne) of a Locust option (stack-daphne)
        return f"did you mean {ALIASES[key]!r}?"
    near = difflib.get_close_matches(key, sorted(names), n=1)
    return f"did you mean {near[0]!r}?" if near else "`locust -f locustfile.py --help` lists the options"


def check_table(path: Path, table: dict) -> None:
    """Every key of [tool.locust] is an option with a plain value, before Locust sees them."""
    for key, value in table.items():
        if isinstance(value, dict) or (
            isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value)
        ):
            raise ConfigError(
                "scenario",
                str(path),
                f"key {key!r} in [tool.locust] holds a table; scenario options take plain values "
                "(a list where the option takes several), e.g. ping-rate = 5",
            )
        problem = unknown_option(str(key).removeprefix("--"))
        if problem:
            raise ConfigError("scenario", str(path), f"unknown key {key!r} in [tool.locust]; {problem}")


def read_scenario(path: Path) -> dict:
    """The scenario's [tool.locust] table (with [scenario]'s description), or a ConfigError."""
    try:
        with open(path, "rb") as handle:
            document = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError("scenario", str(path), f"cannot read it ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("scenario", str(path), f"not valid TOML: {exc}") from None
    tool = document.get("tool")
    table = tool.get("locust") if isinstance(tool, dict) else None
    if not isinstance(table, dict):
        raise ConfigError(
            "scenario", str(path), "a scenario keeps its options in a [tool.locust] table (see scenarios/)"
        )
    check_table(path, table)
    return {**table, "description": document.get("scenario", {}).get("description", "")}


def parse_sets(pairs: list[str]) -> dict[str, str]:
    """['ping-rate=5', '--run_label=x'] -> {'ping-rate': '5', 'run-label': 'x'}; unknown keys refused."""
    sets = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().lstrip("-").replace("_", "-")
        if not sep or not key:
            raise ConfigError("set", pair, "write KEY=VALUE with an option's name, e.g. --set ping-rate=5")
        problem = unknown_option(key)
        if problem:
            raise ConfigError("set", pair, f"unknown option {key!r}; {problem}")
        sets[key] = value
    return sets


def override_options(pairs: list[str]) -> list[str]:
    """['ping-rate=5', 'reconnect-on-timeout=true'] -> ['--ping-rate', '5', '--reconnect-on-timeout']."""
    options = []
    for key, value in parse_sets(pairs).items():
        if key in RUN_FOLDER_KEYS:
            continue
        if value.lower() in ("true", "false"):
            if value.lower() == "true":
                options.append(f"--{key}")
            continue  # a switch left off; a scenario that turns it on must be edited instead
        options += [f"--{key}", value]
    return options


def scenario_seconds(table: dict) -> float:
    """How long the run lasts, from run-time ('90s', '2m', 60), for the watchdog."""
    text = str(table.get("run-time", "60"))
    units = {"h": 3600, "m": 60, "s": 1}
    total, number = 0.0, ""
    for char in text:
        if char.isdigit() or char == ".":
            number += char
        elif char in units and number:
            total, number = total + float(number) * units[char], ""
    return total + (float(number) if number else 0)


def run_place(table: dict, sets: list[str], results_dir: Path | None) -> tuple[Path, str]:
    """Where the run's folder goes and its label: --results-dir, else --set, else the scenario's."""
    chosen = {**table, **parse_sets(sets)}
    label = str(chosen.get("run-label", ""))
    check_run_label(label)
    return results_dir or Path(str(chosen.get("results-dir") or "results")), label


def run_scenario(path: Path, sets: list[str], results_dir: Path | None, workers: int = 0) -> int:
    table = read_scenario(path)
    results_dir, label = run_place(table, sets, results_dir)
    options = override_options(sets)
    run_id = str(
        parse_sets(sets).get("run-id") or table.get("run-id") or new_run_id(results_dir, path.stem, label)
    )
    run_dir = results_dir / run_id
    options = [
        "--config",
        str(path),
        *run_folder_options(results_dir, run_id),
        "--exit-code-on-error",
        "0",
        *options,
    ]
    print(f"scenario {path}: {table.get('description', '')}\nresults: {run_dir}", flush=True)
    try:
        code = run_locust(options, run_dir, min(scenario_seconds(table), TIME_LIMIT) + 180, workers=workers)
    except KeyboardInterrupt:
        return finish_interrupted(run_dir)
    return finish_run(run_dir, code)


def finish_interrupted(run_dir: Path, quiet: bool = False) -> int:
    """An interrupted run: what Locust wrote as it stopped, and 128 + the signal's number."""
    print(f"interrupted: Locust was stopped; what it measured is in {run_dir}", file=sys.stderr, flush=True)
    finish_run(run_dir, None, quiet)
    return interrupted_exit_code()


def finish_run(run_dir: Path, code: int | None, quiet: bool = False) -> int:
    """Summary, breaches and report of a finished run; 2 when Locust refused to run at all.

    A run Locust refused (exit 2 before the run began) leaves no folder behind.
    """
    summary_path = run_dir / SUMMARY_JSON
    if not summary_path.exists():
        print(f"python -m load: error: {refusal(run_dir)}", file=sys.stderr, flush=True)
        if code == 2:
            discard_refused_run(run_dir)
        return 2
    summary = json.loads(summary_path.read_text())
    if not quiet:
        print("\n" + end_of_run_text(run_dir))
    for line in summary.get(THRESHOLD_BREACHES, []) + summary.get(THRESHOLD_NOTES, []):
        print(line)
    for failure in summary.get(CHAOS_FAILURES, []):
        print(failure_line(failure, accepted=code == 0))  # not accepted, they make Locust's code 1
    report = write_run_report(run_dir)
    if not quiet:
        print(f"\nreport: {report}")
    return 1 if summary.get(THRESHOLD_BREACHES) else (0 if code in (0, None) else code)


def write_run_report(run_dir: Path) -> Path:
    """The report the run wrote when it ended, or a new one if it could not."""
    report = run_dir / REPORT_HTML
    return report if report.exists() else write_report(run_dir)
