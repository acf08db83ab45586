"""Pass/fail for CI: `--fail-on` expressions checked against a run's summary.

An expression is `METRIC[@ENDPOINT] OP VALUE[%]`, several separated by commas:

    error_rate>1%, p99_ms>500, p99_ms@/ws/ping/>200, recovery_s>10, killed>0

A breach makes the run exit with code 1 and prints one line per breach; a malformed
expression is a ConfigError (one line, exit code 2) before anything runs.
"""

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

from load.config import ConfigError
from load.errors import CONNECT_ERRORS, PING_ERRORS

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, "<=": operator.le, "==": operator.eq, ">": operator.gt, "<": operator.lt,
}
EXPRESSION = re.compile(r"^\s*([a-z_0-9]+)(?:@(\S+?))?\s*(>=|<=|==|>|<)\s*(-?[0-9.]+)\s*(%?)\s*$")

# Figures of an endpoint (or of all of them) in summary.json, plus these derived ones.
ENDPOINT_METRICS = (
    "pings", "pongs", "errors", "error_rate", "connect_error_rate", "p50_ms", "p95_ms", "p99_ms", "max_ms",
    "closes", "missed_broadcasts", "late_sends", "in_flight", *PING_ERRORS, *CONNECT_ERRORS,
)
RUN_METRICS = ("recovery_s", "killed", "exceptions", "killed_pending", "stale_members", "task_exceptions")
RATES = ("error_rate", "connect_error_rate")


@dataclass(frozen=True)
class Threshold:
    metric: str
    endpoint: str  # "all" unless scoped with @
    op: str
    limit: float
    text: str

    def breached_by(self, value: float | None) -> bool:
        return value is not None and OPERATORS[self.op](value, self.limit)


def parse_thresholds(text: str) -> tuple[Threshold, ...]:
    thresholds = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        match = EXPRESSION.match(part)
        if not match:
            raise ConfigError("fail_on", part, "write METRIC[@ENDPOINT]>VALUE, e.g. error_rate>1% or p99_ms@/ws/ping/>500")
        metric, endpoint, op, number, percent = match.groups()
        if metric not in ENDPOINT_METRICS + RUN_METRICS:
            raise ConfigError("fail_on", part, f"unknown metric {metric!r}; known: {', '.join(ENDPOINT_METRICS + RUN_METRICS)}")
        if endpoint and metric in RUN_METRICS:
            raise ConfigError("fail_on", part, f"{metric} is a figure of the whole run; drop @{endpoint}")
        if percent and metric not in RATES:
            raise ConfigError("fail_on", part, f"only {' and '.join(RATES)} take a percentage")
        limit = float(number) / (100 if percent else 1)
        thresholds.append(Threshold(metric, endpoint or "all", op, limit, part))
    return tuple(thresholds)


def run_value(summary: dict, metric: str) -> float | None:
    server = summary.get("server", {})
    restarts = summary.get("restarts", [])
    if metric == "recovery_s":
        # A restart after which service never came back counts as the whole rest of the run.
        values = [r["recovery_s"] if r["recovery_s"] is not None else summary.get("duration_s", float("inf")) for r in restarts]
        return max(values, default=None)
    if metric == "killed":
        return sum(server.get(c, 0) for c in ("sig_killed_own_await", "sig_killed_on_thread", "sig_killed_other"))
    if metric == "stale_members":
        values = [r["stale_members_after"] for r in restarts if r.get("stale_members_after") is not None]
        return max(values, default=None)
    column = {"exceptions": "sig_exception", "killed_pending": "sig_killed_pending", "task_exceptions": "sig_task_exception"}[metric]
    return server.get(column, 0)


def endpoint_value(figures: dict, metric: str) -> float | None:
    pings = figures.get("pings", 0)
    if metric == "error_rate":
        return figures.get("errors", 0) / pings if pings else None
    if metric == "connect_error_rate":
        connects = figures.get("connects", 0)
        return sum(figures.get(k, 0) for k in CONNECT_ERRORS) / connects if connects else None
    return figures.get(metric)


def breaches(thresholds: tuple[Threshold, ...], summary: dict) -> list[str]:
    """One line per breached threshold; an endpoint the run never used is a breach too."""
    lines = []
    for threshold in thresholds:
        if threshold.metric in RUN_METRICS:
            value = run_value(summary, threshold.metric)
        elif threshold.endpoint == "all":
            value = endpoint_value(summary["all"], threshold.metric)
        elif threshold.endpoint in summary.get("endpoints", {}):
            value = endpoint_value(summary["endpoints"][threshold.endpoint], threshold.metric)
        else:
            lines.append(f"threshold {threshold.text}: the run has no endpoint {threshold.endpoint}")
            continue
        if threshold.breached_by(value):
            shown = f"{value * 100:.2f}%" if threshold.metric in RATES else f"{value:g}"
            lines.append(f"threshold breached: {threshold.text} (was {shown}, {threshold.endpoint})")
    return lines
