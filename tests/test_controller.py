"""The chaos controller: its schedule, its phases, and the shell-hook target."""

import itertools
import sys

import pytest
import redis

from load.chaos.controller import Action, Controller, HookTarget, LocalStackTarget, TargetError, schedule
from load.config.settings import ChaosPlan, ConfigError, parse_seconds_list, parse_threads_steps


def test_the_schedule_merges_every_kind_of_action_in_time_order():
    plan = ChaosPlan(
        restart_at=(25.0,),
        restart_every=10,
        asgi_threads_steps=(1, 8),
        step_seconds=15,
        redis_flush_at=(12.0,),
    )
    first = list(itertools.islice(schedule(plan), 6))
    assert first == [
        Action(0.0, "asgi_threads", 1),
        Action(10.0, "restart"),
        Action(12.0, "redis_flush"),
        Action(15.0, "asgi_threads", 8),
        Action(20.0, "restart"),
        Action(25.0, "restart"),
    ]


def test_plan_options_are_parsed_and_bad_ones_named():
    assert parse_seconds_list("restart_at", "40, 20") == (20.0, 40.0)
    assert parse_threads_steps("unset,4") == (None, 4)
    for bad in (
        lambda: parse_seconds_list("restart_at", "soon"),
        lambda: parse_threads_steps("0,4"),
        lambda: ChaosPlan(restart_mode="gentle").validate(),
        lambda: ChaosPlan(restart_which="3").validate(2),
        lambda: ChaosPlan(asgi_threads_steps=(1,)).validate(),
    ):
        with pytest.raises(ConfigError):
            bad()


class Recorder:
    def __init__(self):
        self.events = []

    def __call__(self, event):
        self.events.append(event)


def test_the_staircase_sets_the_phase_of_each_second(tmp_path):
    hooks = HookTarget(f"{sys.executable} -c pass", 1, 10, tmp_path)
    events = Recorder()
    controller = Controller(ChaosPlan(asgi_threads_steps=(2,), step_seconds=5), hooks, events, started=1000.0)
    controller.phases.append((1010.2, "asgi_threads=2"))
    assert [controller.phase_at(s) for s in (1005, 1009, 1010, 1011)] == [
        "run",
        "run",
        "asgi_threads=2",
        "asgi_threads=2",
    ]


def test_a_hook_that_succeeds_fails_or_hangs_is_recorded_as_such(tmp_path):
    events = Recorder()
    ok = HookTarget(sys.executable + " -c \"print('restarted {instance}')\"", 2, 10, tmp_path / "ok")
    failing = HookTarget(f'{sys.executable} -c "import sys; sys.exit(3)"', 1, 10, tmp_path / "fail")
    hanging = HookTarget(f'{sys.executable} -c "import time; time.sleep(30)"', 1, 0.5, tmp_path / "hang")

    Controller(ChaosPlan(restart_at=(0,), restart_which="rolling"), ok, events, 0).perform(
        Action(0, "restart")
    )
    Controller(ChaosPlan(restart_at=(0,)), failing, events, 0).perform(Action(0, "restart"))
    Controller(ChaosPlan(restart_at=(0,)), hanging, events, 0).perform(Action(0, "restart"))

    done, failed, hung = (e for e in events.events if e["event"] != "action_begin")
    assert done["event"] == "action_done" and [o["exit_code"] for o in done["outcome"]] == [0, 0]
    assert (tmp_path / "ok" / "hook-002.log").read_text().strip() == "restarted 1"
    assert failed["event"] == "action_failed" and "exited with 3" in failed["error"]
    assert hung["event"] == "action_failed" and "did not finish within 0.5 s" in hung["error"]


def test_hooks_cannot_change_asgi_threads(tmp_path):
    with pytest.raises(TargetError, match="ASGI_THREADS"):
        HookTarget("true", 1, 5, tmp_path).set_asgi_threads(4)


def test_rolling_restarts_one_instance_at_a_time_on_the_local_stack(start_stack):
    stack = start_stack(daphne_count=2)
    events = Recorder()
    controller = Controller(
        ChaosPlan(restart_at=(0,), restart_which="rolling", restart_mode="hard"),
        LocalStackTarget(stack),
        events,
        0,
    )
    controller.perform(Action(0, "restart"))
    (done,) = [e for e in events.events if e["event"] == "action_done"]
    assert [o["instance"] for o in done["outcome"]] == ["daphne-0", "daphne-1"]
    steps = [
        (e["event"], e.get("instance"))
        for e in stack.events
        if e["event"] in ("restart_begin", "restart_done")
    ]
    assert steps == [
        ("restart_begin", "daphne-0"),
        ("restart_done", "daphne-0"),
        ("restart_begin", "daphne-1"),
        ("restart_done", "daphne-1"),
    ]


def test_all_restarts_every_instance_at_once(start_stack):
    stack = start_stack(daphne_count=2)
    events = Recorder()
    Controller(ChaosPlan(restart_at=(0,)), LocalStackTarget(stack), events, 0).perform(Action(0, "restart"))
    steps = [
        (e["event"], e.get("instance"))
        for e in stack.events
        if e["event"] in ("restart_begin", "restart_done")
    ]
    assert steps[:2] == [("restart_begin", "daphne-0"), ("restart_begin", "daphne-1")]


def test_a_redis_restart_and_flush_on_the_local_stack(start_stack):
    stack = start_stack(daphne_count=1)
    target = LocalStackTarget(stack)
    redis.Redis.from_url(stack.redis_url).set("marker", "1")
    assert target.flush_redis() == {"keys_flushed": 1}
    redis.Redis.from_url(stack.redis_url).set("marker", "2")
    old = stack.redis.child.pid
    down = target.restart_redis()["down_seconds"]
    (done,) = [e for e in stack.events if e["event"] == "redis_restart_done"]
    # What the stack timed from the kill to the new Redis answering: a real, bounded wait.
    assert down == done["down_seconds"] and 0 < down < 30
    assert stack.redis.child.pid != old and redis.Redis.from_url(stack.redis_url).ping()
    assert redis.Redis.from_url(stack.redis_url).dbsize() == 0  # a restarted Redis comes back empty


def test_no_action_starts_in_the_last_second_of_a_timed_run(tmp_path):
    events = Recorder()
    controller = Controller(
        ChaosPlan(restart_every=20),
        HookTarget(f"{sys.executable} -c pass", 1, 10, tmp_path),
        events,
        started=0.0,
        until=60,
    )
    controller.run(sleep=lambda seconds: None)  # the clock is far past every offset: no waiting
    assert [e["at_s"] for e in events.events if e["event"] == "action_done"] == [20.0, 40.0]
