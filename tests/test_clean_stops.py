"""Every stop is a clean stop: SIGTERM, SIGHUP and a SIGINT the shell had ignored all end a
run as Ctrl-C does, with its summary and report written and nothing left running."""

import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from load.supervise.procs import Child
from locustrun import REPO, read_csv, read_json, rows_so_far, run_folder
from support import still_running, wait_until

# Starts the rest of argv with SIGINT ignored, as `cmd &` in a non-interactive shell does.
SIGINT_IGNORED = "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"


def scenario(tmp_path: Path) -> Path:
    path = tmp_path / "small.toml"
    path.write_text(
        '[tool.locust]\nstack = "local"\nstack-daphne = 1\nusers = 4\nspawn-rate = 4\nrun-time = "30s"\n'
        'paths = "/ws/ping/"\nredis-socket-timeout = "none"\npong-timeout = 1\n'
    )
    return path


def command(kind: str, tmp_path: Path) -> list[str]:
    results = ["--results-dir", str(tmp_path / "results")]
    if kind == "demo":
        return [
            "-m",
            "load",
            "demo",
            "--users",
            "4",
            "--run-time",
            "30",
            "--restart-every",
            "0",
            "--daphne",
            "1",
            *results,
        ]
    return ["-m", "load", "run", str(scenario(tmp_path)), *results]


@pytest.fixture
def started(tmp_path):
    children: list[Child] = []

    def start(argv: list[str], sigint_ignored: bool = False) -> Child:
        prefix = ["-c", SIGINT_IGNORED] if sigint_ignored else []
        children.append(
            Child(
                "cli", [sys.executable, *prefix, *argv], None, tmp_path / f"cli{len(children)}.log", REPO
            ).start()
        )
        return children[-1]

    yield start
    for child in children:
        if child.alive():
            child.stop("hard")


def descendants(pid: int) -> list[int]:
    return [p.pid for p in psutil.Process(pid).children(recursive=True)]


@pytest.mark.parametrize(
    ("kind", "signum", "sigint_ignored"),
    [("demo", signal.SIGTERM, False), ("run", signal.SIGHUP, False), ("demo", signal.SIGINT, True)],
)
def test_a_signal_stops_a_run_as_ctrl_c_does(started, tmp_path, kind, signum, sigint_ignored):
    cli = started(command(kind, tmp_path), sigint_ignored)
    wait_until(lambda: len(rows_so_far(tmp_path / "results")) >= 1, 90, "a second of the run written")
    pids = descendants(cli.pid)
    assert len(pids) >= 3  # Locust, Redis, Daphne

    cli.process.send_signal(signum)

    assert cli.wait(60), f"the CLI did not stop on {signum!r}:\n{cli.log_tail(30)}"
    assert cli.process.returncode == 128 + signum, cli.log_tail(30)
    folder = run_folder(tmp_path / "results")
    assert (folder / "report.html").exists()
    summary = read_json(folder / "summary.json")
    assert summary["endpoints"]["/ws/ping/"]["pongs"] > 0
    output = cli.log_path.read_text()
    assert "interrupted" in output and "report" in output
    assert still_running(pids) == []


def test_a_sweep_stopped_by_sigterm_compares_the_points_so_far_and_runs_no_more(started, tmp_path):
    cli = started(
        [
            "-m",
            "load",
            "sweep",
            "--scenario",
            str(scenario(tmp_path)),
            "--asgi-threads",
            "1,2",
            "--results-dir",
            str(tmp_path / "results"),
        ]
    )

    def first_point():
        return [r for path in (tmp_path / "results").glob("*/*/timeseries.csv") for r in read_csv(path)]

    wait_until(lambda: len(first_point()) >= 1, 90, "a second of the first point written")

    cli.process.send_signal(signal.SIGTERM)

    assert cli.wait(60), f"the sweep did not stop:\n{cli.log_tail(30)}"
    assert cli.process.returncode == 128 + signal.SIGTERM, cli.log_tail(30)
    (sweep_dir,) = (tmp_path / "results").iterdir()
    assert [p.parent.name for p in sweep_dir.glob("*/manifest.json")] == [
        "asgi_threads=1"
    ]  # the second never ran
    assert [row["run_id"] for row in read_csv(sweep_dir / "comparison.csv")] == ["asgi_threads=1"]
    assert "asgi_threads=1: interrupted; 1 point(s) not run" in cli.log_path.read_text()


@pytest.mark.parametrize(("signum", "sigint_ignored"), [(signal.SIGHUP, False), (signal.SIGINT, True)])
def test_plain_locust_stops_gracefully_on_sighup_and_on_a_sigint_it_started_ignoring(
    started, tmp_path, signum, sigint_ignored
):
    locust = started(
        [
            "-m",
            "locust",
            "-f",
            str(REPO / "locustfile.py"),
            "--headless",
            "--stack",
            "local",
            "--stack-daphne",
            "1",
            "-u",
            "2",
            "-r",
            "2",
            "-t",
            "60s",
            "--paths",
            "/ws/ping/",
            "--redis-socket-timeout",
            "none",
            "--pong-timeout",
            "1",
            "--results-dir",
            str(tmp_path / "results"),
        ],
        sigint_ignored,
    )
    wait_until(lambda: len(rows_so_far(tmp_path / "results")) >= 1, 90, "a second of the run written")
    pids = descendants(locust.pid)

    locust.process.send_signal(signum)

    assert locust.wait(60), f"locust did not stop on {signum!r}:\n{locust.log_tail(30)}"
    assert locust.process.returncode == 0, locust.log_tail(30)  # Locust's own code: a clean run
    folder = run_folder(tmp_path / "results")
    assert (folder / "report.html").exists() and read_json(folder / "manifest.json").get("ended_at")
    assert read_json(folder / "summary.json")["duration_s"] < 30  # stopped by the signal, not by -t 60s
    assert still_running(pids) == []


def test_signals_are_set_at_start_but_a_nohup_is_kept():
    code = (
        "import signal\n"
        "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "from load.runs.headless import unwind_on_signals\n"
        "unwind_on_signals()\n"
        "print(signal.getsignal(signal.SIGINT) is signal.default_int_handler, signal.getsignal(signal.SIGHUP) == signal.SIG_IGN)\n"
    )
    result = subprocess.run(
        ["nohup", sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.split() == ["True", "True"], result.stdout + result.stderr
