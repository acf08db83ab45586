"""Pass/fail for CI: `--fail-on` expressions checked against a run's summary.

An expression is `METRIC[@ENDPOINT] OP VALUE[%]`, several separated by commas:

    error_rate>1%, p99_ms>500, p99_ms@/ws/ping/>200, recovery_s>10, killed>0

A breach makes the run exit with code 1 and prints one line per breach; a malformed
expression is a ConfigError (one line, exit code 2) before anything runs. A threshold whose
figure the run could not measure (no server log for `killed`, no restart for
`recovery_s`, a restart not recovered within fewer seconds than the bound) is no breach:
it gives one note, "threshold X not checked: ... not measured (why)", and the exit code
stays 0.
"""

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

from load.config.settings import ConfigError
from load.runfolder.derive import error_rate
from load.runfolder.names import (
    ALL,
    BROADCASTS_LOST,
    CLOSES,
    CONNECT_ERRORS,
    CONNECTS,
    DELIVERY_COLUMNS,
    ENDPOINTS,
    ERROR_RATE,
    ERRORS,
    IN_FLIGHT,
    KILLED_PENDING,
    LATE_SENDS,
    MAX_MS,
    NOT_MEASURED,
    NOT_RECOVERED_WITHIN_S,
    P50_MS,
    P95_MS,
    P99_MS,
    PING_ERRORS,
    PINGS,
    PONGS,
    RECOVERY_S,
    RESTARTS,
    SERVER,
    SERVER_SIGNATURES,
    SIG_EXCEPTION,
    SIG_KILLED_PENDING,
    SIG_TASK_EXCEPTION,
    STALE_MEMBERS,
    STALE_MEMBERS_AFTER,
    TOO_LONG_KILLS,
)

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    ">": operator.gt,
    "<": operator.lt,
}
EXPRESSION = re.compile(r"^\s*([a-z_0-9]+)(?:@(\S+?))?\s*(>=|<=|==|>|<)\s*(-?[0-9.]+)\s*(%?)\s*$")

# Figures of an endpoint (or of all of them) in summary.json, plus these derived ones.
ENDPOINT_METRICS = (
    PINGS,
    PONGS,
    ERRORS,
    ERROR_RATE,
    "connect_error_rate",
    P50_MS,
    P95_MS,
    P99_MS,
    MAX_MS,
    CLOSES,
    BROADCASTS_LOST,
    LATE_SENDS,
    IN_FLIGHT,
    *PING_ERRORS,
    *CONNECT_ERRORS,
)
RUN_METRICS = (RECOVERY_S, "killed", "exceptions", KILLED_PENDING, STALE_MEMBERS, "task_exceptions")
RATES = (ERROR_RATE, "connect_error_rate")


@dataclass(frozen=True)
class Figure:
    """What the run says of a metric: a value, a range [low, high] (a restart not recovered
    by the end took at least `low`), or nothing, with why."""

    low: float | None
    high: float | None
    why: str = ""

    @classmethod
    def exact(cls, value: float) -> "Figure":
        return cls(value, value)

    @classmethod
    def unknown(cls, why: str) -> "Figure":
        return cls(None, None, why)


@dataclass(frozen=True)
class Threshold:
    metric: str
    endpoint: str  # "all" unless scoped with @
    op: str
    limit: float
    text: str

    def breached_by(self, figure: Figure) -> bool | None:
        """True or False when every value the figure allows says so alike; None when it cannot tell."""
        if figure.low is None:
            return None
        assert figure.high is not None  # a figure knows both ends or neither (see exact, unknown)
        ends = [OPERATORS[self.op](v, self.limit) for v in (figure.low, figure.high)]
        if all(ends) and (self.op != "==" or figure.low == figure.high):
            return True
        inside = figure.low <= self.limit <= figure.high
        if not any(ends) and not (self.op in (">=", "<=", "==") and inside):
            return False
        return None


def parse_thresholds(text: str) -> tuple[Threshold, ...]:
    thresholds = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        match = EXPRESSION.match(part)
        if not match:
            raise ConfigError(
                "fail_on", part, "write METRIC[@ENDPOINT]>VALUE, e.g. error_rate>1% or p99_ms@/ws/ping/>500"
            )
        metric, endpoint, op, number, percent = match.groups()
        if metric not in ENDPOINT_METRICS + RUN_METRICS:
            raise ConfigError(
                "fail_on",
                part,
                f"unknown metric {metric!r}; known: {', '.join(ENDPOINT_METRICS + RUN_METRICS)}",
            )
        if endpoint and metric in RUN_METRICS:
            raise ConfigError("fail_on", part, f"{metric} is a figure of the whole run; drop @{endpoint}")
        if percent and metric not in RATES:
            raise ConfigError("fail_on", part, f"only {' and '.join(RATES)} take a percentage")
        limit = float(number) / (100 if percent else 1)
        thresholds.append(Threshold(metric, endpoint or ALL, op, limit, part))
    return tuple(thresholds)


SIGNATURE_METRICS = {
    "killed": TOO_LONG_KILLS,
    "exceptions": (SIG_EXCEPTION,),
    KILLED_PENDING: (SIG_KILLED_PENDING,),
    "task_exceptions": (SIG_TASK_EXCEPTION,),
}


def _why(summary: dict, figure: str, otherwise: str) -> str:
    return (summary.get(NOT_MEASURED) or {}).get(figure) or otherwise


def recovery_figure(restarts: list[dict]) -> Figure:
    """The longest recovery; a restart not recovered when the run ended (or the next began)
    took at least `not_recovered_within_s`, with no upper bound."""
    if not restarts:
        return Figure.unknown("no restart in this run")
    lows, high = [], 0.0
    for restart in restarts:
        if restart.get(RECOVERY_S) is not None:
            lows.append(restart[RECOVERY_S])
            high = max(high, restart[RECOVERY_S])
        else:
            lows.append(restart.get(NOT_RECOVERED_WITHIN_S) or 0.0)
            high = math.inf
    low = max(lows)
    if high == math.inf:
        shorts = [r.get(NOT_RECOVERED_WITHIN_S) or 0.0 for r in restarts if r.get(RECOVERY_S) is None]
        why = f"{len(shorts)} restart(s) not recovered within {min(shorts):g} s before the run ended or the next restart"
        return Figure(low, high, why)
    return Figure(low, high)


def run_value(summary: dict, metric: str) -> Figure:
    server = summary.get(SERVER) or {}
    restarts = summary.get(RESTARTS, [])
    if metric == RECOVERY_S:
        return recovery_figure(restarts)
    if metric == STALE_MEMBERS:
        values = [r[STALE_MEMBERS_AFTER] for r in restarts if r.get(STALE_MEMBERS_AFTER) is not None]
        if values:
            return Figure.exact(max(values))
        return Figure.unknown(
            _why(
                summary,
                STALE_MEMBERS,
                "no restart in this run" if not restarts else "no reading after any restart",
            )
        )
    cells = [server.get(column, 0) for column in SIGNATURE_METRICS[metric]]  # null: no log was read
    if not server or any(cell is None for cell in cells):
        return Figure.unknown(_why(summary, SERVER_SIGNATURES, "no server log was read"))
    return Figure.exact(sum(cells))


def endpoint_value(figures: dict, metric: str) -> Figure:
    if metric == ERROR_RATE:
        rate = error_rate(figures)
        return Figure.exact(rate) if rate is not None else Figure.unknown("no pings")
    if metric == "connect_error_rate":
        connects = figures.get(CONNECTS, 0)
        return (
            Figure.exact(sum(figures.get(k, 0) for k in CONNECT_ERRORS) / connects)
            if connects
            else Figure.unknown("no connects")
        )
    value = figures.get(metric)
    if value is not None:
        return Figure.exact(value)
    if metric in DELIVERY_COLUMNS:
        return Figure.unknown("room delivery not settled: see not_measured in summary.json")
    return Figure.unknown("no pongs" if metric.endswith("_ms") else "not in the summary")


def _figure_of(threshold: Threshold, summary: dict) -> Figure | None:
    if threshold.metric in RUN_METRICS:
        return run_value(summary, threshold.metric)
    if threshold.endpoint == ALL:
        return endpoint_value(summary[ALL], threshold.metric)
    if threshold.endpoint in summary.get(ENDPOINTS, {}):
        return endpoint_value(summary[ENDPOINTS][threshold.endpoint], threshold.metric)
    return None


def _shown(threshold: Threshold, figure: Figure) -> str:
    def one(value: float) -> str:
        return f"{value * 100:.2f}%" if threshold.metric in RATES else f"{value:g}"

    assert figure.low is not None and figure.high is not None  # check() shows measured figures only
    if figure.low == figure.high:
        return one(figure.low)
    return (
        f"at least {one(figure.low)}: {figure.why}"
        if figure.high == math.inf
        else f"{one(figure.low)} to {one(figure.high)}"
    )


def check(thresholds: tuple[Threshold, ...], summary: dict) -> tuple[list[str], list[str]]:
    """(breaches, notes): one line per breached threshold (an endpoint the run never used
    is a breach too), and one note per threshold the run's figures cannot decide."""
    lines, notes = [], []
    for threshold in thresholds:
        figure = _figure_of(threshold, summary)
        if figure is None:
            lines.append(f"threshold {threshold.text}: the run has no endpoint {threshold.endpoint}")
            continue
        breached = threshold.breached_by(figure)
        if breached:
            lines.append(
                f"threshold breached: {threshold.text} (was {_shown(threshold, figure)}, {threshold.endpoint})"
            )
        elif breached is None:
            what = f"{threshold.metric}" + (f"@{threshold.endpoint}" if threshold.endpoint != ALL else "")
            if figure.low is None:
                notes.append(f"threshold {threshold.text} not checked: {what} not measured ({figure.why})")
            else:
                notes.append(f"threshold {threshold.text} not checked: {what} is {_shown(threshold, figure)}")
    return lines, notes


def breaches(thresholds: tuple[Threshold, ...], summary: dict) -> list[str]:
    """One line per breached threshold; see check() for the ones that cannot be decided."""
    return check(thresholds, summary)[0]
