"""Real Redis and real Daphne processes on loopback; every test checks by PID that none survive."""

import itertools
from dataclasses import replace
from pathlib import Path

import pytest

from load.config.settings import DaphneOptions, LayerOptions, StackConfig
from load.supervise.stack import Stack
from locustrun import LocustProcess
from support import still_running

# Idle sockets would otherwise be closed by FM-7 every 5 s; its own test turns it back on.
STEADY_APP = LayerOptions(redis_socket_timeout="none")


def stack_config(log_dir: Path, **overrides) -> StackConfig:
    base = StackConfig(
        app=STEADY_APP, daphne=DaphneOptions(), kill_after=3.0, ready_timeout=30.0, log_dir=log_dir
    )
    return replace(base, **overrides)


@pytest.fixture
def start_stack(tmp_path):
    """Start a stack with the given StackConfig overrides; stopped and checked after the test."""
    stacks: list[Stack] = []
    counter = itertools.count()

    def start(**overrides) -> Stack:
        stack = Stack(stack_config(tmp_path / f"stack{next(counter)}", **overrides))
        stacks.append(stack)
        return stack.start()

    yield start
    for stack in stacks:
        stack.stop()
    assert still_running([pid for stack in stacks for pid in stack.pids()]) == []


@pytest.fixture(scope="module")
def served_stack(tmp_path_factory):
    """One Daphne on the Redis layer, shared by the tests of a module that only read from it."""
    stack = Stack(stack_config(tmp_path_factory.mktemp("served")))
    with stack:
        yield stack
    assert still_running(stack.pids()) == []


@pytest.fixture
def locust(tmp_path):
    """Start `locust -f locustfile.py ARGS` (each with its own log); every one is reaped after the test."""
    started: list[LocustProcess] = []

    def start(*args: str, name: str = "", env: dict[str, str] | None = None) -> LocustProcess:
        started.append(LocustProcess(tmp_path, *args, name=name or f"locust{len(started) or ''}", env=env))
        return started[-1]

    yield start
    for process in started:
        process.stop()
