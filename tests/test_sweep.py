"""`python -m load run` and `python -m load sweep` as users run them."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

SHORT = """
[scenario]
description = "a short pool/sync load"

[tool.locust]
users = 6
spawn-rate = 6
run-time = "3s"
stack = "local"
stack-daphne = 1
paths = "/ws/ping/pool/?work_ms=100:1,/ws/ping/sync/?work_ms=100:1"
ping-rate = 2
pong-timeout = 2
# A sync consumer mid-handler at SIGTERM never exits (FM-4): the stack's stop and restarts
# wait this long before SIGKILL.
kill-after = 2
"""


def load_cli(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "load", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def scenario(tmp_path) -> Path:
    path = tmp_path / "short.toml"
    path.write_text(SHORT)
    return path


def test_a_sweep_runs_each_point_and_compares_them(scenario, tmp_path):
    result = load_cli(
        "sweep",
        "--scenario",
        str(scenario),
        "--asgi-threads",
        "1,4",
        "--results-dir",
        str(tmp_path / "results"),
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "[1/2] asgi_threads=1: running" in result.stdout and "[2/2] asgi_threads=4: done" in result.stdout
    (sweep_dir,) = (tmp_path / "results").iterdir()
    points = sorted(p.name for p in sweep_dir.iterdir() if (p / "manifest.json").exists())
    assert points == ["asgi_threads=1", "asgi_threads=4"]
    for point in points:
        manifest = json.loads((sweep_dir / point / "manifest.json").read_text())
        assert manifest["options"]["asgi_threads"] == point.split("=")[1]
        assert manifest["config"]["seed"] == 1  # the same schedule at every point
        assert (sweep_dir / point / "summary.json").exists() and (sweep_dir / point / "report.html").exists()
    with open(sweep_dir / "comparison.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2
    assert (sweep_dir / "comparison.html").exists()


def test_run_takes_a_scenario_and_set_overrides_and_fails_on_a_breach(scenario, tmp_path):
    result = load_cli(
        "run",
        str(scenario),
        "--set",
        "fail-on=pongs<100000",
        "--set",
        "run-time=3s",
        "--results-dir",
        str(tmp_path / "results"),
    )
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    assert "threshold breached: pongs<100000" in result.stdout
    (run_dir,) = (tmp_path / "results").iterdir()
    assert run_dir.name.startswith("short-") and (run_dir / "report.html").exists()
    assert json.loads((run_dir / "manifest.json").read_text())["options"]["run_time"] == 3


def test_run_without_breaches_exits_0_even_with_failed_pings(scenario, tmp_path):
    result = load_cli(
        "run",
        str(scenario),
        "--set",
        "run-time=3s",
        "--set",
        "restart-at=1",
        "--set",
        "fail-on=killed>0",
        "--results-dir",
        str(tmp_path / "results"),
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "restart" in result.stdout
