"""--fail-on: expressions, good and bad, against a summary."""

import pytest

from load.analysis.livethresholds import BreachWatch
from load.analysis.thresholds import breaches, check, parse_thresholds
from load.config.settings import ConfigError

SUMMARY = {
    "all": {
        "pings": 1000,
        "pongs": 970,
        "errors": 30,
        "p99_ms": 612.5,
        "connects": 50,
        "connect_refused": 5,
        "broadcasts_lost": 7,
    },
    "endpoints": {"/ws/ping/": {"pings": 500, "pongs": 500, "errors": 0, "p99_ms": 12.0, "connects": 10}},
    "server": {"sig_killed_own_await": 3, "sig_exception": 0},
    "restarts": [
        {"recovery_s": 1.4, "stale_members_after": 6},
        {"recovery_s": 12.0, "stale_members_after": 12},
    ],
    "duration_s": 60,
}


@pytest.mark.parametrize(
    ("text", "breached"),
    [
        ("error_rate>1%", ["threshold breached: error_rate>1% (was 3.00%, all)"]),
        ("error_rate>5%", []),
        ("p99_ms>500", ["threshold breached: p99_ms>500 (was 612.5, all)"]),
        ("p99_ms@/ws/ping/>500", []),
        ("error_rate@/ws/ping/>0%", []),
        ("recovery_s>10", ["threshold breached: recovery_s>10 (was 12, all)"]),
        ("killed>0", ["threshold breached: killed>0 (was 3, all)"]),
        ("exceptions>0", []),
        ("stale_members>=12", ["threshold breached: stale_members>=12 (was 12, all)"]),
        ("connect_error_rate>5%", ["threshold breached: connect_error_rate>5% (was 10.00%, all)"]),
        ("pongs<1000", ["threshold breached: pongs<1000 (was 970, all)"]),
        ("broadcasts_lost>0", ["threshold breached: broadcasts_lost>0 (was 7, all)"]),
        ("p99_ms@/ws/nowhere/>1", ["threshold p99_ms@/ws/nowhere/>1: the run has no endpoint /ws/nowhere/"]),
    ],
)
def test_thresholds_name_each_breach_on_one_line(text, breached):
    assert breaches(parse_thresholds(text), SUMMARY) == breached


def test_unsettled_deliveries_are_a_note_not_a_pass():
    unsettled = {**SUMMARY, "all": {**SUMMARY["all"], "broadcasts_lost": None}}
    lines, notes = check(parse_thresholds("broadcasts_lost>0"), unsettled)
    assert lines == [] and notes == [
        "threshold broadcasts_lost>0 not checked: broadcasts_lost not measured"
        " (room delivery not settled: see not_measured in summary.json)"
    ]


def test_several_expressions_in_one_option():
    assert len(breaches(parse_thresholds("error_rate>1%, killed>0, p99_ms>10000"), SUMMARY)) == 2


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("error_rate>>1", "write METRIC[@ENDPOINT]>VALUE"),
        ("latency>5", "unknown metric 'latency'"),
        ("p99_ms>5%", "only error_rate and connect_error_rate take a percentage"),
        ("recovery_s@/ws/ping/>5", "recovery_s is a figure of the whole run"),
        ("p99_ms>fast", "write METRIC[@ENDPOINT]>VALUE"),
    ],
)
def test_bad_expressions_are_one_line_errors(text, says):
    with pytest.raises(ConfigError) as raised:
        parse_thresholds(text)
    assert says in raised.value.as_option() and raised.value.as_option().startswith("--fail-on")
    assert "\n" not in raised.value.as_option()


def test_while_the_run_goes_each_limit_from_above_is_said_once_when_first_breached():
    watch = BreachWatch(parse_thresholds("errors>2,p99_ms@/ws/b/>100,pongs<1000,recovery_s>5"))
    assert [t.text for t in watch.thresholds] == ["errors>2", "p99_ms@/ws/b/>100"]  # not < nor end-only

    def so_far(errors: int, endpoints: dict) -> dict:
        return {"all": {"errors": errors, "pings": 10}, "endpoints": endpoints, "server": {}}

    assert watch.new_breaches(so_far(2, {})) == []  # /ws/b/ not used yet: no breach, no complaint
    found = watch.new_breaches(so_far(3, {"/ws/b/": {"p99_ms": 250.0}}))
    assert [(t.text, line) for t, line in found] == [
        (
            "errors>2",
            "threshold breached: errors>2 (was 3, all) so far (the end's figures decide the exit code)",
        ),
        (
            "p99_ms@/ws/b/>100",
            "threshold breached: p99_ms@/ws/b/>100 (was 250, /ws/b/) so far (the end's figures decide the exit code)",
        ),
    ]
    assert watch.new_breaches(so_far(9, {"/ws/b/": {"p99_ms": 900.0}})) == []  # said once
    assert not BreachWatch(parse_thresholds("pongs<5"))  # nothing to watch
