"""The web UI's chaos tab: its rows are the CSV's, its buttons act through the plan's
controller (one action at a time), its routes are behind Locust's login and refuse with a
reason; and, in a real headless Chromium against a --stack local run, the tab updates each
second and a restart pressed in it shows in events.jsonl and as a marker within 2 s."""

import json
import os
import shutil
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
from flask import Flask

from load.chaos.controller import NO_THREADS_BY_HOOK, NOTHING_TO_ACT_ON, Controller, HookTarget, Refused
from load.config.settings import ChaosPlan
from load.measure.collector import Collector
from load.measure.timeline import Timeline
from load.runfolder.names import (
    ACTION_BEGIN,
    ACTION_DONE,
    BY,
    BY_WEB_UI,
    ENDPOINT_COLUMNS,
    EVENTS_JSONL,
    NOT_SENT_DISCONNECTED,
    TIMESERIES_COLUMNS,
)
from load.supervise.procs import free_port
from load.user.chaostab.view import json_row, series
from load.user.chaostab.web import ChaosTab
from load.wire.errors import PONG
from locustrun import read_csv, run_folders
from support import wait_until, web_page

CHROMIUM = "/usr/bin/chromium"


def same_numbers(csv_row: dict, json_row_: dict, columns) -> list[str]:
    """The columns where a CSV row and a /chaos/series row differ (empty cell == null)."""
    differ = []
    for column in columns:
        cell, value = csv_row[column], json_row_[column]
        if cell == "" or value is None:
            same = cell == "" and value is None
        else:
            try:
                same = float(cell) == float(value)
            except ValueError:
                same = cell == str(value)
        if not same:
            differ.append(f"{column}: csv {cell!r} json {value!r}")
    return differ


def test_the_rows_kept_in_memory_are_the_csv_rows_and_provisional_ones_are_not_consumed(tmp_path):
    collector = Collector(tmp_path, start=1000.3, lag_s=3)
    users = Timeline()
    for second in range(1000, 1006):
        users.ping_due("/a/", second + 0.5, sent=True)
        users.ping_done("/a/", second + 0.5, PONG, 10 + second % 3, 9)
    users.ping_due("/b/", 1004.2, sent=False)
    users.ping_done("/b/", 1004.2, NOT_SENT_DISCONNECTED)
    collector.merge(users.take())
    collector.flush(now=1005.0)  # writes 1000 and 1001
    run = SimpleNamespace(collector=collector, manifest={"run_id": "r"}, started=1000.3)

    now = series(run, since=1001, now=1006.0)
    assert [r["epoch_s"] for r in now["rows"]] == [1001]
    assert [r["epoch_s"] for r in now["provisional"]] == [1002, 1003, 1004, 1005]
    assert now["provisional"][2][NOT_SENT_DISCONNECTED] == 1  # the spike, before the CSV has it
    collector.close()
    body = series(run, since=0)
    assert body["provisional"] == []  # closed: everything is written
    csv_rows = read_csv(tmp_path / "timeseries.csv")
    assert len(csv_rows) == len(body["rows"]) >= 6
    for csv_row, row in zip(csv_rows, body["rows"], strict=True):
        assert same_numbers(csv_row, row, TIMESERIES_COLUMNS) == []
    assert json_row({"users": ""}, ["users", "pings"]) == {"users": None, "pings": None}  # unknown: null
    endpoint_rows = read_csv(tmp_path / "endpoints.csv")
    assert len(endpoint_rows) == len(body["endpoints"])
    for csv_row, row in zip(endpoint_rows, body["endpoints"], strict=True):
        assert same_numbers(csv_row, row, ENDPOINT_COLUMNS) == []


class SlowTarget:
    """A target whose restart waits until the test lets it finish."""

    def __init__(self):
        self.release = threading.Event()
        self.restarts: list[tuple[list[int], str]] = []

    def instance_count(self) -> int:
        return 2

    def restart(self, indices, mode):
        self.restarts.append((indices, mode))
        self.release.wait(10)
        return [{"instance": f"daphne-{i}", "down_seconds": 0.1} for i in indices]


def test_an_action_by_hand_goes_through_the_controller_one_at_a_time(tmp_path):
    events: list[dict] = []
    target = SlowTarget()
    controller = Controller(ChaosPlan(), target, events.append, started=time.time())
    action = controller.by_hand("restart", BY_WEB_UI, "hard", "1")
    worker = threading.Thread(target=controller.run_claimed, args=(action,))
    worker.start()
    wait_until(lambda: target.restarts, 5, "the restart to begin")
    with pytest.raises(Refused, match="restart is under way"):
        controller.by_hand("restart", BY_WEB_UI)
    target.release.set()
    worker.join(10)
    assert not controller.busy and target.restarts == [([1], "hard")]
    begin, done = events
    assert begin["event"] == ACTION_BEGIN and done["event"] == ACTION_DONE
    assert begin[BY] == BY_WEB_UI and begin["mode"] == "hard" and begin["which"] == "1"
    assert controller.completed and controller.failed_actions() == []
    for bad, reason in [
        (("restart", BY_WEB_UI, "gentle"), "restart_mode"),
        (("restart", BY_WEB_UI, "", "2"), "2 instance"),
    ]:
        with pytest.raises(Refused, match=reason):
            controller.by_hand(*bad)
    assert not controller.busy  # a refusal claims nothing
    hooks = Controller(ChaosPlan(), HookTarget("true", 1, 5, tmp_path), events.append, time.time())
    with pytest.raises(Refused, match=NO_THREADS_BY_HOOK):
        hooks.by_hand("asgi_threads", BY_WEB_UI, threads=2)


def fake_environment(options: dict, protect=lambda view: view) -> SimpleNamespace:
    web_ui = SimpleNamespace(template_args={}, app=Flask("t"), auth_required_if_enabled=protect)
    defaults = {"stack": "", "agent_url": "", "restart_cmd": "", "web_base_path": None}
    return SimpleNamespace(
        web_ui=web_ui, parsed_options=SimpleNamespace(**{**defaults, **options}), runner=None
    )


def test_the_buttons_refuse_with_the_reason_and_every_route_is_behind_the_login():
    env = fake_environment({})
    ChaosTab(env, lambda: None).install()
    client = env.web_ui.app.test_client()
    reply = client.post("/chaos/restart", json={"mode": "graceful"})
    assert reply.status_code == 409 and reply.get_json()["reason"] == NOTHING_TO_ACT_ON
    assert client.post("/chaos/threads", json={"threads": "0"}).status_code == 400
    assert env.web_ui.template_args["extended_tabs"] == [{"title": "Chaos", "key": "chaos"}]

    stack = fake_environment({"stack": "local"})
    ChaosTab(stack, lambda: None).install()
    reply = stack.web_ui.app.test_client().post("/chaos/restart", data={})
    assert reply.status_code == 409 and "no run under way" in reply.get_json()["reason"]

    def login_required(view):
        return lambda *args, **kwargs: ("login required", 401)

    locked = fake_environment({"stack": "local"}, protect=login_required)
    ChaosTab(locked, lambda: None).install()
    client = locked.web_ui.app.test_client()
    for method, path in [
        ("get", "/chaos/"),
        ("get", "/chaos/static/chaos.js"),
        ("get", "/chaos/layout"),
        ("get", "/chaos/series?since=0"),
        ("get", "/chaos/events"),
        ("post", "/chaos/restart"),
        ("post", "/chaos/threads"),
    ]:
        assert getattr(client, method)(path).status_code == 401, path


# -- in a real browser -------------------------------------------------------------------------


def chromium_or_skip() -> str:
    why = ""
    if not Path(CHROMIUM).is_file() and not shutil.which("chromium"):
        why = f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            why = "playwright is not installed (pip install -r requirements-test.txt)"
    if why:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the browser test cannot run under CI: {why}")
        pytest.skip(why)
    return CHROMIUM if Path(CHROMIUM).is_file() else str(shutil.which("chromium"))


def events_by_hand(folder: Path) -> list[dict]:
    path = folder / EVENTS_JSONL
    if not path.is_file():
        return []
    lines = [json.loads(line) for line in path.read_text().splitlines() if line]
    return [event for event in lines if event.get(BY) == BY_WEB_UI]


def test_in_chromium_the_tab_updates_each_second_and_a_restart_pressed_shows_within_2_s(locust, tmp_path):
    chromium = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    results, port = tmp_path / "results", free_port()
    run = locust(
        "--stack", "local", "--stack-daphne", "2", "--web-host", "127.0.0.1", "--web-port", str(port),
        "--results-dir", str(results), "--pong-timeout", "2",
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: web_page(url + "/chaos/layout"), 60, f"the web UI; output:\n{run.output()[-2000:]}")
    run.note_descendants()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.goto(url + "/")
        page.fill("input[name=userCount]", "4")
        page.fill("input[name=spawnRate]", "4")
        page.click("button[type=submit]")
        page.get_by_role("tab", name="Chaos").click()
        page.wait_for_selector("#chaos-root [data-chaos=restart]:not([disabled])", timeout=15000)

        def updates() -> int:  # drawings so far
            return int(page.get_attribute("#chaos-root", "data-updates") or 0)

        def last_second() -> int:
            return int(page.get_attribute("#chaos-root", "data-last-second") or 0)

        wait_until(lambda: updates() >= 1, 5, "the tab's first drawing")
        drawn: set[int] = set()  # the last second on the chart, as each poll finds it
        began = time.monotonic()
        wait_until(lambda: drawn.add(last_second()) or len(drawn) >= 4, 6, "the chart to show 3 more seconds")
        assert time.monotonic() - began < 4.5, f"the chart did not move on each second: {sorted(drawn)}"

        wait_until(lambda: run_folders(results), 10, "the swarm's run folder")
        (folder,) = run_folders(results)
        page.click("[data-chaos=restart]")
        pressed = time.monotonic()
        wait_until(lambda: events_by_hand(folder), 2, "the restart pressed in events.jsonl")
        page.wait_for_selector("svg .chaos-marker", state="attached", timeout=2000)
        marker_s = time.monotonic() - pressed

        def errors_after(ts: float) -> int:
            body = requests.get(f"{url}/chaos/series?since={int(ts)}", timeout=5).json()
            return sum(r["errors"] + r["connect_refused"] for r in body["rows"] + body["provisional"])

        begun = events_by_hand(folder)[0]["ts"]
        wait_until(lambda: errors_after(begun) > 0, 3, "the error spike of the restart")
        spike_s = time.monotonic() - pressed
        wait_until(
            lambda: any(e["event"] == ACTION_DONE for e in events_by_hand(folder)), 15, "the restart to end"
        )

        # ASGI_THREADS by hand: while it is under way, another action is refused with the reason.
        threads = requests.post(f"{url}/chaos/threads", json={"threads": "2"}, timeout=5)
        second = requests.post(f"{url}/chaos/restart", json={}, timeout=5)
        assert threads.status_code == 202, threads.text
        assert second.status_code == 409 and "under way" in second.json()["reason"], second.text
        wait_until(
            lambda: len([e for e in events_by_hand(folder) if e["event"] == ACTION_DONE]) == 2, 15, "threads"
        )
        # the asgi_threads=2 phase, shaded
        page.wait_for_selector("svg .chaos-phase", state="attached", timeout=10000)
        alone = browser.new_page()  # the same tab, alone at /chaos/
        alone.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        alone.goto(url + "/chaos/")
        alone.wait_for_selector("#chaos-root[data-updates] svg .chaos-marker", state="attached", timeout=5000)
        assert problems == [], problems
        browser.close()

    requests.post(url + "/stop", timeout=10)
    wait_until(lambda: (folder / "summary.json").is_file(), 30, "the run to be written")
    body = requests.get(url + "/chaos/series?since=0", timeout=10).json()
    csv_rows = read_csv(folder / "timeseries.csv")
    assert len(body["rows"]) == len(csv_rows) > 2
    for csv_row, row in zip(csv_rows, body["rows"], strict=True):
        assert same_numbers(csv_row, row, TIMESERIES_COLUMNS) == [], row["epoch_s"]
    summary = json.loads((folder / "summary.json").read_text())
    assert [r["which"] for r in summary["restarts"]] == ["all", "all"]
    print(f"marker after {marker_s:.2f} s, error spike after {spike_s:.2f} s")


def test_a_plan_action_that_comes_due_during_an_action_by_hand_waits_for_it():
    events: list[dict] = []
    target = SlowTarget()
    controller = Controller(ChaosPlan(restart_at=(0,)), target, events.append, started=time.time())
    by_hand = threading.Thread(
        target=controller.run_claimed, args=(controller.by_hand("restart", BY_WEB_UI),)
    )
    by_hand.start()
    wait_until(lambda: target.restarts, 5, "the restart by hand to begin")

    def sleep(seconds: float) -> None:  # the plan waits: let the action by hand end
        target.release.set()
        by_hand.join(10)

    controller.run(sleep)
    assert [(e["event"], e.get(BY)) for e in events] == [
        (ACTION_BEGIN, BY_WEB_UI),
        (ACTION_DONE, BY_WEB_UI),
        (ACTION_BEGIN, None),
        (ACTION_DONE, None),
    ]
