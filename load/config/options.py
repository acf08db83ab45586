"""The suite's options, declared once: the table OPTIONS.

From each row are made: Locust's option (`locust --help`, locust.conf `ping-rate = 5`,
`LOCUST_PING_RATE=5`, the web UI form), the key of a scenario's [tool.locust] (the same
name), and, for the stack's knobs, the flags of `python -m load stack up`, `agent` and
`demo` and a dimension of `python -m load sweep`. A row's default has the type of the
value: the web UI casts what is typed with `type(default)`. Values are checked where
they are used, once: LoadConfig, ChaosPlan and StackConfig.validate (load.config.settings).
"""

import argparse
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from load.config.handshake import HIDDEN, handshake_from, mask_header
from load.config.settings import (
    LAYERS,
    PROTOCOLS,
    RESTART_MODES,
    WS_ENGINES,
    ChaosPlan,
    ConfigError,
    DaphneOptions,
    LayerOptions,
    LoadConfig,
    StackConfig,
    parse_asgi_threads,
    parse_paths,
    parse_seconds_list,
    parse_targets,
    parse_threads_steps,
)


def threads_arg(text: str) -> int | str | None:
    """--asgi-threads on `python -m load`: '' or 'unset' is None, a whole number an int
    (StackConfig checks it is positive), anything else stays text for parse_asgi_threads to refuse."""
    text = text.strip()
    if text in ("", "unset"):
        return None
    return int(text) if text.isdecimal() and text.isascii() else text


@dataclass(frozen=True)
class Option:
    """One option of the suite.

    `name` is Locust's --name, the scenario key and the sweep dimension (its dest is the
    key in manifest.json). `stack` names the StackConfig field a stack knob sets
    ("app.capacity"); every stack knob is also a `python -m load stack up`/`agent`/`demo`
    flag and, when Locust has it, a sweep dimension.
    """

    name: str
    default: Any
    help: str
    form: bool = False  # shown in Locust's web form; False: set at start only (see START_ONLY)
    locust: bool = True  # a Locust option and scenario key; False: `stack up` and `agent` only
    group: str = "load"  # load, run, stack, plan (the chaos plan's keys), remote
    stack: str = ""  # the StackConfig field it sets: daphne_count, app.capacity, daphne.ping_interval
    aliases: tuple[str, ...] = ()  # `python -m load` spellings kept from before: --daphne, --layer
    env: str = ""  # the target app's environment variable it sets (see stack_config)
    example: str = ""  # sweep values, for help and errors
    parse: Callable[[str], Any] | None = None  # text -> value on `python -m load` (default: type(default))
    secret: bool = False  # never written to a run folder, a log or an error message
    choices: tuple[str, ...] = ()  # fixed values: a drop-down in the web form (checked by the settings)
    repeat: bool = False  # given once per value (--header A --header B): a list; a TOML list in a scenario

    @property
    def dest(self) -> str:
        return dest("--" + self.name)

    @property
    def flag(self) -> str:
        return "--" + self.name

    @property
    def field(self) -> str:
        """The StackConfig field's own name (capacity), which its ConfigError carries."""
        return self.stack.rpartition(".")[2]

    @property
    def cli_flag(self) -> str:
        """How `python -m load` names it: its old spelling where it had one."""
        return "--" + (self.aliases[0] if self.aliases else self.name)

    @property
    def sweepable(self) -> bool:
        return bool(self.stack) and self.locust

    @property
    def text_type(self) -> Callable[[str], Any]:
        """text -> value on `python -m load` (argparse names it in an error: 'invalid int value')."""
        return self.parse or (str if self.default is None else type(self.default))

    def from_text(self, text: str) -> Any:
        """A value given as text (a sweep's, the environment's) as the option holds it, or a ConfigError."""
        try:
            return self.text_type(text)
        except ValueError:
            kind = {int: "a whole number", float: "a number"}.get(type(self.default), "a value")
            raise ConfigError(self.dest, text, f"not {kind}") from None


_DAPHNE, _LAYER, _STACK = DaphneOptions(), LayerOptions(), StackConfig()
LOCAL = "with --stack local: "

# Options that run a command, name a file or a URL the Locust host uses, or carry a secret
# are not in the web form (form=False): whoever reaches the web form must not run commands
# or write files on the Locust host (see START_ONLY below).
OPTIONS: tuple[Option, ...] = (
    Option(
        "paths",
        "/ws/ping/",
        "websocket path(s), comma-separated, each optionally PATH:WEIGHT; users are spread over them",
        form=True,
    ),
    Option(
        "targets",
        "",
        "server URLs ws://HOST:PORT, comma-separated; users are spread over them (default: --host)",
        form=True,
    ),
    Option("ping-rate", 1.0, "pings per second per user, open loop: ping k is due at t0 + k/rate", form=True),
    Option("ping-jitter", 0.0, "fraction of the ping interval each due time may move by, 0 to 1", form=True),
    Option("payload-bytes", 0, "bytes of padding in each ping (echoed back by the target app)", form=True),
    Option("sleep-ms", 0.0, "target app: asynchronous sleep inside the handler, per ping", form=True),
    Option("work-ms", 0.0, "target app: blocking work on the endpoint's execution path, per ping", form=True),
    Option("pong-timeout", 5.0, "seconds after its due time a ping counts as pong_timeout", form=True),
    Option("connect-timeout", 5.0, "seconds a websocket connect (TCP + handshake) may take", form=True),
    Option(
        "reconnect-min", 0.5, "first reconnect delay in seconds; doubles per failure, with jitter", form=True
    ),
    Option("reconnect-max", 10.0, "cap of the reconnect delay in seconds", form=True),
    Option(
        "reconnect-on-timeout",
        False,
        "treat a pong timeout as a dead socket: close it and reconnect, as heartbeat clients do",
        form=True,
    ),
    Option(
        "protocol",
        "target",
        "target (the target app's JSON pings) or template (your server)",
        form=True,
        choices=PROTOCOLS,
    ),
    Option(
        "ws-engine",
        WS_ENGINES[0],
        "the websocket engine under each user: buffered (frames of our own, many per socket read), websocket-client, or websockets (sans-I/O)",
        form=True,
        choices=WS_ENGINES,
    ),
    Option(
        "ping-template",
        "",
        "template mode: the ping text, with {seq} where the sequence number goes",
        form=True,
    ),
    Option(
        "pong-field",
        "",
        "template mode: JSON field of the reply that holds the seq (empty: replies match pings in order)",
        form=True,
    ),
    # the handshake, for servers that check it (load.config.handshake)
    Option(
        "origin",
        "",
        "the handshake's Origin, e.g. https://staging.example.com (Django's AllowedHostsOriginValidator refuses others with 403)",
        form=True,
    ),
    Option("subprotocol", "", "websocket subprotocol(s) to offer, comma-separated, e.g. chat.v1", form=True),
    # Start-only: headers and cookies carry credentials, and Locust's form sends every field's value to the browser.
    Option(
        "header",
        [],
        "a handshake header 'Name: value', repeatable (credential headers' values are never written or logged)",
        repeat=True,
    ),
    Option("cookie", "", "the handshake's Cookie header, e.g. 'sessionid=...; csrftoken=...'", secret=True),
    Option(
        "seed",
        0,
        "random seed of the users' schedules and backoff (0: random); sweeps use one seed for every point",
        form=True,
    ),
    Option(
        "fail-on",
        "",
        "thresholds, e.g. 'error_rate>1%,p99_ms@/ws/ping/>500,recovery_s>10,killed>0': a breach exits with code 1",
        form=True,
        group="run",
    ),
    Option("run-label", "", "a label added to the run folder's name", form=True, group="run"),
    Option("results-dir", "results", "where run folders go", group="run"),
    Option("run-id", "", "name of the run folder (default: UTC time and label)", group="run"),
    # the local stack: its knobs, in the order a sweep names its points
    Option(
        "stack",
        "",
        "'local' starts Redis and Daphne here for the test and points the users at them",
        group="stack",
    ),
    Option(
        "asgi-threads",
        "",
        "ASGI_THREADS for Daphne, a positive number (default: unset, Daphne's own)",
        group="stack",
        stack="asgi_threads",
        env="ASGI_THREADS",
        example="1,4,8,unset",
        parse=threads_arg,
    ),
    Option(
        "stack-daphne",
        2,
        "number of Daphne instances",
        group="stack",
        stack="daphne_count",
        aliases=("daphne",),
        example="1,2",
    ),
    Option(
        "stack-layer",
        _LAYER.layer,
        "the channel layer, redis, redis-pubsub or memory",
        choices=LAYERS,
        group="stack",
        stack="app.layer",
        aliases=("layer",),
        env="CHANNEL_LAYER",
        example="redis,redis-pubsub",
    ),
    Option(
        "redis-socket-timeout",
        "",
        "redis-py socket_timeout of the target app ('' library default (5 s, FM-7), 'none', or seconds)",
        group="stack",
        stack="app.redis_socket_timeout",
        env="REDIS_SOCKET_TIMEOUT",
        example="default,none,3",
    ),
    Option(
        "channel-capacity",
        _LAYER.capacity,
        "channels_redis capacity of each channel",
        group="stack",
        stack="app.capacity",
        aliases=("capacity",),
        env="CHANNEL_CAPACITY",
        example="100,1000",
    ),
    Option(
        "channel-expiry",
        _LAYER.expiry,
        "channels_redis expiry of a message, s",
        group="stack",
        stack="app.expiry",
        aliases=("expiry",),
        env="CHANNEL_EXPIRY",
        example="10,60",
    ),
    Option(
        "group-expiry",
        _LAYER.group_expiry,
        "channels_redis group_expiry of a group member, s",
        group="stack",
        stack="app.group_expiry",
        env="GROUP_EXPIRY",
        example="60,86400",
    ),
    Option(
        "application-close-timeout",
        _DAPHNE.application_close_timeout,
        "Daphne's --application-close-timeout, s (FM-1)",
        group="stack",
        stack="daphne.application_close_timeout",
        example="3,10",
    ),
    Option(
        "websocket-connect-timeout",
        _DAPHNE.websocket_connect_timeout,
        "Daphne's --websocket_connect_timeout, s (FM-8)",
        group="stack",
        stack="daphne.websocket_connect_timeout",
        example="5,30",
    ),
    Option(
        "websocket-timeout",
        _DAPHNE.websocket_timeout,
        "Daphne's --websocket_timeout: a socket's longest life, s",
        group="stack",
        stack="daphne.websocket_timeout",
        example="60,86400",
    ),
    Option(
        "daphne-ping-interval",
        _DAPHNE.ping_interval,
        "Daphne's --ping-interval: seconds between its websocket pings",
        group="stack",
        stack="daphne.ping_interval",
        aliases=("ping-interval",),
        example="5,20",
    ),
    Option(
        "daphne-ping-timeout",
        _DAPHNE.ping_timeout,
        "Daphne's --ping-timeout: seconds without a reply before it closes the socket",
        group="stack",
        stack="daphne.ping_timeout",
        aliases=("ping-timeout",),
        example="10,30",
    ),
    Option(
        "kill-after",
        _STACK.kill_after,
        "seconds from SIGTERM to SIGKILL in a graceful restart or stop",
        group="stack",
        stack="kill_after",
        example="1,10",
    ),
    Option(
        "ready-timeout",
        _STACK.ready_timeout,
        "seconds each process may take to be ready",
        group="stack",
        stack="ready_timeout",
        example="30,60",
    ),
    Option(
        "stack-versions",
        _STACK.versions,
        "the versions the target app runs with: current (the suite's own) or a pinned set stacks/NAME.txt, "
        "e.g. channels2, in its own virtualenv (built on first use into .stacks/)",
        group="stack",
        stack="versions",
        example="current,channels2",
    ),
    Option(
        "redis-url",
        None,
        "use this Redis instead of starting one",
        locust=False,
        group="stack",
        stack="redis_url",
    ),
    Option(
        "daphne-bind",
        _STACK.daphne_bind,
        "address Daphne listens on (0.0.0.0 for load from other hosts)",
        locust=False,
        group="stack",
        stack="daphne_bind",
    ),
    Option(
        "base-port",
        _STACK.base_port,
        "instance i listens on BASE_PORT + i (0: free ports)",
        locust=False,
        group="stack",
        stack="base_port",
    ),
    # the chaos plan
    Option(
        "restart-at",
        "",
        "restart Daphne at these seconds into the run, comma-separated",
        form=True,
        group="plan",
    ),
    Option("restart-every", 0.0, "restart Daphne every N seconds (0: never)", form=True, group="plan"),
    Option(
        "restart-mode",
        "graceful",
        "graceful (SIGTERM, SIGKILL after --kill-after) or hard (SIGKILL)",
        form=True,
        choices=RESTART_MODES,
        group="plan",
    ),
    Option(
        "restart-which",
        "all",
        "all (at once), rolling (one at a time, each waiting for ready) or an instance number",
        form=True,
        group="plan",
    ),
    Option(
        "asgi-threads-steps",
        "",
        "ASGI_THREADS staircase, e.g. 1,4,8 ('unset' for Daphne's default); each step restarts Daphne",
        form=True,
        group="plan",
    ),
    Option("step-seconds", 0.0, "seconds each ASGI_THREADS step lasts", form=True, group="plan"),
    Option(
        "redis-restart-at",
        "",
        "restart Redis at these seconds into the run (local stack or agent)",
        form=True,
        group="plan",
    ),
    Option(
        "redis-flush-at",
        "",
        "FLUSHDB the channel layer's Redis at these seconds (the workaround of channels_redis #81)",
        form=True,
        group="plan",
    ),
    Option(
        "chaos-plan",
        "",
        "a TOML file with a [chaos] table of the options above (restart_at = [20, 40], ...)",
        group="remote",
    ),
    # where the plan is carried out, for servers the suite did not start
    Option(
        "agent-url",
        [],
        "a `python -m load agent` on a server host, http://HOST:PORT; repeatable, one per host "
        "(their instances numbered across them in this order)",
        group="remote",
        repeat=True,
    ),
    Option("agent-token", "", "the agents' token (one for all of them)", group="remote", secret=True),
    Option(
        "restart-cmd",
        "",
        "a shell command that restarts instance {instance} (mode {mode}), e.g. 'ssh app1 sudo systemctl restart daphne@{instance}'",
        group="remote",
    ),
    Option(
        "hook-instances",
        1,
        "how many instances --restart-cmd addresses (0 .. N-1)",
        form=True,
        group="remote",
    ),
    Option(
        "hook-timeout",
        60.0,
        "seconds a --restart-cmd may take before it is killed and counted as failed",
        form=True,
        group="remote",
    ),
    Option(
        "chaos-failures-ok",
        False,
        "a chaos action that failed or was aborted leaves the exit code alone (default: exit code 1, as the run did not test what it meant to)",
        form=True,
        group="remote",
    ),
    # what the server says, for servers the suite did not start
    Option(
        "redis-probe-url",
        "",
        "the channel layer's Redis to sample each second (default: the local stack's)",
        group="remote",
    ),
    Option(
        "server-log",
        "",
        "Daphne log file(s) to follow, a glob (default: the local stack's logs)",
        group="remote",
    ),
    Option(
        "server-log-cmd",
        "",
        "a command whose output is Daphne's log, e.g. 'ssh app1 journalctl -fu daphne'",
        group="remote",
    ),
)
# user:password@ in a URL (a Redis URL with a password, say) is hidden the same way
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/@:\s]*:)[^/@\s]+@")


def dest(option: str) -> str:
    """--agent-token -> agent_token, the attribute argparse gives it."""
    return option[2:].replace("-", "_")


LOCUST_OPTIONS = tuple(option for option in OPTIONS if option.locust)
STACK_OPTIONS = tuple(option for option in OPTIONS if option.stack)
# The stack's knobs Locust has (--stack local); each is also a sweep dimension.
LOCAL_STACK_OPTIONS = SWEEP_OPTIONS = tuple(option for option in OPTIONS if option.sweepable)
DEFAULTS = {option.dest: option.default for option in OPTIONS}
PLAN_KEYS = tuple(option.dest for option in OPTIONS if option.group == "plan")
# Scenario keys and --set names: Locust's spelling; an old `python -m load` spelling maps to it.
ALIASES = {alias: option.name for option in OPTIONS for alias in option.aliases}
# The target app's variables the stack sets from its options (load.supervise.stack)
APP_ENVIRONMENT = frozenset(option.env for option in STACK_OPTIONS if option.env)
# How each entry point spells a setting in an error (ConfigError.as_option): a StackConfig
# field (daphne_count) or an option's dest (stack_daphne) as Locust's option, and as
# `python -m load`'s flag.
LOCUST_NAMES = {option.field: option.flag for option in STACK_OPTIONS}
CLI_NAMES = {
    **{option.field: option.cli_flag for option in STACK_OPTIONS},
    **{option.dest: option.cli_flag for option in STACK_OPTIONS},
}

# The one list of secrets: never written to a run folder, a log or an error message.
SECRET_OPTIONS = frozenset(option.flag for option in OPTIONS if option.secret)
# Set only on the command line, in LOCUST_* variables or a config file, never from the web
# form: every option of ours the form does not show (load.user.plugin refuses a form that sets one).
START_ONLY = frozenset(option.dest for option in LOCUST_OPTIONS if not option.form)
SECRETS = frozenset(dest(option) for option in SECRET_OPTIONS)
FORM_FIELDS = frozenset(option.dest for option in LOCUST_OPTIONS if option.form)


def mask_text(text: str) -> str:
    """text with the password of any URL in it hidden."""
    return _URL_PASSWORD.sub(lambda m: m["head"] + HIDDEN + "@", text)


def mask_argv(argv: list[str]) -> list[str]:
    """A command line with every secret option's value `<hidden>`, as written or abbreviated.

    Both `--agent-token X` and `--agent-token=X`; argparse also takes an unambiguous
    prefix (`--agent-tok X`), so those are hidden too.
    """
    masked: list[str] = []
    hide_next = header_next = False
    for arg in map(str, argv):
        if hide_next or header_next:
            masked.append(HIDDEN if hide_next else mask_header(arg))
            hide_next = header_next = False
            continue
        name, equals, value = arg.partition("=")
        if _is_secret_option(name):
            masked.append(f"{name}={HIDDEN}" if equals else name)
            hide_next = not equals
            continue
        if _is_header_option(name):  # a credential header's value, as --header's
            masked.append(f"{name}={mask_header(value)}" if equals else name)
            header_next = not equals
            continue
        masked.append(mask_text(arg))
    return masked


def _is_secret_option(name: str) -> bool:
    if not name.startswith("--") or len(name) < 3:
        return False
    others = [option.flag for option in OPTIONS if not option.secret]
    return any(secret.startswith(name) for secret in SECRET_OPTIONS) and not any(
        o.startswith(name) for o in others
    )


def _is_header_option(name: str) -> bool:
    return (
        len(name) > 3
        and "--header".startswith(name)
        and not any(o.flag.startswith(name) for o in OPTIONS if o.name != "header")
    )


def take_agent_token(options: Any) -> str:
    """The agent token, taken out of the parsed options: a Locust master sends every parsed
    option to its workers with each spawn message, and workers never talk to an agent."""
    token = getattr(options, "agent_token", "") or ""
    if token:
        options.agent_token = ""
    return token


def mask_options(values: dict[str, Any]) -> dict[str, Any]:
    """Option values (argparse names) with secrets `<hidden>` (when set), credential headers'
    values and URL passwords hidden."""
    masked: dict[str, Any] = {}
    for key, value in values.items():
        if key in SECRETS and value:
            masked[key] = HIDDEN
        elif key == "header" and isinstance(value, list):
            masked[key] = [mask_header(str(line)) for line in value]
        elif key == "header" and isinstance(value, str):  # as a form posts it
            masked[key] = mask_header(value)
        elif isinstance(value, list):  # a repeated option's values (--agent-url A --agent-url B)
            masked[key] = [mask_text(item) if isinstance(item, str) else item for item in value]
        else:
            masked[key] = mask_text(value) if isinstance(value, str) else value
    return masked


class HelpText(str):
    """A help text that argparse prints as written: it formats help with `%`, so a plain
    string would need "%%", which Locust's web form would show as it is."""

    def __mod__(self, params: object) -> str:
        return str(self)


class FormChoices(tuple):
    """An option's fixed values for Locust's web form (it draws a drop-down from an
    argument's choices) that argparse does not check itself: a wrong value gets the
    settings' one-line error naming the value and the choices, not argparse's usage dump."""

    def __contains__(self, value: object) -> bool:
        return True


def add_options(parser: Any) -> None:
    """The suite's Locust options (Locust's parser, which takes env_var and include_in_web_ui)."""
    for option in LOCUST_OPTIONS:
        help_text = LOCAL + option.help if option.stack else option.help
        shown = f"{help_text} (default: {option.default})" if option.default != "" else help_text
        shown = HelpText(shown)  # the web form shows it as written: no "%%"
        common = {
            "default": option.default,
            "help": shown,
            "env_var": "LOCUST_" + option.dest.upper(),
            "include_in_web_ui": option.form,
        }
        if isinstance(option.default, bool):  # a checkbox in the web UI, a flag on the command line
            parser.add_argument(option.flag, action="store_true", **common)
            continue
        if option.repeat:  # configargparse turns a TOML list or LOCUST_X='["a", "b"]' into repeats
            common["help"] = option.help
            parser.add_argument(option.flag, action="append", metavar="TEXT", **common)
            continue
        kind = type(option.default)
        if option.choices:
            common["choices"] = FormChoices(option.choices)
        parser.add_argument(
            option.flag, type=kind, metavar=kind.__name__.upper(), is_secret=option.secret, **common
        )


STACK_GROUPS = {
    "app": "target app (channel layer)",
    "daphne": "daphne flags (defaults are Daphne's)",
    "": "stack",
}


def add_stack_flags(
    parser: argparse.ArgumentParser, defaults: Mapping[str, Any] | None = None, locust_only: bool = False
) -> None:
    """The stack's knobs as `python -m load` flags: the old spelling first (--daphne), then
    Locust's (--stack-daphne); `defaults` by dest where a command's own differ."""
    defaults = defaults or {}
    groups: dict[str, Any] = {}
    for option in STACK_OPTIONS:
        if locust_only and not option.locust:
            continue
        section = option.stack.rpartition(".")[0]
        if section not in groups:
            groups[section] = parser.add_argument_group(STACK_GROUPS[section])
        default = defaults.get(option.dest, option.default)
        flags = dict.fromkeys(["--" + alias for alias in option.aliases] + [option.flag])
        shown = f"{option.help} (default: {default})" if default not in ("", None) else option.help
        groups[section].add_argument(
            *flags,
            dest=option.dest,
            type=option.text_type,
            default=default,
            help=shown.replace("%", "%%"),
            metavar=type(option.default).__name__.upper() if option.default not in ("", None) else "VALUE",
        )


def add_sweep_flags(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """Each stack knob Locust has, as a sweep dimension: comma-separated values."""
    for option in SWEEP_OPTIONS:
        flags = dict.fromkeys(["--" + alias for alias in option.aliases] + [option.flag])
        parser.add_argument(
            *flags,
            dest=option.dest,
            default="",
            metavar="VALUES",
            help=f"{option.help}: values, e.g. {option.example}".replace("%", "%%"),
        )


def at_default(option: Option, value: Any) -> bool:
    return value == option.default or (value in ("", None) and option.default in ("", None))


def _field_value(option: Option, value: Any) -> Any:
    """An option's value as its StackConfig field takes it: '' is unset (None) where unset is the default."""
    if value in ("", None) and option.default in ("", None):
        return None
    if option.stack == "asgi_threads" and isinstance(value, str):
        return parse_asgi_threads(value)
    return value


def _from_environment(option: Option, value: Any, environ: Mapping[str, str]) -> tuple[Any, str, bool]:
    """The value to use, the line that says where it came from ('' when there is nothing to
    say), and whether it is the environment's: a variable set there is used when the option
    was left at its default; an option given wins."""
    raw = environ.get(option.env, "") if option.env else ""
    if raw == "":
        return value, "", False
    if not at_default(option, value):
        return (
            value,
            f"{option.env}={raw!r} in the environment is not used: {option.name} {value!r} was given",
            False,
        )
    try:
        parsed = parse_asgi_threads(raw) if option.stack == "asgi_threads" else option.from_text(raw)
    except ConfigError as exc:
        raise ConfigError(
            option.env, raw, f"{exc.fix} (set in the environment; fix it or unset it)"
        ) from None
    return parsed, f"{option.env}={raw!r} from the environment ({option.name} was left at its default)", True


def stack_config(
    values: Mapping[str, Any], log_dir: Path, environ: Mapping[str, str] | None = None
) -> tuple[StackConfig, list[str]]:
    """The one StackConfig of a run, validated, from option values by dest (Locust's or
    `python -m load`'s); a missing value is the option's default.

    The target app's variables (CHANNEL_CAPACITY, GROUP_EXPIRY, ...), which the stack sets
    from these options: an option given wins; a variable set in `environ` is used when its
    option was left at its default. Either way one line says so, returned for the caller
    to show.
    """
    environ = os.environ if environ is None else environ
    sections: dict[str, dict[str, Any]] = {"": {}, "app": {}, "daphne": {}}
    notes, from_env = [], {}
    for option in STACK_OPTIONS:
        value, note, used = _from_environment(option, values.get(option.dest, option.default), environ)
        notes += [note] if note else []
        if used:
            from_env[option.field] = option
        section, _dot, name = option.stack.rpartition(".")
        sections[section][name] = _field_value(option, value)
    config = StackConfig(
        **sections[""],
        app=LayerOptions(**sections["app"]),
        daphne=DaphneOptions(**sections["daphne"]),
        log_dir=log_dir,
    )
    try:
        config.validate()
    except ConfigError as exc:
        if exc.name in from_env:  # named by the variable the value came from, not by an option not given
            option = from_env[exc.name]
            raise ConfigError(
                option.env, environ[option.env], f"{exc.fix} (set in the environment; fix it or unset it)"
            ) from None
        raise
    return config, notes


def config_from_options(options: Any, host: str | None) -> LoadConfig:
    """Build and validate the users' LoadConfig; raises ConfigError."""
    targets_text = options.targets or host or ""
    return LoadConfig(
        targets=parse_targets(targets_text),
        paths=parse_paths(options.paths),
        ping_rate=options.ping_rate,
        ping_jitter=options.ping_jitter,
        payload_bytes=options.payload_bytes,
        sleep_ms=options.sleep_ms,
        work_ms=options.work_ms,
        pong_timeout=options.pong_timeout,
        connect_timeout=options.connect_timeout,
        reconnect_min=options.reconnect_min,
        reconnect_max=options.reconnect_max,
        reconnect_on_timeout=options.reconnect_on_timeout,
        seed=options.seed,
        protocol=options.protocol,
        ping_template=options.ping_template,
        pong_field=options.pong_field,
        handshake=handshake_from(options.header, options.origin, options.cookie, options.subprotocol),
        ws_engine=options.ws_engine,
        run_label=options.run_label,
        results_dir=Path(options.results_dir),
    ).validate()


@dataclass
class RunConfig:
    """The configuration of the current test run in this process, or why there is none."""

    config: LoadConfig | None = None
    error: ConfigError | None = None


_current: dict[int, RunConfig] = {}


def set_run_config(environment: Any, run: RunConfig) -> None:
    _current[id(environment)] = run


def load_config(environment: Any) -> LoadConfig:
    """The validated LoadConfig of this run; computed on first use if the plugin has not."""
    run = _current.get(id(environment))
    if run is None:
        run = RunConfig()
        try:
            run.config = config_from_options(environment.parsed_options, environment.host)
        except ConfigError as exc:
            run.error = exc
        set_run_config(environment, run)
    if run.error is not None:
        raise run.error
    assert run.config is not None  # a RunConfig holds a config or the error that prevented it
    return run.config


def plan_from_options(options: Any) -> ChaosPlan:
    """The chaos plan: options as given, filled in from --chaos-plan's [chaos] table."""
    values = {key: getattr(options, key) for key in PLAN_KEYS}
    if options.chaos_plan:
        for key, value in read_plan_file(options.chaos_plan).items():
            if values[key] == DEFAULTS[key]:
                values[key] = ",".join(map(str, value)) if isinstance(value, list) else value
    return ChaosPlan(
        restart_at=parse_seconds_list("restart_at", str(values["restart_at"])),
        restart_every=_seconds("restart_every", values["restart_every"]),
        restart_mode=values["restart_mode"],
        restart_which=str(values["restart_which"]),
        asgi_threads_steps=parse_threads_steps(str(values["asgi_threads_steps"])),
        step_seconds=_seconds("step_seconds", values["step_seconds"]),
        redis_restart_at=parse_seconds_list("redis_restart_at", str(values["redis_restart_at"])),
        redis_flush_at=parse_seconds_list("redis_flush_at", str(values["redis_flush_at"])),
    ).validate()


def _seconds(key: str, value: Any) -> float:
    """A number of seconds from an option or a [chaos] table, where TOML may hold any type."""
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(key, value, "give seconds, a number") from None


def read_plan_file(path: str) -> dict:
    try:
        with open(path, "rb") as handle:
            table = tomllib.load(handle).get("chaos", {})
    except OSError as exc:
        raise ConfigError("chaos_plan", path, f"cannot read it ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("chaos_plan", path, f"not valid TOML: {exc}") from None
    unknown = sorted(set(table) - set(PLAN_KEYS))
    if unknown:
        raise ConfigError(
            "chaos_plan",
            path,
            f"unknown key(s) {', '.join(unknown)} in [chaos]; known: {', '.join(PLAN_KEYS)}",
        )
    return table
