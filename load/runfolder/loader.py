"""Reading a run folder back: its per-second rows, events, manifest and summary, as one
Run. What the report, compare and the thresholds read; a run killed mid-way (no
summary.json, a last line cut short) reads as far as it was written."""

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

from load.runfolder.names import COUNT as COUNT_COLUMN
from load.runfolder.names import (
    ELAPSED_S,
    ENDPOINT,
    ENDPOINTS,
    ENDPOINTS_CSV,
    EPOCH_S,
    EVENTS_JSONL,
    EXCEPTIONS_CSV,
    MANIFEST_JSON,
    MESSAGE,
    PHASE,
    RUN_ID,
    STARTED_AT,
    SUMMARY_JSON,
    TIMESERIES_CSV,
)


class NotARunFolder(ValueError):
    """The folder has no timeseries.csv: no run wrote it."""


@dataclass
class Run:
    """What one run folder holds, as read from its files."""

    folder: Path
    rows: list[dict]  # timeseries.csv, one a second (cells as strings)
    endpoint_rows: list[dict]  # endpoints.csv
    events: list[dict]  # events.jsonl
    manifest: dict  # {} if missing
    summary: dict | None  # None: the run did not finish
    exceptions: list[dict] | None = None  # exceptions.csv; None: no server log was read

    @property
    def finished(self) -> bool:
        return self.summary is not None

    @property
    def run_id(self) -> str:
        return str((self.summary or {}).get(RUN_ID) or self.manifest.get(RUN_ID) or self.folder.name)

    @property
    def t0(self) -> int:
        """The epoch second that is 0 on every time axis (elapsed_s = epoch_s - t0)."""
        if self.rows:
            return int(self.rows[0][EPOCH_S]) - int(self.rows[0][ELAPSED_S])
        started = (self.summary or {}).get(STARTED_AT) or self.manifest.get(STARTED_AT) or 0
        return int(started)

    @property
    def endpoints(self) -> list[str]:
        return sorted(
            {r[ENDPOINT] for r in self.endpoint_rows} | set((self.summary or {}).get(ENDPOINTS, {}))
        )

    def exception_messages(self) -> dict[str, int] | None:
        """Exception message -> count over the run, most frequent first; None: not measured."""
        if self.exceptions is None:
            return None
        totals: dict[str, int] = {}
        for row in self.exceptions:
            totals[row[MESSAGE]] = totals.get(row[MESSAGE], 0) + int(count(row[COUNT_COLUMN]))
        return dict(sorted(totals.items(), key=lambda item: -item[1]))

    def phases(self) -> list[str]:
        """The phase names in the order they first appear."""
        return list(dict.fromkeys(r[PHASE] for r in self.rows))


def read_csv(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        # A row cut short (a line being written when the run was killed) lacks its last cells.
        return [row for row in reader if None not in row.values() and None not in row]


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def read_events(path: Path) -> list[dict]:
    events = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a line cut short by a kill
            if isinstance(event, dict) and "ts" in event:
                events.append(event)
    return events


def load_run(run_dir: Path) -> Run:
    """Read a run folder; NotARunFolder if it is not one (no timeseries.csv)."""
    folder = Path(run_dir)
    if not (folder / TIMESERIES_CSV).is_file():
        raise NotARunFolder(
            f"not a run folder: it has no {TIMESERIES_CSV} (give a folder a run wrote under results/)"
        )
    return Run(
        folder=folder,
        rows=read_csv(folder / TIMESERIES_CSV),
        endpoint_rows=read_csv(folder / ENDPOINTS_CSV),
        events=read_events(folder / EVENTS_JSONL),
        manifest=read_json(folder / MANIFEST_JSON) or {},
        summary=read_json(folder / SUMMARY_JSON),
        exceptions=read_csv(folder / EXCEPTIONS_CSV) if (folder / EXCEPTIONS_CSV).is_file() else None,
    )


# -- cells ----------------------------------------------------------------------------


def number(cell) -> float | None:
    """A CSV or JSON cell as a float; None for an empty cell (no sample that second)."""
    if cell in ("", None):
        return None
    try:
        value = float(cell)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


def count(cell) -> float:
    return number(cell) or 0.0
