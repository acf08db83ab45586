"""Running Locust as a user would: a real `locust` process, supervised, with its output in a file."""

import csv
import json
import sys
from pathlib import Path

import psutil

from load.runfolder.names import STACK_FOLDER_PREFIX
from load.supervise.procs import Child
from support import still_running, wait_until

REPO = Path(__file__).resolve().parent.parent


class LocustProcess:
    """`python -m locust -f locustfile.py ARGS` in its own session, killed with the test at the latest."""

    def __init__(self, tmp_path: Path, *args: str, name: str = "locust", env: dict[str, str] | None = None):
        argv = [sys.executable, "-m", "locust", "-f", str(REPO / "locustfile.py"), *args]
        self.child = Child(name, argv, env, tmp_path / f"{name}.log", REPO).start()
        self.descendants: set[int] = set()

    def note_descendants(self) -> None:
        """Remember the processes Locust started (stack, workers), to check they are gone later."""
        try:
            self.descendants |= {p.pid for p in psutil.Process(self.child.pid).children(recursive=True)}
        except psutil.NoSuchProcess:
            pass

    def wait(self, timeout: float) -> int:
        deadline_ok = self.child.wait(timeout)
        assert deadline_ok, f"locust did not exit within {timeout} s:\n{self.output()[-3000:]}"
        return self.child.process.returncode

    def written(self, results_dir: Path, timeout: float) -> Path:
        """Wait for Locust to end; its run folder, once its exit code is the one the run's
        figures call for (expected_exit_code)."""
        code = self.wait(timeout)
        folder = run_folder(results_dir)
        assert code == expected_exit_code(folder), self.output()[-3000:]
        return folder

    def output(self) -> str:
        return self.child.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.child.alive():
            self.child.stop("hard")
        wait_until(
            lambda: still_running(sorted(self.descendants)) == [],
            15,
            f"Locust's processes {self.descendants} to end",
        )


def run_folders(results_dir: Path) -> list[Path]:
    """The run folders under results_dir, by start (not the web UI's stack-<time> folder)."""
    if not results_dir.is_dir():
        return []
    folders = [
        p for p in results_dir.iterdir() if p.is_dir() and not p.name.startswith(STACK_FOLDER_PREFIX + "-")
    ]
    return sorted(folders)  # named <UTC time>-<label>: by start


def run_folder(results_dir: Path) -> Path:
    (folder,) = run_folders(results_dir)
    return folder


def rows_so_far(results_dir: Path) -> list[dict]:
    """The timeseries.csv rows a run under results_dir has written so far (none before it starts)."""
    return [row for path in results_dir.glob("*/timeseries.csv") for row in read_csv(path)]


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def number(cell: str) -> float:
    return float(cell) if cell != "" else 0.0


def locust_failures(folder: Path) -> int:
    """The failures Locust itself counted in the run written to folder (its Aggregated row)."""
    (total,) = [row for row in read_csv(folder / "locust_stats.csv") if row["Name"] == "Aggregated"]
    return int(total["Failure Count"])


def expected_exit_code(folder: Path) -> int:
    """The exit code a finished run must have: 1 when Locust counted a failure (its own rule)
    or the suite found a failed chaos action or a threshold breach, else 0; never a crash's."""
    summary = read_json(folder / "summary.json")
    failed = locust_failures(folder) or summary.get("chaos_failures") or summary.get("threshold_breaches")
    return 1 if failed else 0
