"""In-process Locust: the RunRecorder of a run on a real Environment and runner, and a user's
session putting a late pong in the second its ping was due.

Importing locust monkey-patches the whole process with gevent (sockets, threads, sleep),
and pytest imports every test file before it runs any: the rest of the suite would run
patched. Locust's own switch LOCUST_SKIP_MONKEY_PATCH, set only around the import, keeps
the patch out. Nothing here needs patched sockets: the recorder's greenlets are gevent's
own and run when a test yields to the hub.
"""

import json
import os
import time

import pytest

_skip = os.environ.get("LOCUST_SKIP_MONKEY_PATCH")
os.environ["LOCUST_SKIP_MONKEY_PATCH"] = "1"
try:
    import gevent
    from locust.env import Environment
    from locust.runners import LocalRunner

    from load.user.ws_user import ChannelsUser, Pending, WebSocketSession
finally:
    if _skip is None:
        del os.environ["LOCUST_SKIP_MONKEY_PATCH"]

from load.analysis.headline import headline  # noqa: E402
from load.config.settings import ChaosPlan, LoadConfig  # noqa: E402
from load.measure.deliveries import DeliveryLog  # noqa: E402
from load.measure.timeline import Timeline, timeline_for, windows_from_wire  # noqa: E402
from load.probes.serverlog import ServerLogFollower  # noqa: E402
from load.runfolder.loader import load_run  # noqa: E402
from load.runfolder.names import (  # noqa: E402
    BROADCASTS_LOST,
    BROADCASTS_RECEIVED,
    DELIVERIES,
    NO_REDIS_PROBE,
    NO_SERVER_LOG,
    NOT_MEASURED,
    PONGS,
    REDIS,
    SERVER_SIGNATURES,
)
from load.user.recorder import RunRecorder, ServerSide  # noqa: E402
from load.wire.errors import PONG, PONG_TIMEOUT  # noqa: E402
from locustrun import read_csv, read_json  # noqa: E402

CONFIG = LoadConfig(targets=("ws://127.0.0.1:9",), pong_timeout=1.0)


@pytest.fixture
def env():
    environment = Environment(user_classes=[ChannelsUser])
    runner = environment.create_local_runner()
    assert isinstance(runner, LocalRunner)
    yield environment
    runner.quit()


class Recorder(RunRecorder):
    """The real recorder but for the HTML report at the end: it has its own tests
    (test_report.py), and drawing its plots takes a second or more."""

    def _report_elsewhere(self) -> None:
        (self.run_dir / "report written").touch()


def recorder(env, run_dir, local: bool = True) -> RunRecorder:
    return Recorder(env, run_dir, CONFIG, ChaosPlan(), ServerSide(), local, {"run_id": "unit-run"})


def events(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]


def pings(timeline: Timeline, path: str, at: float, *outcomes: tuple[str, float]) -> Timeline:
    """One ping per outcome, all due at `at`."""
    for kind, latency in outcomes:
        timeline.ping_due(path, at, sent=True)
        timeline.ping_done(path, at, kind, latency, latency)
    return timeline


def test_importing_locust_here_left_the_process_unpatched():
    from gevent import monkey

    assert not any(monkey.is_module_patched(name) for name in ("socket", "threading", "time", "subprocess"))


def test_the_recorder_merges_every_window_and_writes_the_run_when_it_finishes(env, tmp_path):
    run = recorder(env, tmp_path)
    assert read_json(tmp_path / "manifest.json") == {"run_id": "unit-run"}  # written at the start
    second = int(run.started)
    # Two sources for the same second merge into one row; the local users' timeline is read at each tick.
    run.merge("local", pings(Timeline(), "/a/", second + 0.2, (PONG, 10.0)).take())
    run.merge("local", pings(Timeline(), "/b/", second + 0.7, (PONG, 30.0)).take())
    pings(timeline_for(env), "/a/", second + 1.5, (PONG, 20.0), (PONG_TIMEOUT, 0.0))
    timeline_for(env).connections_open = 2
    run.tick()
    run.finish()

    rows = read_csv(tmp_path / "timeseries.csv")
    by_second = {int(r["epoch_s"]): r for r in rows}
    assert [int(r["epoch_s"]) for r in rows] == list(range(second, second + len(rows)))  # every second, once
    assert (by_second[second]["pings"], by_second[second]["pongs"], by_second[second]["max_ms"]) == (
        "2",
        "2",
        "30.0",
    )
    assert (
        by_second[second + 1]["pings"],
        by_second[second + 1]["pongs"],
        by_second[second + 1]["errors"],
    ) == ("2", "1", "1")
    # Sampled at the one tick: the runner's user count and the open sockets; other seconds unknown, not 0.
    assert [(r["users"], r["connections"]) for r in rows if r["users"] != "" or r["connections"] != ""] == [
        ("0", "2")
    ]

    summary = read_json(tmp_path / "summary.json")
    assert (summary["all"]["pings"], summary["all"]["pongs"], summary["all"]["errors"]) == (4, 3, 1)
    assert summary["endpoints"]["/a/"]["pings"] == 3 and summary["endpoints"]["/b/"]["pongs"] == 1
    assert (
        summary["run_id"] == "unit-run"
        and summary["restarts"] == []
        and summary["ended_at"] >= summary["started_at"]
    )
    assert summary["not_measured"] == {SERVER_SIGNATURES: NO_SERVER_LOG, REDIS: NO_REDIS_PROBE}
    assert "workers" not in summary  # a local run has none

    assert read_json(tmp_path / "manifest.json") == {"run_id": "unit-run", "ended_at": summary["ended_at"]}
    assert [(e["event"], e.get("run_id")) for e in events(tmp_path)] == [
        ("run_start", "unit-run"),
        ("run_end", None),
    ]
    run.wait_for_report()
    assert run.ticker.dead and (tmp_path / "report written").exists()


def test_nothing_merged_or_recorded_after_the_run_ended_changes_its_files(env, tmp_path):
    run = recorder(env, tmp_path)
    run.finish()
    written = {
        name: (tmp_path / name).read_text() for name in ("timeseries.csv", "summary.json", "events.jsonl")
    }
    run.merge("late", pings(Timeline(), "/a/", time.time(), (PONG, 5.0)).take())
    run.record({"ts": time.time(), "event": "late"})
    run.finish()
    assert {name: (tmp_path / name).read_text() for name in written} == written


def test_exception_messages_are_written_each_second_and_read_back_from_a_killed_run(env, tmp_path):
    """exceptions.csv holds Daphne's "Exception inside application" lines by second and
    message as the run goes, so a run killed before summary.json still names them."""
    log = tmp_path / "daphne.log"
    log.write_text("2026-11-26 06:00:40,000 ERROR    Exception inside application: before the run\n")
    folder = tmp_path / "run"
    folder.mkdir()
    follower = ServerLogFollower(lambda: [log])
    run = Recorder(
        env, folder, CONFIG, ChaosPlan(), ServerSide(log_follower=follower), True, {"run_id": "unit-run"}
    )
    logged_at = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(run.started + 1))  # Daphne logs UTC
    with log.open("a") as handle:
        for message in ("Timeout reading from 127.0.0.1:6379", "Timeout reading from 127.0.0.1:6379", "boom"):
            handle.write(f"{logged_at},006 ERROR    Exception inside application: {message}\n")
    run.tick()
    rows = read_csv(folder / "exceptions.csv")  # on disk at the tick, not at the end
    assert sorted((r["elapsed_s"], r["message"], r["count"]) for r in rows) == [
        ("1", "Timeout reading from 127.0.0.1:6379", "2"),
        ("1", "boom", "1"),
    ]
    killed = load_run(folder)  # no summary.json: the run never finished
    assert killed.summary is None
    assert killed.exception_messages() == {"Timeout reading from 127.0.0.1:6379": 2, "boom": 1}
    assert headline(killed).messages_from == "exceptions.csv"
    run.finish()
    assert read_json(folder / "summary.json")["exception_messages"] == killed.exception_messages()


def test_a_run_without_a_server_log_has_no_exceptions_file_and_its_messages_are_unknown(env, tmp_path):
    recorder(env, tmp_path).finish()
    assert not (tmp_path / "exceptions.csv").exists()
    assert load_run(tmp_path).exception_messages() is None


def test_a_master_finishes_when_every_worker_it_heard_from_sent_its_final_report(env, tmp_path):
    run = recorder(env, tmp_path, local=False)
    second = int(run.started)
    run.merge("worker-1", pings(Timeline(), "/a/", second + 0.5, (PONG, 10.0)).take())
    run.merge("worker-2", pings(Timeline(), "/a/", second + 0.5, (PONG, 12.0)).take())
    run.stopping()  # the users stop; each worker sends its last windows in a final report
    run.final("worker-1", pings(Timeline(), "/a/", second + 0.9, (PONG, 14.0)).take(), {"pings": 2})
    assert not run.done and not (tmp_path / "summary.json").exists()  # worker-2's is still to come
    run.final("worker-2", {}, {"pings": 1})
    assert run.done
    summary = read_json(tmp_path / "summary.json")
    assert summary["all"]["pings"] == 3 and summary["workers"] == {
        "worker-1": {"pings": 2},
        "worker-2": {"pings": 1},
    }
    assert read_csv(tmp_path / "timeseries.csv")[0]["pongs"] == "3"
    assert summary["all"][BROADCASTS_LOST] == 0 and DELIVERIES not in summary[NOT_MEASURED]  # settled


def room_of_two(at: float) -> tuple[dict, dict]:
    """Two processes' deliveries: S (on the first) sends one ping, M (on the second) gets it."""
    first, second = DeliveryLog(), DeliveryLog()
    sender, member = first.open("/r/"), second.open("/r/")
    first.welcome(sender, "S", "r", at)
    second.welcome(member, "M", "r", at)
    first.sent(sender, 1, at + 0.1)
    first.echo(sender, 1, at + 0.2)
    second.broadcast(member, "S", 1, at + 0.2)
    return first.take(), second.take()


def test_a_master_without_a_workers_final_report_leaves_deliveries_unsettled(env, tmp_path):
    run = recorder(env, tmp_path, local=False)
    second = int(run.started)
    run.merge("worker-1", pings(Timeline(), "/r/", second + 0.5, (PONG, 10.0)).take())
    run.merge("worker-2", pings(Timeline(), "/r/", second + 0.5, (PONG, 12.0)).take())
    first, later = room_of_two(run.started)
    run.merge_deliveries(first)
    run.stopping()
    run.final("worker-2", {}, {"pings": 1}, later)
    run.finish()  # what the master does when worker-1's final report never comes
    summary = read_json(tmp_path / "summary.json")
    assert (
        summary["all"][BROADCASTS_RECEIVED] is None and summary["endpoints"]["/r/"][BROADCASTS_LOST] is None
    )
    assert summary[DELIVERIES] is None and "worker" in summary[NOT_MEASURED][DELIVERIES]
    assert {row[BROADCASTS_LOST] for row in read_csv(tmp_path / "timeseries.csv")} == {""}


def test_a_local_run_settles_its_deliveries_in_the_second_they_were_sent(env, tmp_path):
    run = recorder(env, tmp_path)
    for part in room_of_two(run.started):
        run.merge_deliveries(part)
    run.finish()
    summary = read_json(tmp_path / "summary.json")
    assert summary["endpoints"]["/r/"][BROADCASTS_RECEIVED] == 1 and summary["all"][BROADCASTS_LOST] == 0
    rows = read_csv(tmp_path / "timeseries.csv")
    assert [int(r[BROADCASTS_RECEIVED]) for r in rows if r["epoch_s"] == str(int(run.started + 0.1))] == [1]
    assert read_csv(tmp_path / "endpoints.csv")[-1]["endpoint"] == "/r/"  # a row made for it


def test_the_recorder_ticks_by_itself_each_second(env, tmp_path):
    run = recorder(env, tmp_path)
    pings(timeline_for(env), "/a/", run.started, (PONG, 1.0))
    # The ticker greenlet runs when this test yields to gevent: it takes the users' timeline.
    deadline = time.monotonic() + 5
    while not run.collector.phase_totals and time.monotonic() < deadline:
        gevent.sleep(0.05)
    assert run.collector.summary()["endpoints"]["/a/"][PONGS] == 1
    run.finish()


def test_a_late_pong_belongs_to_the_second_its_ping_was_due(env):
    """Latency runs from the due time, and the outcome lands in the due second, not the answer's."""
    timeline = Timeline()
    user = ChannelsUser(env)
    session = WebSocketSession(user, CONFIG, "ws://127.0.0.1:9/a/", "/a/", timeline)
    seen = []
    env.events.request.add_listener(lambda **kwargs: seen.append((kwargs["name"], kwargs["response_time"])))
    session.pending[1] = Pending(due=100.2, sent=100.3)
    session._on_frame(json.dumps({"type": "pong", "seq": 1}), now=102.7)  # answered 2.5 s after it was due
    session.pending[2] = Pending(due=103.4, sent=103.4)
    session._expire(now=104.5)  # past the 1 s pong timeout

    windows = windows_from_wire(timeline.take())
    assert sorted(windows) == [100, 103]
    answered = windows[100].endpoints["/a/"]
    assert answered.counts == {PONG: 1}
    assert (answered.latency.max_ms, answered.service.max_ms) == (pytest.approx(2500), pytest.approx(2400))
    assert windows[103].endpoints["/a/"].counts == {PONG_TIMEOUT: 1}
    assert seen[0] == ("ping /a/", pytest.approx(2500)) and seen[1] == ("ping /a/", None)
