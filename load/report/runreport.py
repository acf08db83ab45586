"""report.html for one run folder: plots, the headline figures and what the data shows.

Reads only what the run wrote (timeseries.csv, endpoints.csv, events.jsonl, manifest.json
and, when the run finished, summary.json) and writes run_dir/report.html and
run_dir/plots/*.png. The page is self-contained: every plot is a PNG inside it as a data
URI, the style sheet is inline, there is no script and no external address, so it opens
offline and can be mailed or attached to an issue as one file.

A run killed mid-way has no summary.json: the page then takes its totals from the
per-second CSV, shows percentiles as the largest per-second value (an upper bound:
per-second percentiles cannot be merged) and says that the run did not finish.

Kept free of locust and gevent: `python -m load report` runs in a plain process.
"""

import base64
import html
import json
import math
import shlex
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import matplotlib

matplotlib.use("Agg")  # before pyplot is imported anywhere: no display, PNG only

from matplotlib.figure import Figure  # noqa: E402
from matplotlib.transforms import blended_transform_factory  # noqa: E402

from load.analysis.recovery import restart_costs  # noqa: E402
from load.analysis.summary_table import NOT_MEASURED_CELL, down_text, recovery_text  # noqa: E402
from load.chaos.controller import failure_line  # noqa: E402
from load.config.options import mask_argv  # noqa: E402
from load.config.settings import ConfigError  # noqa: E402
from load.probes.redisprobe import NO_REDIS_PROBE  # noqa: E402
from load.probes.serverlog import NO_SERVER_LOG, ServerLogFollower, daphne_logs  # noqa: E402
from load.runfolder import loader  # noqa: E402
from load.runfolder.derive import error_rate, restarts_from_events, totals_from_rows  # noqa: E402
from load.runfolder.loader import NotARunFolder, Run, count, number  # noqa: E402
from load.runfolder.names import (  # noqa: E402
    ACTION_BEGIN,
    ACTION_ENDS,
    ALL,
    ASGI_THREADS,
    AT_S,
    CHAOS_FAILURES,
    CHAOS_PLAN,
    CLIENT_CLOSES,
    CLOSE_COLUMNS,
    CLOSES,
    CONNECT_ERRORS,
    CONNECT_OK,
    CONNECTIONS,
    DEAD_PROCESS_KEYS,
    DOWN_BY_CLIENTS,
    DOWN_BY_DAPHNE,
    DOWN_S,
    DOWN_SOURCE,
    DURATION_S,
    ELAPSED_S,
    ENDPOINT,
    ENDPOINTS,
    EPOCH_S,
    ERRORS,
    EVENT,
    EXCEPTION_MESSAGES,
    EXITED,
    FAILED_PINGS,
    FIRST_PONG_S,
    GROUP_MEMBERS,
    KILLED_AFTER_TIMEOUT,
    LATE_SENDS,
    MAX_MS,
    NOT_MEASURED,
    P50_MS,
    P95_MS,
    P99_MS,
    PERCENTILES,
    PHASE,
    PHASES,
    PING_ERRORS,
    PINGS,
    PLOTS_DIR,
    PONGS,
    RECOVERY_S,
    REDIS,
    REDIS_COLUMNS,
    REDIS_FLUSH,
    REDIS_KEYS,
    REDIS_RESTART,
    REPORT_HTML,
    RESTART,
    RESTART_BEGIN,
    RESTARTS,
    RUN_PHASE,
    SENT,
    SERVER,
    SERVER_COLUMNS,
    SERVER_DIR,
    SERVER_KILLS,
    SERVER_SIGNATURES,
    SIG_EXCEPTION,
    SIG_HANDSHAKE_INCOMPLETE,
    SIG_KILLED_ON_THREAD,
    SIG_KILLED_OTHER,
    SIG_KILLED_OWN_AWAIT,
    SIG_KILLED_PENDING,
    SIG_OVER_CAPACITY,
    SIG_OVER_CAPACITY_CHANNELS,
    SIG_TASK_EXCEPTION,
    SIGNATURE_LABELS,
    STALE_MEMBERS,
    STALE_MEMBERS_AFTER,
    STALE_MEMBERS_BEFORE,
    STARTED_AT,
    SUMMARY_JSON,
    TOO_LONG_KILLS,
    USERS,
)

OTHER_ACTIONS = {REDIS_RESTART: "Redis restart", REDIS_FLUSH: "Redis FLUSHDB"}
POOL_PREFIX, SYNC_PREFIX = "/ws/ping/pool/", "/ws/ping/sync/"
SIMILAR = 0.20  # "did not change": within 20 %
NOTABLE = 0.10  # a smaller change is not called large, however tight the spread
DPI = 100
BARS_UP_TO = 600  # seconds; longer runs draw per-second counts as stepped areas


# -- reading a run folder -------------------------------------------------------------


def load_run(run_dir: Path) -> Run:
    """Read a run folder (load.runfolder.loader); ConfigError if it is not one."""
    try:
        return loader.load_run(run_dir)
    except NotARunFolder as exc:
        raise ConfigError("run_dir", str(Path(run_dir)), str(exc)) from None


# -- numbers --------------------------------------------------------------------------


@dataclass
class Spread:
    """Median and interquartile range of per-second values."""

    median: float
    q1: float
    q3: float
    n: int

    def text(self, unit: str) -> str:
        return f"median {fmt(self.median)}{unit} (IQR {fmt(self.q1)}–{fmt(self.q3)}{unit}, {self.n} s)"


def spread(values: Iterable[float | None]) -> Spread | None:
    """None with fewer than three seconds: too few to speak of a spread."""
    present = [v for v in values if v is not None]
    if len(present) < 3:
        return None
    q1, median, q3 = statistics.quantiles(present, n=4, method="inclusive")
    return Spread(median, q1, q3, len(present))


def separated(a: Spread, b: Spread) -> bool:
    """The interquartile ranges do not overlap: the seconds of one differ from the seconds of the other."""
    return a.q3 < b.q1 or b.q3 < a.q1


def verdict(a: Spread, b: Spread) -> str:
    """How a difference of per-second medians compares with the spread across seconds."""
    if not separated(a, b):
        return "within the spread across seconds"
    relative = change(a.median, b.median)
    if relative is not None and abs(relative) < NOTABLE:
        return "outside the spread across seconds but under 10 %"
    return "a difference large relative to the spread across seconds"


def clearly_apart(a: Spread, b: Spread) -> bool:
    return verdict(a, b).startswith("a difference large")


def change(a: float | None, b: float | None) -> float | None:
    """Relative change from a to b (0.25 = +25 %), None when it cannot be said."""
    if a is None or b is None:
        return None
    if a == 0:
        return 0.0 if b == 0 else None
    return b / a - 1


def fmt(value, unit: str = "") -> str:
    """A figure for a person: integers whole, others with sensible digits; '–' for none."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool):
        return str(value)
    value = float(value)
    if value.is_integer():
        return f"{int(value)}{unit}"
    digits = (
        0 if abs(value) >= 100 else 1 if abs(value) >= 10 else 2 if abs(value) >= 0.01 or value == 0 else 4
    )
    return f"{value:.{digits}f}{unit}"


def percent(value: float | None) -> str:
    """A relative change as '+17 %', '−4 %' or '±0 %'."""
    if value is None:
        return "–"
    rounded = round(value * 100)
    return "±0 %" if rounded == 0 else f"{rounded:+d} %".replace("-", "−")


# -- the headline figures -------------------------------------------------------------


@dataclass
class Headline:
    """Totals per endpoint and overall, the restarts, and what Daphne logged."""

    endpoints: dict[str, dict]
    overall: dict
    exact_percentiles: bool  # False: percentiles are the largest per-second value (an upper bound)
    duration_s: float
    server: dict[str, float | None]  # None: not measured (no server log was read)
    restarts: list[dict]
    exception_messages: dict[str, int] | None  # None: not known
    messages_from: str = SUMMARY_JSON
    not_measured: dict[str, str] = field(default_factory=dict)  # figure -> why the run could not measure it

    @property
    def signatures_known(self) -> bool:
        return all(value is not None for value in self.server.values())

    def why(self, figure: str, otherwise: str) -> str:
        return self.not_measured.get(figure, otherwise)


def _with_rates(figures: dict, duration_s: float) -> dict:
    pongs, rate = count(figures.get(PONGS)), error_rate(figures)
    return {
        **figures,
        "error_rate": rate * 100 if rate is not None else None,
        "pongs_per_s": pongs / duration_s if duration_s else None,
    }


def _restarts(run: Run) -> list[dict]:
    """The restarts the controller completed, derived as the recorder derives them."""
    plan = run.manifest.get(CHAOS_PLAN) or {}
    return restarts_from_events(
        run.events, plan.get("restart_mode", "graceful"), plan.get("restart_which", "all")
    )


UNSEEN_IN_CSV = "empty in every second of timeseries.csv"


def not_measured_from_rows(rows: list[dict]) -> dict[str, str]:
    """What summary.json's not_measured would say, for a run that did not write it: the
    figures whose column is empty in every second."""

    def unseen(column: str) -> bool:
        return bool(rows) and all(r.get(column) in ("", None) for r in rows)

    missing = {}
    if unseen(SERVER_COLUMNS[0]):
        missing[SERVER_SIGNATURES] = f"{NO_SERVER_LOG}; {UNSEEN_IN_CSV}"
    if all(unseen(column) for column in REDIS_COLUMNS):
        missing[REDIS] = f"{NO_REDIS_PROBE}; {UNSEEN_IN_CSV}"
    else:
        missing.update({column: UNSEEN_IN_CSV for column in REDIS_COLUMNS if unseen(column)})
    return missing


def _messages_from_logs(run: Run) -> dict[str, int] | None:
    server_dir = run.folder / SERVER_DIR
    if not server_dir.is_dir():
        return None
    follower = ServerLogFollower(daphne_logs(server_dir))
    follower.poll()
    return dict(follower.messages.most_common(20))


def headline(run: Run) -> Headline:
    summary = run.summary
    if summary is not None:
        duration = float(summary.get(DURATION_S) or len(run.rows) or 0)
        messages = summary.get(EXCEPTION_MESSAGES)
        return Headline(
            endpoints={path: _with_rates(f, duration) for path, f in summary.get(ENDPOINTS, {}).items()},
            overall=_with_rates(summary.get(ALL, {}), duration),
            exact_percentiles=True,
            duration_s=duration,
            server={column: number((summary.get(SERVER) or {}).get(column, 0)) for column in SERVER_COLUMNS},
            restarts=summary.get(RESTARTS, []),
            exception_messages=messages if messages is not None else _messages_from_logs(run),
            messages_from=SUMMARY_JSON if messages is not None else "the Daphne logs in server/",
            not_measured=summary.get(NOT_MEASURED) or {},
        )
    duration = float(len(run.rows))
    missing = not_measured_from_rows(run.rows)
    by_endpoint: dict[str, list[dict]] = {}
    for row in run.endpoint_rows:
        by_endpoint.setdefault(row[ENDPOINT], []).append(row)
    return Headline(
        endpoints={
            path: _with_rates(totals_from_rows(rows), duration) for path, rows in sorted(by_endpoint.items())
        },
        overall=_with_rates(totals_from_rows(run.rows), duration),
        exact_percentiles=False,
        duration_s=duration,
        server={
            column: None if SERVER_SIGNATURES in missing else sum(count(r.get(column)) for r in run.rows)
            for column in SERVER_COLUMNS
        },
        restarts=restart_costs(run.rows, _restarts(run)),
        exception_messages=_messages_from_logs(run),
        messages_from="the Daphne logs in server/",
        not_measured=missing,
    )


# -- per-second series ----------------------------------------------------------------


def steady_rows(rows: list[dict]) -> list[dict]:
    """The seconds with every user running: no ramp-up, no tail after the users stopped."""
    users = [count(r.get(USERS)) for r in rows]
    top = max(users, default=0)
    return [r for r, u in zip(rows, users, strict=True) if u == top and top > 0]


def endpoint_series(run: Run, endpoint: str | None, rows: list[dict] | None = None) -> list[dict]:
    """One row a second for the endpoint (None: all endpoints) over `rows` (default the whole
    run); a second without data for the endpoint is a row of zeros, not a gap."""
    rows = run.rows if rows is None else rows
    if endpoint is None:
        return rows
    own = {r[EPOCH_S]: r for r in run.endpoint_rows if r[ENDPOINT] == endpoint}
    empty = {PINGS: 0, PONGS: 0, ERRORS: 0}
    return [
        own.get(r[EPOCH_S], {**empty, EPOCH_S: r[EPOCH_S], ELAPSED_S: r[ELAPSED_S], PHASE: r[PHASE]})
        for r in rows
    ]


@dataclass
class Point:
    """One value of a knob, as a run (comparison) or a phase (staircase): its per-second rows."""

    label: str  # "asgi_threads=4"
    value: float  # where it sits on the knob's axis
    run: Run
    rows: list[dict]  # the timeseries rows that belong to it
    p99: dict[str, float | None] = field(default_factory=dict)  # endpoint -> whole-run p99, if known

    def per_second(self, endpoint: str | None, column: str) -> Spread | None:
        series = endpoint_series(self.run, endpoint, steady_rows(self.rows))
        if column == PONGS:
            return spread(count(r.get(PONGS)) for r in series)
        if column == "error_rate":
            return spread(
                count(r.get(ERRORS)) / count(r.get(PINGS)) * 100 for r in series if count(r.get(PINGS))
            )
        return spread(number(r.get(column)) for r in series)


def _metric_sentence(
    what: str, unit: str, a: Point, b: Point, endpoint: str, column: str
) -> tuple[str, Spread | None, Spread | None]:
    sa, sb = a.per_second(endpoint, column), b.per_second(endpoint, column)
    if sa is None or sb is None:
        return "", sa, sb
    text = f"median per-second {what} {fmt(sa.median)} → {fmt(sb.median)}{unit} ({percent(change(sa.median, sb.median))}"
    if column == P99_MS and a.p99.get(endpoint) is not None and b.p99.get(endpoint) is not None:
        text += f"; whole-run p99 {fmt(a.p99[endpoint])} → {fmt(b.p99[endpoint])} ms"
    text += f"; IQR {fmt(sa.q1)}–{fmt(sa.q3)} vs {fmt(sb.q1)}–{fmt(sb.q3)}{unit}"
    return f"{text}: {verdict(sa, sb)})", sa, sb


def threads_findings(
    points: list[Point], knob_label: str = "ASGI_THREADS", single: str = "one run per value"
) -> list[str]:
    """What changing ASGI_THREADS did to the pool endpoint, and that the sync endpoint stayed
    the same, from the smallest to the largest value; only for endpoints the points hold."""
    if len({p.value for p in points}) < 2:
        return []
    low, high = min(points, key=lambda p: p.value), max(points, key=lambda p: p.value)
    endpoints = sorted(set(low.run.endpoints) & set(high.run.endpoints))
    findings = []
    caution = f"({single}: compared with the spread across seconds, not a significance test)"
    for endpoint in (e for e in endpoints if e.startswith(POOL_PREFIX)):
        parts = [
            s
            for s, *_ in (
                _metric_sentence("p99", " ms", low, high, endpoint, P99_MS),
                _metric_sentence("throughput", " pongs/s", low, high, endpoint, PONGS),
            )
            if s
        ]
        if parts:
            findings.append(
                f"{knob_label} {low.label} → {high.label}, thread-pool endpoint {endpoint}: {'; '.join(parts)} {caution}."
            )
    for endpoint in (e for e in endpoints if e.startswith(SYNC_PREFIX)):
        p99, sa, sb = _metric_sentence("p99", " ms", low, high, endpoint, P99_MS)
        rate, ra, rb = _metric_sentence("throughput", " pongs/s", low, high, endpoint, PONGS)
        changes = [
            change(x.median, y.median) for x, y in ((sa, sb), (ra, rb)) if x is not None and y is not None
        ]
        if not changes or any(c is None for c in changes):
            continue
        steady = all(c is not None and abs(c) <= SIMILAR for c in changes)  # no None: see above
        outcome = "did not change (within 20 %)" if steady else "changed by more than 20 %"
        findings.append(
            f"The sync endpoint {endpoint} {outcome} from {low.label} to {high.label}: {'; '.join(s for s in (p99, rate) if s)} {caution}."
        )
    return findings


def phase_points(run: Run, restarts: list[dict]) -> list[Point]:
    """The steps of an ASGI_THREADS staircase (phases named asgi_threads=N) as points."""
    points = []
    for phase in run.phases():
        if not phase.startswith("asgi_threads="):
            continue
        setting = phase.split("=", 1)[1]
        value = float(setting) if setting.isdigit() else float(default_threads(run.manifest))
        rows = _after_restart([r for r in run.rows if r[PHASE] == phase], restarts)
        if rows:
            points.append(Point(phase, value, run, rows))
    return points


def _after_restart(rows: list[dict], restarts: list[dict]) -> list[dict]:
    """A step's seconds from its restart's recovery on (the outage is the restart's, not the
    step's); none if service never came back in that step."""
    if not rows:
        return rows
    first = int(rows[0][EPOCH_S])
    for restart in restarts:
        if first - 2 <= int(restart["ts"]) <= first + 1:
            if restart.get(RECOVERY_S) is None:
                return []
            back = restart["ts"] + restart[RECOVERY_S]
            return [r for r in rows if int(r[EPOCH_S]) >= back]
    return rows


def default_threads(manifest: dict) -> int:
    """What an unset ASGI_THREADS means: Python's default executor, min(32, cpus + 4)."""
    cpus = (manifest.get("host") or {}).get("cpus") or 1
    return min(32, int(cpus) + 4)


# -- findings -------------------------------------------------------------------------


def _chain(values: list[int | None]) -> str:
    return " → ".join("?" if v is None else str(v) for v in values)


def restart_name(restart: dict) -> str:
    at = f"+{fmt(restart.get(AT_S))} s"
    return f"{at}, ASGI_THREADS={restart.get('threads')}" if restart.get("action") == ASGI_THREADS else at


def exit_findings(run: Run) -> list[str]:
    """Daphne processes that ignored SIGTERM until the supervisor's SIGKILL (FM-4)."""
    killed = [e for e in run.events if e.get(EVENT) == EXITED and e.get("how") == KILLED_AFTER_TIMEOUT]
    if not killed:
        return []
    exits = [e for e in run.events if e.get(EVENT) == EXITED]
    waited = max(count(e.get("after_s")) for e in killed)
    return [
        f"{len(killed)} of {len(exits)} Daphne exits needed a SIGKILL: the process was still running {fmt(waited)} s "
        "after SIGTERM and was killed by the supervisor, so its restart took that long (FM-4)."
    ]


def _average(values: list[float], unit: str) -> str:
    """'0.52 s' for one restart; '0.67 s on average per restart (max 0.76 s)' for several."""
    if len(values) == 1:
        return f"{fmt(values[0])}{unit}"
    return f"{fmt(statistics.fmean(values))}{unit} on average per restart (max {fmt(max(values))}{unit})"


def restart_findings(restarts: list[dict], run_ended: bool) -> list[str]:
    findings: list[str] = []
    if not restarts:
        return findings
    n = len(restarts)
    leaks = [
        (r[STALE_MEMBERS_BEFORE], r[STALE_MEMBERS_AFTER])
        for r in restarts
        if r.get(STALE_MEMBERS_BEFORE) is not None and r.get(STALE_MEMBERS_AFTER) is not None
    ]
    if leaks and sum(after - before for before, after in leaks) > 0:
        mean = statistics.fmean(after - before for before, after in leaks)
        chain = _chain(
            [restarts[0].get(STALE_MEMBERS_BEFORE)] + [r.get(STALE_MEMBERS_AFTER) for r in restarts]
        )
        known = "" if len(leaks) == n else f"; known for {len(leaks)} of {n} restarts"
        lead = "The restart left" if n == 1 else "Each restart left on average"
        members = "group member" if mean == 1 else "group members"
        findings.append(
            f"{lead} {fmt(mean)} {members} in Redis that no live process owns ({chain}{known}; FM-5)."
        )
    downs = [
        r[DOWN_S]
        for r in restarts
        if r.get(DOWN_S) is not None and r.get(DOWN_SOURCE, DOWN_BY_DAPHNE) == DOWN_BY_DAPHNE
    ]
    if downs:
        findings.append(
            f"Daphne was down {_average(downs, ' s')}, from the signal to the new process answering."
        )
    seen = [
        r[DOWN_S] for r in restarts if r.get(DOWN_S) is not None and r.get(DOWN_SOURCE) == DOWN_BY_CLIENTS
    ]
    if seen:
        findings.append(
            f"The clients saw Daphne down {_average(seen, ' s')}, from the first failed connect to the first "
            "accepted one (the restart hook cannot say; to within a second)."
        )
    unseen = [restart_name(r) for r in restarts if r.get(DOWN_S) is None]
    if unseen:
        which = "the restart" if n == 1 else f"{len(unseen)} of {n} restarts ({'; '.join(unseen)})"
        findings.append(
            f"Down time of {which}: not measured (the restart hook cannot say, and no client connect failed "
            "between the restart and the next)."
        )
    recovered = [r for r in restarts if r.get(RECOVERY_S) is not None]
    recoveries = [r[RECOVERY_S] for r in recovered]
    if len(recovered) == 1:
        which = "the restart" if n == 1 else f"the restart at {restart_name(recovered[0])}"
        findings.append(f"Recovery after {which} took {fmt(recoveries[0])} s.")
    elif recovered:
        findings.append(
            f"Recovery after restarts took {fmt(statistics.fmean(recoveries))} s on average (max {fmt(max(recoveries))} s)."
        )
    first = [r[FIRST_PONG_S] for r in restarts if r.get(FIRST_PONG_S) is not None]
    if first:
        findings.append(
            f"The first pong on a new socket came {_average(first, ' s')} after the restart began."
        )
    never = [f"{restart_name(r)}: {recovery_text(r)}" for r in restarts if r.get(RECOVERY_S) is None]
    if never:
        until = "the end of the run" if run_ended else "the last second written"
        which = (
            f"the restart at {never[0]}" if n == 1 else f"{len(never)} of {n} restarts ({'; '.join(never)})"
        )
        findings.append(
            f"After {which}, the users were not seen served again before {until} or the next restart "
            "(no three seconds in which pings were answered with no more failures than before the restart); "
            "its recovery time is not known, only that it was longer."
        )
    failed = [r.get(FAILED_PINGS, 0) for r in restarts]
    closes = [r.get(CLOSES, 0) for r in restarts]
    if sum(failed) or sum(closes):
        if n == 1:
            findings.append(
                f"The restart cost {failed[0]} failed pings or connects and {closes[0]} closed sockets."
            )
        else:
            findings.append(
                f"Each restart cost on average {fmt(statistics.fmean(failed))} failed pings or connects "
                f"and {fmt(statistics.fmean(closes))} closed sockets (total {sum(failed)} and {sum(closes)})."
            )
    return findings


def server_findings(server: dict[str, float | None], messages: dict[str, int] | None) -> list[str]:
    findings: list[str] = []
    if any(value is None for value in server.values()):
        return findings  # no server log was read: the page says so where the figures would be
    known = cast("dict[str, float]", server)  # every value is a number past the return above
    too_long = {c: int(known.get(c, 0)) for c in TOO_LONG_KILLS}
    if sum(too_long.values()):
        how = ", ".join(
            f"{v} {label}"
            for v, label in (
                (too_long[SIG_KILLED_OWN_AWAIT], "in the app's own await"),
                (too_long[SIG_KILLED_ON_THREAD], "waiting on a thread"),
                (too_long[SIG_KILLED_OTHER], "other"),
            )
            if v
        )
        findings.append(
            f"{sum(too_long.values())} application instances (one per socket) were killed by Daphne for taking too long "
            f"to shut down after their connection closed (FM-1): {how}."
        )
    if known.get(SIG_KILLED_PENDING):
        findings.append(
            f"SIGTERM cancelled {int(known['sig_killed_pending'])} pending application instances "
            '("Killed N pending application instances").'
        )
    if known.get(SIG_EXCEPTION):
        top = ""
        if messages:
            message, times = max(messages.items(), key=lambda item: item[1])
            top = f'; the most frequent: "{message.strip()}" ({times}×)'
            if "Timeout reading from" in message:
                top += ", the signature of FM-7"
        findings.append(
            f'Daphne logged "Exception inside application" {int(known["sig_exception"])} times{top}.'
        )
    if known.get(SIG_TASK_EXCEPTION):
        findings.append(
            f'"Task exception was never retrieved" was logged {int(known["sig_task_exception"])} times.'
        )
    if known.get(SIG_OVER_CAPACITY):
        findings.append(
            f"channels_redis logged channels over capacity in a group {int(known['sig_over_capacity'])} times "
            "(group_send into channels nobody reads, FM-5)."
        )
    if known.get(SIG_HANDSHAKE_INCOMPLETE):
        findings.append(
            f"{int(known['sig_handshake_incomplete'])} websocket handshakes never completed (FM-8)."
        )
    return findings


def error_findings(head: Headline) -> list[str]:
    findings = []
    for path, figures in head.endpoints.items():
        pings, errors = count(figures.get(PINGS)), count(figures.get(ERRORS))
        if not pings or not errors or errors / pings < 0.01:
            continue
        kinds = sorted(((count(figures.get(k)), k) for k in PING_ERRORS if figures.get(k)), reverse=True)
        detail = ", ".join(f"{k} {int(v)}" for v, k in kinds)
        share = (
            "Every ping"
            if errors == pings
            else f"{int(errors)} of {int(pings)} pings ({errors / pings * 100:.1f} %)"
        )
        findings.append(f"{share} on {path} failed: {detail}.")
    return findings


def generator_findings(run: Run) -> list[str]:
    late = [
        r for r in run.rows if count(r.get(SENT)) and count(r.get(LATE_SENDS)) / count(r.get(SENT)) > 0.01
    ]
    if not late:
        return []
    return [
        f"The load generator was saturated in {len(late)} of {len(run.rows)} seconds (over 1 % of pings sent over 50 ms late): "
        "latency in those seconds includes the generator's own delay."
    ]


def redis_findings(run: Run, head: Headline) -> list[str]:
    stale = [v for v in (number(r.get(STALE_MEMBERS)) for r in run.rows) if v is not None]
    if not stale or max(stale) == 0 or head.restarts:
        return []  # with restarts, restart_findings says it per restart
    return [
        f"Without any restart, up to {int(max(stale))} group members in Redis belonged to no live process "
        f"({int(stale[-1])} at the last sample)."
    ]


def chaos_findings(run: Run) -> list[str]:
    """Chaos actions that failed or were aborted: the run did not test what its plan said."""
    failures = (run.summary or {}).get(CHAOS_FAILURES) or []
    return [
        failure_line(f, accepted=bool(run.manifest.get("options", {}).get("chaos_failures_ok")))
        for f in failures
    ]


def findings(run: Run, head: Headline) -> list[str]:
    return [
        *chaos_findings(run),
        *restart_findings(head.restarts, run.finished),
        *exit_findings(run),
        *redis_findings(run, head),
        *server_findings(head.server, head.exception_messages),
        *error_findings(head),
        *threads_findings(phase_points(run, head.restarts), "ASGI_THREADS staircase", "one step per value"),
        *generator_findings(run),
    ]


# -- plots ----------------------------------------------------------------------------


def _series(rows: list[dict], column: str) -> list[float]:
    return [v if (v := number(r.get(column))) is not None else math.nan for r in rows]


def _dots(run: Run) -> dict:
    """A dot on each second while there are few enough seconds to see them."""
    return {"marker": ".", "ms": 3} if len(run.rows) <= BARS_UP_TO else {}


def _x(rows: list[dict]) -> list[float]:
    return [int(r[ELAPSED_S]) + 0.5 for r in rows]  # the middle of each second


@dataclass
class Mark:
    x: float
    label: str
    kind: str  # "restart" or "redis"


def chaos_marks(run: Run) -> list[Mark]:
    """Every restart (controller actions; a restart_begin no action explains) and Redis action."""
    marks, windows = [], []
    done = {(e.get("action"), e.get(AT_S)): e["ts"] for e in run.events if e.get(EVENT) in ACTION_ENDS}
    for event in run.events:
        if event.get(EVENT) != ACTION_BEGIN:
            continue
        action = event.get("action")
        end = done.get((action, event.get(AT_S)), math.inf)
        windows.append((event["ts"], end))
        if action == RESTART:
            marks.append(Mark(event["ts"] - run.t0, "restart", "restart"))
        elif action == ASGI_THREADS:
            marks.append(Mark(event["ts"] - run.t0, f"threads={event.get('threads')}", "restart"))
        elif action in OTHER_ACTIONS:
            marks.append(Mark(event["ts"] - run.t0, OTHER_ACTIONS[action], "redis"))
    for event in run.events:
        if event.get(EVENT) == RESTART_BEGIN and not any(b <= event["ts"] <= e + 1 for b, e in windows):
            marks.append(
                Mark(event["ts"] - run.t0, f"restart {event.get('instance', '')}".strip(), "restart")
            )
    return marks


def phase_bands(run: Run) -> list[tuple[float, float, str]]:
    """Contiguous stretches of one phase: (start s, end s, name); none if the run had one phase 'run'."""
    if {r[PHASE] for r in run.rows} <= {RUN_PHASE}:
        return []
    bands: list[tuple[float, float, str]] = []
    for row in run.rows:
        second = int(row[ELAPSED_S])
        if bands and bands[-1][2] == row[PHASE] and bands[-1][1] == second:
            bands[-1] = (bands[-1][0], second + 1, row[PHASE])
        else:
            bands.append((second, second + 1, row[PHASE]))
    return bands


BAND_COLOURS = ("#e8eef7", "#f7efe3", "#e9f5e9", "#f5e6ef", "#efefef")


def _decorate(
    ax, run: Run, marks: list[Mark], bands: list[tuple[float, float, str]], label_bands: bool = True
) -> None:
    names = list(dict.fromkeys(name for *_, name in bands))
    top = blended_transform_factory(ax.transData, ax.transAxes)
    for start, end, name in bands:
        ax.axvspan(start, end, color=BAND_COLOURS[names.index(name) % len(BAND_COLOURS)], zorder=0, lw=0)
        if label_bands:
            ax.text(start + 0.2, 0.98, name, transform=top, va="top", ha="left", fontsize=7, color="#555")
    labelled = set()
    for mark in marks:
        colour = "#c0392b" if mark.kind == "restart" else "#8e44ad"
        legend = mark.kind if mark.kind not in labelled else None
        labelled.add(mark.kind)
        ax.axvline(
            mark.x,
            color=colour,
            ls="--",
            lw=1,
            zorder=3,
            label=legend and ("restart" if mark.kind == "restart" else "Redis action"),
        )
        ax.annotate(
            mark.label,
            (mark.x, 0.02),
            xycoords=top,
            xytext=(2, 0),
            textcoords="offset points",
            rotation=90,
            va="bottom",
            ha="left",
            fontsize=7,
            color=colour,
        )
    if run.rows:
        ax.set_xlim(0, int(run.rows[-1][ELAPSED_S]) + 1)
    ax.grid(True, color="#ddd", lw=0.5)
    ax.set_axisbelow(True)


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="#777")


def _figure(rows: int = 1, height: float = 3.4) -> tuple[Figure, list]:
    fig = Figure(figsize=(11, height * rows), dpi=DPI, layout="constrained")
    axes = fig.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
    return fig, list(axes)


def _per_second(ax, x: list[float], bottom: list[float], top: list[float], **style) -> None:
    """Counts per second: a bar each second, or for long runs (where bars would blur into
    thousands of patches) the same as a stepped area."""
    if len(x) <= BARS_UP_TO:
        ax.bar(x, [t - b for b, t in zip(bottom, top, strict=True)], width=0.9, bottom=bottom, **style)
    else:
        ax.fill_between(x, bottom, top, step="mid", lw=0, **style)


def _stacked_bars(
    ax, x: list[float], rows: list[dict], columns: Iterable[str], label: Callable[[str], str]
) -> bool:
    bottom = [0.0] * len(rows)
    drawn = False
    for column in columns:
        values = [count(r.get(column)) for r in rows]
        if not any(values):
            continue
        top = [b + v for b, v in zip(bottom, values, strict=True)]
        _per_second(ax, x, bottom, top, label=label(column))
        bottom = top
        drawn = True
    return drawn


def plot_latency(run: Run, marks, bands) -> Figure:
    fig, (ax, by_endpoint) = _figure(2)
    x = _x(run.rows)
    drawn = False
    for column, style in ((P50_MS, "-"), (P95_MS, "-"), (P99_MS, "-"), (MAX_MS, ":")):
        values = _series(run.rows, column)
        if any(not math.isnan(v) for v in values):
            ax.plot(x, values, style, **_dots(run), lw=1.2, label=column.replace("_ms", ""))
            drawn = True
    timeout = number((run.manifest.get("config") or {}).get("pong_timeout"))
    for axis in (ax, by_endpoint):
        if timeout and drawn:
            axis.axhline(timeout * 1000, color="#999", ls=":", lw=1, label="pong timeout")
    ax.set_title("Latency of all pings (from each ping's due time), per second")
    for endpoint in run.endpoints:
        rows = endpoint_series(run, endpoint)
        values = _series(rows, P99_MS)
        if any(not math.isnan(v) for v in values):
            by_endpoint.plot(_x(rows), values, **_dots(run), lw=1.2, label=endpoint)
    by_endpoint.set_title("p99 per endpoint, per second")
    for axis in (ax, by_endpoint):
        axis.set_ylabel("ms (log scale)")
        if drawn:
            axis.set_yscale("log")
        else:
            _empty(axis, "no pongs: nothing to draw")
        _decorate(axis, run, marks, bands)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(loc="upper right", fontsize=8)
    by_endpoint.set_xlabel("seconds since the start of the run")
    return fig


def plot_errors(run: Run, marks, bands) -> Figure:
    fig, (ax, closes) = _figure(2)
    x = _x(run.rows)
    kinds = (*PING_ERRORS, *CONNECT_ERRORS)
    if not _stacked_bars(ax, x, run.rows, kinds, lambda c: f"{c} (connect)" if c in CONNECT_ERRORS else c):
        _empty(ax, "no failed pings or connects")
    ax.set_title("Failed pings by kind and failed connects, per second (stacked)")
    ax.set_ylabel("per second")
    if not _stacked_bars(closes, x, run.rows, CLOSE_COLUMNS, lambda c: c.replace("_", " ")):
        _empty(closes, "no sockets closed by the server")
    client = [count(r.get(CLIENT_CLOSES)) for r in run.rows]
    if any(client):
        closes.plot(x, client, "k-", lw=1, **_dots(run), label="closed by the client (reconnect)")
    closes.set_title("Socket closes by close code, per second (stacked; 1006 = no close frame)")
    closes.set_ylabel("per second")
    closes.set_xlabel("seconds since the start of the run")
    for axis in (ax, closes):
        _decorate(axis, run, marks, bands)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(loc="upper right", fontsize=8)
    return fig


def plot_connections(run: Run, marks, bands) -> Figure:
    fig, (ax,) = _figure(1, 3.6)
    x = _x(run.rows)
    _per_second(
        ax,
        x,
        [0.0] * len(x),
        [count(r.get(CONNECT_OK)) for r in run.rows],
        color="#9ecae1",
        label="connects that succeeded, per second",
    )
    ax.step(x, _series(run.rows, USERS), where="mid", lw=1.5, color="#333", label="users")
    ax.plot(
        x, _series(run.rows, CONNECTIONS), **_dots(run), lw=1.5, color="#2171b5", label="open connections"
    )
    ax.set_title("Users and open websocket connections")
    ax.set_ylabel("count")
    ax.set_xlabel("seconds since the start of the run")
    _decorate(ax, run, marks, bands)
    ax.legend(loc="lower right", fontsize=8)
    return fig


def plot_server(run: Run, marks, bands) -> Figure:
    fig, (ax,) = _figure(1, 3.6)
    columns = [c for c in SERVER_COLUMNS if c != SIG_OVER_CAPACITY_CHANNELS]
    if SERVER_SIGNATURES in not_measured_from_rows(run.rows):
        _empty(ax, "not measured: no server log was read in this run")
    elif not _stacked_bars(ax, _x(run.rows), run.rows, columns, lambda c: SIGNATURE_LABELS.get(c, c)):
        _empty(ax, "none of the failure signatures in Daphne's log")
    ax.set_title("Failure signatures in Daphne's log, per second (stacked)")
    ax.set_ylabel("log lines / instances")
    ax.set_xlabel("seconds since the start of the run")
    _decorate(ax, run, marks, bands)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper right", fontsize=8)
    return fig


def plot_redis(run: Run, marks, bands) -> Figure:
    fig, (ax,) = _figure(1, 3.6)
    x = _x(run.rows)
    drawn = False
    for column, label in (
        (REDIS_KEYS, "keys"),
        (GROUP_MEMBERS, "group members"),
        (STALE_MEMBERS, "stale members (no live process)"),
        (DEAD_PROCESS_KEYS, "keys of dead processes"),
    ):
        values = _series(run.rows, column)
        if any(not math.isnan(v) for v in values) and (
            column != DEAD_PROCESS_KEYS or any(v > 0 for v in values if not math.isnan(v))
        ):
            ax.plot(x, values, **_dots(run), lw=1.5, label=label)
            drawn = True
    if not drawn:
        _empty(ax, "not measured: no Redis probe in this run (--redis-probe-url)")
    ax.set_title("Redis: keys, group members and stale members, each second")
    ax.set_ylabel("count")
    ax.set_xlabel("seconds since the start of the run")
    _decorate(ax, run, marks, bands)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", fontsize=8)
    return fig


PLOTS = (
    ("latency", plot_latency, "Latency p50/p95/p99/max of all pings (log scale), and p99 per endpoint."),
    ("errors", plot_errors, "Failed pings by kind, failed connects, and socket closes by close code."),
    ("connections", plot_connections, "Users, open connections and successful connects."),
    ("server", plot_server, "Daphne's failure signatures, from its log."),
    ("redis", plot_redis, "Redis keys, group members, and members whose process is gone."),
)


def save_png(fig: Figure, path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=DPI)
    return path.read_bytes()


def img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


# -- the page -------------------------------------------------------------------------

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; margin: 0 auto; max-width: 1150px; padding: 1em 1.5em 3em; }
h1 { font-size: 1.5em; margin-bottom: .2em; } h2 { font-size: 1.2em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
.sub { color: #666; margin-top: 0; } code, .mono { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: .92em; }
table { border-collapse: collapse; margin: .5em 0 1em; font-size: .92em; }
th, td { padding: .25em .6em; border-bottom: 1px solid #eee; text-align: right; vertical-align: top; }
th { background: #f5f5f5; } td.l, th.l { text-align: left; }
tr.total td { font-weight: 600; border-top: 1px solid #bbb; }
.warn { background: #fff4e5; border: 1px solid #f0b060; padding: .6em 1em; border-radius: 4px; }
ul.findings li { margin: .3em 0; } figure { margin: 1em 0 2em; } figure img { max-width: 100%; height: auto; display: block; }
figcaption { color: #555; font-size: .92em; } .note { color: #666; font-size: .9em; }
"""


def table(headers: list[str], rows: list[list], left: Iterable[int] = (0,), total_last: bool = False) -> str:
    """An HTML table; the columns in `left` are text (left-aligned), the others figures."""
    left = set(left)

    def cls(i: int) -> str:
        return ' class="l"' if i in left else ""

    head = "".join(f"<th{cls(i)}>{html.escape(h)}</th>" for i, h in enumerate(headers))
    body = []
    for n, row in enumerate(rows):
        cells = "".join(f"<td{cls(i)}>{html.escape(str(c))}</td>" for i, c in enumerate(row))
        total = ' class="total"' if total_last and n == len(rows) - 1 else ""
        body.append(f"<tr{total}>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _kinds(figures: dict) -> str:
    kinds = [
        f"{k}={int(count(figures.get(k)))}" for k in (*PING_ERRORS, *CONNECT_ERRORS) if count(figures.get(k))
    ]
    closes = [f"{c}={int(count(figures.get(c)))}" for c in CLOSE_COLUMNS if count(figures.get(c))]
    return " ".join(kinds + closes)


def endpoint_table(head: Headline) -> str:
    bound = "" if head.exact_percentiles else "≤ "
    rows = []
    for name, f in [*head.endpoints.items(), (ALL, head.overall)]:
        rows.append(
            [
                name,
                fmt(count(f.get(PINGS))),
                fmt(count(f.get(PONGS))),
                fmt(count(f.get(ERRORS))),
                fmt(f.get("error_rate")),
                fmt(f.get("pongs_per_s")),
                *((bound + fmt(f.get(p))) if f.get(p) is not None else "–" for p in PERCENTILES),
                fmt(f.get(MAX_MS)),
                _kinds(f),
            ]
        )
    headers = [
        ENDPOINT,
        PINGS,
        PONGS,
        ERRORS,
        "error rate %",
        "pongs/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
        "errors by kind, closes",
    ]
    text = table(headers, rows, left=(0, len(headers) - 1), total_last=True)
    note = (
        "Percentiles are merged from the run's histograms (exact to 0.1 %)."
        if head.exact_percentiles
        else "Percentiles are the largest per-second value (“≤”): per-second percentiles cannot be merged, and the "
        "run's merged histograms are only in summary.json, which a run that did not finish never wrote. The largest "
        "per-second p99 bounds the run's p99 from above."
    )
    return text + (
        f'<p class="note">{note} Error rate = failed pings / pings; pongs/s over {fmt(head.duration_s)} s. '
        "Latency is from each ping's due time.</p>"
    )


def phase_table(run: Run) -> str:
    """Each phase's figures: merged percentiles from summary.json when it has them, else from the CSV."""
    phases = run.phases()
    if len(phases) < 2:
        return ""
    merged = (run.summary or {}).get(PHASES) or {}
    rows = []
    for phase in phases:
        seconds = [r for r in run.rows if r[PHASE] == phase]
        exact = phase in merged
        for endpoint in [*run.endpoints, None]:
            if exact:
                f = merged[phase][ALL] if endpoint is None else merged[phase].get(ENDPOINTS, {}).get(endpoint)
                if f is None:
                    continue
            else:
                f = totals_from_rows(endpoint_series(run, endpoint, seconds))
            pings, pongs, errors, rate = (
                count(f.get(PINGS)),
                count(f.get(PONGS)),
                count(f.get(ERRORS)),
                error_rate(f),
            )
            bound = "" if exact else "≤ "
            rows.append(
                [
                    phase,
                    endpoint or ALL,
                    len(seconds),
                    fmt(pings),
                    fmt(pongs),
                    fmt(errors),
                    fmt(rate * 100 if rate is not None else None),
                    fmt(pongs / len(seconds) if seconds else None),
                    *((bound + fmt(f.get(p))) if f.get(p) is not None else "–" for p in PERCENTILES),
                    fmt(f.get(MAX_MS)),
                ]
            )
    headers = [
        PHASE,
        ENDPOINT,
        "seconds",
        PINGS,
        PONGS,
        ERRORS,
        "error rate %",
        "pongs/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
    ]
    source = (
        "Percentiles merged per phase (summary.json)."
        if all(p in merged for p in phases)
        else "Phases marked ≤ come from the per-second CSV: their percentiles are the largest per-second value."
    )
    return (
        "<h3>Per phase</h3>"
        + table(headers, rows, left=(0, 1))
        + f'<p class="note">{source} Each phase includes the restart that began it.</p>'
    )


def restart_table(head: Headline) -> str:
    if not head.restarts:
        return "<p>No restarts in this run.</p>"
    first_pong = any(FIRST_PONG_S in r for r in head.restarts)
    rows = []
    for r in head.restarts:
        what = (
            f"{r.get('mode', '')} {r.get('which', '')}".strip()
            if r.get("action") == RESTART
            else f"ASGI_THREADS={r.get('threads')}"
        )
        rows.append(
            [
                f"+{fmt(r.get(AT_S))} s",
                what,
                down_text(r),
                *([fmt(r.get(FIRST_PONG_S))] if first_pong else []),
                recovery_text(r),
                r.get(FAILED_PINGS, 0),
                r.get(CLOSES, 0),
                _known_or(r.get(SERVER_KILLS), head.signatures_known),
                f"{_stale_cell(r.get(STALE_MEMBERS_BEFORE), head)} → {_stale_cell(r.get(STALE_MEMBERS_AFTER), head)}",
            ]
        )
    headers = [
        "restart at",
        "what",
        "down s",
        *(["first pong s"] if first_pong else []),
        "recovery s",
        "failed pings",
        "closes",
        "server kills",
        "stale members before → after",
    ]
    return table(headers, rows, left=(0, 1, 3 + first_pong)) + (
        '<p class="note">Down: from the signal to the new process answering, as Daphne\'s supervisor measured it '
        "(“daphne”), or for restart hooks, which cannot say, from the first failed connect to the first accepted one "
        "as the users saw it (“clients”, to within a second). "
        + (
            "First pong: from the restart to the first pong on a socket opened after it. "
            if first_pong
            else ""
        )
        + "Recovery: from the restart to the first of three "
        "seconds in which pings were answered with no more failures (connect failures included) than in the five seconds "
        "before, plus 1 %; “not recovered in N s” when none began in the N s the run (or the time to the next restart) left. "
        "Each restart's failures, closes and server kills are counted from its begin to its recovery, never past the "
        'next restart\'s begin. Server kills: Daphne\'s "took too long to shut down" and "Killed N pending" counts '
        "around the restart. Stale members: group members in Redis whose process is no longer alive.</p>"
        + _not_measured_note(head, [SERVER_SIGNATURES, STALE_MEMBERS, REDIS])
    )


def _known_or(value, known: bool) -> str:
    """A figure, 'not measured' when the run could not measure it, '–' when it had no reading."""
    if value is not None:
        return fmt(value)
    return "–" if known else NOT_MEASURED_CELL


def _stale_cell(value, head: Headline) -> str:
    return _known_or(value, STALE_MEMBERS not in head.not_measured and REDIS not in head.not_measured)


def _not_measured_note(head: Headline, figures: list[str]) -> str:
    whys = [
        f"{figure}: not measured ({head.not_measured[figure]})"
        for figure in figures
        if figure in head.not_measured
    ]
    return f'<p class="note">{html.escape("; ".join(whys))}.</p>' if whys else ""


def server_table(head: Headline) -> str:
    if not head.signatures_known:
        return f"<p>Not measured ({html.escape(head.why(SERVER_SIGNATURES, NO_SERVER_LOG))}).</p>"
    rows = [
        [label, int(head.server.get(column) or 0)]  # the filter below keeps non-zero numbers only
        for column, label in SIGNATURE_LABELS.items()
        if head.server.get(column)
    ]
    text = (
        table(["what Daphne logged", "count"], rows)
        if rows
        else "<p>None of the failure signatures was logged.</p>"
    )
    if head.exception_messages is None:
        text += '<p class="note">Exception messages: not known (no summary.json and no server logs here).</p>'
    elif head.exception_messages:
        text += (
            "<h3>Exception inside application: messages</h3>"
            + table(["message", "count"], [[m.strip(), c] for m, c in head.exception_messages.items()])
            + f'<p class="note">From {html.escape(head.messages_from)}.</p>'
        )
    return text


def not_measured_section(head: Headline) -> str:
    """Every figure the run could not measure, with why: its cells are empty, not 0."""
    if not head.not_measured:
        return ""
    rows = [[figure, f"not measured ({why})"] for figure, why in sorted(head.not_measured.items())]
    return (
        "<h3>Not measured</h3>"
        + table(["figure", "why"], rows, left=(0, 1))
        + '<p class="note">These figures are empty in timeseries.csv and null in summary.json: the run could not see '
        "them, which says nothing about whether they were 0.</p>"
    )


def run_info(run: Run, head: Headline) -> str:
    manifest = run.manifest
    started = (run.summary or {}).get(STARTED_AT) or manifest.get(STARTED_AT)
    when = datetime.fromtimestamp(started, UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if started else "–"
    command = shlex.join(mask_argv(manifest.get("command", []))) or "–"  # manifests before masking, too
    rows = [
        ["run id", run.run_id],
        ["folder", str(run.folder)],
        ["started", when],
        [
            "duration",
            f"{fmt(head.duration_s)} s"
            + ("" if run.finished else f" (seconds written before the run stopped: {len(run.rows)})"),
        ],
        ["finished", "yes" if run.finished else "no: no summary.json"],
        ["command", command],
        ["git sha", manifest.get("git_sha") or "–"],
    ]
    plan = {k: v for k, v in (manifest.get(CHAOS_PLAN) or {}).items() if v not in ([], 0, 0.0, "", None)}
    if plan:
        rows.append(["chaos plan", ", ".join(f"{k}={v}" for k, v in plan.items())])
    config = manifest.get("config") or {}
    for key in ("paths", "ping_rate", "pong_timeout", "targets"):
        if key in config:
            rows.append([key, json.dumps(config[key])])
    versions = manifest.get("versions") or {}
    if versions:
        rows.append(["versions", ", ".join(f"{k} {v}" for k, v in versions.items() if v)])
    return table(["", ""], rows, left=(0, 1))


def build_page(run: Run, head: Headline, sentences: list[str], figures: list[tuple[str, bytes]]) -> str:
    title = f"Run {run.run_id}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="sub">{fmt(head.duration_s)} s, {int(count(head.overall.get(PINGS)))} pings on '
        f"{len(head.endpoints)} endpoints, {len(head.restarts)} restarts</p>",
    ]
    if not run.finished:
        parts.append(
            '<p class="warn"><strong>This run did not finish</strong> (it has no summary.json: it was killed or crashed). '
            f"Everything below comes from the {len(run.rows)} seconds written to timeseries.csv and endpoints.csv; "
            "percentiles are upper bounds (the largest per-second value) and restarts are reconstructed from events.jsonl.</p>"
        )
    parts.append("<h2>Findings</h2>")
    if sentences:
        parts.append(
            '<ul class="findings">' + "".join(f"<li>{html.escape(s)}</li>" for s in sentences) + "</ul>"
        )
    else:
        parts.append("<p>Nothing stands out clearly enough in this run's data to state as a finding.</p>")
    parts += [
        "<h2>Headline</h2>",
        endpoint_table(head),
        phase_table(run),
        "<h3>Restarts</h3>",
        restart_table(head),
        "<h3>What Daphne logged</h3>",
        server_table(head),
        not_measured_section(head),
        "<h2>Over time</h2>",
        '<p class="note">Time axes: seconds since the start of the run; each point is one second. Dashed lines: '
        "restarts and Redis actions (from events.jsonl). Shaded bands: phases (the <code>phase</code> column).</p>",
    ]
    for (name, _, caption), (_, png) in zip(PLOTS, figures, strict=True):
        parts.append(
            f'<figure id="{name}">{img(png, caption)}<figcaption>{html.escape(caption)} plots/{name}.png</figcaption></figure>'
        )
    parts += ["<h2>Run</h2>", run_info(run, head), "</body></html>"]
    return "\n".join(parts)


def write_report(run_dir: Path) -> Path:
    """Write run_dir/report.html (self-contained) and run_dir/plots/*.png; returns the page's path."""
    run = load_run(run_dir)
    head = headline(run)
    marks, bands = chaos_marks(run), phase_bands(run)
    figures = []
    for name, draw, _ in PLOTS:
        figures.append((name, save_png(draw(run, marks, bands), run.folder / PLOTS_DIR / f"{name}.png")))
    page = run.folder / REPORT_HTML
    page.write_text(build_page(run, head, findings(run, head), figures), encoding="utf-8")
    return page
