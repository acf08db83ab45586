"""Detectors on hand-made run folders: each fires on its evidence, stays silent without it,
tells itself apart from its neighbour, and says "not checked" where the run could not see."""

import json
import subprocess
import sys

from load.analysis.detectors import diagnose
from load.analysis.headline import NO_UNMATCHED_COLUMN
from load.runfolder.names import (
    NO_REDIS_PROBE,
    NO_SERVER_LOG,
    REDIS,
    SERVER_COLUMNS,
    SERVER_SIGNATURES,
)
from runfolders import T0, second, write_run


def names(run) -> list[str]:
    return [finding.name for finding in diagnose(run).findings]


def test_a_clean_run_names_nothing_and_checked_everything(tmp_path):
    run = write_run(tmp_path, [second(n) for n in range(10)], summary={})
    diagnosis = diagnose(run)
    assert diagnosis.findings == [] and diagnosis.not_checked == {}
    assert diagnosis.text().startswith("Findings: none")


def test_over_capacity_with_every_member_alive_is_a_slow_reader_not_fm5(tmp_path):
    rows = [
        second(n, sig_over_capacity=3 if n == 4 else 0, sig_over_capacity_channels=3 if n == 4 else 0)
        for n in range(10)
    ]
    run = write_run(tmp_path, rows, summary={})
    assert names(run) == ["slow-readers"]
    (finding,) = diagnose(run).findings
    assert (
        finding.evidence[0].startswith('3 "channels over capacity')
        and "no stale members" in finding.evidence[1]
    )


def test_over_capacity_with_members_leaked_at_each_restart_is_fm5(tmp_path):
    rows = [second(n, sig_over_capacity=2, stale_members=6 if n > 3 else 0) for n in range(10)]
    restarts = [
        {
            "ts": T0 + 3,
            "at_s": 3,
            "action": "restart",
            "recovery_s": 1.0,
            "stale_members_before": 0,
            "stale_members_after": 6,
        },
        {
            "ts": T0 + 6,
            "at_s": 6,
            "action": "restart",
            "recovery_s": 1.0,
            "stale_members_before": 6,
            "stale_members_after": 12,
        },
    ]
    run = write_run(tmp_path, rows, summary={"restarts": restarts})
    assert "FM-5" in names(run) and "slow-readers" not in names(run)
    (fm5,) = [f for f in diagnose(run).findings if f.name == "FM-5"]
    assert fm5.evidence[0].startswith("stale group members 0 → 6 → 12 over 2 restarts, 6 more per restart")


def test_over_capacity_without_redis_figures_says_it_cannot_tell_the_cause(tmp_path):
    rows = [second(n, sig_over_capacity=1, stale_members="", dead_process_keys="") for n in range(10)]
    run = write_run(tmp_path, rows, summary={"not_measured": {REDIS: NO_REDIS_PROBE}})
    diagnosis = diagnose(run)
    assert [f.name for f in diagnosis.findings] == ["over-capacity"]
    assert diagnosis.not_checked == {"FM-5 leaked members, slow readers": NO_REDIS_PROBE}


def test_without_a_server_log_nothing_is_said_of_the_log_and_the_report_says_not_checked(tmp_path):
    rows = [second(n, **{c: "" for c in SERVER_COLUMNS}) for n in range(10)]
    run = write_run(
        tmp_path,
        rows,
        summary={"server": dict.fromkeys(SERVER_COLUMNS), "not_measured": {SERVER_SIGNATURES: NO_SERVER_LOG}},
    )
    diagnosis = diagnose(run)
    assert diagnosis.findings == []
    assert diagnosis.not_checked == {"FM-1, FM-7, FM-8, exceptions, silent closes": NO_SERVER_LOG}


def test_the_first_and_last_partial_seconds_are_never_evidence_of_saturation(tmp_path):
    stop_time = [second(n, late_sends=8 if n == 9 else 0) for n in range(10)]  # the stop: last second
    assert names(write_run(tmp_path, stop_time, summary={})) == []
    middle = tmp_path / "middle"
    middle.mkdir()
    busy = [second(n, late_sends=8 if n == 5 else 0) for n in range(10)]
    (finding,) = diagnose(write_run(middle, busy, summary={})).findings
    assert (
        finding.name == "generator-saturated"
        and finding.first_s == 5
        and "1 of 8 whole seconds" in finding.evidence[0]
    )


def test_a_load_process_at_a_full_core_makes_its_seconds_the_generators(tmp_path):
    rows = [second(n, generator_cpu=97.5 if n in (4, 5) else 40.0) for n in range(10)]
    (finding,) = diagnose(write_run(tmp_path, rows, summary={})).findings
    assert finding.name == "generator-saturated" and finding.first_s == 4
    assert finding.evidence[0].startswith("2 of 8 whole seconds (generator_limited")
    assert (
        finding.evidence[1]
        == "a load process at 90 % of a core or more in 2 of them, up to 97.5 % (generator_cpu)"
    )
    old = tmp_path / "old"  # a folder from before the CPU column: late sends only, and no complaint
    old.mkdir()
    assert names(write_run(old, rows, summary={}, without=("generator_cpu", "generator_limited"))) == []


def test_handshakes_cut_by_a_restart_are_not_fm8(tmp_path):
    restart = [{"ts": T0 + 4, "at_s": 4, "action": "restart", "recovery_s": 2.0}]
    during = [second(n, sig_handshake_incomplete=2 if n == 5 else 0) for n in range(12)]
    assert "FM-8" not in names(write_run(tmp_path, during, summary={"restarts": restart}))
    outside = tmp_path / "outside"
    outside.mkdir()
    busy = [
        second(n, sig_handshake_incomplete=2 if n == 10 else 0, connect_timeout=2 if n == 10 else 0)
        for n in range(12)
    ]
    (fm8,) = [
        f
        for f in diagnose(write_run(outside, busy, summary={"restarts": restart})).findings
        if f.name == "FM-8"
    ]
    assert fm8.first_s == 10 and fm8.evidence[0].startswith("2 websocket handshakes")


def test_exceptions_are_grouped_by_message_with_their_first_second_and_fm7_named(tmp_path):
    rows = [second(n, sig_exception=1 if n in (3, 6) else 0) for n in range(10)]
    exceptions = [
        {
            "epoch_s": T0 + 3,
            "elapsed_s": 3,
            "phase": "run",
            "message": "Timeout reading from 127.0.0.1:6379",
            "count": 1,
        },
        {"epoch_s": T0 + 6, "elapsed_s": 6, "phase": "run", "message": "KeyError: 'action'", "count": 1},
    ]
    run = write_run(
        tmp_path, rows, exceptions=exceptions
    )  # killed: no summary.json, messages from exceptions.csv
    findings = {f.name: f for f in diagnose(run).findings}
    assert findings["FM-7"].first_s == 3 and "exceptions.csv" in findings["FM-7"].evidence[0]
    assert findings["exception"].title.endswith("KeyError: 'action'\"") and findings["exception"].first_s == 6


def test_closes_outside_restarts_with_nothing_in_the_log_are_silent_closes(tmp_path):
    rows = [second(n, close_1000=3 if n == 5 else 0, closes=3 if n == 5 else 0) for n in range(10)]
    (finding,) = diagnose(write_run(tmp_path, rows, summary={})).findings
    assert finding.name == "silent-closes" and "3 closes (close_1000 3)" in finding.evidence[0]
    logged = tmp_path / "logged"
    logged.mkdir()
    explained = [
        second(n, close_1011=3 if n == 5 else 0, sig_exception=3 if n == 5 else 0) for n in range(10)
    ]
    assert "silent-closes" not in names(write_run(logged, explained, summary={}))


def test_recovery_slower_at_every_restart_is_named(tmp_path):
    restarts = [
        {"ts": T0 + t, "at_s": t, "action": "restart", "recovery_s": r}
        for t, r in ((2, 1.0), (5, 1.5), (8, 2.5))
    ]
    run = write_run(tmp_path, [second(n) for n in range(12)], summary={"restarts": restarts})
    (finding,) = [f for f in diagnose(run).findings if f.name == "slower-recovery"]
    assert "1 → 1.5 → 2.5 s" in finding.evidence[0]


def test_a_daphne_killed_after_ignoring_sigterm_is_fm4(tmp_path):
    events = [
        {
            "ts": T0 + 3,
            "event": "exited",
            "how": "killed_after_timeout",
            "after_s": 10.0,
            "instance": "daphne-0",
        },
        {"ts": T0 + 3, "event": "exited", "how": "exited", "after_s": 0.4, "instance": "daphne-1"},
    ]
    run = write_run(tmp_path, [second(n) for n in range(10)], summary={}, events=events)
    (fm4,) = diagnose(run).findings
    assert fm4.name == "FM-4" and fm4.evidence[0].startswith(
        "1 of 2 Daphne exits needed SIGKILL, still running 10 s"
    )


def test_the_json_form_has_every_field(tmp_path):
    rows = [second(n, sig_killed_own_await=2 if n == 4 else 0) for n in range(10)]
    body = diagnose(write_run(tmp_path, rows, summary={})).as_json()
    (finding,) = body["findings"]
    assert finding["name"] == "FM-1" and finding["first_s"] == 4 and "FM-1" in finding["fix"]
    assert (
        set(finding) == {"name", "title", "evidence", "meaning", "fix", "first_s"}
        and body["not_checked"] == {}
    )


def test_diagnose_prints_the_findings_as_text_and_json(tmp_path):
    rows = [second(n, sig_killed_own_await=2 if n == 4 else 0) for n in range(10)]
    write_run(tmp_path, rows, summary={})
    text = subprocess.run(
        [sys.executable, "-m", "load", "diagnose", str(tmp_path)], capture_output=True, text=True
    )
    assert text.returncode == 0 and text.stdout.startswith("Findings (1):\n1. Consumers were killed"), (
        text.stderr
    )
    as_json = subprocess.run(
        [sys.executable, "-m", "load", "diagnose", "--json", str(tmp_path)], capture_output=True, text=True
    )
    assert json.loads(as_json.stdout)["findings"][0]["name"] == "FM-1"


def test_diagnose_of_a_folder_no_run_wrote_is_one_line_and_exit_2(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "load", "diagnose", str(tmp_path)], capture_output=True, text=True
    )
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "not a run folder" in result.stderr


def test_lost_broadcasts_are_named_and_unsettled_ones_not_checked(tmp_path):
    rows = [
        second(n, broadcasts=90, broadcasts_received=90 - 3 * (n == 4), broadcasts_lost=3 * (n == 4))
        for n in range(8)
    ]
    settled = tmp_path / "settled"
    settled.mkdir()
    run = write_run(
        settled, rows, summary={"all": {"broadcasts": 717, "broadcasts_received": 717, "broadcasts_lost": 3}}
    )
    (finding,) = [f for f in diagnose(run).findings if f.name == "messages-lost"]
    assert "3 of the 720 broadcasts" in finding.evidence[0] and finding.first_s == 4
    killed = tmp_path / "killed"  # no summary.json, and the delivery cells never filled
    killed.mkdir()
    unsettled = [
        {**r, "broadcasts_received": "", "broadcasts_lost": "", "broadcasts_duplicated": ""} for r in rows
    ]
    diagnosis = diagnose(write_run(killed, unsettled))
    assert "messages-lost" not in [f.name for f in diagnosis.findings]
    assert "not settled" in diagnosis.not_checked["messages lost"]


CHAT = "/ws/chat/lobby/"


def chat_run(folder, template: str, **options):
    """A room of 3 users at 1 ping/s: each message one pong and 2 unmatched frames, from +3 s."""
    rows = [second(n, unmatched=20 if 3 <= n < 7 else 0) for n in range(10)]
    config = {"protocol": "template", "ping_template": template, "pong_field": "text"}
    return write_run(
        folder,
        rows,
        endpoint_rows=[{**r, "endpoint": CHAT} for r in rows],
        manifest={"config": config},
        **options,
    )


def test_unmatched_frames_without_user_in_the_template_name_the_fix(tmp_path):
    run = chat_run(tmp_path, '{"message": "says {seq}"}', summary={})
    (finding,) = diagnose(run).findings
    assert finding.name == "unmatched-replies" and finding.first_s == 3
    assert finding.evidence[0] == (
        "80 frames answered no ping, against 100 pongs (0.8 per pong), in 4 of 10 seconds "
        "(unmatched, pongs: summary.json; seconds: timeseries.csv, first at +3 s)"
    )
    assert f"{CHAT}: 80 unmatched frames, 100 pongs" in finding.evidence
    assert finding.evidence[-1] == (
        '--protocol template --ping-template \'{"message": "says {seq}"}\' --pong-field=text (manifest.json config)'
    )
    assert "cannot tell" in finding.title and "put {user} in --ping-template" in finding.fix
    assert "FIFO" in finding.fix and 'README "Matching replies"' in finding.fix
    own = tmp_path / "own"  # with {user}: the other members' messages, no fix needed
    own.mkdir()
    (finding,) = diagnose(chat_run(own, '{"message": "{user} says {seq}"}')).findings  # killed: from the CSV
    assert "(unmatched, pongs: timeseries.csv, first at +3 s)" in finding.evidence[0]
    assert "cannot tell" not in finding.title and finding.fix.startswith("none in a shared room")


def test_unmatched_frames_of_the_target_app_point_at_late_pongs(tmp_path):
    rows = [
        second(n, unmatched=2 * (n == 5), pong_timeout=2 * (n == 4), errors=2 * (n == 4)) for n in range(10)
    ]
    run = write_run(tmp_path, rows, summary={})
    assert names(run) == ["unmatched-replies", "pings-failed"]  # the findings above say what caused the rest
    finding = diagnose(run).findings[0]
    assert finding.first_s == 5 and finding.title.startswith("Unmatched replies")
    assert "2 pings timed out (pong_timeout)" in finding.evidence[-1] and "--pong-timeout" in finding.fix


def test_a_folder_older_than_the_unmatched_column_is_not_checked_not_zero(tmp_path):
    for finished in (True, False):
        folder = tmp_path / str(finished)
        folder.mkdir()
        rows = [second(n) for n in range(10)]
        diagnosis = diagnose(
            write_run(folder, rows, summary={} if finished else None, without=("unmatched",))
        )
        assert diagnosis.findings == []
        assert diagnosis.not_checked == {"unmatched replies": NO_UNMATCHED_COLUMN}
        assert "unmatched replies: timeseries.csv has no unmatched column" in diagnosis.text()
