"""A headless Locust run of this suite as a supervised child process.

The CLI commands that run load (demo, run, sweep) start Locust this way, so gevent never
enters their own process; Locust's output goes to locust.log in the run folder, and the
child dies with its owner.

Every stop is a clean stop: Ctrl-C, SIGTERM (a CI timeout, `docker stop`) and SIGHUP (a
closed terminal) all raise KeyboardInterrupt in the CLI, which gives Locust its graceful
stop, so the run's summary and report are written whatever ended it; the command then
exits with 128 + the signal's number, as a shell reports a job a signal ended.
"""

import shutil
import signal
import sys
from pathlib import Path

from load.config.settings import REPO_ROOT
from load.runfolder.names import (
    EVENTS_JSONL,
    LOCUST_LOG,
    LOCUST_PREFIX,
    LOCUST_REPORT_HTML,
    LOCUST_WORKER_LOG,
    MANIFEST_JSON,
    SUMMARY_JSON,
    TIMESERIES_CSV,
)
from load.supervise.procs import Child, free_port, stop_all

LOCUSTFILE = REPO_ROOT / "locustfile.py"
# Locust's graceful stop: its users stop, a restart under way may finish (recorder's
# ACTION_GRACE, 20 s), the plugin writes summary.json and report.html and stops a local
# stack (each Daphne within --kill-after, 10 s). Past this, Locust is killed.
LOCUST_STOP_TIMEOUT = 45.0
LOOPBACK = "127.0.0.1"
WORKERS_JOIN_TIMEOUT = 60  # seconds the master waits for --workers N to join before it gives up
WORKER_QUIT_TIMEOUT = 15.0  # a worker quits within a second of its master's "quit"

_signals: list[int] = []  # the signals that interrupted this process, in order


def unwind_on_signals() -> None:
    """SIGTERM and SIGHUP raise KeyboardInterrupt like Ctrl-C; SIGINT gets Python's own
    handler back, as a job started in the background by a non-interactive shell inherits
    it ignored. A SIGHUP ignored at start stays ignored: that is `nohup`, on purpose."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    if signal.getsignal(signal.SIGHUP) != signal.SIG_IGN:
        signal.signal(signal.SIGHUP, _interrupt)


def _interrupt(signum: int, _frame) -> None:
    _signals.append(signum)
    raise KeyboardInterrupt


def interrupted_exit_code() -> int:
    """128 + the signal that interrupted us: 130 Ctrl-C, 143 SIGTERM, 129 SIGHUP."""
    return 128 + (_signals[0] if _signals else signal.SIGINT)


def run_folder_options(results_dir: Path, run_id: str) -> list[str]:
    """Where the run writes: its folder, Locust's CSVs and HTML report inside it."""
    run_dir = results_dir / run_id
    return [
        "--headless",
        "--only-summary",
        "--results-dir",
        str(results_dir),
        "--run-id",
        run_id,
        "--csv",
        str(run_dir / LOCUST_PREFIX),
        "--html",
        str(run_dir / LOCUST_REPORT_HTML),
    ]


def run_locust(
    options: list[str], run_dir: Path, timeout: float, env: dict[str, str] | None = None, workers: int = 0
) -> int | None:
    """Run Locust to its end (in `env`, default this process's); None when it had to be
    stopped past timeout. An interrupt (KeyboardInterrupt) stops Locust gracefully, then
    goes on up to the caller. With workers, Locust runs as a master and that many worker
    processes join it over TCP on loopback, as they would from other hosts."""
    run_dir.mkdir(parents=True, exist_ok=True)
    port = free_port() if workers else 0
    argv = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), *options, *master_options(workers, port)]
    locust = Child("locust", argv, env, run_dir / LOCUST_LOG, REPO_ROOT).start()
    joined = [worker(n, port, env, run_dir).start() for n in range(1, workers + 1)]
    try:
        if not locust.wait(timeout):
            stop_locust(locust)
            return None
        return locust.returncode
    except KeyboardInterrupt:
        stop_locust(locust)
        raise
    finally:
        # Each worker quits with its master; one that did not (its master was killed) is stopped.
        stop_all(joined, "graceful", kill_after=WORKER_QUIT_TIMEOUT)


def master_options(workers: int, port: int) -> list[str]:
    if not workers:
        return []
    return [
        "--master",
        "--master-bind-host", LOOPBACK,
        "--master-bind-port", str(port),
        "--expect-workers", str(workers),
        "--expect-workers-max-wait", str(WORKERS_JOIN_TIMEOUT),
    ]  # fmt: skip


def worker(n: int, port: int, env: dict[str, str] | None, run_dir: Path) -> Child:
    argv = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--worker"]
    argv += ["--master-host", LOOPBACK, "--master-port", str(port)]
    return Child(f"locust-worker-{n}", argv, env, run_dir / LOCUST_WORKER_LOG.format(n), REPO_ROOT)


def stop_locust(locust: Child) -> None:
    """SIGTERM, on which Locust stops its users and the plugin writes the run; a second
    interrupt meanwhile kills it at once (what was written so far stays)."""
    try:
        locust.stop("graceful", kill_after=LOCUST_STOP_TIMEOUT)
    except KeyboardInterrupt:
        print("interrupted again: Locust killed", file=sys.stderr, flush=True)
        locust.stop("hard")


def locust_error(run_dir: Path) -> str:
    """The line in which Locust or the plugin said what was wrong, else the log's last line."""
    try:
        lines = (run_dir / LOCUST_LOG).read_text(errors="replace").splitlines()
    except OSError:
        return "Locust wrote no log"
    errors = [line for line in lines if "error:" in line]
    return (errors or lines or ["Locust wrote nothing"])[-1]


# What a run of the suite writes once Locust accepted its options and the run began.
RUN_FILES = (EVENTS_JSONL, MANIFEST_JSON, TIMESERIES_CSV, SUMMARY_JSON)


def discard_refused_run(run_dir: Path) -> bool:
    """Remove the folder of a run Locust refused before it began; False when it holds a run."""
    if any((run_dir / name).exists() for name in RUN_FILES):
        return False
    shutil.rmtree(run_dir, ignore_errors=True)
    return True


def refusal(run_dir: Path) -> str:
    """Locust's or the plugin's one line about what was wrong, without their `locust: error:`."""
    return locust_error(run_dir).removeprefix("locust: error: ")
