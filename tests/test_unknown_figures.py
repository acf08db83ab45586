"""Unknown is not zero: a figure the run could not measure is no breach and no 0, but one
note that says why; a restart not recovered by the end is a lower bound, not the run's length."""

import pytest

from load.redisprobe import prefixes_of
from load.summary_table import format_restarts, format_server
from load.thresholds import check, parse_thresholds

WHY = "no server log given: --server-log or --server-log-cmd (or --stack local, or --agent-url)"
BASE = {
    "all": {"pings": 100, "pongs": 100, "errors": 0, "p99_ms": 5.0, "connects": 4},
    "endpoints": {"/ws/ping/": {"pings": 0, "pongs": 0, "errors": 0, "p99_ms": None, "connects": 0}},
    "duration_s": 60.0,
}
RECOVERED = {"recovery_s": 2.0, "stale_members_after": 1}
LATE = {"recovery_s": None, "not_recovered_within_s": 4.0, "not_recovered_until": "run_end", "stale_members_after": None}


def summary(**parts) -> dict:
    return {**BASE, "server": {"sig_killed_own_await": 0}, "restarts": [], **parts}


@pytest.mark.parametrize(
    ("text", "restarts", "breached", "noted"),
    [
        # 6 s before the end, 4 s of them watched: recovery_s>30 cannot be decided (was a breach "with 30.006")
        ("recovery_s>30", [RECOVERED, LATE], [], ["threshold recovery_s>30 not checked: recovery_s is at least 4: "
                                                   "1 restart(s) not recovered within 4 s before the run ended or the next restart"]),
        # down for longer than the bound: a breach
        ("recovery_s>3", [RECOVERED, LATE], ["threshold breached: recovery_s>3 (was at least 4: 1 restart(s) not recovered "
                                             "within 4 s before the run ended or the next restart, all)"], []),
        ("recovery_s<3", [LATE], [], []),  # at least 4: surely not under 3
        ("recovery_s>1", [RECOVERED], ["threshold breached: recovery_s>1 (was 2, all)"], []),
        ("recovery_s>1", [], [], ["threshold recovery_s>1 not checked: recovery_s not measured (no restart in this run)"]),
    ],
)
def test_recovery_thresholds_with_restarts_not_recovered(text, restarts, breached, noted):
    assert check(parse_thresholds(text), summary(restarts=restarts)) == (breached, noted)


def test_signature_thresholds_without_a_server_log_are_notes_not_breaches():
    unknown = summary(server={"sig_killed_own_await": None, "sig_exception": None}, not_measured={"server_signatures": WHY})
    lines, notes = check(parse_thresholds("killed>0, exceptions>=0"), unknown)
    assert lines == []
    assert notes == [f"threshold killed>0 not checked: killed not measured ({WHY})",
                     f"threshold exceptions>=0 not checked: exceptions not measured ({WHY})"]
    assert check(parse_thresholds("killed>0"), summary(server={"sig_killed_own_await": 2})) == (
        ["threshold breached: killed>0 (was 2, all)"], [])


def test_endpoint_figures_that_do_not_exist_are_notes():
    lines, notes = check(parse_thresholds("p99_ms@/ws/ping/>100, error_rate@/ws/ping/>1%, stale_members>0"), summary(restarts=[LATE]))
    assert lines == []
    assert notes == ["threshold p99_ms@/ws/ping/>100 not checked: p99_ms@/ws/ping/ not measured (no pongs)",
                     "threshold error_rate@/ws/ping/>1% not checked: error_rate@/ws/ping/ not measured (no pings)",
                     "threshold stale_members>0 not checked: stale_members not measured (no reading after any restart)"]


def test_live_processes_cannot_be_told_without_every_prefix():
    assert prefixes_of([{"layer_prefix": "a"}, {"layer_prefix": "b"}]) == {"a", "b"}
    assert prefixes_of([{"layer_prefix": "a"}, None]) is None  # one starting: its own members would look stale
    assert prefixes_of([{"status": "ok"}]) is None  # an app without the target's /healthz prefix


def test_the_terminal_table_says_not_measured():
    restart = {"at_s": 3.0, "action": "restart", "mode": "graceful", "which": "all", "down_s": None, "down_source": None,
               "recovery_s": None, "not_recovered_within_s": 4.0, "not_recovered_until": "run_end", "failed_pings": 3,
               "closes": 1, "server_kills": None, "stale_members_before": None, "stale_members_after": None}
    table = format_restarts([restart])
    assert "not recovered in 4 s left" in table and "not measured" in table and " 0 " not in table.splitlines()[1]
    assert format_server({"server": {"sig_exception": None}, "not_measured": {"server_signatures": WHY}}) == f"  not measured ({WHY})"
