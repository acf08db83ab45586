"""Samples the channel layer's Redis once a second: the numbers that prove or refute
"something accumulates in Redis" (FM-5).

Key layout of channels_redis (prefix "asgi"): a group is the sorted set
`asgi:group:<name>` whose members are channel names `specific.<process prefix>!<id>`;
messages for a process's channels wait in the list-like key `asgispecific.<process prefix>!`.
A member or key whose process prefix belongs to no live Daphne process was left by a
process that died without running disconnect().
"""

from collections.abc import Callable
from dataclasses import dataclass, field

import redis

COLUMNS = (
    "redis_keys", "redis_used_memory_mb", "redis_clients", "groups", "group_members",
    "stale_members", "member_processes", "specific_keys", "dead_process_keys", "live_processes",
)
SCAN_COUNT = 1000


def process_prefix(channel_or_key: str) -> str:
    """'specific.abc!def' or 'asgispecific.abc!' -> 'abc'."""
    head = channel_or_key.split("!", 1)[0]
    return head.rsplit("specific.", 1)[-1]


@dataclass
class Sample:
    figures: dict[str, float] = field(default_factory=dict)
    groups: dict[str, tuple[int, int]] = field(default_factory=dict)  # group -> (members, stale)


class RedisProbe:
    def __init__(self, redis_url: str, live_prefixes: Callable[[], set[str] | None] = lambda: None, prefix: str = "asgi"):
        self.client = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2, decode_responses=True)
        self.live_prefixes = live_prefixes
        self.prefix = prefix

    def sample(self) -> Sample:
        """One reading; a Redis that does not answer gives an empty sample (the run goes on)."""
        try:
            return self._sample()
        except (redis.RedisError, OSError):
            return Sample()

    def _sample(self) -> Sample:
        live = self.live_prefixes()
        info = self.client.info()
        sample = Sample()
        members_by_process: set[str] = set()
        stale_total = members_total = 0
        for key in self.client.scan_iter(match=f"{self.prefix}:group:*", count=SCAN_COUNT):
            members = self.client.zrange(key, 0, -1)
            prefixes = [process_prefix(m) for m in members]
            members_by_process.update(prefixes)
            stale = sum(p not in live for p in prefixes) if live is not None else 0
            sample.groups[key.split(":group:", 1)[1]] = (len(members), stale)
            members_total += len(members)
            stale_total += stale
        specific = list(self.client.scan_iter(match=f"{self.prefix}specific.*!", count=SCAN_COUNT))
        sample.figures = {
            "redis_keys": self.client.dbsize(),
            "redis_used_memory_mb": round(info.get("used_memory", 0) / 2**20, 2),
            "redis_clients": info.get("connected_clients", 0),
            "groups": len(sample.groups),
            "group_members": members_total,
            "stale_members": stale_total if live is not None else "",
            "member_processes": len(members_by_process),
            "specific_keys": len(specific),
            "dead_process_keys": sum(process_prefix(k) not in live for k in specific) if live is not None else "",
            "live_processes": len(live) if live is not None else "",
        }
        return sample
