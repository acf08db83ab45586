"""Hand-made run folders, row by row, for the tests of what reads a folder back (the
detectors, the report): figures a real run seldom shows, without running one."""

import json

from load.runfolder.files import AppendOnlyCsv, write_json
from load.runfolder.loader import load_run
from load.runfolder.names import (
    ENDPOINT_COLUMNS,
    ENDPOINTS_CSV,
    EVENTS_JSONL,
    EXCEPTION_COLUMNS,
    EXCEPTIONS_CSV,
    LATENCY_COLUMNS,
    MANIFEST_JSON,
    SERVER_COLUMNS,
    SUMMARY_JSON,
    TIMESERIES_COLUMNS,
    TIMESERIES_CSV,
)

T0 = 1_800_000_000
PATH = "/ws/ping/"


def second(n: int, **cells) -> dict:
    """One timeseries row: 10 pings answered in 2 ms, every signature and Redis figure measured as 0."""
    row = {column: 0 for column in TIMESERIES_COLUMNS}
    row.update(dict.fromkeys(LATENCY_COLUMNS, 2.0))
    row.update(
        {"epoch_s": T0 + n, "elapsed_s": n, "phase": "run", "users": 10, "sent": 10, "pings": 10, "pongs": 10}
    )
    row.update(cells)
    return row


def write_run(
    folder, rows, *, summary=None, events=(), exceptions=None, endpoint_rows=None, manifest=None, without=()
):
    """A run folder of these rows; `without`: columns its CSV files lack (a folder older than them)."""
    table = AppendOnlyCsv(folder / TIMESERIES_CSV, tuple(c for c in TIMESERIES_COLUMNS if c not in without))
    table.write_rows(rows)
    table.close()
    if endpoint_rows is None:
        endpoint_rows = [{**r, "endpoint": PATH} for r in rows]
    per_endpoint = AppendOnlyCsv(
        folder / ENDPOINTS_CSV, tuple(c for c in ENDPOINT_COLUMNS if c not in without)
    )
    per_endpoint.write_rows(endpoint_rows)
    per_endpoint.close()
    (folder / EVENTS_JSONL).write_text("".join(json.dumps(e) + "\n" for e in events))
    if manifest is not None:
        write_json(folder / MANIFEST_JSON, manifest)
    if exceptions is not None:
        log = AppendOnlyCsv(folder / EXCEPTIONS_CSV, EXCEPTION_COLUMNS)
        log.write_rows(exceptions)
        log.close()
    if summary is not None:

        def totals(of: list[dict]) -> dict:
            return {
                k: sum(int(r.get(k) or 0) for r in of)
                for k in ("pings", "pongs", "errors", "close_1011", "pong_timeout", "unmatched")
                if k not in without
            }

        paths = {r["endpoint"] for r in endpoint_rows}
        body = {
            "all": totals(rows),
            "endpoints": {p: totals([r for r in endpoint_rows if r["endpoint"] == p]) for p in paths},
            "server": {c: sum(int(r.get(c) or 0) for r in rows) for c in SERVER_COLUMNS},
            "restarts": [],
            "not_measured": {},
            "duration_s": len(rows),
        }
        body.update(summary)
        write_json(folder / SUMMARY_JSON, body)
    return load_run(folder)
