"""`python -m load run SCENARIO.toml [--set key=value ...]`: one headless run from a file.

A scenario is a Locust configuration file: its `[tool.locust]` table holds Locust's and
this suite's options by their command-line names (`users = 24`, `restart-every = 20`),
so `locust -f locustfile.py --config SCENARIO.toml` runs the same thing; a `[scenario]`
table describes it (Locust reads only [tool.locust]). `--set`
overrides one option for this run. The run ends with its summary, threshold breaches
and a report; the exit code is 1 when a --fail-on threshold was breached.
"""

import json
import sys
import tomllib
from pathlib import Path

from load.config import ConfigError
from load.headless import locust_error, run_folder_options, run_locust
from load.report import write_report
from load.runids import new_run_id
from load.summary_table import format_summary

TIME_LIMIT = 3600 * 6  # a scenario longer than this is a soak; run it with locust itself


def read_scenario(path: Path) -> dict:
    """The scenario's [tool.locust] table (with [scenario]'s description), or a ConfigError."""
    try:
        with open(path, "rb") as handle:
            document = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError("scenario", str(path), f"cannot read it ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("scenario", str(path), f"not valid TOML: {exc}") from None
    table = document.get("tool", {}).get("locust")
    if not isinstance(table, dict):
        raise ConfigError("scenario", str(path), "a scenario keeps its options in a [tool.locust] table (see scenarios/)")
    return {**table, "description": document.get("scenario", {}).get("description", "")}


def override_options(pairs: list[str]) -> list[str]:
    """['ping-rate=5', 'reconnect-on-timeout=true'] -> ['--ping-rate', '5', '--reconnect-on-timeout']."""
    options = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().lstrip("-").replace("_", "-")
        if not sep or not key:
            raise ConfigError("set", pair, "write KEY=VALUE with an option's name, e.g. --set ping-rate=5")
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


def run_scenario(path: Path, sets: list[str], results_dir: Path) -> int:
    table = read_scenario(path)
    run_id = new_run_id(results_dir, path.stem)
    run_dir = results_dir / run_id
    options = ["--config", str(path), *run_folder_options(results_dir, run_id), "--exit-code-on-error", "0", *override_options(sets)]
    print(f"scenario {path}: {table.get('description', '')}\nresults: {run_dir}", flush=True)
    code = run_locust(options, run_dir, min(scenario_seconds(table), TIME_LIMIT) + 180)
    return finish_run(run_dir, code)


def finish_run(run_dir: Path, code: int | None, quiet: bool = False) -> int:
    """Summary, breaches and report of a finished run; 2 when Locust refused to run at all."""
    summary_path = run_dir / "summary.json"
    if not summary_path.exists():
        print(f"python -m load: error: {locust_error(run_dir)}", file=sys.stderr, flush=True)
        return 2
    summary = json.loads(summary_path.read_text())
    if not quiet:
        print("\n" + format_summary(summary))
    for line in summary.get("threshold_breaches", []) + summary.get("threshold_notes", []):
        print(line)
    report = write_run_report(run_dir)
    if not quiet:
        print(f"\nreport: {report}")
    return 1 if summary.get("threshold_breaches") else (0 if code in (0, None) else code)


def write_run_report(run_dir: Path) -> Path:
    """The report the run wrote when it ended, or a new one if it could not."""
    report = run_dir / "report.html"
    return report if report.exists() else write_report(run_dir)
