"""The chaos target and the server's side when the server runs elsewhere, behind a
`python -m load agent`: restarts through its API, and its events and Daphne logs mirrored
into this run's folder each second, where the same code as for a local stack reads them.
"""

import time
from collections.abc import Callable
from pathlib import Path

from load.agent.client import AgentClient, AgentError
from load.chaos.controller import TargetError, flush_redis
from load.runfolder.names import AGENT_UNREACHABLE, DAPHNE_LOGS, EVENT, SPAWNED, daphne_instance, daphne_log
from load.supervise.stack import prefixes_of


class AgentTarget:
    def __init__(self, client: AgentClient, redis_url: str = ""):
        self.client = client
        self.redis_url = redis_url  # the channel layer's Redis as this host reaches it, if it can

    def _call(self, what: str, call: Callable):
        try:
            return call()
        except AgentError as exc:
            raise TargetError(f"agent {what}: {exc.message if exc.status else exc}") from None

    def instance_count(self) -> int:
        return len(self._call("status", self.client.status)["instances"])

    def restart(self, indices: list[int], mode: str) -> list[dict]:
        if len(indices) > 1 and indices == list(range(self.instance_count())):
            return self._call("restart", lambda: self.client.restart("all", mode, together=True))
        return [o for i in indices for o in self._call("restart", lambda i=i: self.client.restart(i, mode))]

    def set_asgi_threads(self, threads: int | None) -> None:
        self._call("asgi-threads", lambda: self.client.set_asgi_threads(threads))

    def restart_redis(self) -> dict:
        raise TargetError("the agent does not restart Redis; restart it on its host")

    def flush_redis(self) -> dict:
        if not self.redis_url:
            raise TargetError(
                "FLUSHDB needs --redis-probe-url: the channel layer's Redis as this host reaches it"
            )
        return flush_redis(self.redis_url)

    def live_prefixes(self) -> set[str] | None:
        try:
            instances = self.client.status()["instances"]
        except AgentError:
            return None
        alive = [i for i in instances if i.get("alive")]
        return prefixes_of([i.get("health") for i in alive]) if alive else set()


class AgentMirror:
    """Copies the agent's stack events into the run's events and its Daphne logs, every
    generation, into server/ of the run folder, a little each second."""

    def __init__(self, client: AgentClient, server_dir: Path, record: Callable[[dict], None]):
        self.client = client
        self.server_dir = server_dir
        self.record = record
        self.next_event = client.events()["next"]  # earlier events are not this run's
        self.offsets: dict[tuple[int, int], int] = {}
        server_dir.mkdir(parents=True, exist_ok=True)
        for index, instance in enumerate(client.status()["instances"]):
            self.offsets[(index, instance["generation"])] = self._end_of(index, instance["generation"])

    def _end_of(self, index: int, generation: int) -> int:
        """Start following a log at its current end: what it held before is not this run's."""
        offset = 0
        while True:
            data, offset = self.client.logs(index, generation, offset)
            if not data:
                return offset

    def poll(self) -> None:
        try:
            self._copy_events()
            self._copy_logs()
        except AgentError as exc:  # the agent's host may be the one restarting; try next second
            self.record({"ts": time.time(), EVENT: AGENT_UNREACHABLE, "error": exc.message})

    def _copy_events(self) -> None:
        reply = self.client.events(self.next_event)
        self.next_event = reply["next"]
        for event in reply["events"]:
            self.record({**event, "source": "agent"})
            if event[EVENT] == SPAWNED:
                self.offsets.setdefault((int(event["instance"].rsplit("-", 1)[1]), event["generation"]), 0)

    def _copy_logs(self) -> None:
        for (index, generation), offset in list(self.offsets.items()):
            data, self.offsets[(index, generation)] = self.client.logs(index, generation, offset)
            if data:
                with open(self.server_dir / daphne_log(daphne_instance(index), generation), "ab") as log:
                    log.write(data)

    def log_paths(self) -> list[Path]:
        return sorted(self.server_dir.glob(DAPHNE_LOGS))
