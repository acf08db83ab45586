"""Runs a chaos plan against a target while the load runs, and records every action.

The controller lives on the master or local runner, from test_start to test_stop. Every
action is an event (`action_begin`, then `action_done` with its outcome, `action_failed`
with the error, or `action_aborted` with the reason when the run ended while it was under
way); the ASGI_THREADS staircase also sets the run's phase (`asgi_threads=4`), which the
timeline writes next to every second.

Targets share one small interface: the in-process local stack, an agent on the server
host (load.agent.server), or shell commands for staging hosts (restart hooks).
"""

import heapq
import itertools
import logging
import shlex
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from load.config.settings import ChaosPlan
from load.runfolder.names import (
    ACTION_ABORTED,
    ACTION_BEGIN,
    ACTION_DONE,
    ACTION_FAILED,
    ASGI_THREADS,
    AT_S,
    BY,
    EVENT,
    MODE,
    REDIS_FLUSH,
    REDIS_RESTART,
    RESTART,
    RUN_PHASE,
    WHICH,
    hook_log,
)
from load.supervise.procs import Child, stop_all

logger = logging.getLogger("load.chaos.controller")

NOTHING_TO_ACT_ON = (
    "no target is controllable: Locust was started without --stack local, --agent-url or --restart-cmd"
)
NO_THREADS_BY_HOOK = "shell hooks cannot set ASGI_THREADS; use the local stack or an agent"
HOOK_GRACE = 2.0  # seconds from SIGTERM to SIGKILL when a hook's process group is stopped

Record = Callable[[dict], None]


class TargetError(RuntimeError):
    """An action the target could not carry out; the run goes on and the event says why."""


class ActionAborted(TargetError):
    """The run ended while the action was under way, and the action was stopped unfinished."""


class Refused(RuntimeError):
    """An action asked for by hand (the web UI's buttons) that does not start, and why."""


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
    import redis  # imported where used: a Locust worker never loads redis (about 7 MB)

    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    keys = client.dbsize()
    client.flushdb()
    return {"keys_flushed": keys}


class HookTarget:
    """Shell commands for hosts the suite does not run, e.g.
    `--restart-cmd 'ssh app{instance} sudo systemctl restart daphne'`.

    `{instance}` becomes the instance number; the exit code is checked and the output kept
    in server/ of the run folder, beside Daphne's logs. Each hook runs as a supervised process group (load.supervise.procs:
    its own session, dead with this process): past its timeout, or when the run ends
    while it runs, the whole group is stopped, so a hook that forks (`sh -c`, a script,
    ssh) leaves nothing running. What a hook that exited by itself left in the background
    is its business (it may have started the server).
    """

    def __init__(
        self, restart_cmd: str, instances: int, timeout: float, output_dir: Path, redis_url: str = ""
    ):
        self.restart_cmd = restart_cmd
        self.instances = instances
        self.timeout = timeout
        self.output_dir = output_dir
        self.redis_url = redis_url
        self.counter = itertools.count(1)
        self.running: Child | None = None
        self.abort_reason: str | None = None

    def instance_count(self) -> int:
        return self.instances

    def restart(self, indices: list[int], mode: str) -> list[dict]:
        return [
            self.run_hook(self.restart_cmd.replace("{instance}", str(i)).replace("{mode}", mode))
            for i in indices
        ]

    def run_hook(self, command: str) -> dict:
        if self.abort_reason is not None:
            raise ActionAborted(f"`{command}` not started: {self.abort_reason}")
        output = self.output_dir / hook_log(next(self.counter))
        began = time.time()
        try:
            child = Child(output.stem, shlex.split(command), None, output, Path.cwd()).start()
        except OSError as exc:
            raise TargetError(f"`{command}` could not run: {exc.strerror or exc}") from None
        self.running = child
        try:
            finished = child.wait(self.timeout)
        finally:
            self.running = None
        seconds = round(time.time() - began, 3)
        if self.abort_reason is not None:
            _stop_group(child)
            raise ActionAborted(
                f"`{command}` stopped after {seconds} s with its process group: {self.abort_reason}; output in {output}"
            )
        if not finished:
            _stop_group(child)
            raise TargetError(
                f"`{command}` did not finish within {self.timeout:g} s (its process group was killed); output in {output}"
            )
        if child.returncode != 0:
            raise TargetError(
                f"`{command}` exited with {child.returncode} after {seconds} s; output in {output}"
            )
        return {"command": command, "exit_code": 0, "seconds": seconds, "output": str(output)}

    def abort(self, reason: str) -> None:
        """The run is ending: stop the hook under way, whole group, within HOOK_GRACE seconds."""
        self.abort_reason = reason
        if self.running is not None:
            _stop_group(self.running)

    def set_asgi_threads(self, threads: int | None) -> None:
        raise TargetError(NO_THREADS_BY_HOOK)

    def restart_redis(self) -> dict:
        raise TargetError("shell hooks cannot restart Redis; use the local stack or an agent")

    def flush_redis(self) -> dict:
        if not self.redis_url:
            raise TargetError("FLUSHDB needs --redis-probe-url (the channel layer's Redis)")
        return flush_redis(self.redis_url)


def _stop_group(child: Child) -> None:
    """SIGTERM to the hook's process group, SIGKILL after HOOK_GRACE; then SIGKILL to any
    member that outlived the leader (the group's id stays reserved while a member lives)."""
    stop_all([child], "graceful", HOOK_GRACE)
    child.signal_group(signal.SIGKILL)


@dataclass(frozen=True, order=True)
class Action:
    at: float  # seconds from the start of the run
    kind: str  # restart | asgi_threads | redis_restart | redis_flush
    value: int | None = None  # the staircase's ASGI_THREADS
    # An action asked for by hand: who asked, and the restart it wants (the plan's otherwise).
    by: str | None = None
    mode: str | None = None
    which: str | None = None

    def fields(self) -> dict:
        """What its action events say of it."""
        fields: dict = {"action": self.kind, AT_S: self.at}
        if self.kind == ASGI_THREADS:
            fields["threads"] = self.value
        if self.by is not None:
            fields.update({BY: self.by, MODE: self.mode, WHICH: self.which})
        return fields


def schedule(plan: ChaosPlan) -> Iterator[Action]:
    """Every action of the plan in time order (endless with restart_every)."""
    streams = [
        (Action(at, RESTART) for at in plan.restart_at),
        (Action(at, REDIS_RESTART) for at in plan.redis_restart_at),
        (Action(at, REDIS_FLUSH) for at in plan.redis_flush_at),
        (Action(k * plan.step_seconds, ASGI_THREADS, v) for k, v in enumerate(plan.asgi_threads_steps)),
    ]
    if plan.restart_every > 0:
        streams.append(Action(k * plan.restart_every, RESTART) for k in itertools.count(1))
    return heapq.merge(*streams)


def phase_name(threads: int | None) -> str:
    return f"{ASGI_THREADS}={threads if threads is not None else 'unset'}"


class Controller:
    def __init__(
        self, plan: ChaosPlan, target: Target, record: Record, started: float, until: float | None = None
    ):
        self.plan = plan
        # With a known run time, an action in its last second would only disturb the end of the run.
        self.until = until
        self.target = target
        self.record = record
        self.started = started
        self.phases: list[tuple[float, str]] = [(started, RUN_PHASE)]
        self.stopped = False  # set at test_stop: no new action starts
        self.busy = False  # an action is under way
        self.current: tuple[dict, dict] | None = None  # (action_begin, its fields) of the action under way
        self.completed: list[
            tuple[dict, dict]
        ] = []  # (action_begin, action_done, action_failed or action_aborted)

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
            while self.busy and not self.stopped:  # an action asked for by hand is under way
                sleep(0.1)
            if self.stopped:
                return
            self.busy = True
            try:
                self.perform(action)
            finally:
                self.busy = False

    def by_hand(
        self, kind: str, by: str, mode: str = "", which: str = "", threads: int | None = None
    ) -> Action:
        """Check an action asked for by hand (the web UI's buttons) and claim the controller
        for it; Refused says why it cannot start. The caller then runs `run_claimed` with it;
        the plan's next action waits for it to end (one action at a time, as targets expect)."""
        if self.stopped:
            raise Refused("the run is ending: no action starts now")
        if self.busy:
            under_way = self.current[1]["action"] if self.current is not None else "an action"
            raise Refused(f"{under_way} is under way: try again when it is done")
        if kind == ASGI_THREADS and isinstance(self.target, HookTarget):
            raise Refused(NO_THREADS_BY_HOOK)
        mode, which = mode or self.plan.restart_mode, which or self.plan.restart_which
        try:
            ChaosPlan(restart_mode=mode, restart_which=which).validate(self.target.instance_count())
        except ValueError as exc:
            raise Refused(str(exc)) from None
        self.busy = True
        at = round(time.time() - self.started, 3)
        return Action(at, kind, threads, by=by, mode=mode, which=which)

    def run_claimed(self, action: Action) -> None:
        try:
            self.perform(action)
        finally:
            self.busy = False

    def perform(self, action: Action) -> None:
        fields = action.fields()
        if action.kind == ASGI_THREADS:
            self.phases.append((time.time(), phase_name(action.value)))
        began = time.time()
        begin = {"ts": began, EVENT: ACTION_BEGIN, **fields}
        self.record(begin)
        self.current = (begin, fields)
        # As they happen, on the console and in the web UI's Logs tab (as failures below are).
        logger.info("chaos action %s at %gs begins", action.kind, action.at)
        try:
            end = {EVENT: ACTION_DONE, **fields, "outcome": self._carry_out(action)}
            logger.info("chaos action %s at %gs done in %.2f s", action.kind, action.at, time.time() - began)
        except ActionAborted as exc:
            logger.warning("chaos action %s at %gs aborted: %s", action.kind, action.at, exc)
            end = {EVENT: ACTION_ABORTED, **fields, "reason": str(exc)}
        except Exception as exc:  # a failed action is data, not the end of the run
            logger.warning("chaos action %s at %gs failed: %s", action.kind, action.at, exc)
            end = {EVENT: ACTION_FAILED, **fields, "error": str(exc)}
        self._end(begin, end)

    def _end(self, begin: dict, end: dict) -> None:
        self.current = None
        end["ts"] = time.time()
        self.record(end)
        self.completed.append((begin, end))

    def abort(self, reason: str) -> None:
        """The run is ending: start nothing new, and stop the action under way where the
        target can (a hook's process group); a local or agent restart is left to finish."""
        self.stopped = True
        stop = getattr(self.target, "abort", None)
        if self.busy and stop is not None:
            stop(reason)

    def abandon(self, reason: str) -> None:
        """The action under way was cut off (its greenlet killed): end it in the record."""
        if self.current is not None:
            begin, fields = self.current
            logger.warning("chaos action %s at %gs aborted: %s", fields["action"], fields[AT_S], reason)
            self._end(begin, {EVENT: ACTION_ABORTED, **fields, "reason": reason})

    def failed_actions(self) -> list[dict]:
        """Every action that failed or was aborted: {action, at_s, event, error}."""
        return [
            {
                "action": end["action"],
                AT_S: end[AT_S],
                EVENT: end[EVENT],
                "error": end.get("error") or end.get("reason", ""),
            }
            for _begin, end in self.completed
            if end[EVENT] != ACTION_DONE
        ]

    def _carry_out(self, action: Action):
        if action.kind == RESTART:
            return self._restart(action)
        if action.kind == ASGI_THREADS:
            self.target.set_asgi_threads(action.value)
            return self._restart(action)
        if action.kind == REDIS_RESTART:
            return self.target.restart_redis()
        return self.target.flush_redis()

    def _restart(self, action: Action) -> list[dict]:
        which = action.which or self.plan.restart_which
        mode, count = action.mode or self.plan.restart_mode, self.target.instance_count()
        if which == "rolling":
            return [outcome for i in range(count) for outcome in self.target.restart([i], mode)]
        indices = list(range(count)) if which == "all" else [int(which)]
        return self.target.restart(indices, mode)
