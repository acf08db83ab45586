"""The local stack: Redis and N Daphne processes of target_app, supervised.

Every step is recorded as an event (a dict with wall-clock `ts`) in `Stack.events` and
passed to `on_event`, so restarts can be laid next to what users saw second by second.
Readiness is polled with a deadline: "listening" when Daphne logs its TCP address,
"ready" when /healthz answers from the new process.
"""

import http.client
import json
import os
import re
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from load.config.options import APP_ENVIRONMENT
from load.config.settings import REPO_ROOT, RESTART_MODES, ConfigError, StackConfig
from load.runfolder.names import (
    ASGI_THREADS_SET,
    EVENT,
    EXITED,
    FAILED,
    MIGRATE_LOG,
    NOT_APPLICABLE,
    READY,
    REDIS_READY,
    REDIS_RESTART_BEGIN,
    REDIS_RESTART_DONE,
    REDIS_STOPPED,
    RESTART_BEGIN,
    RESTART_DONE,
    SIGNAL_SENT,
    SPAWNED,
    STACK_VERSIONS,
    TARGET_STACK,
    THREAD_DUMP,
    THREAD_DUMP_SUFFIX,
    VENV_BUILD_S,
    daphne_instance,
    daphne_log,
)
from load.runfolder.names import LISTENING as LISTENING_EVENT
from load.supervise.procs import Child, ExitRecord, stop_all
from load.supervise.redisserver import LocalRedis, StackError, redis_answers
from load.supervise.targetstack import TargetStack, target_stack

LISTENING = re.compile(rb"Listening on TCP address [\d.]+:(\d+)")
LISTEN_FAILURE = b"Listen failure"
# The target app's faulthandler writes every thread's stack to its log on this signal.
DUMP_SIGNAL = signal.SIGUSR1
DUMP_WAIT = 2.0  # seconds for the dump to be written

Event = dict
EventSink = Callable[[Event], None]


@dataclass
class DaphneInstance:
    index: int
    env: dict[str, str]
    port: int = 0  # 0 until the first generation listens; later generations reuse it
    generation: int = 0
    child: Child | None = None
    pids: list[int] = field(default_factory=list)

    @property
    def name(self) -> str:
        return daphne_instance(self.index)

    def http_url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def ws_url(self, path: str = "/ws/ping/") -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def started(self) -> Child:
        """The current generation's process; Stack.start spawns one for every instance."""
        assert self.child is not None, f"{self.name} was never started"
        return self.child


@dataclass(frozen=True)
class RestartOutcome:
    instance: str
    mode: str
    exit: ExitRecord
    down_seconds: float  # from the first signal until the new process answered /healthz
    new_pid: int
    generation: int


def healthz(port: int, timeout: float = 1.0) -> dict | None:
    """The /healthz body of whatever listens on port, or None if nothing answers."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/healthz")
        response = conn.getresponse()
        return json.loads(response.read()) if response.status == 200 else None
    except (OSError, ValueError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def prefixes_of(healths: list[dict | None]) -> set[str] | None:
    """The channel-layer prefixes of the live processes from their /healthz bodies; None
    when any of them gives none (did not answer, e.g. while it starts, or gives no
    prefix): a process whose prefix is unknown would make its own members look stale."""
    if any(not (h or {}).get("layer_prefix") for h in healths):
        return None
    return {h["layer_prefix"] for h in healths if h}  # all are, past the return above


class Stack:
    def __init__(self, config: StackConfig, on_event: EventSink | None = None):
        self.config = config.validate()
        self.on_event = on_event
        self.events: list[Event] = []
        self.server_dir = Path(config.log_dir)
        self.redis: LocalRedis | None = None
        self.redis_url = config.redis_url or ""
        self.instances: list[DaphneInstance] = []
        self.target: TargetStack | None = None  # the versions the app runs with, known once started
        self.target_fields: dict[str, Any] = {}  # its target_stack event, for manifest.json

    # -- lifecycle -------------------------------------------------------------------

    def __enter__(self) -> "Stack":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def start(self) -> "Stack":
        """Start Redis (unless given or not needed) and every Daphne; on failure stop what started."""
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> "Stack":
        self.server_dir.mkdir(parents=True, exist_ok=True)
        if self.redis_url and not redis_answers(self.redis_url):
            raise ConfigError(
                "redis_url",
                self.redis_url,
                "no Redis answers PING there; start it, or leave it out to run a local one",
            )
        self._choose_target()
        if not self.redis_url and self.config.app.layer != "memory":
            self.redis = LocalRedis(self.server_dir, REPO_ROOT, self.config.ready_timeout).start()
            self.redis_url = self.redis.url
            self._record(REDIS_READY, pid=self.redis.started().pid, url=self.redis_url)
        self._migrate()
        self.instances = [
            DaphneInstance(
                i, self._instance_env(i), port=self.config.base_port + i if self.config.base_port else 0
            )
            for i in range(self.config.daphne_count)
        ]
        for instance in self.instances:
            self._spawn(instance)
        for instance in self.instances:
            self._wait_ready(instance)
        return self

    def stop(self) -> None:
        """Stop every Daphne (graceful, bounded by kill_after), then Redis."""
        running = [i for i in self.instances if i.child is not None and i.child.alive()]
        records = self._stop_all([i.started() for i in running], "graceful")
        for instance, record in zip(running, records, strict=True):
            self._record_exit(instance, record)
        if self.redis is not None and self.redis.child is not None and self.redis.child.alive():
            record = self.redis.child.stop("hard")
            self._record(REDIS_STOPPED, how=record.how)

    def restart(self, index: int, mode: str = "graceful") -> RestartOutcome:
        """Stop one instance (graceful: SIGTERM, SIGKILL after kill_after; hard: SIGKILL) and start its next generation."""
        return self.restart_together([index], mode)[0]

    def restart_together(self, indices: list[int], mode: str = "graceful") -> list[RestartOutcome]:
        """Restart several instances at once, as a deploy without rolling does: all go down together."""
        if mode not in RESTART_MODES:
            raise ConfigError("mode", mode, "choose graceful or hard")
        chosen = [self.instances[i] for i in indices]
        for instance in chosen:
            self._record(RESTART_BEGIN, instance, mode=mode)
        records = self._stop_all([i.started() for i in chosen], mode)
        for instance, record in zip(chosen, records, strict=True):
            self._record_exit(instance, record)
            self._spawn(instance)
        outcomes = []
        for instance, record in zip(chosen, records, strict=True):
            self._wait_ready(instance)
            down = time.time() - record.signal_sent_at
            self._record(RESTART_DONE, instance, mode=mode, down_seconds=round(down, 3))
            outcomes.append(
                RestartOutcome(instance.name, mode, record, down, instance.started().pid, instance.generation)
            )
        return outcomes

    def restart_redis(self) -> float:
        """SIGKILL our Redis and start it again on the same port, empty; returns seconds down."""
        if self.redis is None:
            raise StackError("this stack does not run its own Redis (it was given --redis-url)")
        self._record(REDIS_RESTART_BEGIN, pid=self.redis.started().pid)
        began = time.time()
        self.redis.restart()
        down = time.time() - began
        self._record(REDIS_RESTART_DONE, pid=self.redis.started().pid, down_seconds=round(down, 3))
        return down

    def stop_instance(self, index: int, mode: str = "graceful") -> ExitRecord:
        """Take one instance down and leave it down (an outage); start_instance brings it back."""
        if mode not in RESTART_MODES:
            raise ConfigError("mode", mode, "choose graceful or hard")
        instance = self.instances[index]
        record = self._stop_all([instance.started()], mode)[0]
        self._record_exit(instance, record)
        return record

    def start_instance(self, index: int) -> None:
        """Start the next generation of a stopped instance on its port and wait until it is ready."""
        instance = self.instances[index]
        if instance.child is not None and instance.child.alive():
            raise StackError(f"{instance.name} is still running (pid {instance.child.pid}); stop it first")
        self._spawn(instance)
        self._wait_ready(instance)

    def set_asgi_threads(self, threads: int | None) -> None:
        """ASGI_THREADS for every instance's next generation (None: unset); restart to apply."""
        if threads is not None and (isinstance(threads, bool) or threads <= 0):
            raise ConfigError("asgi_threads", threads, "must be a positive number (or unset)")
        for instance in self.instances:
            instance.env.pop("ASGI_THREADS", None)
            if threads is not None:
                instance.env["ASGI_THREADS"] = str(threads)
        self._record(ASGI_THREADS_SET, threads=threads)

    # -- what the stack is -------------------------------------------------------------

    def ws_urls(self, path: str = "/ws/ping/") -> list[str]:
        return [instance.ws_url(path) for instance in self.instances]

    def pids(self) -> list[int]:
        """Every process this stack ever started, all generations, Redis included."""
        pids = [pid for instance in self.instances for pid in instance.pids]
        if self.redis is not None:
            pids.extend(self.redis.pids)
        return pids

    def live_prefixes(self) -> set[str] | None:
        """The channel-layer process prefixes of the instances that answer /healthz now;
        None when they cannot be told (see prefixes_of)."""
        alive = [i for i in self.instances if i.port and i.child is not None and i.child.alive()]
        if not alive:
            return set()  # every process is down: every member is stale
        return prefixes_of([healthz(instance.port) for instance in alive])

    def status(self) -> list[dict]:
        return [
            {
                "instance": i.name,
                "generation": i.generation,
                "pid": i.child.pid if i.child else None,
                "alive": bool(i.child and i.child.alive()),
                "port": i.port,
                "health": healthz(i.port) if i.port else None,
            }
            for i in self.instances
        ]

    def target_versions(self) -> dict:
        """For manifest.json's versions: the set's name and, from another virtualenv, what runs in it."""
        target = self._target()
        return {STACK_VERSIONS: target.name, **target.versions}

    # -- internals ---------------------------------------------------------------------

    def _target(self) -> TargetStack:
        assert self.target is not None, "the stack was never started"
        return self.target

    def _choose_target(self) -> None:
        """The versions to run (another set's virtualenv is built on first use), and what of
        the stack's settings does not apply to them: recorded, not silently dropped."""
        self.target = target = target_stack(self.config.versions)
        why_not = target.unsupported_layers.get(self.config.app.layer)
        if why_not:
            raise ConfigError(
                "layer", self.config.app.layer, f"{why_not} ({target.name} stack); use redis or memory"
            )
        _kept, flags = target.daphne_argv(self.config.daphne.argv())
        env = {name: why for name, why in target.not_applicable_env.items() if name in self._base_env()}
        fields: dict[str, Any] = {STACK_VERSIONS: target.name, "python": target.python}
        if not target.current:  # the suite's own versions are in manifest.json already
            fields.update(versions=target.versions, **{VENV_BUILD_S: target.build_s})
        fields[NOT_APPLICABLE] = {"daphne_flags": flags, "env": env}
        self.target_fields = fields
        self._record(TARGET_STACK, **fields)

    def _base_env(self) -> dict[str, str]:
        # The app's variables come from the config alone: load.config.options.stack_config has
        # already taken (and said) what the environment set where an option was left at its default.
        env = {k: v for k, v in os.environ.items() if k not in APP_ENVIRONMENT}
        env.update(self.config.app.environ())
        env.update(
            DJANGO_SETTINGS_MODULE="target_app.settings",
            PYTHONUNBUFFERED="1",
            PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
            DATABASE_PATH=str(self.server_dir.resolve() / "target_app.sqlite3"),
        )
        if self.redis_url:
            env["REDIS_URL"] = self.redis_url
        return env

    def _instance_env(self, index: int) -> dict[str, str]:
        env = self._base_env()
        env["TARGET_INSTANCE"] = daphne_instance(index)
        if self.config.asgi_threads is not None:
            env["ASGI_THREADS"] = str(self.config.asgi_threads)
        return env

    def _migrate(self) -> None:
        argv = [self._target().python, "-m", "django", "migrate", "--noinput", "-v", "0"]
        child = Child("migrate", argv, self._base_env(), self.server_dir / MIGRATE_LOG, REPO_ROOT).start()
        if not child.wait(self.config.ready_timeout) or child.returncode != 0:
            child.stop("hard")
            raise StackError(f"target_app migrate failed:\n{child.log_tail()}")

    def _spawn(self, instance: DaphneInstance) -> None:
        instance.generation += 1
        flags, _not_applicable = self._target().daphne_argv(self.config.daphne.argv())
        argv = [
            *self._target().daphne,
            "-b",
            self.config.daphne_bind,
            "-p",
            str(instance.port),
            *flags,
            "target_app.asgi:application",
        ]
        log_path = self.server_dir / daphne_log(instance.name, instance.generation)
        child = instance.child = Child(instance.name, argv, instance.env, log_path, REPO_ROOT).start()
        instance.pids.append(child.pid)
        self._record(SPAWNED, instance, pid=child.pid, log=str(log_path))

    def _wait_ready(self, instance: DaphneInstance) -> None:
        child = instance.started()
        deadline = time.monotonic() + self.config.ready_timeout
        port = self._poll(instance, deadline, lambda: self._listening_port(child))
        instance.port = port
        self._record(LISTENING_EVENT, instance, port=port, after_s=round(time.time() - child.started_at, 3))
        self._poll(instance, deadline, lambda: (healthz(port) or {}).get("pid") == child.pid or None)
        self._record(READY, instance, after_s=round(time.time() - child.started_at, 3))

    def _poll(self, instance: DaphneInstance, deadline: float, probe: Callable[[], object]):
        while time.monotonic() < deadline:
            value = probe()
            if value:
                return value
            if not instance.started().alive():
                self._fail(instance, f"exited with code {instance.started().returncode}")
            time.sleep(0.05)
        self._fail(instance, f"not ready within {self.config.ready_timeout:g} s")

    def _listening_port(self, child: Child) -> int | None:
        try:
            log = child.log_path.read_bytes()
        except OSError:
            return None
        if LISTEN_FAILURE in log:
            return None  # the process stops itself; _poll reports its exit and log
        match = LISTENING.search(log)
        return int(match.group(1)) if match else None

    def _fail(self, instance: DaphneInstance, why: str) -> None:
        self._record(FAILED, instance, why=why)
        raise StackError(
            f"{instance.name} generation {instance.generation} {why}:\n{instance.started().log_tail()}"
        )

    def _stop_all(self, children: list[Child], mode: str) -> list[ExitRecord]:
        return stop_all(children, mode, self.config.kill_after, self._record_signal, self._thread_dump)

    def _thread_dump(self, child: Child) -> None:
        """A Daphne that ignored SIGTERM (FM-4): its threads' stacks, kept beside its log
        (daphne-0.gen1.threads.txt) before the SIGKILL, since they show why it hung."""
        instance = next(i for i in self.instances if i.child is child)
        before = _size(child.log_path)
        child.signal_group(DUMP_SIGNAL)
        self._record_signal(child, DUMP_SIGNAL, time.time())
        dump = _new_bytes(child, before, time.monotonic() + DUMP_WAIT)
        path = child.log_path.with_suffix(THREAD_DUMP_SUFFIX)
        if dump:
            path.write_bytes(dump)
        self._record(THREAD_DUMP, instance, pid=child.pid, file=str(path) if dump else None, bytes=len(dump))

    def _record_signal(self, child: Child, signum: int, ts: float) -> None:
        instance = next(i for i in self.instances if i.child is child)
        self._record(SIGNAL_SENT, instance, ts=ts, pid=child.pid, signal=signal.Signals(signum).name)

    def _record_exit(self, instance: DaphneInstance, record: ExitRecord) -> None:
        self._record(
            EXITED,
            instance,
            ts=record.exited_at,
            pid=instance.started().pid,
            how=record.how,
            returncode=record.returncode,
            after_s=round(record.seconds, 3),
        )

    def _record(self, name: str, instance: DaphneInstance | None = None, **fields) -> None:
        event: Event = {"ts": fields.pop("ts", time.time()), EVENT: name}
        if instance is not None:
            event.update(instance=instance.name, generation=instance.generation)
        event.update(fields)
        self.events.append(event)
        if self.on_event is not None:
            self.on_event(event)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _new_bytes(child: Child, offset: int, deadline: float) -> bytes:
    """What the child appends to its log after offset, once it has stopped growing for 0.2 s
    (or the deadline passed, or the child exited)."""
    size, steady_since = offset, time.monotonic()
    while time.monotonic() < deadline and child.alive():
        now_size = _size(child.log_path)
        if now_size != size:
            size, steady_since = now_size, time.monotonic()
        elif size > offset and time.monotonic() - steady_since >= 0.2:
            break
        time.sleep(0.05)
    with open(child.log_path, "rb") as log:
        log.seek(offset)
        return log.read()
