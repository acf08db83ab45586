"""The suite's Locust options, declared once.

Each declaration serves `locust --help`, locust.conf (`ping-rate = 5`), environment
variables (`LOCUST_PING_RATE=5`) and the web UI form. Defaults have the type of the value:
the web UI casts what is typed with `type(default)`.
"""

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from load.config.settings import (
    ChaosPlan,
    ConfigError,
    LoadConfig,
    parse_paths,
    parse_seconds_list,
    parse_targets,
    parse_threads_steps,
)

# (option, default, help, shown in the web UI). Options that run a command, name a file or a
# URL the Locust host uses, or carry a secret are not shown: whoever reaches the web form
# must not run commands or write files on the Locust host (see START_ONLY below).
OPTIONS: tuple[tuple[str, Any, str, bool], ...] = (
    ("--paths", "/ws/ping/", "websocket path(s), comma-separated, each optionally PATH:WEIGHT; users are spread over them", True),
    ("--targets", "", "server URLs ws://HOST:PORT, comma-separated; users are spread over them (default: --host)", True),
    ("--ping-rate", 1.0, "pings per second per user, open loop: ping k is due at t0 + k/rate", True),
    ("--ping-jitter", 0.0, "fraction of the ping interval each due time may move by, 0 to 1", True),
    ("--payload-bytes", 0, "bytes of padding in each ping (echoed back by the target app)", True),
    ("--sleep-ms", 0.0, "target app: asynchronous sleep inside the handler, per ping", True),
    ("--work-ms", 0.0, "target app: blocking work on the endpoint's execution path, per ping", True),
    ("--pong-timeout", 5.0, "seconds after its due time a ping counts as pong_timeout", True),
    ("--connect-timeout", 5.0, "seconds a websocket connect (TCP + handshake) may take", True),
    ("--reconnect-min", 0.5, "first reconnect delay in seconds; doubles per failure, with jitter", True),
    ("--reconnect-max", 10.0, "cap of the reconnect delay in seconds", True),
    ("--reconnect-on-timeout", False, "treat a pong timeout as a dead socket: close it and reconnect, as heartbeat clients do", True),
    ("--protocol", "target", "target (the target app's JSON pings) or template (your server)", True),
    ("--ping-template", "", "template mode: the ping text, with {seq} where the sequence number goes", True),
    ("--pong-field", "", "template mode: JSON field of the reply that holds the seq (empty: replies match pings in order)", True),
    ("--seed", 0, "random seed of the users' schedules and backoff (0: random); sweeps use one seed for every point", True),
    ("--fail-on", "", "thresholds, e.g. 'error_rate>1%,p99_ms@/ws/ping/>500,recovery_s>10,killed>0': a breach exits with code 1", True),
    ("--run-label", "", "a label added to the run folder's name", True),
    ("--results-dir", "results", "where run folders go", False),
    ("--run-id", "", "name of the run folder (default: UTC time and label)", False),
    ("--stack", "", "'local' starts Redis and Daphne here for the test and points the users at them", False),
    ("--stack-daphne", 2, "with --stack local: number of Daphne instances", False),
    ("--asgi-threads", "", "with --stack local: ASGI_THREADS for Daphne, a positive number (default: unset, Daphne's own)", False),
    ("--redis-socket-timeout", "", "with --stack local: redis-py socket_timeout of the target app ('' library default, 'none', or seconds)", False),
    ("--kill-after", 10.0, "with --stack local: seconds from SIGTERM to SIGKILL in a graceful restart", False),
    ("--stack-layer", "redis", "with --stack local: the channel layer, redis, redis-pubsub or memory", False),
    ("--application-close-timeout", 10.0, "with --stack local: Daphne's --application-close-timeout", False),
    ("--websocket-connect-timeout", 5.0, "with --stack local: Daphne's --websocket_connect_timeout", False),
    # the chaos plan
    ("--restart-at", "", "restart Daphne at these seconds into the run, comma-separated", True),
    ("--restart-every", 0.0, "restart Daphne every N seconds (0: never)", True),
    ("--restart-mode", "graceful", "graceful (SIGTERM, SIGKILL after --kill-after) or hard (SIGKILL)", True),
    ("--restart-which", "all", "all (at once), rolling (one at a time, each waiting for ready) or an instance number", True),
    ("--asgi-threads-steps", "", "ASGI_THREADS staircase, e.g. 1,4,8 ('unset' for Daphne's default); each step restarts Daphne", True),
    ("--step-seconds", 0.0, "seconds each ASGI_THREADS step lasts", True),
    ("--redis-restart-at", "", "restart Redis at these seconds into the run (local stack or agent)", True),
    ("--redis-flush-at", "", "FLUSHDB the channel layer's Redis at these seconds (the workaround of channels_redis #81)", True),
    ("--chaos-plan", "", "a TOML file with a [chaos] table of the options above (restart_at = [20, 40], ...)", False),
    # where the plan is carried out, for servers the suite did not start
    ("--agent-url", "", "a `python -m load agent` on the server host: http://HOST:PORT", False),
    ("--agent-token", "", "the agent's token", False),
    ("--restart-cmd", "", "a shell command that restarts instance {instance} (mode {mode}), e.g. 'ssh app1 sudo systemctl restart daphne@{instance}'", False),
    ("--hook-instances", 1, "how many instances --restart-cmd addresses (0 .. N-1)", True),
    ("--hook-timeout", 60.0, "seconds a --restart-cmd may take before it is killed and counted as failed", True),
    ("--chaos-failures-ok", False, "a chaos action that failed or was aborted leaves the exit code alone (default: exit code 1, as the run did not test what it meant to)", True),
    # what the server says, for servers the suite did not start
    ("--redis-probe-url", "", "the channel layer's Redis to sample each second (default: the local stack's)", False),
    ("--server-log", "", "Daphne log file(s) to follow, a glob (default: the local stack's logs)", False),
    ("--server-log-cmd", "", "a command whose output is Daphne's log, e.g. 'ssh app1 journalctl -fu daphne'", False),
)
# The one list of secrets: never written to a run folder, a log or an error message.
SECRET_OPTIONS = frozenset({"--agent-token"})
HIDDEN = "<hidden>"
# user:password@ in a URL (a Redis URL with a password, say) is hidden the same way
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/@:\s]*:)[^/@\s]+@")


def dest(option: str) -> str:
    """--agent-token -> agent_token, the attribute argparse gives it."""
    return option[2:].replace("-", "_")


# Set only on the command line, in LOCUST_* variables or a config file, never from the web
# form: every option of ours the form does not show (load.user.plugin refuses a form that sets one).
START_ONLY = frozenset(dest(option) for option, _default, _help, shown in OPTIONS if not shown)
SECRETS = frozenset(dest(option) for option in SECRET_OPTIONS)


def mask_text(text: str) -> str:
    """text with the password of any URL in it hidden."""
    return _URL_PASSWORD.sub(lambda m: m["head"] + HIDDEN + "@", text)


def mask_argv(argv: list[str]) -> list[str]:
    """A command line with every secret option's value `<hidden>`, as written or abbreviated.

    Both `--agent-token X` and `--agent-token=X`; argparse also takes an unambiguous
    prefix (`--agent-tok X`), so those are hidden too.
    """
    masked: list[str] = []
    hide_next = False
    for arg in map(str, argv):
        if hide_next:
            masked.append(HIDDEN)
            hide_next = False
            continue
        name, equals, _value = arg.partition("=")
        if _is_secret_option(name):
            masked.append(f"{name}={HIDDEN}" if equals else name)
            hide_next = not equals
            continue
        masked.append(mask_text(arg))
    return masked


def _is_secret_option(name: str) -> bool:
    if not name.startswith("--") or len(name) < 3:
        return False
    others = [option for option, _d, _h, _s in OPTIONS if option not in SECRET_OPTIONS]
    return any(secret.startswith(name) for secret in SECRET_OPTIONS) and not any(o.startswith(name) for o in others)


def mask_options(values: dict[str, Any]) -> dict[str, Any]:
    """Option values (argparse names) with secrets `<hidden>` (when set) and URL passwords hidden."""
    masked: dict[str, Any] = {}
    for key, value in values.items():
        if key in SECRETS and value:
            masked[key] = HIDDEN
        else:
            masked[key] = mask_text(value) if isinstance(value, str) else value
    return masked


def add_options(parser) -> None:
    for option, default, help_text, in_web_ui in OPTIONS:
        env_var = "LOCUST_" + dest(option).upper()
        shown = f"{help_text} (default: {default})" if default != "" else help_text
        shown = shown.replace("%", "%%")  # argparse formats help with %
        common = {"default": default, "help": shown, "env_var": env_var, "include_in_web_ui": in_web_ui}
        if isinstance(default, bool):  # a checkbox in the web UI, a flag on the command line
            parser.add_argument(option, action="store_true", **common)
            continue
        parser.add_argument(
            option, type=type(default), metavar=type(default).__name__.upper(), is_secret=option in SECRET_OPTIONS, **common
        )


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
    return run.config


PLAN_KEYS = ("restart_at", "restart_every", "restart_mode", "restart_which", "asgi_threads_steps", "step_seconds",
             "redis_restart_at", "redis_flush_at")


def plan_from_options(options: Any) -> ChaosPlan:
    """The chaos plan: options as given, filled in from --chaos-plan's [chaos] table."""
    values = {key: getattr(options, key) for key in PLAN_KEYS}
    if options.chaos_plan:
        defaults = {option[2:].replace("-", "_"): default for option, default, _help, _ui in OPTIONS}
        for key, value in read_plan_file(options.chaos_plan).items():
            if values[key] == defaults[key]:
                values[key] = ",".join(map(str, value)) if isinstance(value, list) else value
    return ChaosPlan(
        restart_at=parse_seconds_list("restart_at", str(values["restart_at"])),
        restart_every=float(values["restart_every"]),
        restart_mode=values["restart_mode"],
        restart_which=str(values["restart_which"]),
        asgi_threads_steps=parse_threads_steps(str(values["asgi_threads_steps"])),
        step_seconds=float(values["step_seconds"]),
        redis_restart_at=parse_seconds_list("redis_restart_at", str(values["redis_restart_at"])),
        redis_flush_at=parse_seconds_list("redis_flush_at", str(values["redis_flush_at"])),
    ).validate()


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
        raise ConfigError("chaos_plan", path, f"unknown key(s) {', '.join(unknown)} in [chaos]; known: {', '.join(PLAN_KEYS)}")
    return table
