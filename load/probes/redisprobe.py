"""Samples the channel layer's Redis once a second: the numbers that prove or refute
"something accumulates in Redis" (FM-5).

Key layout of channels_redis 4 (prefix "asgi"): a group is the sorted set
`asgi:group:<name>` whose members are channel names `specific.<process prefix>!<id>`;
messages for a process's channels wait in the list-like key `asgispecific.<process prefix>!`.
channels_redis 2 (prefix "asgi:", the channels2 stack) names them `asgi::group:<name>` and
`asgi:specific.<process prefix>!`; the probe reads both layouts.
A member or key whose process prefix belongs to no live Daphne process was left by a
process that died without running disconnect().
"""

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import cast

from load.runfolder.names import (
    DEAD_PROCESS_KEYS,
    GROUP_MEMBERS,
    GROUPS,
    LIVE_PROCESSES,
    MEMBER_PROCESSES,
    REDIS_CLIENTS,
    REDIS_KEYS,
    REDIS_USED_MEMORY_MB,
    SPECIFIC_KEYS,
    STALE_MEMBERS,
)
from load.runfolder.names import NO_REDIS_PROBE as NO_REDIS_PROBE

# Read from the channels_redis key layout; the redis-pubsub layer has none of these keys.
LAYER_COLUMNS = (
    GROUPS,
    GROUP_MEMBERS,
    STALE_MEMBERS,
    MEMBER_PROCESSES,
    SPECIFIC_KEYS,
    DEAD_PROCESS_KEYS,
    LIVE_PROCESSES,
)
# Need the prefixes of the live processes as well.
LIVE_COLUMNS = (STALE_MEMBERS, DEAD_PROCESS_KEYS, LIVE_PROCESSES)
SCAN_COUNT = 1000
# (group key pattern, per-process key pattern) of each channels_redis generation, after the prefix
KEY_LAYOUTS = ((":group:", "specific.*!"), ("::group:", ":specific.*!"))
PUBSUB_LAYER = "redis-pubsub"  # the target app's CHANNEL_LAYER and --stack-layer value

# summary.json's not_measured[REDIS]: every Redis figure at once, when nothing probes Redis

NO_LIVE_LIST = (
    "no list of live Daphne processes: only --stack local or --agent-url can say which processes are alive, "
    "so members of dead ones cannot be told apart"
)
NO_PREFIX = (
    "a live Daphne's /healthz gave no channel-layer prefix (not the target app, the redis-pubsub layer, "
    "or it did not answer)"
)
PUBSUB = (
    "the redis-pubsub layer keeps no group keys: its groups are pub/sub subscriptions whose members the probe "
    "cannot see (keys, memory and clients are measured)"
)


def process_prefix(channel_or_key: str) -> str:
    """'specific.abc!def' or 'asgispecific.abc!' -> 'abc'."""
    head = channel_or_key.split("!", 1)[0]
    return head.rsplit("specific.", 1)[-1]


@dataclass
class Sample:
    figures: dict[str, float | str] = field(default_factory=dict)  # "" = could not be measured this second
    groups: dict[str, tuple[int, int | str]] = field(default_factory=dict)  # group -> (members, stale or "")


class RedisProbe:
    def __init__(
        self,
        redis_url: str,
        live_prefixes: Callable[[], set[str] | None] | None = None,
        prefix: str = "asgi",
        layer: str = "",
    ):
        """layer: the channel layer when known ("redis-pubsub" from the start); else it is found out."""
        import redis  # imported where used: a Locust worker never loads redis (about 7 MB)

        self.errors = (redis.RedisError, OSError)
        self.client = redis.Redis.from_url(
            redis_url, socket_timeout=2, socket_connect_timeout=2, decode_responses=True
        )
        self.live_prefixes = live_prefixes  # None: nothing can say which processes are alive
        self.prefix = prefix
        self.pubsub = False  # the redis-pubsub layer is in use: group figures cannot be read
        self.unknown: dict[str, str] = {}  # figure -> why, for every figure not measured in some second
        self.measured: set[str] = set()  # figures measured in at least one second
        if layer == PUBSUB_LAYER:
            self._found_pubsub()

    def sample(self) -> Sample:
        """One reading; a Redis that does not answer gives an empty sample (the run goes on)."""
        try:
            sample = self._sample()
        except self.errors:
            return Sample()
        for column, value in sample.figures.items():
            if value != "":
                self.measured.add(column)
        return sample

    def not_measured(self) -> dict[str, str]:
        """Figure -> why, for the figures never measured in this run (for summary.json)."""
        return {column: why for column, why in self.unknown.items() if column not in self.measured}

    def _live(self) -> set[str] | None:
        live = self.live_prefixes() if self.live_prefixes is not None else None
        if live is None:
            for column in LIVE_COLUMNS:
                self.unknown.setdefault(column, NO_LIVE_LIST if self.live_prefixes is None else NO_PREFIX)
        return live

    def _uses_pubsub(self) -> bool:
        """Once seen, for the run: between subscriptions (a restart) the layer looks empty."""
        if not self.pubsub and (
            self.client.pubsub_channels(f"{self.prefix}__group__*")
            or self.client.pubsub_channels(f"{self.prefix}specific.*")
        ):
            self._found_pubsub()
        return self.pubsub

    def _found_pubsub(self) -> None:
        # Zeros read before the first subscription were no measurement: the figures are unknown.
        self.pubsub = True
        self.unknown.update(dict.fromkeys(LAYER_COLUMNS, PUBSUB))
        self.measured -= set(LAYER_COLUMNS)

    def _scan(self, patterns: Iterable[str]) -> Iterator[str]:
        """The keys under the prefix matching each pattern; '*' is added to group patterns."""
        for pattern in patterns:
            tail = pattern if pattern.endswith("!") else pattern + "*"
            yield from self.client.scan_iter(match=self.prefix + tail, count=SCAN_COUNT)

    def _sample(self) -> Sample:
        info = self.client.info()
        sample = Sample()
        sample.figures = {
            REDIS_KEYS: self.client.dbsize(),
            REDIS_USED_MEMORY_MB: round(info.get("used_memory", 0) / 2**20, 2),
            REDIS_CLIENTS: info.get("connected_clients", 0),
        }
        if self._uses_pubsub():
            sample.figures.update(dict.fromkeys(LAYER_COLUMNS, ""))
            return sample
        live = self._live()
        members_by_process: set[str] = set()
        stale_total = members_total = 0
        for key in self._scan(group for group, _process in KEY_LAYOUTS):
            # redis-py types replies for any client; this one decodes them, so members are str.
            members = cast("list[str]", self.client.zrange(key, 0, -1))
            prefixes = [process_prefix(m) for m in members]
            members_by_process.update(prefixes)
            stale = sum(p not in live for p in prefixes) if live is not None else 0
            sample.groups[key.split(":group:", 1)[1]] = (len(members), stale if live is not None else "")
            members_total += len(members)
            stale_total += stale
        specific = list(self._scan(process for _group, process in KEY_LAYOUTS))
        sample.figures.update(
            {
                GROUPS: len(sample.groups),
                GROUP_MEMBERS: members_total,
                STALE_MEMBERS: stale_total,
                MEMBER_PROCESSES: len(members_by_process),
                SPECIFIC_KEYS: len(specific),
                DEAD_PROCESS_KEYS: sum(process_prefix(k) not in live for k in specific)
                if live is not None
                else 0,
                LIVE_PROCESSES: len(live) if live is not None else 0,
            }
        )
        if live is None:
            sample.figures.update(dict.fromkeys(LIVE_COLUMNS, ""))
        return sample
