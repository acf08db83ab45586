"""Each failure-mode scenario of scenarios/ reproduces its mode, shown by the run's own files,
and its fix (a second scenario or a --set of the knob) does not.

Every run is `python -m load run scenarios/<name>.toml` as a user starts it, made as short
as still reproduces reliably with --set. Scenarios whose mechanism a faster test already
covers are marked slow (see each one).
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from load.analysis.detectors import diagnose
from load.runfolder.loader import load_run
from load.runfolder.names import (
    ALL,
    CONNECT_OK,
    CONNECTIONS,
    CONNECTS,
    DEAD_PROCESS_KEYS,
    ELAPSED_S,
    ENDPOINTS,
    ERRORS,
    EVENT,
    EVENTS_JSONL,
    EXCEPTION_MESSAGES,
    EXITED,
    GROUP_MEMBERS,
    HOW_EXITED,
    KILLED_AFTER_TIMEOUT,
    P50_MS,
    PHASES,
    PONG_TIMEOUT,
    SERVER,
    SERVER_DIR,
    SIG_HANDSHAKE_INCOMPLETE,
    SIG_KILLED_ON_THREAD,
    SIG_KILLED_OWN_AWAIT,
    SIG_KILLED_PENDING,
    SIG_OVER_CAPACITY,
    SIGNAL_SENT,
    STALE_MEMBERS,
    SUMMARY_JSON,
    THREAD_DUMP,
    TIMESERIES_CSV,
    TOO_LONG_KILLS,
    close_column,
)
from locustrun import read_csv, run_folder

REPO = Path(__file__).resolve().parent.parent
CLOSE_1011 = close_column(1011)


def run_scenarios(tmp_path: Path, *runs: tuple[str, ...]) -> list[Path]:
    """Run each (name, --set values...) as `python -m load run scenarios/<name>.toml`, all at
    once (a bug and its fix side by side); their run folders, in order."""
    started = []
    for number, (name, *sets) in enumerate(runs):
        results = tmp_path / f"results-{number}-{name}"
        argv = [sys.executable, "-m", "load", "run", str(REPO / "scenarios" / f"{name}.toml")]
        argv += ["--results-dir", str(results), *(arg for s in sets for arg in ("--set", s))]
        process = subprocess.Popen(
            argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        started.append((results, process))
    for _results, process in started:
        output, _ = process.communicate(timeout=100)
        assert process.returncode == 0, output[-3000:]
    return [run_folder(results) for results, _process in started]


def summary(folder: Path) -> dict:
    return json.loads((folder / SUMMARY_JSON).read_text())


def rows(folder: Path, *columns: str) -> list[dict]:
    """timeseries.csv rows where every named column was measured, as numbers."""
    found = []
    for row in read_csv(folder / TIMESERIES_CSV):
        if all(row[c] != "" for c in columns):
            found.append({c: float(row[c]) for c in (ELAPSED_S, *columns)})
    return found


def events(folder: Path, name: str, generation: int) -> list[dict]:
    lines = (folder / EVENTS_JSONL).read_text().splitlines()
    return [e for e in map(json.loads, lines) if e[EVENT] == name and e.get("generation") == generation]


def named(folder: Path) -> set[str]:
    """The failure modes `python -m load diagnose` names from the folder."""
    return {finding.name for finding in diagnose(load_run(folder)).findings}


def kills(folder: Path) -> int:
    return sum(summary(folder)[SERVER][kind] for kind in TOO_LONG_KILLS)


def test_fm1_a_consumer_still_sleeping_when_its_client_leaves_is_killed_and_its_member_leaks(tmp_path):
    bug, fix = run_scenarios(
        tmp_path, ("fm1_close_timeout",), ("fm1_close_timeout", "run-time=7s", "application-close-timeout=8")
    )
    users = 4

    assert summary(bug)[SERVER][SIG_KILLED_OWN_AWAIT] >= 1
    leaks = [r[GROUP_MEMBERS] - r[CONNECTIONS] for r in rows(bug, GROUP_MEMBERS, CONNECTIONS)]
    assert leaks[-1] > users  # more members of live processes than the connected ones plus one leaving each
    assert all(r[STALE_MEMBERS] == 0 for r in rows(bug, STALE_MEMBERS))  # every member's process is alive
    assert kills(fix) == 0
    # a member stays only while its consumer finishes the sleep, then disconnect() discards it
    assert max(r[GROUP_MEMBERS] - r[CONNECTIONS] for r in rows(fix, GROUP_MEMBERS, CONNECTIONS)) <= users
    assert "FM-1" in named(bug) and "FM-1" not in named(fix)


def test_fm1_async_consumers_waiting_on_the_busy_single_thread_are_killed(tmp_path):
    bug, fix = run_scenarios(
        tmp_path, ("fm1_single_thread", "run-time=7s"), ("fm1_single_thread_fix", "run-time=7s")
    )

    assert summary(bug)[SERVER][SIG_KILLED_ON_THREAD] >= 1
    assert summary(bug)[ENDPOINTS]["/ws/ping/"][PONG_TIMEOUT] >= 1  # a handler with no work of its own
    log = "".join(p.read_text() for p in (bug / SERVER_DIR).glob("daphne-*.log"))
    assert "path=b'/ws/ping/'> took too long to shut down and was killed" in log
    assert kills(fix) == 0
    assert summary(fix)[ENDPOINTS]["/ws/ping/"][ERRORS] == 0
    assert "FM-1-thread" in named(bug) and not {"FM-1", "FM-1-thread"} & named(fix)


def test_fm3_asgi_threads_speeds_up_only_the_pool_style(tmp_path):
    (run,) = run_scenarios(tmp_path, ("fm3_asgi_threads_styles", "run-time=12s", "step-seconds=6"))

    phases = summary(run)[PHASES]

    def ratio(path: str) -> float:
        one, eight = (phases[f"asgi_threads={n}"][ENDPOINTS][path][P50_MS] for n in (1, 8))
        return one / eight

    assert ratio("/ws/ping/pool/?work_ms=200") >= 3
    for single_thread in ("/ws/ping/sync/?work_ms=100", "/ws/ping/db/?work_ms=100"):
        assert 0.5 <= ratio(single_thread) <= 2, single_thread
    assert "FM-3" in named(run)


# Covered fast by test_restarts.py (a sync consumer mid-handler at SIGTERM: SIGUSR1, the dump, SIGKILL).
@pytest.mark.slow
def test_fm4_a_sigterm_that_never_exits_is_escalated_and_the_threads_are_dumped(tmp_path):
    bug, fix = run_scenarios(tmp_path, ("fm4_sigterm_hang",), ("fm4_sigterm_hang_fix",))

    (exited,) = events(bug, EXITED, 1)
    assert exited["how"] == KILLED_AFTER_TIMEOUT and exited["after_s"] >= 5 * 0.95
    assert [e["signal"] for e in events(bug, SIGNAL_SENT, 1)] == ["SIGTERM", "SIGUSR1", "SIGKILL"]
    (dump,) = events(bug, THREAD_DUMP, 1)
    stacks = (bug / SERVER_DIR / Path(dump["file"]).name).read_text()
    assert "run_until_future" in stacks and "_python_exit" in stacks
    (exited,) = events(fix, EXITED, 1)
    assert exited["how"] == HOW_EXITED and exited["after_s"] < 5
    assert events(fix, THREAD_DUMP, 1) == []
    assert "FM-4" in named(bug) and "FM-4" not in named(fix)


# Covered fast by test_redis_leaks.py (a SIGKILL leaves its members; the probe counts them as
# stale) and test_serverlog.py (SIGTERM's "Killed N pending", over-capacity lines).
@pytest.mark.slow
def test_fm5_every_restart_leaks_the_connected_members_and_a_process_key(tmp_path):
    bug, fix = run_scenarios(tmp_path, ("fm5_restart_leaks",), ("fm5_restart_leaks_fix",))
    users = 12

    stale = [r[STALE_MEMBERS] for r in rows(bug, STALE_MEMBERS)]
    assert max(stale) >= 2 * users  # two restarts, two rounds of members
    assert stale == sorted(stale)  # nothing ever removes them
    assert max(r[DEAD_PROCESS_KEYS] for r in rows(bug, DEAD_PROCESS_KEYS)) >= 2
    assert summary(bug)[SERVER][SIG_KILLED_PENDING] >= 2 * users
    assert summary(bug)[SERVER][SIG_OVER_CAPACITY] >= 1
    fixed = [r[STALE_MEMBERS] for r in rows(fix, STALE_MEMBERS)]
    assert max(fixed) < 2 * users  # what one restart leaked is pruned while the next one leaks
    assert any(
        later < earlier for earlier, later in zip(fixed, fixed[1:], strict=False)
    )  # group_send pruned them
    assert "FM-5" in named(bug) and "FM-5" not in named(fix)


# Covered fast by test_redis_leaks.py (the 1011 close) and test_serverlog.py (the message grouped).
@pytest.mark.slow
def test_fm7_idle_consumers_die_on_redis_pys_default_socket_timeout(tmp_path):
    bug, fix = run_scenarios(
        tmp_path,
        ("fm7_socket_timeout", "run-time=8s"),
        ("fm7_socket_timeout", "run-time=8s", "redis-socket-timeout=none"),
    )

    assert any(m.startswith("Timeout reading from") for m in summary(bug)[EXCEPTION_MESSAGES])
    assert summary(bug)[ALL][CLOSE_1011] >= 1
    assert summary(fix)[EXCEPTION_MESSAGES] == {}
    assert summary(fix)[ALL][CLOSE_1011] == 0
    assert "FM-7" in named(bug) and "FM-7" not in named(fix)


def test_fm8_handshakes_time_out_while_the_single_thread_is_busy(tmp_path):
    bug, fix = run_scenarios(
        tmp_path, ("fm8_handshake_timeout",), ("fm8_handshake_timeout", "websocket-connect-timeout=30")
    )

    assert summary(bug)[SERVER][SIG_HANDSHAKE_INCOMPLETE] >= 1
    assert summary(bug)[ALL][CONNECTS] > summary(bug)[ALL][CONNECT_OK]
    assert summary(fix)[SERVER][SIG_HANDSHAKE_INCOMPLETE] == 0
    assert summary(fix)[ALL][CONNECTS] == summary(fix)[ALL][CONNECT_OK]
    assert "FM-8" in named(bug) and "FM-8" not in named(fix)
