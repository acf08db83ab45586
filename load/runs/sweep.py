"""`python -m load sweep`: the same load against each combination of knobs.

Each point gets a fresh local stack and the scenario's load with the same random seed,
so every point sees the same user schedule; points run one after another (they share
the machine's cores). Each point's run folder is results/<sweep-id>/<point>/, and the
sweep ends with comparison.csv and comparison.html beside them.
"""

import itertools
import os
import time
from dataclasses import dataclass
from pathlib import Path

from load.analysis.summary_table import format_comparison
from load.config.options import SWEEP_OPTIONS, Option, stack_config
from load.config.settings import ConfigError
from load.report.compare import write_comparison
from load.runfolder.names import SERVER_DIR, SUMMARY_JSON
from load.runfolder.runids import new_run_id
from load.runs.headless import run_folder_options, run_locust
from load.runs.scenario import (
    finish_interrupted,
    finish_run,
    override_options,
    read_scenario,
    run_place,
    scenario_seconds,
)

# knob (the Locust option's dest, its key in manifest.json) -> its row of the option table
DIMENSIONS = {option.dest: option for option in SWEEP_OPTIONS}


@dataclass(frozen=True)
class Point:
    knobs: tuple[tuple[str, str], ...]

    @property
    def name(self) -> str:
        return ",".join(f"{k}={v if v != '' else 'default'}" for k, v in self.knobs) or "baseline"

    def options(self) -> list[str]:
        options = []
        for knob, value in self.knobs:
            if knob == "asgi_threads" and value == "unset":
                continue  # left out: Daphne's default
            options += [DIMENSIONS[knob].flag, value]
        return options


def parse_values(knob: str, text: str) -> list[str]:
    """'1,4,8' -> ['1', '4', '8'], each checked as the stack will check it ('default': the option's default)."""
    option = DIMENSIONS[knob]
    values = [v.strip() for v in text.split(",") if v.strip()]
    for value in values:
        if value != "default":
            try:
                stack_config({knob: option.from_text(value)}, Path(SERVER_DIR), environ={})
            except ConfigError as exc:
                raise ConfigError(
                    knob, text, f"comma-separated values, e.g. {option.example} ({value!r}: {exc.fix})"
                ) from None
    if not values:
        raise ConfigError(knob, text, "give at least one value")
    return [_default_text(option) if v == "default" else v for v in values]


def _default_text(option: Option) -> str:
    return "" if option.default in ("", None) else str(option.default)


def sweep_points(dimensions: dict[str, str]) -> list[Point]:
    axes = [
        [(knob, value) for value in parse_values(knob, text)] for knob, text in dimensions.items() if text
    ]
    if not axes:
        raise ConfigError("asgi_threads", "", "name at least one knob to sweep, e.g. --asgi-threads 1,4,8")
    return [Point(tuple(combo)) for combo in itertools.product(*axes)]


def locust_environment(dimensions: dict[str, str]) -> dict[str, str]:
    """This process's environment without the target app's variables of the swept knobs: at
    each point the swept value is given, and it wins (the plugin would keep a variable
    whose option is given at its default); one line says which variables are set aside."""
    env = dict(os.environ)
    for knob, text in dimensions.items():
        variable = DIMENSIONS[knob].env
        if text and env.get(variable):
            print(
                f"{variable}={env.pop(variable)!r} in the environment is not used: the sweep sets {DIMENSIONS[knob].name} at each point",
                flush=True,
            )
    return env


def run_sweep(
    scenario: Path,
    dimensions: dict[str, str],
    sets: list[str],
    results_dir: Path | None,
    seed: int,
    workers: int = 0,
) -> int:
    table = read_scenario(scenario)
    points = sweep_points(dimensions)
    override_options(sets)  # a bad --set fails before the first point, not after it
    results_dir, label = run_place(table, sets, results_dir)
    sweep_id = new_run_id(results_dir, f"sweep-{scenario.stem}", label)
    sweep_dir = results_dir / sweep_id
    each = scenario_seconds(table)
    print(
        f"sweep of {len(points)} points x {each:g} s over {', '.join(k for k, v in dimensions.items() if v)}; results: {sweep_dir}",
        flush=True,
    )
    env = locust_environment(dimensions)
    began, codes, folders = time.monotonic(), [], []
    for number, point in enumerate(points, 1):
        options = [
            "--config",
            str(scenario),
            *run_folder_options(sweep_dir, point.name),
            "--exit-code-on-error",
            "0",
            "--stack",
            "local",
            "--seed",
            str(seed),
            *point.options(),
            *override_options(sets),
        ]
        print(f"[{number}/{len(points)}] {point.name}: running", flush=True)
        started = time.monotonic()
        try:
            code = run_locust(options, sweep_dir / point.name, each + 180, env, workers)
        except KeyboardInterrupt:  # the points so far are compared; the rest do not run
            codes.append(finish_interrupted(sweep_dir / point.name, quiet=True))
            folders.append(sweep_dir / point.name)
            print(
                f"[{number}/{len(points)}] {point.name}: interrupted; {len(points) - number} point(s) not run",
                flush=True,
            )
            break
        codes.append(finish_run(sweep_dir / point.name, code, quiet=True))
        if not (sweep_dir / point.name).exists():  # Locust refused the options, as it would at every point
            _remove_if_empty(sweep_dir)
            return 2
        folders.append(sweep_dir / point.name)
        left = (time.monotonic() - began) / number * (len(points) - number)
        print(
            f"[{number}/{len(points)}] {point.name}: done in {time.monotonic() - started:.0f} s; about {left:.0f} s to go",
            flush=True,
        )
    written = [folder for folder in folders if (folder / SUMMARY_JSON).exists()]
    if written:
        page = write_sweep_comparison(written, sweep_dir, [k for k, v in dimensions.items() if v])
        print("\n" + format_comparison(sweep_dir))
        print(f"\ncomparison: {page} (and comparison.csv beside it)")
    return max(codes, default=0)  # an interrupt's 128 + signal outranks 1 and 2


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass  # earlier points' folders are results


def write_sweep_comparison(folders: list[Path], sweep_dir: Path, knobs: list[str]) -> Path:
    return write_comparison(folders, sweep_dir, ",".join(knobs))
