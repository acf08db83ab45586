"""Unknown is not zero: a figure the run could not measure is no breach and no 0, but one
note that says why; a restart not recovered by the end is a lower bound, not the run's length."""

import html
import json
import sys
from dataclasses import replace

import pytest

from conftest import STEADY_APP
from load.agent.server import Agent, AgentConfig
from load.analysis.summary_table import format_restarts, format_server
from load.analysis.thresholds import check, parse_thresholds
from load.probes.redisprobe import LAYER_COLUMNS, NO_LIVE_LIST, PUBSUB, RedisProbe
from load.probes.serverlog import COLUMNS as SERVER_COLUMNS
from load.runfolder.names import NO_SERVER_LOG as WHY
from load.supervise.stack import prefixes_of
from load.wire.errors import CONNECT_ERRORS
from load.wire.pingclient import PingSocket
from locustrun import expected_exit_code, read_csv, read_json, run_folder

TOKEN = "a-test-token-of-enough-length"

BASE = {
    "all": {"pings": 100, "pongs": 100, "errors": 0, "p99_ms": 5.0, "connects": 4},
    "endpoints": {"/ws/ping/": {"pings": 0, "pongs": 0, "errors": 0, "p99_ms": None, "connects": 0}},
    "duration_s": 60.0,
}
RECOVERED = {"recovery_s": 2.0, "stale_members_after": 1}
LATE = {
    "recovery_s": None,
    "not_recovered_within_s": 4.0,
    "not_recovered_until": "run_end",
    "stale_members_after": None,
}


def summary(**parts) -> dict:
    return {**BASE, "server": {"sig_killed_own_await": 0}, "restarts": [], **parts}


@pytest.mark.parametrize(
    ("text", "restarts", "breached", "noted"),
    [
        # 6 s before the end, 4 s of them watched: recovery_s>30 cannot be decided (was a breach "with 30.006")
        (
            "recovery_s>30",
            [RECOVERED, LATE],
            [],
            [
                "threshold recovery_s>30 not checked: recovery_s is at least 4: "
                "1 restart(s) not recovered within 4 s before the run ended or the next restart"
            ],
        ),
        # down for longer than the bound: a breach
        (
            "recovery_s>3",
            [RECOVERED, LATE],
            [
                "threshold breached: recovery_s>3 (was at least 4: 1 restart(s) not recovered "
                "within 4 s before the run ended or the next restart, all)"
            ],
            [],
        ),
        ("recovery_s<3", [LATE], [], []),  # at least 4: surely not under 3
        ("recovery_s>1", [RECOVERED], ["threshold breached: recovery_s>1 (was 2, all)"], []),
        (
            "recovery_s>1",
            [],
            [],
            ["threshold recovery_s>1 not checked: recovery_s not measured (no restart in this run)"],
        ),
    ],
)
def test_recovery_thresholds_with_restarts_not_recovered(text, restarts, breached, noted):
    assert check(parse_thresholds(text), summary(restarts=restarts)) == (breached, noted)


def test_signature_thresholds_without_a_server_log_are_notes_not_breaches():
    unknown = summary(
        server={"sig_killed_own_await": None, "sig_exception": None}, not_measured={"server_signatures": WHY}
    )
    lines, notes = check(parse_thresholds("killed>0, exceptions>=0"), unknown)
    assert lines == []
    assert notes == [
        f"threshold killed>0 not checked: killed not measured ({WHY})",
        f"threshold exceptions>=0 not checked: exceptions not measured ({WHY})",
    ]
    assert check(parse_thresholds("killed>0"), summary(server={"sig_killed_own_await": 2})) == (
        ["threshold breached: killed>0 (was 2, all)"],
        [],
    )


def test_endpoint_figures_that_do_not_exist_are_notes():
    lines, notes = check(
        parse_thresholds("p99_ms@/ws/ping/>100, error_rate@/ws/ping/>1%, stale_members>0"),
        summary(restarts=[LATE]),
    )
    assert lines == []
    assert notes == [
        "threshold p99_ms@/ws/ping/>100 not checked: p99_ms@/ws/ping/ not measured (no pongs)",
        "threshold error_rate@/ws/ping/>1% not checked: error_rate@/ws/ping/ not measured (no pings)",
        "threshold stale_members>0 not checked: stale_members not measured (no reading after any restart)",
    ]


def test_live_processes_cannot_be_told_without_every_prefix():
    assert prefixes_of([{"layer_prefix": "a"}, {"layer_prefix": "b"}]) == {"a", "b"}
    assert (
        prefixes_of([{"layer_prefix": "a"}, None]) is None
    )  # one starting: its own members would look stale
    assert prefixes_of([{"status": "ok"}]) is None  # an app without the target's /healthz prefix


def test_the_terminal_table_says_not_measured():
    restart = {
        "at_s": 3.0,
        "action": "restart",
        "mode": "graceful",
        "which": "all",
        "down_s": None,
        "down_source": None,
        "recovery_s": None,
        "not_recovered_within_s": 4.0,
        "not_recovered_until": "run_end",
        "failed_pings": 3,
        "closes": 1,
        "server_kills": None,
        "stale_members_before": None,
        "stale_members_after": None,
    }
    table = format_restarts([restart])
    assert (
        "not recovered in 4 s left" in table
        and "not measured" in table
        and " 0 " not in table.splitlines()[1]
    )
    assert (
        format_server({"server": {"sig_exception": None}, "not_measured": {"server_signatures": WHY}})
        == f"  not measured ({WHY})"
    )


# -- real runs ------------------------------------------------------------------------------


def test_without_a_server_log_or_a_live_list_those_figures_are_empty_null_and_said(
    start_stack, locust, tmp_path
):
    """A Daphne the suite did not start, no --server-log: Daphne's signatures cannot be seen;
    a Redis probe without a live-process list cannot tell stale members from live ones."""
    stack = start_stack(daphne_count=1)
    run = locust(
        "--headless",
        "--host",
        stack.instances[0].ws_url(""),
        "-u",
        "2",
        "-r",
        "2",
        "-t",
        "4s",
        "--paths",
        "/ws/room/unseen/",
        "--pong-timeout",
        "1",
        "--redis-probe-url",
        stack.redis_url,
        "--fail-on",
        "killed>0",
        "--results-dir",
        str(tmp_path / "results"),
    )
    assert run.wait(60) == 0, run.output()[-3000:]  # a threshold it cannot check is no breach
    folder = run_folder(tmp_path / "results")
    rows = read_csv(folder / "timeseries.csv")
    assert rows and all(r[column] == "" for r in rows for column in SERVER_COLUMNS)
    assert all(r["stale_members"] == r["dead_process_keys"] == "" for r in rows)
    assert max(int(r["group_members"] or 0) for r in rows) == 2  # what the probe can see, it shows
    assert {g["stale_members"] for g in read_csv(folder / "groups.csv")} == {""}

    summary = read_json(folder / "summary.json")
    assert set(summary["server"].values()) == {None}
    assert (
        summary["not_measured"]["server_signatures"] == WHY
        and summary["not_measured"]["stale_members"] == NO_LIVE_LIST
    )
    note = f"threshold killed>0 not checked: killed not measured ({WHY})"
    assert (
        summary["threshold_notes"] == [note] and summary["threshold_breaches"] == [] and note in run.output()
    )
    page = (folder / "report.html").read_text()
    assert (
        html.escape(f"Not measured ({WHY})") in page and html.escape(f"not measured ({NO_LIVE_LIST})") in page
    )


def test_the_pubsub_layer_keeps_no_group_keys_so_its_group_figures_are_unknown(start_stack):
    stack = start_stack(daphne_count=1, app=replace(STEADY_APP, layer="redis-pubsub"))
    probe = RedisProbe(stack.redis_url, stack.live_prefixes)  # not told the layer: it finds out
    probe.sample()  # no subscription yet: the layer cannot be told from an idle core layer
    with PingSocket(stack.instances[0].ws_url("/ws/room/pubsub/")):
        sample = probe.sample()
    assert (
        sample.figures["redis_clients"] >= 1 and sample.figures["redis_keys"] == 0
    )  # measured: pub/sub keeps no keys
    assert {sample.figures[column] for column in LAYER_COLUMNS} == {""}
    assert probe.not_measured() == dict.fromkeys(LAYER_COLUMNS, PUBSUB)  # the first zeros were no measurement
    told = RedisProbe(stack.redis_url, stack.live_prefixes, layer="redis-pubsub")
    assert {told.sample().figures[column] for column in LAYER_COLUMNS} == {""}


def test_a_hook_restart_is_down_for_as_long_as_the_clients_saw(start_stack, locust, tmp_path):
    """The hook restarts Daphne through an agent (as `ssh host systemctl restart` would);
    the hook itself says nothing of the outage, the clients' connects do."""
    stack = start_stack(daphne_count=1)
    hook = tmp_path / "hook.py"
    hook.write_text(
        "import json, sys\nfrom load.agent.client import AgentClient\n"
        "print(json.dumps(AgentClient(sys.argv[1], sys.argv[2]).restart(0, 'hard')))\n"
    )
    with Agent(stack, AgentConfig(TOKEN)) as agent:
        run = locust(
            "--headless",
            "--host",
            stack.instances[0].ws_url(""),
            "-u",
            "4",
            "-r",
            "4",
            "-t",
            "10s",
            "--paths",
            "/ws/ping/",
            "--ping-rate",
            "4",
            "--pong-timeout",
            "1",
            "--reconnect-min",
            "0.1",
            "--reconnect-max",
            "0.3",
            "--restart-at",
            "2,5",
            "--restart-cmd",
            f"{sys.executable} {hook} {agent.url} {TOKEN}",
            "--results-dir",
            str(tmp_path / "results"),
        )
        code = run.wait(90)
    folder = run_folder(tmp_path / "results")
    assert code == expected_exit_code(folder), run.output()[-3000:]
    summary = read_json(folder / "summary.json")
    first, second = summary["restarts"]
    for n, restart in enumerate((first, second), 1):
        (outcome,) = json.loads((folder / "server" / f"hook-{n:03d}.log").read_text())
        real = outcome["down_seconds"]  # from SIGKILL to the new process answering /healthz
        if restart is second and restart["down_s"] is None:
            continue  # on a slow machine the run may end before the second restart is over: unknown, not 0
        assert restart["down_source"] == "clients"
        # The clients notice the kill within their backoff and see the new process within a second's resolution.
        assert 0 < restart["down_s"] <= real + 1.2 and restart["down_s"] >= real / 3, (
            restart["down_s"],
            real,
        )
    # Back-to-back restarts share the run's failures; neither is charged with the other's.
    failed = summary["all"]["errors"] + sum(summary["all"][kind] for kind in CONNECT_ERRORS)
    assert 0 < sum(r["failed_pings"] for r in summary["restarts"]) <= failed
    assert "The clients saw Daphne down" in (folder / "report.html").read_text()
