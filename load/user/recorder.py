"""One run, on the master or local runner: merges the users' windows, reads the server's
side (Daphne logs, Redis) each second, runs the chaos plan, and writes the run folder.

Files, all written as the run goes: timeseries.csv, endpoints.csv, groups.csv and
events.jsonl (flushed each second or each event), manifest.json at the start,
summary.json at the end.
"""

import logging
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gevent

from load.analysis.livethresholds import CHECK_EVERY_S, BreachWatch
from load.analysis.recovery import restart_costs
from load.chaos.controller import NOTHING_TO_ACT_ON, Controller, Refused, Target
from load.chaos.remote import AgentMirror
from load.config.settings import REPO_ROOT, ChaosPlan, LoadConfig
from load.measure.collector import Collector
from load.measure.settlement import DeliveryLedger, Settlement, fill_csv, fill_summary, settle
from load.measure.timeline import timeline_for
from load.probes.redisprobe import RedisProbe
from load.probes.serverlog import CommandFollower, ServerLogFollower
from load.runfolder.derive import restarts_from_events
from load.runfolder.eventlog import EventLog
from load.runfolder.files import write_json
from load.runfolder.names import (
    BY_WEB_UI,
    DELIVERIES,
    DURATION_S,
    ENDED_AT,
    ENDPOINT_COLUMNS,
    ENDPOINTS_CSV,
    EVENT,
    EVENTS_JSONL,
    EXCEPTION_MESSAGES,
    GENERATOR_CPU,
    GENERATOR_LIMITED,
    LATE_SENDS,
    LINE,
    MANIFEST_JSON,
    NO_REDIS_PROBE,
    NO_SERVER_LOG,
    NOT_MEASURED,
    REDIS,
    REPORT_HTML,
    REPORT_LOG,
    RESTARTS,
    RUN_END,
    RUN_ID,
    RUN_PHASE,
    RUN_START,
    SENT,
    SERVER_SIGNATURES,
    STARTED_AT,
    SUMMARY_JSON,
    THRESHOLD,
    THRESHOLD_BREACHED,
    TIME,
    TIMESERIES_COLUMNS,
    TIMESERIES_CSV,
    WORKERS,
)
from load.supervise.procs import Child

logger = logging.getLogger("load")

WORKER_REPORT_INTERVAL = 3.0  # locust.runners.WORKER_REPORT_INTERVAL
# A restart under way at the end may finish (a half-restarted stack helps no one), this long:
# a graceful local restart takes up to --kill-after (10 s) plus the new process's start.
ACTION_GRACE = 20.0
RECENT_EVENTS = 2000  # events kept in memory for the web UI's chaos tab
REPORT_TIMEOUT = 120.0  # seconds the report process may take (a long run's plots)


@dataclass
class ServerSide:
    """Where the server's side of the run is read and changed; any part may be missing."""

    target: Target | None = None
    redis_url: str = ""
    live_prefixes: Callable[[], set[str] | None] | None = (
        None  # None: nothing can say which processes are alive
    )
    layer: str = ""  # the channel layer, when known (the Redis probe finds out otherwise)
    log_follower: ServerLogFollower | CommandFollower | None = None
    mirror: AgentMirror | None = None  # brings a remote agent's events and logs here


def until_next_second(offset: float) -> float:
    """Seconds to sleep to wake `offset` into the next second."""
    return (1 - (time.time() - offset) % 1) or 1


class RunRecorder:
    def __init__(
        self,
        env,
        run_dir: Path,
        config: LoadConfig,
        plan: ChaosPlan,
        server: ServerSide,
        local: bool,
        manifest: dict,
        run_time: float | None = None,
        breach_watch: BreachWatch | None = None,
    ):
        self.env = env
        self.local = local
        self.run_dir = run_dir
        self.started = time.time()
        self.events = EventLog(run_dir / EVENTS_JSONL)
        self.manifest = manifest
        write_json(run_dir / MANIFEST_JSON, manifest)
        # With a target, also without a plan: the web UI's chaos tab acts through it.
        assert server.target is not None or not plan.active  # server_side refuses a plan without one
        self.controller: Controller | None = (
            Controller(plan, server.target, self.record, self.started, run_time) if server.target else None
        )
        self.by_hand: gevent.Greenlet | None = None  # an action asked for in the web UI
        self.recent_events: deque[dict] = deque(maxlen=RECENT_EVENTS)  # for the chaos tab
        lag = config.pong_timeout + 2 + (0 if local else WORKER_REPORT_INTERVAL)
        phase_at = self.controller.phase_at if self.controller else (lambda second: RUN_PHASE)
        self.collector = Collector(
            run_dir, self.started, lag, phase_at, signatures=server.log_follower is not None
        )
        self.probe = (
            RedisProbe(server.redis_url, server.live_prefixes, layer=server.layer)
            if server.redis_url
            else None
        )
        self.follower = server.log_follower
        self.mirror = server.mirror
        if self.mirror is not None:
            self.mirror.record = self.record
        if self.follower is not None:
            self.follower.poll()  # what the logs held before this run is not this run's
            self.follower.totals.clear()
            self.follower.messages.clear()
            self.follower.take_messages()
        self.on_summary: Callable[[dict], None] = lambda summary: None  # e.g. the thresholds
        self.ledger = DeliveryLedger()  # room deliveries, settled when the run ends
        self.pong_timeout = config.pong_timeout
        self.seen_workers: set[str] = set()
        self.final_workers: dict[str, dict] = {}
        self.closing = self.done = False
        self.reporting: gevent.Greenlet | None = None  # the report process, once the run is written
        self.last_warning = 0.0
        self.breach_watch = breach_watch or BreachWatch(())
        self.last_breach_check = 0.0
        self.record({"ts": self.started, EVENT: RUN_START, RUN_ID: manifest[RUN_ID]})
        self.ticker = gevent.spawn(self._tick_forever)
        self.chaos = (
            gevent.spawn(self.controller.run, gevent.sleep) if plan.active and self.controller else None
        )
        logger.info("results of this run: %s", run_dir)

    def record(self, event: dict) -> None:
        if not self.done:
            self.events.write(event)
            self.recent_events.append(event)

    def act(self, kind: str, mode: str = "", which: str = "", threads: int | None = None) -> dict:
        """An action asked for in the web UI, carried out by the plan's controller in the
        background; returns its fields. Refused (load.chaos.controller) says why not."""
        if self.controller is None:
            raise Refused(NOTHING_TO_ACT_ON)
        if self.closing or self.done:
            raise Refused("the run is ending: no action starts now")
        action = self.controller.by_hand(kind, BY_WEB_UI, mode, which, threads)
        self.by_hand = gevent.spawn(self.controller.run_claimed, action)
        return action.fields()

    # -- the users' windows ------------------------------------------------------------

    def merge(self, client_id: str, wire: dict) -> None:
        self.seen_workers.add(client_id)
        if not self.done:
            self.collector.merge(wire)

    def merge_deliveries(self, wire: dict) -> None:
        if not self.done:
            self.ledger.merge(wire)

    def final(self, client_id: str, wire: dict, totals: dict, deliveries: dict | None = None) -> None:
        self.merge(client_id, wire)
        self.merge_deliveries(deliveries or {})
        self.final_workers[client_id] = totals
        if self.closing and self.seen_workers <= set(self.final_workers):
            self.finish()

    def stopping(self) -> None:
        """test_stop: a local runner is complete now; a master waits for its workers' finals."""
        self.closing = True
        self._stop_chaos()
        if self.local or self.seen_workers <= set(self.final_workers):
            self.finish()
        else:
            gevent.spawn_later(WORKER_REPORT_INTERVAL + 7, self.finish)

    def _stop_chaos(self) -> None:
        """No action starts after the run; a hook under way is stopped (its whole process
        group), a local or agent restart under way may finish within ACTION_GRACE seconds,
        and whatever is still under way then ends as action_aborted."""
        controller = self.controller
        if controller is None:
            return
        if controller.busy:
            controller.abort("the run ended")
            deadline = time.time() + ACTION_GRACE
            while controller.busy and time.time() < deadline:
                gevent.sleep(0.1)
        controller.stopped = True
        gevent.killall([g for g in (self.chaos, self.by_hand) if g is not None])
        controller.abandon(f"the run ended and the action was not done {ACTION_GRACE:g} s later")

    # -- each second -------------------------------------------------------------------

    def _tick_forever(self) -> None:
        while True:
            gevent.sleep(until_next_second(0.5))
            self.tick()

    def tick(self) -> None:
        now = time.time()
        if self.local:
            timeline = timeline_for(self.env)
            timeline.sample_gauges(now)
            self.collector.merge_windows(timeline.take_windows())
            self.ledger.merge(timeline.deliveries.take())
        workers = None if self.local else self.env.runner.worker_count
        self.collector.record_users(now, self.env.runner.user_count, workers)
        if self.mirror is not None:
            self.mirror.poll()
        if self.follower is not None:
            self.collector.record_server(self.follower.poll(now))
            self.collector.record_exceptions(self.follower.take_messages())
        if self.probe is not None:
            self.collector.record_redis(now, self.probe.sample())
        for row in self.collector.flush(now):
            self._warn_if_saturated(row)
        if self.breach_watch and now - self.last_breach_check >= CHECK_EVERY_S:
            self.last_breach_check = now
            self._say_breaches(now)

    def _say_breaches(self, now: float) -> None:
        for threshold, line in self.breach_watch.new_breaches(self.collector.summary()):
            logger.warning(line)
            self.record({"ts": now, EVENT: THRESHOLD_BREACHED, THRESHOLD: threshold.text, LINE: line})

    def _warn_if_saturated(self, row: dict) -> None:
        if row.get(GENERATOR_LIMITED) == 1 and time.time() - self.last_warning > 10:
            self.last_warning = time.time()
            logger.warning(
                "the load generator was the limit in second %s: %d of %d pings went out over 50 ms late, "
                "its busiest process used %s%% of a core (latency then includes our own delay); "
                "add workers (--workers, --processes) or lower the rate",
                row[TIME],
                row.get(LATE_SENDS, 0),
                row.get(SENT, 0),
                row.get(GENERATOR_CPU, "?"),
            )

    # -- the end -----------------------------------------------------------------------

    def finish(self) -> None:
        if self.done:
            return
        self.ticker.kill()
        self._stop_chaos()
        if self.local:
            timeline = timeline_for(self.env)
            self.collector.merge_windows(timeline.take_windows())
            self.ledger.merge(timeline.deliveries.take())
        if self.mirror is not None:
            self.mirror.poll()
        if self.follower is not None:
            self.collector.record_server(self.follower.poll())
            self.collector.record_exceptions(self.follower.take_messages())
            if hasattr(self.follower, "stop"):  # a command we started (CommandFollower)
                self.follower.stop()
        self.collector.close()
        ended = time.time()
        settlement = self._settle(ended)
        summary = self.collector.summary()
        fill_summary(summary, settlement)
        summary.update(
            {
                RUN_ID: self.manifest[RUN_ID],
                STARTED_AT: self.started,
                ENDED_AT: ended,
                DURATION_S: round(ended - self.started, 3),
            }
        )
        summary[RESTARTS] = restart_costs(self.collector.history, self._restarts())
        summary[NOT_MEASURED] = self._not_measured()
        if settlement is None:
            summary[NOT_MEASURED][DELIVERIES] = self._unsettled_why()
        if self.follower is not None:
            summary[EXCEPTION_MESSAGES] = dict(self.follower.messages.most_common(20))
        if not self.local:
            summary[WORKERS] = self.final_workers
        self.on_summary(summary)
        write_json(self.run_dir / SUMMARY_JSON, summary)
        self.record({"ts": ended, EVENT: RUN_END})
        self.done = True
        self.events.close()
        self.manifest[ENDED_AT] = ended
        write_json(self.run_dir / MANIFEST_JSON, self.manifest)
        # Not on this greenlet: it may be Locust's message listener, which the master kills
        # 0.5 s into its quit (and a worker's last stats report must still be read).
        self.reporting = gevent.spawn(self._report_elsewhere)
        logger.info("run written to %s", self.run_dir)

    def wait_for_report(self) -> None:
        if self.reporting is not None:
            self.reporting.join(REPORT_TIMEOUT + 5)

    def _settle(self, end: float) -> Settlement | None:
        """Room deliveries settled, their cells filled in the CSV files; None when a worker's
        final report is missing (its members' receipts unknown: the cells stay empty)."""
        if self._unsettled_why():
            return None
        settlement = settle(self.ledger, end, self.pong_timeout)
        self.collector.settle_recent(settlement.per_second)
        stamp = self.collector.stamp
        fill_csv(self.run_dir / TIMESERIES_CSV, TIMESERIES_COLUMNS, settlement, stamp, by_endpoint=False)
        fill_csv(self.run_dir / ENDPOINTS_CSV, ENDPOINT_COLUMNS, settlement, stamp, by_endpoint=True)
        return settlement

    def _unsettled_why(self) -> str:
        missing = self.seen_workers - set(self.final_workers)
        if self.local or not missing:
            return ""
        return f"the final report of {len(missing)} worker(s) never came: their members' receipts are unknown"

    def _report_elsewhere(self) -> None:
        """report.html, the summary table and the findings, from `python -m load report
        --end-text` in a process of its own: matplotlib and the diagnosis cost seconds of
        CPU that the load process should not pay. Its output (report.log) is printed here."""
        argv = [sys.executable, "-m", "load", "report", str(self.run_dir.resolve()), "--end-text"]
        child = Child("report", argv, None, self.run_dir / REPORT_LOG, REPO_ROOT).start()
        if not child.wait(REPORT_TIMEOUT):
            child.stop("hard")
        if child.returncode != 0:  # the data is written; a report can be made later
            logger.error(
                "the report of %s could not be written (see %s); `python -m load report %s` tries again",
                self.run_dir,
                REPORT_LOG,
                self.run_dir,
            )
            return
        print("\n" + child.log_path.read_text(errors="replace"), flush=True)
        logger.info("report: %s", self.run_dir / REPORT_HTML)

    def _restarts(self) -> list[dict]:
        """The restarts the controller carried out, from the events it recorded (as the
        report of a folder derives them from events.jsonl)."""
        if self.controller is None:
            return []
        events = [event for begin_and_end in self.controller.completed for event in begin_and_end]
        return restarts_from_events(
            events, self.controller.plan.restart_mode, self.controller.plan.restart_which
        )

    def _not_measured(self) -> dict[str, str]:
        """Figure -> why, for every figure this run could not measure (empty in the CSV, null in JSON)."""
        missing = {}
        if self.follower is None:
            missing[SERVER_SIGNATURES] = NO_SERVER_LOG
        if self.probe is None:
            missing[REDIS] = NO_REDIS_PROBE
        else:
            missing.update(self.probe.not_measured())
        return missing
