"""The headline facts of one run folder: totals per endpoint and overall, restarts, what
Daphne logged, what the run could not measure. What the report, compare and the detectors
all start from, so each is derived once.

A run killed mid-way has no summary.json: its totals then come from the per-second CSV,
its percentiles are the largest per-second value (an upper bound: per-second percentiles
cannot be merged) and its restarts are derived from events.jsonl as the recorder derives them.
"""

from dataclasses import dataclass, field
from pathlib import Path

from load.analysis.recovery import restart_costs
from load.config.settings import ConfigError
from load.runfolder import loader
from load.runfolder.derive import error_rate, restarts_from_events, totals_from_rows
from load.runfolder.loader import NotARunFolder, Run, count, number
from load.runfolder.names import (
    ALL,
    CHAOS_PLAN,
    DURATION_S,
    ENDPOINT,
    ENDPOINTS,
    ERROR_RATE,
    EXCEPTION_MESSAGES,
    EXCEPTIONS_CSV,
    NO_REDIS_PROBE,
    NO_SERVER_LOG,
    NOT_MEASURED,
    PONGS,
    PONGS_PER_S,
    REDIS,
    REDIS_COLUMNS,
    RESTARTS,
    SERVER,
    SERVER_COLUMNS,
    SERVER_SIGNATURES,
    SUMMARY_JSON,
    TIMESERIES_CSV,
    UNMATCHED,
)


def load_run(run_dir: Path) -> Run:
    """Read a run folder (load.runfolder.loader); ConfigError if it is not one."""
    try:
        return loader.load_run(run_dir)
    except NotARunFolder as exc:
        raise ConfigError("run_dir", str(Path(run_dir)), str(exc)) from None


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
        ERROR_RATE: rate * 100 if rate is not None else None,
        PONGS_PER_S: pongs / duration_s if duration_s else None,
    }


def _restarts(run: Run) -> list[dict]:
    """The restarts the controller completed, derived as the recorder derives them."""
    plan = run.manifest.get(CHAOS_PLAN) or {}
    return restarts_from_events(
        run.events, plan.get("restart_mode", "graceful"), plan.get("restart_which", "all")
    )


UNSEEN_IN_CSV = "empty in every second of timeseries.csv"
NO_UNMATCHED_COLUMN = (
    f"{TIMESERIES_CSV} has no {UNMATCHED} column: "
    "the run was written before frames that answered no ping were counted"
)


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


def headline(run: Run) -> Headline:
    head = _headline(run)
    if run.rows and UNMATCHED not in run.rows[0]:
        # A folder older than the column: its count is unknown, not the 0 a sum of nothing gives.
        head.not_measured = {**head.not_measured, UNMATCHED: NO_UNMATCHED_COLUMN}
        for figures in (head.overall, *head.endpoints.values()):
            figures[UNMATCHED] = None
    return head


def _headline(run: Run) -> Headline:
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
            exception_messages=messages if messages is not None else run.exception_messages(),
            messages_from=SUMMARY_JSON if messages is not None else EXCEPTIONS_CSV,
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
        exception_messages=run.exception_messages(),
        messages_from=EXCEPTIONS_CSV,
        not_measured=missing,
    )
