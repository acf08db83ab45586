"""Restart hooks run as process groups: killed whole at their timeout and at the run's end,
every action ends in events.jsonl, and a chaos action that failed fails the run."""

import itertools
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

from load.chaos.controller import Action, Controller, HookTarget
from load.config.settings import ChaosPlan
from locustrun import REPO, read_json, run_folder
from support import wait_until

_markers = itertools.count(1)


def sleeper() -> tuple[str, str]:
    """A hook that forks (sh stays, sleep is its child) and the argument that finds the sleep."""
    seconds = f"{100 + next(_markers)}.{os.getpid()}"  # unique to this test and this pytest worker
    return f"sh -c 'sleep {seconds}; true'", seconds


def sleeping(seconds: str) -> list[int]:
    """The pids of `sleep SECONDS` still running (zombies count as gone)."""
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        if process.info["cmdline"] == ["sleep", seconds] and process.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(process.pid)
    return found


def all_gone(seconds: str) -> None:
    """The hook's whole group is gone: a SIGKILLed process may take a moment to die on a busy host."""
    wait_until(lambda: sleeping(seconds) == [], 5, f"every `sleep {seconds}` to be gone")


def events_of(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]


class Recorder(list):
    def __call__(self, event: dict) -> None:
        self.append(event)


def test_a_hook_past_its_timeout_is_killed_with_the_processes_it_forked(tmp_path):
    command, seconds = sleeper()
    events = Recorder()
    controller = Controller(ChaosPlan(restart_at=(0,)), HookTarget(command, 1, 1.0, tmp_path), events, 0)
    controller.perform(Action(0, "restart"))
    failed = events[-1]
    assert failed["event"] == "action_failed" and "did not finish within 1 s" in failed["error"]
    all_gone(seconds)
    assert controller.failed_actions() == [
        {"action": "restart", "at_s": 0, "event": "action_failed", "error": failed["error"]}
    ]


def test_a_hook_under_way_when_the_run_ends_is_aborted_with_its_children(tmp_path):
    command, seconds = sleeper()
    events = Recorder()
    controller = Controller(ChaosPlan(restart_at=(0,)), HookTarget(command, 1, 120.0, tmp_path), events, 0)
    worker = threading.Thread(target=controller.run, kwargs={"sleep": lambda s: None})
    worker.start()
    try:
        wait_until(lambda: sleeping(seconds), 10, "the hook's sleep to start")
        began = time.monotonic()
        controller.abort("the run ended")
        worker.join(10)
        assert not worker.is_alive()
        assert time.monotonic() - began < 5  # not the hook's 120 s
    finally:
        controller.target.abort("test over")
        worker.join(10)
    assert [e["event"] for e in events] == ["action_begin", "action_aborted"]
    assert "the run ended" in events[-1]["reason"]
    all_gone(seconds)


def hook_run(host: str, results: Path, command: str, timeout: str, run_time: str) -> list[str]:
    return [
        "--headless",
        "--host",
        host,
        "-u",
        "2",
        "-r",
        "2",
        "-t",
        run_time,
        "--paths",
        "/ws/ping/",
        "--restart-cmd",
        command,
        "--hook-timeout",
        timeout,
        "--restart-at",
        "1",
        "--results-dir",
        str(results),
    ]


def test_a_failed_hook_fails_the_run_unless_accepted(served_stack, locust, tmp_path):
    host = served_stack.instances[0].ws_url("")
    command, seconds = sleeper()
    failing = locust(*hook_run(host, tmp_path / "failing", command, "2", "6s"))
    accepted = locust(*hook_run(host, tmp_path / "accepted", sleeper()[0], "2", "6s"), "--chaos-failures-ok")

    def failed_event():
        return any('"action_failed"' in p.read_text() for p in (tmp_path / "failing").glob("*/events.jsonl"))

    wait_until(failed_event, 60, "the hook to be killed at its timeout")
    all_gone(seconds)  # the whole group, not only `sh`, while the run goes on
    assert failing.wait(60) == 1
    assert accepted.wait(60) == 0
    assert "the run did not test what it meant to (--chaos-failures-ok to accept)" in failing.output()
    summary = read_json(run_folder(tmp_path / "failing") / "summary.json")
    (failure,) = summary["chaos_failures"]
    assert (
        failure["event"] == "action_failed"
        and failure["at_s"] == 1.0
        and "did not finish within 2 s" in failure["error"]
    )
    assert (
        "chaos action restart at 1s failed" in (run_folder(tmp_path / "failing") / "report.html").read_text()
    )
    assert [
        f["event"] for f in read_json(run_folder(tmp_path / "accepted") / "summary.json")["chaos_failures"]
    ] == ["action_failed"]


def test_a_hook_still_running_at_the_end_is_aborted_within_seconds(served_stack, locust, tmp_path):
    command, seconds = sleeper()
    began = time.monotonic()
    run = locust(*hook_run(served_stack.instances[0].ws_url(""), tmp_path / "results", command, "120", "4s"))
    assert run.wait(60) == 1
    assert time.monotonic() - began < 4 + 15, "the run waited for the hook"  # start-up included
    kinds = [e["event"] for e in events_of(run_folder(tmp_path / "results"))]
    assert kinds.count("action_begin") == kinds.count("action_aborted") == 1 and kinds[-1] == "run_end"
    all_gone(seconds)


def test_python_m_load_run_propagates_a_failed_chaos_action(served_stack, tmp_path):
    command, _seconds = sleeper()
    scenario = tmp_path / "hook.toml"
    scenario.write_text(
        "[tool.locust]\n"
        f'host = "{served_stack.instances[0].ws_url("")}"\nusers = 2\nspawn-rate = 2\nrun-time = "5s"\npaths = "/ws/ping/"\n'
        f'restart-cmd = "{command}"\nhook-timeout = 1\nrestart-at = "1"\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "load", "run", str(scenario), "--results-dir", str(tmp_path / "results")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "chaos action restart at 1s failed: `sh -c" in result.stdout
