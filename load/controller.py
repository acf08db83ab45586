"""Runs a chaos plan against a target while the load runs, and records every action.

The controller lives on the master or local runner, from test_start to test_stop. Every
action is an event (`action_begin`, then `action_done` with its outcome or
`action_failed` with the reason); the ASGI_THREADS staircase also sets the run's phase
(`asgi_threads=4`), which the timeline writes next to every second.

Targets share one small interface: the in-process local stack, an agent on the server
host (load.agent), or shell commands for staging hosts (restart hooks).
"""

import heapq
import itertools
import logging
import shlex
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import redis

from load.config import ChaosPlan

logger = logging.getLogger("load.controller")

Record = Callable[[dict], None]


class TargetError(RuntimeError):
    """An action the target could not carry out; the run goes on and the event says why."""


class Target(Protocol):
    def instance_count(self) -> int: ...
    def restart(self, indices: list[int], mode: str) -> list[dict]: ...
    def set_asgi_threads(self, threads: int | None) -> None: ...
    def restart_redis(self) -> dict: ...
    def flush_redis(self) -> dict: ...


class LocalStackTarget:
    """The stack this process started (`--stack local`)."""

    def __init__(self, stack):
        self.stack = stack

    def instance_count(self) -> int:
        return len(self.stack.instances)

    def restart(self, indices: list[int], mode: str) -> list[dict]:
        return [outcome_dict(o) for o in self.stack.restart_together(indices, mode)]

    def set_asgi_threads(self, threads: int | None) -> None:
        self.stack.set_asgi_threads(threads)

    def restart_redis(self) -> dict:
        return {"down_seconds": round(self.stack.restart_redis(), 3)}

    def flush_redis(self) -> dict:
        return flush_redis(self.stack.redis_url)


def outcome_dict(outcome) -> dict:
    body = asdict(outcome)
    body["down_seconds"] = round(body["down_seconds"], 3)
    return body


def flush_redis(redis_url: str) -> dict:
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    keys = client.dbsize()
    client.flushdb()
    return {"keys_flushed": keys}


class HookTarget:
    """Shell commands for hosts the suite does not run, e.g.
    `--restart-cmd 'ssh app{instance} sudo systemctl restart daphne'`.

    `{instance}` becomes the instance number; the exit code is checked, the output kept
    in hooks/ of the run folder, and a command past its timeout is killed.
    """

    def __init__(self, restart_cmd: str, instances: int, timeout: float, output_dir: Path, redis_url: str = ""):
        self.restart_cmd = restart_cmd
        self.instances = instances
        self.timeout = timeout
        self.output_dir = output_dir
        self.redis_url = redis_url
        self.counter = itertools.count(1)

    def instance_count(self) -> int:
        return self.instances

    def restart(self, indices: list[int], mode: str) -> list[dict]:
        return [self.run_hook(self.restart_cmd.replace("{instance}", str(i)).replace("{mode}", mode)) for i in indices]

    def run_hook(self, command: str) -> dict:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        output = self.output_dir / f"hook-{next(self.counter):03d}.log"
        began = time.time()
        with open(output, "wb") as sink:
            try:
                result = subprocess.run(
                    shlex.split(command), stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    timeout=self.timeout, start_new_session=True,
                )
            except subprocess.TimeoutExpired:
                raise TargetError(f"`{command}` did not finish within {self.timeout:g} s (killed); output in {output}") from None
            except OSError as exc:
                raise TargetError(f"`{command}` could not run: {exc.strerror or exc}") from None
        seconds = round(time.time() - began, 3)
        if result.returncode != 0:
            raise TargetError(f"`{command}` exited with {result.returncode} after {seconds} s; output in {output}")
        return {"command": command, "exit_code": 0, "seconds": seconds, "output": str(output)}

    def set_asgi_threads(self, threads: int | None) -> None:
        raise TargetError("shell hooks cannot set ASGI_THREADS; use the local stack or an agent")

    def restart_redis(self) -> dict:
        raise TargetError("shell hooks cannot restart Redis; use the local stack or an agent")

    def flush_redis(self) -> dict:
        if not self.redis_url:
            raise TargetError("FLUSHDB needs --redis-probe-url (the channel layer's Redis)")
        return flush_redis(self.redis_url)


@dataclass(frozen=True, order=True)
class Action:
    at: float  # seconds from the start of the run
    kind: str  # restart | asgi_threads | redis_restart | redis_flush
    value: int | None = None  # the staircase's ASGI_THREADS


def schedule(plan: ChaosPlan) -> Iterator[Action]:
    """Every action of the plan in time order (endless with restart_every)."""
    streams = [
        (Action(at, "restart") for at in plan.restart_at),
        (Action(at, "redis_restart") for at in plan.redis_restart_at),
        (Action(at, "redis_flush") for at in plan.redis_flush_at),
        (Action(k * plan.step_seconds, "asgi_threads", v) for k, v in enumerate(plan.asgi_threads_steps)),
    ]
    if plan.restart_every > 0:
        streams.append(Action(k * plan.restart_every, "restart") for k in itertools.count(1))
    return heapq.merge(*streams)


def phase_name(threads: int | None) -> str:
    return f"asgi_threads={threads if threads is not None else 'unset'}"


class Controller:
    def __init__(self, plan: ChaosPlan, target: Target, record: Record, started: float, until: float | None = None):
        self.plan = plan
        # With a known run time, an action in its last second would only disturb the end of the run.
        self.until = until
        self.target = target
        self.record = record
        self.started = started
        self.phases: list[tuple[float, str]] = [(started, "run")]
        self.failures = 0
        self.stopped = False  # set at test_stop: no new action starts
        self.busy = False  # an action is under way
        self.completed: list[tuple[dict, dict]] = []  # (action_begin, action_done or action_failed)

    def phase_at(self, second: int) -> str:
        """The phase in force for most of that second (the last one begun before its middle)."""
        current = self.phases[0][1]
        for began, name in self.phases:
            if began <= second + 0.5:
                current = name
        return current

    def run(self, sleep: Callable[[float], None] = time.sleep) -> None:
        """Carry out the plan until the caller kills this (at test_stop)."""
        for action in schedule(self.plan):
            if self.until is not None and action.at >= self.until - 1:
                return
            delay = self.started + action.at - time.time()
            if delay > 0:
                sleep(delay)
            if self.stopped:
                return
            self.busy = True
            try:
                self.perform(action)
            finally:
                self.busy = False

    def perform(self, action: Action) -> None:
        fields = {"action": action.kind, "at_s": action.at}
        if action.kind == "asgi_threads":
            fields["threads"] = action.value
            self.phases.append((time.time(), phase_name(action.value)))
        begin = {"ts": time.time(), "event": "action_begin", **fields}
        self.record(begin)
        try:
            end = {"event": "action_done", **fields, "outcome": self._carry_out(action)}
        except Exception as exc:  # a failed action is data, not the end of the run
            self.failures += 1
            logger.warning("chaos action %s at %gs failed: %s", action.kind, action.at, exc)
            end = {"event": "action_failed", **fields, "error": str(exc)}
        end["ts"] = time.time()
        self.record(end)
        self.completed.append((begin, end))

    def _carry_out(self, action: Action):
        if action.kind == "restart":
            return self._restart()
        if action.kind == "asgi_threads":
            self.target.set_asgi_threads(action.value)
            return self._restart()
        if action.kind == "redis_restart":
            return self.target.restart_redis()
        return self.target.flush_redis()

    def _restart(self) -> list[dict]:
        which, mode, count = self.plan.restart_which, self.plan.restart_mode, self.target.instance_count()
        if which == "rolling":
            return [outcome for i in range(count) for outcome in self.target.restart([i], mode)]
        indices = list(range(count)) if which == "all" else [int(which)]
        return self.target.restart(indices, mode)
