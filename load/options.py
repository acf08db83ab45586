"""The suite's Locust options, declared once.

Each declaration serves `locust --help`, locust.conf (`ping-rate = 5`), environment
variables (`LOCUST_PING_RATE=5`) and the web UI form. Defaults have the type of the value:
the web UI casts what is typed with `type(default)`.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from load.config import ConfigError, LoadConfig, parse_paths, parse_targets

# (option, default, help, shown in the web UI)
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
    ("--protocol", "target", "target (the target app's JSON pings) or template (your server)", True),
    ("--ping-template", "", "template mode: the ping text, with {seq} where the sequence number goes", True),
    ("--pong-field", "", "template mode: JSON field of the reply that holds the seq (empty: replies match pings in order)", True),
    ("--run-label", "", "a label added to the run folder's name", True),
    ("--results-dir", "results", "where run folders go", True),
    ("--run-id", "", "name of the run folder (default: UTC time and label)", False),
    ("--stack", "", "'local' starts Redis and Daphne here for the test and points the users at them", False),
    ("--stack-daphne", 2, "with --stack local: number of Daphne instances", False),
    ("--asgi-threads", 0, "with --stack local: ASGI_THREADS for Daphne (0: unset)", False),
    ("--redis-socket-timeout", "", "with --stack local: redis-py socket_timeout of the target app ('' library default, 'none', or seconds)", False),
)


def add_options(parser) -> None:
    for option, default, help_text, in_web_ui in OPTIONS:
        env_var = "LOCUST_" + option[2:].replace("-", "_").upper()
        shown = f"{help_text} (default: {default})" if default != "" else help_text
        parser.add_argument(
            option, type=type(default), default=default, help=shown, env_var=env_var, include_in_web_ui=in_web_ui,
            metavar=type(default).__name__.upper(),
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
