"""The channel layer configuration, built from environment variables.

Kept apart from settings.py so that a bad value fails with one clear line, and so the
stack can validate the same values before it starts any process.
"""

from collections.abc import Mapping
from typing import Any

LAYER_BACKENDS = {
    "redis": "channels_redis.core.RedisChannelLayer",
    "redis-pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
    "memory": "channels.layers.InMemoryChannelLayer",
}
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


class EnvConfigError(ValueError):
    """An environment variable of the target app holds a value it cannot use."""


def _int_var(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise EnvConfigError(f"{name}={raw!r} is not an integer; set a whole number") from None
    if value <= 0:
        raise EnvConfigError(f"{name}={raw!r} must be positive")
    return value


def redis_host(env: Mapping[str, str]) -> str | dict[str, Any]:
    """The channels_redis host entry: a bare URL keeps redis-py's own socket timeout."""
    url = env.get("REDIS_URL") or DEFAULT_REDIS_URL
    raw = env.get("REDIS_SOCKET_TIMEOUT", "").strip().lower()
    if raw == "":
        return url
    if raw == "none":
        return {"address": url, "socket_timeout": None}
    try:
        seconds = float(raw)
    except ValueError:
        raise EnvConfigError(
            f"REDIS_SOCKET_TIMEOUT={raw!r}: use seconds (e.g. 5), 'none', or leave it unset"
        ) from None
    if seconds <= 0:
        raise EnvConfigError(f"REDIS_SOCKET_TIMEOUT={raw!r} must be positive (or 'none')")
    return {"address": url, "socket_timeout": seconds}


def channel_layers_from_env(env: Mapping[str, str]) -> dict[str, Any]:
    layer = env.get("CHANNEL_LAYER", "redis") or "redis"
    if layer not in LAYER_BACKENDS:
        raise EnvConfigError(f"CHANNEL_LAYER={layer!r}: choose one of {', '.join(LAYER_BACKENDS)}")
    backend = LAYER_BACKENDS[layer]
    if layer == "memory":
        config: dict[str, Any] = {"capacity": _int_var(env, "CHANNEL_CAPACITY", 100)}
        config["expiry"] = _int_var(env, "CHANNEL_EXPIRY", 60)
        config["group_expiry"] = _int_var(env, "GROUP_EXPIRY", 86400)
    elif layer == "redis-pubsub":
        # The pub/sub layer keeps no group keys and has no capacity or expiry.
        config = {"hosts": [redis_host(env)]}
    else:
        config = {
            "hosts": [redis_host(env)],
            "capacity": _int_var(env, "CHANNEL_CAPACITY", 100),
            "expiry": _int_var(env, "CHANNEL_EXPIRY", 60),
            "group_expiry": _int_var(env, "GROUP_EXPIRY", 86400),
        }
    return {"default": {"BACKEND": backend, "CONFIG": config}}
