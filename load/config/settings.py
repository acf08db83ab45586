"""Configuration dataclasses for the suite, validated in one place.

A bad value raises ConfigError with one line that names the value and how to fix it;
the CLI prints that line and exits with code 2.
"""

import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlparse

if TYPE_CHECKING:  # load.config.handshake imports ConfigError from here
    from load.config.handshake import Handshake

# The checkout (or installed tree) holding locustfile.py and target_app/.
REPO_ROOT = Path(__file__).resolve().parents[2]

LAYERS = ("redis", "redis-pubsub", "memory")
# The pinned stacks the target app can run on besides the suite's own: stacks/<name>.txt.
STACKS_DIR = REPO_ROOT / "stacks"
STACK_FILE_SUFFIX = ".txt"  # a pip requirements file; not in a run folder
CURRENT_STACK = "current"  # the suite's own virtualenv
RESTART_MODES = ("graceful", "hard")


class ConfigError(ValueError):
    """A user's value that the suite cannot use: which setting, its value, and the fix.

    str() is one line; the CLI rewrites `name` as the option a user typed.
    """

    def __init__(self, name: str, value: object, fix: str):
        super().__init__(f"{name}={value!r}: {fix}")
        self.name, self.value, self.fix = name, value, fix

    def as_option(self, names: dict[str, str] | None = None) -> str:
        """The message as a command-line user sees it: `--ping-rate 0.0: must be ...`.

        `names` spells settings as the command at hand does (load.config.options: Locust's
        options differ from `python -m load stack`'s, --stack-daphne there, --daphne here).
        A setting named in capitals is an environment variable, shown as it is.
        """
        if self.name.isupper():
            return str(self)
        names = OPTION_NAMES if names is None else {**OPTION_NAMES, **names}
        option = names.get(self.name, "--" + self.name.replace("_", "-"))
        return f"{option} {self.value!r}: {self.fix}"


# Settings that are no option (the options' own spellings are in load.config.options).
OPTION_NAMES = {"scenario": "scenario", "run_dir": "run folder", "knob": "--knob"}
ASGI_THREADS_FIX = "use a positive number, or leave it out for Daphne's default"


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
            "--application-close-timeout",
            f"{self.application_close_timeout:g}",
            "--websocket_connect_timeout",
            f"{self.websocket_connect_timeout:g}",
            "--websocket_timeout",
            f"{self.websocket_timeout:g}",
            "--ping-interval",
            f"{self.ping_interval:g}",
            "--ping-timeout",
            f"{self.ping_timeout:g}",
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
                raise ConfigError(
                    "redis_socket_timeout", timeout, "give seconds, 'none', or leave it unset"
                ) from None

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
    # Where Daphne listens; an agent's host binds 0.0.0.0 so load can come from elsewhere.
    daphne_bind: str = "127.0.0.1"
    # 0: the OS picks each instance's port; else instance i listens on base_port + i (containers).
    base_port: int = 0
    # The versions the target app runs with: current, or a pinned set stacks/<name>.txt in its own venv.
    versions: str = CURRENT_STACK

    def validate(self) -> "StackConfig":
        if isinstance(self.daphne_count, bool) or not 1 <= self.daphne_count <= 64:
            raise ConfigError("daphne_count", self.daphne_count, "run between 1 and 64 instances")
        if self.asgi_threads is not None and (isinstance(self.asgi_threads, bool) or self.asgi_threads <= 0):
            raise ConfigError("asgi_threads", self.asgi_threads, ASGI_THREADS_FIX)
        _positive("kill_after", self.kill_after)
        _positive("ready_timeout", self.ready_timeout)
        if not 0 <= self.base_port <= 65535 - self.daphne_count:
            raise ConfigError("base_port", self.base_port, "a port number (0: any free port)")
        if self.redis_url is not None:
            validate_redis_url(self.redis_url)
        validate_stack_versions(self.versions)
        self.daphne.validate()
        self.app.validate()
        return self


def stack_names() -> list[str]:
    """current and every pinned set in stacks/."""
    return [CURRENT_STACK, *sorted(path.stem for path in STACKS_DIR.glob("*" + STACK_FILE_SUFFIX))]


def stack_requirements(name: str) -> Path:
    """The pinned set called name: stacks/<name>.txt."""
    return STACKS_DIR / (name + STACK_FILE_SUFFIX)


def validate_stack_versions(name: str) -> None:
    if name == CURRENT_STACK:
        return
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,60}", name) or not stack_requirements(name).is_file():
        raise ConfigError(
            "versions",
            name,
            f"choose one of {', '.join(stack_names())} (a set is stacks/NAME{STACK_FILE_SUFFIX})",
        )


def parse_asgi_threads(text: str) -> int | None:
    """An --asgi-threads value: '' or 'unset' is Daphne's default (None), else a positive count."""
    text = str(text).strip()
    if text in ("", "unset"):
        return None
    if not text.isdecimal() or not text.isascii() or int(text) <= 0:
        raise ConfigError("asgi_threads", text, ASGI_THREADS_FIX)
    return int(text)


def validate_redis_url(url: str) -> None:
    parsed = urlparse(url)
    if parsed.scheme not in ("redis", "rediss", "unix") or not (parsed.hostname or parsed.path):
        raise ConfigError("redis_url", url, "expected redis://HOST:PORT/DB")
    try:
        _ = parsed.port  # urllib raises here, not at urlparse, when the port is not a number
    except ValueError:
        raise ConfigError("redis_url", url, "the port is not a number") from None


# -- load: what the Locust users do ------------------------------------------------------

PROTOCOLS = ("target", "template")
# The websocket engines under the user (load.wire.engines); the first is the default.
# bench/compare.py chose it: per message, buffered costs 0.88x a bare websocket-client loop
# at 1,000, 2,000 and 8,000 pings/s (medians of three rounds); the library engines 1.12-1.32x.
WS_ENGINES = ("buffered", "websocket-client", "websockets")
TARGET_ROUTES = (
    re.compile(r"^/ws/ping/$"),
    re.compile(r"^/ws/ping/(sync|pool|db|layer)/$"),
    re.compile(r"^/ws/room/[A-Za-z0-9_.-]{1,80}/$"),
)
TARGET_ROUTE_HELP = (
    "/ws/ping/, /ws/ping/sync/, /ws/ping/pool/, /ws/ping/db/, /ws/ping/layer/ or /ws/room/NAME/"
)


PATH_KNOBS = ("sleep_ms", "work_ms", "payload_bytes")


def parse_paths(text: str) -> tuple[tuple[str, int], ...]:
    """'/ws/ping/:3,/ws/ping/?sleep_ms=20000:1' -> (('/ws/ping/', 3), ('/ws/ping/?sleep_ms=20000', 1)).

    A query string stays part of the URL (a staging server may want a token there); in
    target mode its sleep_ms, work_ms and payload_bytes set that path's ping knobs.
    """
    paths = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        path, weight = split_weight(item)
        if weight is not None and not (weight.isdecimal() and weight.isascii() and int(weight) > 0):
            raise ConfigError(
                "paths",
                item,
                f"the weight {weight!r} of {path} must be a whole number above 0, e.g. {path}:2",
            )
        if not path.startswith("/"):
            raise ConfigError("paths", item, "write PATH or PATH:WEIGHT; paths start with /")
        count = int(weight) if weight else 1
        for key, value in path_knobs(path).items():
            if value < 0:
                raise ConfigError("paths", item, f"{key} must be zero or more")
        paths.append((path, count))
    if not paths:
        raise ConfigError("paths", text, f"name at least one websocket path, e.g. {TARGET_ROUTE_HELP}")
    return tuple(paths)


def split_weight(item: str) -> tuple[str, str | None]:
    """'/ws/ping/:3' -> ('/ws/ping/', '3'); '/ws/ping/' -> ('/ws/ping/', None).

    What follows the last ':' is a weight when it looks like a number, or, in a path
    without a query string, when it holds no '/' (websocket routes rarely contain ':');
    a query value with a ':' in it ('?t=a:b') stays part of the path.
    """
    path, sep, tail = item.rpartition(":")
    if not sep:
        return item, None
    if re.fullmatch(r"[-+]?[\d.]*", tail) or ("?" not in path and "/" not in tail and "=" not in tail):
        return path, tail
    return item, None


def path_knobs(path: str) -> dict[str, float]:
    """The ping knobs in a path's query string: '/ws/ping/?sleep_ms=200' -> {'sleep_ms': 200.0}."""
    knobs = {}
    for key, values in parse_qs(urlparse(path).query).items():
        if key in PATH_KNOBS:
            try:
                knobs[key] = float(values[-1])
            except ValueError:
                raise ConfigError("paths", path, f"{key} must be a number") from None
    return knobs


def parse_targets(text: str) -> tuple[str, ...]:
    targets = tuple(filter(None, (part.strip().rstrip("/") for part in text.split(","))))
    for target in targets:
        parsed = urlparse(target)
        if parsed.scheme in ("http", "https"):
            fixed = target.replace(parsed.scheme, "ws" if parsed.scheme == "http" else "wss", 1)
            raise ConfigError("host", target, f"websocket servers take ws:// or wss:// URLs, e.g. {fixed}")
        if parsed.scheme not in ("ws", "wss") or not parsed.hostname:
            raise ConfigError("host", target, "expected ws://HOST:PORT or wss://HOST:PORT")
        try:
            _ = parsed.port
        except ValueError:
            raise ConfigError("host", target, "the port is not a number") from None
    return targets


@dataclass(frozen=True)
class LoadConfig:
    """What every websocket user does: where it connects, how often it pings, how it copes."""

    targets: tuple[str, ...]
    paths: tuple[tuple[str, int], ...] = (("/ws/ping/", 1),)
    ping_rate: float = 1.0  # pings per second per user, open loop
    ping_jitter: float = 0.0  # fraction of the interval each due time may move by
    payload_bytes: int = 0
    sleep_ms: float = 0.0
    work_ms: float = 0.0
    pong_timeout: float = 5.0
    connect_timeout: float = 5.0
    reconnect_min: float = 0.5
    reconnect_max: float = 10.0
    reconnect_on_timeout: bool = False  # a pong timeout ends the socket, as heartbeat clients do
    seed: int = 0  # 0: a fresh random schedule each run; else the same schedule every time
    protocol: str = "target"
    ping_template: str = ""
    pong_field: str = ""
    handshake: "Handshake | None" = None  # headers, origin, cookie, subprotocols (None: none)
    ws_engine: str = WS_ENGINES[0]
    run_label: str = ""
    results_dir: Path = Path("results")

    def public(self) -> dict[str, Any]:
        """For manifest.json: the handshake's credentials hidden."""
        values = asdict(self)
        values["handshake"] = self.handshake.masked() if self.handshake else None
        return values

    def validate(self) -> "LoadConfig":
        if not self.targets:
            raise ConfigError("host", "", "give --host ws://HOST:PORT (or --targets, or --stack local)")
        parse_targets(",".join(self.targets))
        for name in ("ping_rate", "pong_timeout", "connect_timeout", "reconnect_min", "reconnect_max"):
            _positive(name, getattr(self, name))
        if not 0 <= self.ping_jitter <= 1:
            raise ConfigError("ping_jitter", self.ping_jitter, "a fraction of the ping interval, 0 to 1")
        if self.reconnect_max < self.reconnect_min:
            raise ConfigError("reconnect_max", self.reconnect_max, "must be at least --reconnect-min")
        for name in ("payload_bytes", "sleep_ms", "work_ms"):
            if getattr(self, name) < 0:
                raise ConfigError(name, getattr(self, name), "must be zero or more")
        if self.protocol not in PROTOCOLS:
            raise ConfigError(
                "protocol", self.protocol, "choose target (the target app) or template (your server)"
            )
        if self.ws_engine not in WS_ENGINES:
            raise ConfigError("ws_engine", self.ws_engine, f"choose one of {', '.join(WS_ENGINES)}")
        if self.protocol == "template" and "{seq}" not in self.ping_template:
            raise ConfigError(
                "ping_template", self.ping_template, "template mode needs a --ping-template containing {seq}"
            )
        if self.protocol == "target":
            for path, _weight in self.paths:
                if not any(route.match(urlparse(path).path) for route in TARGET_ROUTES):
                    raise ConfigError("paths", path, f"the target app serves {TARGET_ROUTE_HELP}")
        check_run_label(self.run_label)
        return self


def check_run_folder(results_dir: Path, run_id: str) -> None:
    """The run folder can be made: results_dir is (or can become) a folder; run_id is one name."""
    if run_id and ("/" in run_id or "\\" in run_id or run_id in (".", "..")):
        raise ConfigError("run_id", run_id, "one folder name, without '/' (it goes inside --results-dir)")
    existing = Path(results_dir)
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(
            "results_dir", str(results_dir), f"{existing} is a file; give a folder (it is made if missing)"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(
            "results_dir", str(results_dir), f"cannot write in {existing}; give a folder you can write in"
        )


def check_run_label(label: str) -> None:
    if label and not re.fullmatch(r"[A-Za-z0-9_.-]{1,60}", label):
        raise ConfigError("run_label", label, "use letters, digits, '.', '_' or '-' (it names a folder)")


# -- chaos: what the controller does to the server during a run --------------------------

RESTART_WHICH_HELP = "all (at once), rolling (one at a time, each waiting for ready) or an instance number"


def parse_seconds_list(name: str, text: str) -> tuple[float, ...]:
    """'20, 40.5' -> (20.0, 40.5): offsets in seconds from the start of the run."""
    try:
        values = tuple(float(part) for part in text.replace(" ", "").split(",") if part)
    except ValueError:
        raise ConfigError(
            name, text, "give seconds from the start of the run, comma-separated, e.g. 20,40"
        ) from None
    if any(v < 0 for v in values):
        raise ConfigError(name, text, "offsets cannot be negative")
    return tuple(sorted(values))


def parse_threads_steps(text: str) -> tuple[int | None, ...]:
    """'1,4,8' or 'unset,4' -> (1, 4, 8) / (None, 4)."""
    steps: list[int | None] = []
    for part in filter(None, text.replace(" ", "").split(",")):
        if part in ("unset", "default"):
            steps.append(None)
            continue
        if not part.isdigit() or int(part) <= 0:
            raise ConfigError(
                "asgi_threads_steps", text, "positive whole numbers (or 'unset'), comma-separated, e.g. 1,4,8"
            )
        steps.append(int(part))
    return tuple(steps)


@dataclass(frozen=True)
class ChaosPlan:
    """Restarts at offsets or every N seconds, an ASGI_THREADS staircase, Redis actions."""

    restart_at: tuple[float, ...] = ()
    restart_every: float = 0.0  # 0: no periodic restart
    restart_mode: str = "graceful"
    restart_which: str = "all"
    asgi_threads_steps: tuple[int | None, ...] = ()
    step_seconds: float = 0.0
    redis_restart_at: tuple[float, ...] = ()
    redis_flush_at: tuple[float, ...] = ()

    @property
    def active(self) -> bool:
        return bool(
            self.restart_at
            or self.restart_every
            or self.asgi_threads_steps
            or self.redis_restart_at
            or self.redis_flush_at
        )

    def validate(self, instance_count: int | None = None) -> "ChaosPlan":
        if self.restart_mode not in RESTART_MODES:
            raise ConfigError(
                "restart_mode",
                self.restart_mode,
                "choose graceful (SIGTERM, then SIGKILL after --kill-after) or hard (SIGKILL)",
            )
        which = self.restart_which
        if which not in ("all", "rolling") and not which.isdigit():
            raise ConfigError("restart_which", which, f"choose {RESTART_WHICH_HELP}")
        if which.isdigit() and instance_count is not None and int(which) >= instance_count:
            raise ConfigError(
                "restart_which",
                which,
                f"there are {instance_count} instance(s), numbered 0 to {instance_count - 1}; or choose all or rolling",
            )
        if self.restart_every < 0:
            raise ConfigError("restart_every", self.restart_every, "seconds between restarts, or 0 for none")
        if self.asgi_threads_steps and self.step_seconds <= 0:
            raise ConfigError(
                "step_seconds",
                self.step_seconds,
                "an ASGI_THREADS staircase needs the seconds each step lasts",
            )
        return self
