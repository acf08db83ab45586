"""The chaos target and the server's side when the servers run elsewhere, each host behind
its own `python -m load agent`: restarts through their APIs, and their events and Daphne
logs mirrored into this run's folder each second, where the same code as for a local
stack reads them.

Several agents are one target: their instances are numbered across them in the order the
agents were given (agent0's first), which is how `--restart-which` counts them.
"""

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from load.agent.client import AgentClient, AgentError
from load.chaos.controller import TargetError, flush_redis
from load.runfolder.names import (
    AGENT,
    AGENT_HOST,
    AGENT_UNREACHABLE,
    DAPHNE_LOGS,
    EVENT,
    SPAWNED,
    TARGET_INDEX,
    agent_name,
    daphne_instance,
    daphne_log,
)
from load.supervise.stack import prefixes_of


@dataclass(frozen=True)
class RemoteAgent:
    """One --agent-url: its client, and the short name events and folders know it by."""

    name: str
    client: AgentClient

    @property
    def host(self) -> str:
        return urlsplit(self.client.url).netloc

    @property
    def fields(self) -> dict:
        """What every event from it and every restart outcome of it says of it."""
        return {AGENT: self.name, AGENT_HOST: self.host}


def remote_agents(clients: list[AgentClient]) -> list[RemoteAgent]:
    """The agents in the order given: agent0, agent1, ..."""
    return [RemoteAgent(agent_name(number), client) for number, client in enumerate(clients)]


def _call(agent: RemoteAgent, what: str, call: Callable):
    try:
        return call()
    except AgentError as exc:  # its text names the agent's URL
        raise TargetError(f"{agent.name} {what}: {exc}") from None


class AgentTarget:
    """The instances of one or more agents, numbered across them (agent0's first).

    `all` restarts every agent's instances at once, the agents concurrently; `rolling` (the
    controller's, one index at a time) therefore goes host after host, each instance ready
    before the next begins. A restart that fails on one agent fails the action, naming that
    agent, once the others' restarts are over (their own events say what they did).
    """

    def __init__(self, agents: list[RemoteAgent], redis_url: str = ""):
        if not agents:
            raise ValueError("an AgentTarget needs at least one agent")
        self.agents = agents
        self.redis_url = redis_url  # the channel layer's Redis as this host reaches it, if it can

    def _counts(self) -> list[int]:
        return [len(_call(a, "status", a.client.status)["instances"]) for a in self.agents]

    def instance_count(self) -> int:
        return sum(self._counts())

    def restart(self, indices: list[int], mode: str) -> list[dict]:
        counts = self._counts()
        total = sum(counts)
        beyond = [i for i in indices if not 0 <= i < total]
        if beyond:
            raise TargetError(
                f"no instance {beyond[0]}: the agents run {total}, numbered 0 to {total - 1} across them"
            )
        jobs = []  # (agent, the number of its first instance, its count, its own indices to restart)
        first = 0
        for agent, count in zip(self.agents, counts, strict=True):
            own = [i - first for i in indices if first <= i < first + count]
            if own:
                jobs.append((agent, first, count, own))
            first += count
        if len(jobs) == 1:
            return self._restart_on(*jobs[0], mode)
        with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
            futures = [pool.submit(self._restart_on, *job, mode) for job in jobs]
        outcomes, errors = [], []
        for future in futures:
            try:
                outcomes += future.result()
            except TargetError as exc:
                errors.append(str(exc))
        if errors:
            raise TargetError("; ".join(errors))
        return outcomes

    @staticmethod
    def _restart_on(agent: RemoteAgent, first: int, count: int, own: list[int], mode: str) -> list[dict]:
        if len(own) > 1 and own == list(range(count)):
            outcomes = _call(agent, "restart", lambda: agent.client.restart("all", mode, together=True))
        else:
            outcomes = [
                o for i in own for o in _call(agent, "restart", lambda i=i: agent.client.restart(i, mode))
            ]
        return [{**o, **agent.fields, TARGET_INDEX: first + o["index"]} for o in outcomes]

    def set_asgi_threads(self, threads: int | None) -> None:
        for agent in self.agents:
            _call(agent, "asgi-threads", lambda agent=agent: agent.client.set_asgi_threads(threads))

    def restart_redis(self) -> dict:
        raise TargetError("the agent does not restart Redis; restart it on its host")

    def flush_redis(self) -> dict:
        if not self.redis_url:
            raise TargetError(
                "FLUSHDB needs --redis-probe-url: the channel layer's Redis as this host reaches it"
            )
        return flush_redis(self.redis_url)

    def live_prefixes(self) -> set[str] | None:
        """The channel-layer prefixes of every agent's live processes (the Redis is shared);
        None when an agent does not answer: a partial list would make its members stale."""
        healths = []
        for agent in self.agents:
            try:
                instances = agent.client.status()["instances"]
            except AgentError:
                return None
            healths += [i.get("health") for i in instances if i.get("alive")]
        return prefixes_of(healths) if healths else set()


class AgentMirror:
    """Copies every agent's stack events into the run's events (each naming its agent) and
    their Daphne logs, every generation, into server/ of the run folder, a little each
    second. With several agents each has its own folder, server/<agent name>/, as all
    their instances are named daphne-0, daphne-1, ...; one log follower reads them all."""

    def __init__(self, agents: list[RemoteAgent], server_dir: Path, record: Callable[[dict], None]):
        self.record = record
        folders = [server_dir] if len(agents) == 1 else [server_dir / agent.name for agent in agents]
        self.hosts = [_HostMirror(agent, folder) for agent, folder in zip(agents, folders, strict=True)]

    def poll(self) -> None:
        for host in self.hosts:
            host.poll(self.record)

    def log_paths(self) -> list[Path]:
        return sorted(path for host in self.hosts for path in host.log_paths())


class _HostMirror:
    """One agent's events and logs."""

    def __init__(self, agent: RemoteAgent, server_dir: Path):
        self.agent = agent
        self.client = agent.client
        self.server_dir = server_dir
        self.next_event = self.client.events()["next"]  # earlier events are not this run's
        self.offsets: dict[tuple[int, int], int] = {}
        server_dir.mkdir(parents=True, exist_ok=True)
        for index, instance in enumerate(self.client.status()["instances"]):
            self.offsets[(index, instance["generation"])] = self._end_of(index, instance["generation"])

    def _end_of(self, index: int, generation: int) -> int:
        """Start following a log at its current end: what it held before is not this run's."""
        offset = 0
        while True:
            data, offset = self.client.logs(index, generation, offset)
            if not data:
                return offset

    def poll(self, record: Callable[[dict], None]) -> None:
        try:
            self._copy_events(record)
            self._copy_logs()
        except AgentError as exc:  # the agent's host may be the one restarting; try next second
            record({"ts": time.time(), EVENT: AGENT_UNREACHABLE, **self.agent.fields, "error": exc.message})

    def _copy_events(self, record: Callable[[dict], None]) -> None:
        reply = self.client.events(self.next_event)
        self.next_event = reply["next"]
        for event in reply["events"]:
            record({**event, "source": "agent", **self.agent.fields})
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
