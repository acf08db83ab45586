"""Configuration dataclasses for the suite, validated in one place.

A bad value raises ConfigError with one line that names the value and how to fix it;
the CLI prints that line and exits with code 2.
"""

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

LAYERS = ("redis", "redis-pubsub", "memory")
RESTART_MODES = ("graceful", "hard")


class ConfigError(ValueError):
    """A user's value that the suite cannot use: which setting, its value, and the fix.

    str() is one line; the CLI rewrites `name` as the option a user typed.
    """

    def __init__(self, name: str, value: object, fix: str):
        super().__init__(f"{name}={value!r}: {fix}")
        self.name, self.value, self.fix = name, value, fix


def _positive(name: str, value: float | int | None, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if value is None or isinstance(value, bool) or value <= 0:
        raise ConfigError(name, value, "must be a positive number")


@dataclass(frozen=True)
class DaphneOptions:
    """Daphne command-line flags; the defaults are Daphne's own CLI defaults."""

    application_close_timeout: float = 10.0
    websocket_connect_timeout: float = 5.0
    websocket_timeout: float = 86400.0
    ping_interval: float = 20.0
    ping_timeout: float = 30.0

    def validate(self) -> None:
        for name, value in vars(self).items():
            _positive(name, value)

    def argv(self) -> list[str]:
        return [
            "--application-close-timeout", f"{self.application_close_timeout:g}",
            "--websocket_connect_timeout", f"{self.websocket_connect_timeout:g}",
            "--websocket_timeout", f"{self.websocket_timeout:g}",
            "--ping-interval", f"{self.ping_interval:g}",
            "--ping-timeout", f"{self.ping_timeout:g}",
        ]


@dataclass(frozen=True)
class LayerOptions:
    """The target app's channel layer settings, passed to it as environment variables."""

    layer: str = "redis"
    capacity: int = 100
    expiry: int = 60
    group_expiry: int = 86400
    # None = redis-py's default (5 s, which shows FM-7); "none" = no timeout; or seconds.
    redis_socket_timeout: str | None = None

    def validate(self) -> None:
        if self.layer not in LAYERS:
            raise ConfigError("layer", self.layer, f"choose one of {', '.join(LAYERS)}")
        for name in ("capacity", "expiry", "group_expiry"):
            _positive(name, getattr(self, name))
        timeout = self.redis_socket_timeout
        if timeout is not None and timeout != "none":
            try:
                _positive("redis_socket_timeout", float(timeout))
            except ValueError:
                raise ConfigError("redis_socket_timeout", timeout, "give seconds, 'none', or leave it unset") from None

    def environ(self) -> dict[str, str]:
        env = {
            "CHANNEL_LAYER": self.layer,
            "CHANNEL_CAPACITY": str(self.capacity),
            "CHANNEL_EXPIRY": str(self.expiry),
            "GROUP_EXPIRY": str(self.group_expiry),
        }
        if self.redis_socket_timeout is not None:
            env["REDIS_SOCKET_TIMEOUT"] = self.redis_socket_timeout
        return env


@dataclass(frozen=True)
class StackConfig:
    """A local stack: one Redis (ours or given) and N Daphne processes of target_app."""

    daphne_count: int = 1
    asgi_threads: int | None = None
    redis_url: str | None = None
    daphne: DaphneOptions = field(default_factory=DaphneOptions)
    app: LayerOptions = field(default_factory=LayerOptions)
    # Seconds between SIGTERM and SIGKILL in a graceful stop, as systemd's TimeoutStopSec.
    kill_after: float = 10.0
    ready_timeout: float = 60.0
    log_dir: Path = Path("results/stack/server")

    def validate(self) -> "StackConfig":
        if isinstance(self.daphne_count, bool) or not 1 <= self.daphne_count <= 64:
            raise ConfigError("daphne_count", self.daphne_count, "run between 1 and 64 instances")
        _positive("asgi_threads", self.asgi_threads, allow_none=True)
        _positive("kill_after", self.kill_after)
        _positive("ready_timeout", self.ready_timeout)
        if self.redis_url is not None:
            validate_redis_url(self.redis_url)
        self.daphne.validate()
        self.app.validate()
        return self


def validate_redis_url(url: str) -> None:
    parsed = urlparse(url)
    if parsed.scheme not in ("redis", "rediss", "unix") or not (parsed.hostname or parsed.path):
        raise ConfigError("redis_url", url, "expected redis://HOST:PORT/DB")
    try:
        parsed.port
    except ValueError:
        raise ConfigError("redis_url", url, "the port is not a number") from None
