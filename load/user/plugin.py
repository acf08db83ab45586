"""The glue between the suite and Locust's events.

Roles, as Locust has them: a local runner records, merges and writes; workers record and
ship their windows to the master (every report via `report_to_master`, and a final
message at `test_stop`); the master merges and writes. Files are written only where the
run is whole: on the master or the local runner.

Importing this module registers the listeners; locustfile.py does that.
"""

import glob
import json
import logging
import os
import shlex
import signal
import socket
import sys
from dataclasses import asdict, replace
from pathlib import Path
from urllib.parse import urlparse

import gevent
import psutil
import websocket
from locust import events
from locust.runners import MasterRunner, WorkerRunner

from load.agent.client import AgentClient, AgentError
from load.analysis.detectors import failure_line
from load.analysis.livethresholds import BreachWatch
from load.analysis.thresholds import check as thresholds_check
from load.analysis.thresholds import parse_thresholds
from load.chaos.controller import HookTarget, LocalStackTarget, TargetError
from load.chaos.remote import AgentMirror, AgentTarget, RemoteAgent, remote_agents
from load.config.options import (
    DEFAULTS,
    LOCUST_NAMES,
    PLAN_KEYS,
    RunConfig,
    add_options,
    config_from_options,
    mask_argv,
    mask_options,
    plan_from_options,
    set_run_config,
    stack_config,
    take_agent_token,
)
from load.config.settings import (
    REPO_ROOT,
    ChaosPlan,
    ConfigError,
    LoadConfig,
    StackConfig,
    check_run_folder,
)
from load.measure import clock
from load.measure.timeline import timeline_for
from load.probes.serverlog import CommandFollower, ServerLogFollower, daphne_logs
from load.runfolder.eventlog import EventLog
from load.runfolder.manifest import build_manifest
from load.runfolder.names import (
    CHAOS_FAILURES,
    CHAOS_PLAN,
    EVENTS_JSONL,
    REMOTE_LOG,
    SENT,
    SERVER_DIR,
    SHIPPED_TO_MASTER,
    STACK_FOLDER_PREFIX,
    TARGET_STACK,
    THRESHOLD_BREACHES,
    THRESHOLD_NOTES,
)
from load.runfolder.runids import new_run_id
from load.supervise.redisserver import StackError
from load.supervise.stack import Stack
from load.user.chaostab.web import install_chaos_tab
from load.user.clocksync import ClockProbe, serve_the_clock
from load.user.locustcsv import SwarmCsv
from load.user.recorder import RunRecorder, ServerSide, until_next_second
from load.user.webform import guard_web_form
from load.wire.errors import handshake_hint
from load.wire.protocol import matching_warnings

logger = logging.getLogger("load")

NO_TARGET = "a chaos plan needs something to act on: --stack local, --agent-url or --restart-cmd"
TIMELINE_KEY = "channels_timeline"
DELIVERIES_KEY = "channels_deliveries"
FINAL_MESSAGE = "channels_timeline_final"


@events.init_command_line_parser.add_listener
def _add_options(parser, **_kwargs) -> None:
    add_options(parser)


@events.init.add_listener
def _keep_the_agent_token_aside(environment, **_kwargs) -> None:
    """Out of parsed_options before the web form's guard copies them: a Locust master sends
    every parsed option to its workers with each spawn message, and workers never talk to
    an agent. Registered first of all, so the guard sees (and protects) an empty token."""
    environment.channels_agent_token = take_agent_token(environment.parsed_options)


@events.init.add_listener
def _guard_web_form(environment, **_kwargs) -> None:
    # Registered before _on_init, so its test_start listener runs before the plugin's.
    guard_web_form(environment)


@events.init.add_listener
def _forget_the_agent_token(environment, **_kwargs) -> None:
    # Parsed already: the commands and processes this Locust starts do not need the token.
    os.environ.pop("LOCUST_AGENT_TOKEN", None)


@events.init.add_listener
def _on_init(environment, **_kwargs) -> None:
    restore_sigint()
    if environment.parsed_options is not None and hasattr(environment.parsed_options, "ping_rate"):
        SuitePlugin(environment)


def restore_sigint() -> None:
    """A `locust` started in the background by a non-interactive shell inherits SIGINT
    ignored; Locust installs no SIGINT handler of its own (but in the parent of
    --processes), so without this it would not stop on SIGINT, nor its --processes workers."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def log_shipped(windows: dict[str, dict]) -> dict[str, dict]:
    """At DEBUG, a worker's pings sent per second as shipped to the master (how the tests
    check that the master's seconds are the sum of its workers')."""
    if windows and logger.isEnabledFor(logging.DEBUG):
        sent = {s: sum(e["c"].get(SENT, 0) for e in w["e"].values()) for s, w in sorted(windows.items())}
        logger.debug("%s %s", SHIPPED_TO_MASTER, json.dumps(sent))
    return windows


def die(message: str) -> None:
    """A user's mistake at start-up: one line, exit code 2, and no process of ours left."""
    sys.stderr.write(f"locust: error: {message}\n")
    for child in psutil.Process().children(recursive=True):
        child.kill()
    sys.exit(2)


def checked_agents(options, token: str) -> list[RemoteAgent]:
    """Every --agent-url (one token for all), once each has answered; silence or a refused
    token is a ConfigError naming that URL."""
    urls = [options.agent_url] if isinstance(options.agent_url, str) else list(options.agent_url)
    clients: list[AgentClient] = []
    for url in urls:
        client = AgentClient(url, token)
        if client.url in [c.url for c in clients]:  # its instances would be restarted twice over
            raise ConfigError("agent_url", url, "given twice; give each agent once")
        try:
            client.status()
        except AgentError as exc:
            raise ConfigError("agent_url", url, exc.message) from None
        clients.append(client)
    return remote_agents(clients)


def missing_target(options) -> ConfigError:
    """A plan with nothing to act on, named by the option that asked for it (--restart-at 20)."""
    given = [
        key
        for key in PLAN_KEYS
        if getattr(options, key) != DEFAULTS[key] and key not in ("restart_mode", "restart_which")
    ]
    name = given[0] if given else "chaos_plan"
    return ConfigError(name, getattr(options, name), NO_TARGET)


def checked_hooks(options) -> None:
    if isinstance(options.hook_instances, bool) or options.hook_instances < 1:
        raise ConfigError(
            "hook_instances", options.hook_instances, "how many instances --restart-cmd addresses, 1 or more"
        )
    if options.hook_timeout <= 0:
        raise ConfigError("hook_timeout", options.hook_timeout, "seconds a --restart-cmd may take, above 0")


def refused_handshake(config: LoadConfig) -> str | None:
    """The first (target, path) whose websocket handshake fails, as a message; None when all open.

    A TCP check passes a server that answers the upgrade with 403 (an origin check), and
    every user would then fail for the whole run.
    """
    kwargs = config.handshake.connect_kwargs() if config.handshake else {}
    for target in config.targets:
        for path, _weight in config.paths:
            url = target + path
            try:
                websocket.create_connection(url, timeout=min(config.connect_timeout, 5), **kwargs).close()
            except websocket.WebSocketBadStatusException as exc:
                hint = handshake_hint(exc.status_code)
                return f"--host {target}: the websocket handshake to {url} got HTTP {exc.status_code}; {hint}"
            except (websocket.WebSocketException, OSError) as exc:
                hint = "check the URL and --paths"
                if kwargs.get("subprotocols") and "Invalid WebSocket Header" in str(exc):
                    hint = f"the server chose none of the subprotocols offered (--subprotocol {','.join(kwargs['subprotocols'])})"
                return f"--host {target}: the websocket handshake to {url} failed ({exc or type(exc).__name__}); {hint}"
    return None


def unreachable(targets: tuple[str, ...]) -> str | None:
    """The first target nothing listens on, as a message; None when all accept TCP."""
    for target in targets:
        parsed = urlparse(target)
        port = parsed.port or (443 if parsed.scheme == "wss" else 80)
        try:
            socket.create_connection((parsed.hostname, port), timeout=3).close()
        except OSError as exc:
            return f"--host {target}: nothing accepts connections at {parsed.hostname}:{port} ({exc.strerror or exc}); start the server or fix the URL"
    return None


class SuitePlugin:
    def __init__(self, environment) -> None:
        self.env = environment
        self.options = environment.parsed_options
        self.is_worker = isinstance(environment.runner, WorkerRunner)
        self.is_master = isinstance(environment.runner, MasterRunner)
        self.stack: Stack | None = None
        self.run: RunRecorder | None = None
        self.sampler: gevent.Greenlet | None = None
        self.first_run_id = ""  # a run folder named before the first swarm (--run-id, headless --stack local)
        self.swarm_csv: SwarmCsv | None = None
        self.stack_events: EventLog | None = None  # the web UI's --stack local, across swarms
        env_events = environment.events
        env_events.test_start.add_listener(self.on_test_start)
        env_events.test_stopping.add_listener(self.on_test_stopping)
        env_events.test_stop.add_listener(self.on_test_stop)
        env_events.quitting.add_listener(self.on_quitting)
        if self.is_master:  # before prepare(): a worker probes the clock as soon as it starts
            serve_the_clock(environment.runner)
        if self.is_worker:
            env_events.report_to_master.add_listener(self.on_report_to_master)
            self.clock_probe = ClockProbe(environment.runner)
        else:
            self.prepare()
            install_chaos_tab(environment, lambda: self.run)
            if signal.getsignal(signal.SIGHUP) != signal.SIG_IGN:  # ignored: `nohup locust ...`, on purpose
                gevent.signal_handler(signal.SIGHUP, self.on_sighup)
        if self.is_master:
            env_events.worker_report.add_listener(self.on_worker_report)
            environment.runner.register_message(FINAL_MESSAGE, self.on_final_message)

    # -- start-up on the master or local runner -------------------------------------------

    def prepare(self) -> None:
        """Every check of the options before anything starts: a bad value dies with exit 2.

        Headless runs also check what the plan acts on (instance numbers) and that every
        (target, path) accepts a websocket; the web UI checks its form at test_start.
        """
        options = self.options
        if options.stack not in ("", "local"):
            die(f"--stack {options.stack!r}: use --stack local, or leave it out to test --host")
        results_dir = Path(options.results_dir)
        self.first_run_id = options.run_id  # the first swarm's folder, when given; else named at its start
        try:
            check_run_folder(results_dir, options.run_id)
            parse_thresholds(options.fail_on)
            if options.stack == "local":
                config_from_options(options, "ws://127.0.0.1:1")  # all but the URLs, before starting anything
                local = self.stack_config(Path(SERVER_DIR))
                plan_from_options(options).validate(local.daphne_count)
                self.start_stack(replace(local, log_dir=self.stack_folder(results_dir) / SERVER_DIR))
            elif options.headless:
                self.check_remote_start(options)
        except ConfigError as exc:
            die(exc.as_option(LOCUST_NAMES))
        except StackError as exc:
            die(str(exc).splitlines()[0])

    def stack_folder(self, results_dir: Path) -> Path:
        """Where --stack local keeps its logs: a headless run's own folder (named now, its
        start); in the web UI, where swarm after swarm gets its own run folder, a
        stack-<time> folder beside them, with the stack's events."""
        options = self.options
        if options.headless:
            self.first_run_id = options.run_id or new_run_id(results_dir, label=options.run_label)
            return results_dir / self.first_run_id
        folder = results_dir / new_run_id(results_dir, STACK_FOLDER_PREFIX)
        self.stack_events = EventLog(folder / EVENTS_JSONL)
        return folder

    def check_remote_start(self, options) -> None:
        """A headless run against servers we did not start: its plan's target, then the servers."""
        plan = plan_from_options(options)
        config = config_from_options(options, self.env.host)
        if options.agent_url:
            target = AgentTarget(checked_agents(options, self.env.channels_agent_token))
            if plan.active:
                try:
                    plan.validate(target.instance_count())
                except TargetError as exc:  # an agent that answered a moment ago no longer does
                    die(str(exc))
        elif options.restart_cmd:
            checked_hooks(options)
            plan.validate(options.hook_instances)
        elif plan.active:
            raise missing_target(options)
        problem = unreachable(config.targets) or refused_handshake(config)
        if problem:
            die(problem)

    def stack_config(self, server_dir: Path) -> StackConfig:
        """--stack local's StackConfig, validated; the target app's variables it uses or overrides are logged."""
        config, notes = stack_config(vars(self.options), log_dir=server_dir)
        for note in notes:
            logger.warning(note)
        return config

    def start_stack(self, config: StackConfig) -> None:
        logger.info("starting the local stack: Redis and %d Daphne instance(s)", config.daphne_count)
        self.stack = Stack(config, on_event=self.on_stack_event).start()
        options = self.options
        options.targets = ",".join(i.ws_url("") for i in self.stack.instances)
        self.env.host = self.env.host or self.stack.instances[0].ws_url("")
        logger.info("local stack ready: %s (Redis %s)", options.targets, self.stack.redis_url)

    # -- a test run ------------------------------------------------------------------------

    def agent_side(self, server: ServerSide, run_dir: Path) -> None:
        """Restarts through the agents; their events and logs mirrored into this run's folder."""
        options = self.options
        agents = checked_agents(
            options, self.env.channels_agent_token
        )  # unreachable or refused: say so now, not at the first restart
        target = AgentTarget(agents, options.redis_probe_url)
        healths = []
        try:
            server.mirror = AgentMirror(agents, run_dir / SERVER_DIR, lambda event: None)
            for agent in agents:
                healths += [i.get("health") or {} for i in agent.client.status()["instances"]]
        except AgentError as exc:
            raise ConfigError("agent_url", exc.url, exc.message) from None
        server.target, server.live_prefixes = target, target.live_prefixes
        server.layer = next(
            (h["channel_layer"] for h in healths if h.get("channel_layer")), ""
        )  # for the Redis probe
        server.log_follower = ServerLogFollower(server.mirror.log_paths)

    def on_stack_event(self, event: dict) -> None:
        if self.stack_events is not None:
            self.stack_events.write(event)
        if self.run is not None:
            self.run.record(event)

    def on_test_start(self, environment, **_kwargs) -> None:
        run = RunConfig()
        try:
            run.config = config_from_options(self.options, self.env.host)
            plan = plan_from_options(self.options) if not self.is_worker else ChaosPlan()
            thresholds = parse_thresholds(self.options.fail_on)  # the web form may have changed them
        except ConfigError as exc:
            run.error = exc
        set_run_config(self.env, run)
        timeline = timeline_for(self.env)
        timeline.take()  # nothing from an earlier run leaks into this one
        timeline.deliveries.clear()
        timeline.totals.clear()
        timeline.stop_began = None
        if run.error is not None:
            logger.error("not starting: %s", run.error.as_option())
            if not self.is_worker:
                gevent.spawn(self.env.runner.stop)
            return
        assert run.config is not None  # config_from_options returned: run.error is None
        if self.is_worker:
            self.clock_probe.check_measured()
            self.sampler = gevent.spawn(self._sample_forever)
            return
        if self.swarm_csv is not None:  # the last swarm's: Locust has just cleared its stats
            self.swarm_csv.close(last_pass=False)
        if run.config.protocol == "template":
            for warning in matching_warnings(run.config.ping_template, run.config.pong_field):
                logger.warning(warning)
        # Each swarm its own folder, named from its start and the form's label (the web UI
        # may start many); a headless --stack local run's was named when the stack started.
        run_id = self.first_run_id or new_run_id(Path(self.options.results_dir), label=run.config.run_label)
        self.first_run_id = ""
        run_dir = Path(run.config.results_dir) / run_id
        run_dir.mkdir(parents=True, exist_ok=True)
        try:
            server = self.server_side(plan, run_dir)
        except ConfigError as exc:
            logger.error("not starting: %s", exc.as_option())
            gevent.spawn(self.env.runner.stop)
            return
        stack = self.stack
        stack_info = (
            {
                "redis_url": stack.redis_url,
                "server_dir": str(stack.server_dir),
                "instances": stack.status(),
                TARGET_STACK: stack.target_fields,
            }
            if stack
            else None
        )
        manifest = build_manifest(
            run_id,
            run_dir,
            mask_argv(sys.argv),
            mask_options(
                {**vars(self.options), "agent_token": self.env.channels_agent_token}
            ),  # given, hidden
            run.config.public(),
            stack_info,
            server.redis_url,
            REPO_ROOT,
            target_versions=stack.target_versions() if stack else None,
        )
        manifest[CHAOS_PLAN] = asdict(plan)
        self.run = RunRecorder(
            self.env,
            run_dir,
            run.config,
            plan,
            server,
            not self.is_master,
            manifest,
            self.options.run_time,
            BreachWatch(thresholds),
        )
        self.run.on_summary = self.check_run
        if self.options.csv_prefix is None:  # --csv: Locust writes its own files where it was told
            self.swarm_csv = SwarmCsv(self.env, run_dir, self.options.stats_history_enabled)

    def check_run(self, summary: dict) -> None:
        if self.swarm_csv is not None:
            self.swarm_csv.written()
        self.check_chaos(summary)
        self.check_thresholds(summary)

    def check_chaos(self, summary: dict) -> None:
        """A chaos action that failed or was aborted: summary[CHAOS_FAILURES], and exit code 1
        unless --chaos-failures-ok (a restart run in which nothing restarted is no pass)."""
        controller = self.run.controller if self.run is not None else None
        failures = controller.failed_actions() if controller is not None else []
        summary[CHAOS_FAILURES] = failures
        if failures and not self.options.chaos_failures_ok:
            more = f" ({len(failures) - 1} more in {EVENTS_JSONL})" if len(failures) > 1 else ""
            logger.error(failure_line(failures[0]) + more)
            self.env.process_exit_code = 1

    def check_thresholds(self, summary: dict) -> None:
        """--fail-on: one line per breach, and exit code 1 (Locust's own code otherwise)."""
        try:
            lines, notes = thresholds_check(parse_thresholds(self.options.fail_on), summary)
        except ConfigError as exc:
            logger.error("thresholds not checked: %s", exc.as_option())
            return
        for line in lines:
            logger.error(line)
        for note in notes:  # a figure the run could not measure: no breach, but say so
            logger.warning(note)
        if lines:
            self.env.process_exit_code = 1
        summary[THRESHOLD_BREACHES] = lines
        summary[THRESHOLD_NOTES] = notes

    def server_side(self, plan: ChaosPlan, run_dir: Path) -> ServerSide:
        """The target of the chaos plan and the sources of server signals for this run."""
        options, stack = self.options, self.stack
        server = ServerSide(redis_url=options.redis_probe_url or (stack.redis_url if stack else ""))
        if stack is not None:
            server.target = LocalStackTarget(stack)
            server.live_prefixes = stack.live_prefixes
            server.layer = options.stack_layer
            server.log_follower = ServerLogFollower(daphne_logs(stack.server_dir))
        elif options.agent_url:
            self.agent_side(server, run_dir)
        elif options.restart_cmd:
            server.target = HookTarget(
                options.restart_cmd,
                options.hook_instances,
                options.hook_timeout,
                run_dir / SERVER_DIR,
                server.redis_url,
            )
        if options.server_log_cmd:
            server.log_follower = CommandFollower(
                shlex.split(options.server_log_cmd), run_dir / SERVER_DIR / REMOTE_LOG
            ).start()
        elif options.server_log:
            pattern = options.server_log
            server.log_follower = ServerLogFollower(lambda: [Path(p) for p in sorted(glob.glob(pattern))])
        if plan.active:
            if server.target is None:
                raise missing_target(options)
            plan.validate(server.target.instance_count())
        return server

    def _sample_forever(self) -> None:
        timeline = timeline_for(self.env)
        while True:
            gevent.sleep(until_next_second(0.5))
            timeline.sample_gauges(clock.now())

    def on_test_stopping(self, environment, **_kwargs) -> None:
        """Fired on every node before Locust stops its users (-t, Stop, Ctrl-C): pings that
        come due from now on are not due, so the stop itself is never counted as failures."""
        timeline_for(self.env).begin_stop(clock.now())

    def on_test_stop(self, environment, **_kwargs) -> None:
        if self.is_worker:
            if self.sampler is not None:
                self.sampler.kill()
            timeline = timeline_for(self.env)
            data = {
                "client_id": self.env.runner.client_id,
                "windows": log_shipped(timeline.take()),
                "deliveries": timeline.deliveries.take(),
                "totals": dict(timeline.totals),
            }
            self.env.runner.send_message(FINAL_MESSAGE, data)
            logger.info("channels timeline totals of this worker: %s", dict(sorted(timeline.totals.items())))
        elif self.run is not None:
            self.run.stopping()

    def on_report_to_master(self, client_id, data, **_kwargs) -> None:
        timeline = timeline_for(self.env)
        data[TIMELINE_KEY] = timeline.take()
        data[DELIVERIES_KEY] = timeline.deliveries.take()
        log_shipped(data[TIMELINE_KEY])

    def on_worker_report(self, client_id, data, **_kwargs) -> None:
        if self.swarm_csv is not None:
            self.swarm_csv.worker_reported(client_id)
        if self.run is not None and data.get(TIMELINE_KEY):
            self.run.merge(client_id, data[TIMELINE_KEY])
        if self.run is not None and data.get(DELIVERIES_KEY):
            self.run.merge_deliveries(data[DELIVERIES_KEY])

    def on_final_message(self, environment, msg, **_kwargs) -> None:
        if self.swarm_csv is not None:  # its stats of the last seconds come with its next report
            self.swarm_csv.worker_stopped(msg.data["client_id"])
        if self.run is not None:
            data = msg.data
            self.run.final(data["client_id"], data["windows"], data["totals"], data.get("deliveries") or {})

    def on_sighup(self) -> None:
        """A closed terminal or a supervisor's SIGHUP stops the run as SIGTERM does (Locust
        handles only that one): the users stop and the run is written."""
        logger.info("Got SIGHUP signal: stopping as for SIGTERM")
        os.kill(os.getpid(), signal.SIGTERM)

    def on_quitting(self, environment, **_kwargs) -> None:
        if self.run is not None and not self.run.done:
            # Ctrl-C and SIGTERM reach `quitting` before Locust stops the users; stop them
            # first so their unanswered pings are counted (test_stop then finishes the run).
            self.env.runner.stop()
            self.run.finish()
        if self.run is not None:
            self.run.wait_for_report()
        if self.stack is not None:
            self.stack.stop()
        if self.swarm_csv is not None:
            self.swarm_csv.close()
        if self.stack_events is not None:
            self.stack_events.close()
