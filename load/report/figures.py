"""The per-second series the findings and plots read: steady seconds, one endpoint's rows,
the steps of an ASGI_THREADS staircase."""

from dataclasses import dataclass, field

from load.report.numbers import Spread, spread
from load.runfolder.loader import Run, count, number
from load.runfolder.names import (
    ELAPSED_S,
    ENDPOINT,
    EPOCH_S,
    ERROR_RATE,
    ERRORS,
    HOST,
    PHASE,
    PINGS,
    PONGS,
    RECOVERY_S,
    USERS,
)


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
        if column == ERROR_RATE:
            return spread(
                count(r.get(ERRORS)) / count(r.get(PINGS)) * 100 for r in series if count(r.get(PINGS))
            )
        return spread(number(r.get(column)) for r in series)


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
    cpus = (manifest.get(HOST) or {}).get("cpus") or 1
    return min(32, int(cpus) + 4)
