"""A headless Locust run of this suite as a supervised child process.

The CLI commands that run load (demo, run, sweep) start Locust this way, so gevent never
enters their own process; Locust's output goes to locust.log in the run folder, and the
child dies with its owner.
"""

import shutil
import sys
from pathlib import Path

from load.procs import Child
from load.stack import REPO_ROOT

LOCUSTFILE = REPO_ROOT / "locustfile.py"


def run_folder_options(results_dir: Path, run_id: str) -> list[str]:
    """Where the run writes: its folder, Locust's CSVs and HTML report inside it."""
    run_dir = results_dir / run_id
    return [
        "--headless", "--only-summary", "--results-dir", str(results_dir), "--run-id", run_id,
        "--csv", str(run_dir / "locust"), "--html", str(run_dir / "locust_report.html"),
    ]


def run_locust(options: list[str], run_dir: Path, timeout: float) -> int | None:
    """Run Locust to its end; None when it had to be stopped (Ctrl-C here, or past timeout)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), *options]
    locust = Child("locust", argv, None, run_dir / "locust.log", REPO_ROOT).start()
    try:
        if locust.wait(timeout):
            return locust.process.returncode
    except KeyboardInterrupt:
        locust.stop("graceful", kill_after=30)  # Locust's SIGTERM handler writes what it has
        raise
    locust.stop("graceful", kill_after=30)
    return None


def locust_error(run_dir: Path) -> str:
    """The line in which Locust or the plugin said what was wrong, else the log's last line."""
    try:
        lines = (run_dir / "locust.log").read_text(errors="replace").splitlines()
    except OSError:
        return "Locust wrote no log"
    errors = [line for line in lines if "error:" in line]
    return (errors or lines or ["Locust wrote nothing"])[-1]


# What a run of the suite writes once Locust accepted its options and the run began.
RUN_FILES = ("events.jsonl", "manifest.json", "timeseries.csv", "summary.json")


def discard_refused_run(run_dir: Path) -> bool:
    """Remove the folder of a run Locust refused before it began; False when it holds a run."""
    if any((run_dir / name).exists() for name in RUN_FILES):
        return False
    shutil.rmtree(run_dir, ignore_errors=True)
    return True


def refusal(run_dir: Path) -> str:
    """Locust's or the plugin's one line about what was wrong, without their `locust: error:`."""
    return locust_error(run_dir).removeprefix("locust: error: ")
