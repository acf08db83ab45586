"""Locust runs with a chaos plan: restarts, a threads staircase, an agent, recorded as they happen."""

import json
from pathlib import Path

import pytest

from load.agent.server import Agent, AgentConfig
from load.analysis.detectors import diagnose
from load.config.settings import LayerOptions
from load.runfolder.loader import load_run
from load.supervise.stack import healthz
from locustrun import expected_exit_code, read_csv, read_json, run_folder

TOKEN = "a-test-token-of-enough-length"


def events_of(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]


@pytest.mark.parametrize(
    ("mode", "which", "how"), [("graceful", "all", "exited"), ("hard", "rolling", "sigkill")]
)
def test_a_restart_plan_restarts_daphne_under_load_and_records_every_step(locust, tmp_path, mode, which, how):
    run = locust(
        "--headless",
        "--stack",
        "local",
        "--stack-daphne",
        "2",
        "-u",
        "6",
        "-r",
        "6",
        "-t",
        "12s",
        "--paths",
        "/ws/ping/,/ws/room/chaos/",
        "--ping-rate",
        "4",
        "--pong-timeout",
        "1",
        "--reconnect-min",
        "0.2",
        "--reconnect-max",
        "1",
        "--restart-at",
        "3",
        "--restart-mode",
        mode,
        "--restart-which",
        which,
        "--results-dir",
        str(tmp_path / "results"),
    )
    assert run.wait(90) == 1  # the restart's dropped sockets are failures to Locust
    folder = run_folder(tmp_path / "results")
    events = events_of(folder)
    kinds = [e["event"] for e in events]
    assert kinds[0] == "run_start" and kinds[-1] == "run_end"
    assert kinds.count("action_begin") == kinds.count("action_done") == 1
    output = run.output()  # said as it happened, as Locust logs (the console, the web UI's Logs tab)
    assert "chaos action restart at 3s begins" in output and "chaos action restart at 3s done in" in output
    exits = [e for e in events if e["event"] == "exited"]
    assert [e["how"] for e in exits] == [how, how]
    steps = [(e["event"], e["instance"]) for e in events if e["event"] in ("restart_begin", "restart_done")]
    if which == "rolling":  # one at a time, each ready before the next goes down
        assert steps == [
            ("restart_begin", "daphne-0"),
            ("restart_done", "daphne-0"),
            ("restart_begin", "daphne-1"),
            ("restart_done", "daphne-1"),
        ]
    else:
        assert steps[:2] == [("restart_begin", "daphne-0"), ("restart_begin", "daphne-1")]

    (restart,) = read_json(folder / "summary.json")["restarts"]
    assert restart["mode"] == mode and restart["which"] == which and restart["recovery_s"] is not None
    assert restart["closes"] >= 6 and restart["stale_members_after"] > restart["stale_members_before"] == 0
    rows = read_csv(folder / "timeseries.csv")
    live = [r["live_processes"] for r in rows if r["live_processes"]]
    assert live[0] == live[-1] == "2"  # both instances before the restart and after it
    assert max(int(r["stale_members"] or 0) for r in rows) == restart["stale_members_after"]


def test_an_asgi_threads_staircase_shows_as_phases_of_the_timeline(locust, tmp_path):
    run = locust(
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
        "9s",
        "--paths",
        "/ws/ping/pool/?work_ms=20",
        "--ping-rate",
        "4",
        "--pong-timeout",
        "1",
        "--asgi-threads-steps",
        "1,3",
        "--step-seconds",
        "4",
        "--restart-mode",
        "hard",
        "--results-dir",
        str(tmp_path / "results"),
    )
    code = run.wait(90)
    folder = run_folder(tmp_path / "results")
    assert code == expected_exit_code(folder) == 1, run.output()[
        -3000:
    ]  # the hard restarts' dropped sockets fail pings
    phases = [r["phase"] for r in read_csv(folder / "timeseries.csv")]
    seen = [p for i, p in enumerate(phases) if i == 0 or p != phases[i - 1]]
    assert seen[-2:] == ["asgi_threads=1", "asgi_threads=3"]
    threads_set = [e["threads"] for e in events_of(folder) if e["event"] == "asgi_threads_set"]
    assert threads_set == [1, 3]
    assert [r["threads"] for r in read_json(folder / "summary.json")["restarts"]] == [1, 3]


def test_a_plan_in_a_toml_file(locust, tmp_path):
    plan = tmp_path / "plan.toml"
    plan.write_text('[chaos]\nrestart_at = [2, 4]\nrestart_mode = "hard"\n')
    run = locust(
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
        "6s",
        "--paths",
        "/ws/ping/",
        "--pong-timeout",
        "1",
        "--chaos-plan",
        str(plan),
        "--results-dir",
        str(tmp_path / "results"),
    )
    code = run.wait(90)
    assert code == expected_exit_code(run_folder(tmp_path / "results")), run.output()[-3000:]
    restarts = read_json(run_folder(tmp_path / "results") / "summary.json")["restarts"]
    assert [(r["at_s"], r["mode"]) for r in restarts] == [(2.0, "hard"), (4.0, "hard")]


def test_an_agent_carries_out_the_plan_and_its_logs_and_events_come_home(start_stack, locust, tmp_path):
    stack = start_stack(daphne_count=1)
    with Agent(stack, AgentConfig(TOKEN)) as agent:
        run = locust(
            "--headless",
            "--host",
            stack.instances[0].ws_url(""),
            "-u",
            "3",
            "-r",
            "3",
            "-t",
            "8s",
            "--paths",
            "/ws/room/remote/",
            "--pong-timeout",
            "1",
            "--reconnect-min",
            "0.2",
            "--agent-url",
            agent.url,
            "--agent-token",
            TOKEN,
            "--restart-at",
            "3",
            "--restart-mode",
            "graceful",
            "--redis-probe-url",
            stack.redis_url,
            "--results-dir",
            str(tmp_path / "results"),
        )
        assert run.wait(90) == 1
    folder = run_folder(tmp_path / "results")
    from_agent = [e for e in events_of(folder) if e.get("source") == "agent"]
    assert [e["event"] for e in from_agent if e["event"] in ("restart_begin", "exited", "ready")] == [
        "restart_begin",
        "exited",
        "ready",
    ]
    assert (folder / "server" / "daphne-0.gen2.log").exists()
    summary = read_json(folder / "summary.json")
    assert summary["server"]["sig_killed_pending"] >= 1  # read from the mirrored log of generation 1
    (restart,) = summary["restarts"]
    assert restart["stale_members_after"] == 3  # the probe saw the three members the SIGTERM left
    assert healthz(stack.instances[0].port)["pid"] == stack.instances[0].child.pid


def test_a_server_the_suite_did_not_start_still_gives_its_log_and_redis_signals(
    start_stack, locust, tmp_path
):
    """Staging mode: --server-log and --redis-probe-url read what a local stack would."""
    stack = start_stack(
        daphne_count=1, app=LayerOptions()
    )  # redis-py's 5 s timeout: idle consumers crash (FM-7)
    # Pings on /ws/ping/ never touch the channel layer: after 5 s without a layer message the
    # process's BZPOPMIN read times out and the consumers crash, about 6 s into the run.
    run = locust(
        "--headless",
        "--host",
        stack.instances[0].ws_url(""),
        "-u",
        "3",
        "-r",
        "3",
        "-t",
        "10s",
        "--paths",
        "/ws/ping/",
        "--ping-rate",
        "1",
        "--pong-timeout",
        "1",
        "--server-log",
        str(stack.server_dir / "daphne-*.log"),
        "--redis-probe-url",
        stack.redis_url,
        "--results-dir",
        str(tmp_path / "results"),
    )
    folder = run.written(tmp_path / "results", 90)
    summary = read_json(folder / "summary.json")
    assert summary["server"]["sig_exception"] >= 1
    assert any(message.startswith("Timeout reading from") for message in summary["exception_messages"])
    exceptions = read_csv(folder / "exceptions.csv")  # every such line, by second, as the run went
    assert sum(int(r["count"]) for r in exceptions) == summary["server"]["sig_exception"]
    (fm7,) = [f for f in diagnose(load_run(folder)).findings if f.name == "FM-7"]
    assert fm7.first_s is not None and fm7.first_s >= 1  # from exceptions.csv, after the first idle 5 s
    rows = read_csv(folder / "timeseries.csv")
    assert max(int(r["redis_clients"] or 0) for r in rows) >= 1  # the probe read the layer's Redis
    assert all(r["stale_members"] == "" for r in rows)  # no live-process list without a stack or agent
