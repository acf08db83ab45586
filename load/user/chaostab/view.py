"""What the chaos tab's routes answer, as JSON-ready dicts: no Flask here, so it is tested
without a web server.

The rows are the ones the collector wrote to timeseries.csv and endpoints.csv, kept in
memory as written (an empty cell is null); the seconds not yet written come separately,
as `provisional`, built from the same windows the collector will write them from.
"""

import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from load.analysis.detectors import diagnose
from load.config.settings import RESTART_MODES
from load.runfolder.loader import load_run
from load.runfolder.names import (
    ACTION_BEGIN,
    ACTION_ENDS,
    AT_S,
    BROADCASTS,
    CLOSES,
    CONNECT_ERRORS,
    CONNECTIONS,
    CONNECTS,
    DELIVERY_COLUMNS,
    ENDPOINT_COLUMNS,
    EPOCH_S,
    EVENT,
    MAX_MS,
    NOT_SENT_DISCONNECTED,
    P50_MS,
    P99_MS,
    PHASE,
    PING_ERRORS,
    READY,
    REDIS_COLUMNS,
    RESTART_ACTIONS,
    SERVER_COLUMNS,
    SIGNATURE_LABELS,
    TIMESERIES_COLUMNS,
    USERS,
)

FINDINGS_EVERY_S = 5.0  # diagnose() reads the run folder's files: not on every poll

# The charts, by the columns they draw (names.py names them; the page only draws).
LAYOUT = {
    "latency": [P50_MS, P99_MS, MAX_MS],
    "phase": PHASE,
    "epoch": EPOCH_S,
    "markers": {"begin": ACTION_BEGIN, "actions": list(RESTART_ACTIONS), "ready": READY},
    "charts": [
        {"title": "errors per second, by kind", "columns": [*PING_ERRORS, *CONNECT_ERRORS]},
        {
            "title": "connections, connects (and reconnects), closes, unsent pings",
            "columns": [CONNECTIONS, USERS, CONNECTS, CLOSES, NOT_SENT_DISCONNECTED],
        },
        {
            "title": "room delivery (settled when the run ends)",
            "columns": [BROADCASTS, *DELIVERY_COLUMNS],
        },
        {"title": "Daphne's log, signatures per second", "columns": list(SERVER_COLUMNS)},
        {"title": "Redis", "columns": list(REDIS_COLUMNS)},
    ],
    "labels": SIGNATURE_LABELS,
    "modes": list(RESTART_MODES),
}


def json_row(row: dict, columns: Iterable[str]) -> dict:
    """A CSV row as JSON: every column, an empty (unknown) cell as null."""
    return {column: None if row.get(column, "") == "" else row[column] for column in columns}


def series(run, since: int, now: float | None = None) -> dict:
    """GET /chaos/series: the rows written from second `since` on, then the provisional ones."""
    if run is None:
        return {"run_id": None, "rows": [], "endpoints": [], "provisional": [], "provisional_endpoints": []}
    collector = run.collector
    written = collector.written_since(since)
    pending = [] if collector.closed else collector.provisional(now if now is not None else time.time())
    return {
        "run_id": run.manifest.get("run_id"),
        "started": run.started,
        "rows": [json_row(row, TIMESERIES_COLUMNS) for row, _ in written],
        "endpoints": [json_row(e, ENDPOINT_COLUMNS) for _, endpoints in written for e in endpoints],
        "provisional": [json_row(row, TIMESERIES_COLUMNS) for row, _ in pending],
        "provisional_endpoints": [
            json_row(e, ENDPOINT_COLUMNS) for _, endpoints in pending for e in endpoints
        ],
    }


def with_durations(events: Iterable[dict], started: float) -> list[dict]:
    """The events, each with t_s (seconds since the run began) and, for an action's end,
    duration_s since its action_begin."""
    begun: dict[tuple, float] = {}
    listed = []
    for event in events:
        shown = {**event, "t_s": round(event["ts"] - started, 3)}
        key = (event.get("action"), event.get(AT_S))
        if event.get(EVENT) == ACTION_BEGIN:
            begun[key] = event["ts"]
        elif event.get(EVENT) in ACTION_ENDS and key in begun:
            shown["duration_s"] = round(event["ts"] - begun.pop(key), 3)
        listed.append(shown)
    return listed


def table_rows(events: list[dict]) -> list[dict]:
    """The events as rows of Locust's own table in the tab (its extended_tables)."""
    skip = {"ts", "t_s", EVENT, "instance", "generation", "log", "outcome"}
    return [
        {
            "name": f"{n:06d}",  # Locust's table sorts by name at first: the events' order
            "time": datetime.fromtimestamp(event["ts"], UTC).strftime("%H:%M:%S.%f")[:-3],
            "t_s": event["t_s"],
            "event": event[EVENT],
            "who": event.get("instance") or event.get("action") or "",
            "details": " ".join(f"{k}={v}" for k, v in event.items() if k not in skip),
        }
        for n, event in enumerate(events)
    ]


class Findings:
    """diagnose() of the run folder as written so far, at most every FINDINGS_EVERY_S seconds."""

    def __init__(self) -> None:
        self.folder: Path | None = None
        self.at = 0.0
        self.body: dict = {"findings": [], "not_checked": {}}

    def of(self, folder: Path, now: float) -> dict:
        if folder != self.folder or now - self.at >= FINDINGS_EVERY_S:
            self.folder, self.at = folder, now
            try:
                self.body = diagnose(load_run(folder)).as_json()
            except Exception as exc:  # a folder mid-write: say so, try again later
                self.body = {"findings": [], "not_checked": {"findings": f"not read yet ({exc})"}}
        return self.body
