"""Merges the users' windows (from this process or from workers) and writes them, second
by second, to timeseries.csv (all endpoints together) and endpoints.csv (one row per
second and endpoint).

A second is written once no more data can arrive for it: `lag_s` after it ended (the
pong timeout plus the time a worker's report takes). Every second from the start of the
run gets a row, so an outage shows as zeros rather than as a gap. Each batch of rows goes
to the file in one write() and is on disk before the next second: a run killed mid-way
leaves valid CSV up to its last written second.
"""

import time
from collections import Counter, deque
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from load.measure.generator import limited
from load.measure.timeline import EndpointWindow, Window, windows_from_wire
from load.probes.redisprobe import Sample
from load.runfolder.files import AppendOnlyCsv
from load.runfolder.names import (
    ALL,
    CLOSES,
    CONNECTIONS,
    COUNT,
    COUNT_COLUMNS,
    DELIVERY_COLUMNS,
    ELAPSED_S,
    ENDPOINT,
    ENDPOINT_COLUMNS,
    ENDPOINTS,
    ENDPOINTS_CSV,
    EPOCH_S,
    ERRORS,
    EXCEPTION_COLUMNS,
    EXCEPTIONS_CSV,
    FIRST_CONNECT_FAILED,
    FIRST_CONNECT_OK,
    FIRST_PONG_AT,
    GENERATOR_CPU,
    GENERATOR_LIMITED,
    GENERATOR_LIMITED_SECONDS,
    GROUP,
    GROUP_COLUMNS,
    GROUPS_CSV,
    LATE_SENDS,
    LATE_WINDOWS,
    MAX_MS,
    MEMBERS,
    MESSAGE,
    P50_MS,
    P95_MS,
    P99_MS,
    PHASE,
    PHASES,
    PINGS,
    PONGS,
    RUN_PHASE,
    SEND_LAG_MAX_MS,
    SENT,
    SERVER,
    SERVER_COLUMNS,
    SERVICE_P50_MS,
    SERVICE_P99_MS,
    STALE_MEMBERS,
    TIME,
    TIMESERIES_COLUMNS,
    TIMESERIES_CSV,
    USERS,
    WORKERS,
)
from load.wire.errors import CONNECT_ERRORS, PING_ERRORS, PONG

RECENT_SECONDS = 3600  # seconds of written rows kept in memory

# What the recovery analysis needs of each written second; the rest stays on disk only.
HISTORY_COLUMNS = (
    EPOCH_S,
    PINGS,
    PONGS,
    ERRORS,
    CLOSES,
    FIRST_PONG_AT,
    FIRST_CONNECT_FAILED,
    FIRST_CONNECT_OK,
    *CONNECT_ERRORS,
    *SERVER_COLUMNS,
    STALE_MEMBERS,
)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)  # None is an empty CSV cell, null in JSON


def figures(window: EndpointWindow) -> dict:
    """The CSV/summary figures of one endpoint window (or of a merge of several)."""
    counts = window.counts
    row: dict[str, float | None] = {name: counts.get(name, 0) for name in COUNT_COLUMNS}
    row[PONGS] = counts.get(PONG, 0)
    row[ERRORS] = sum(counts.get(kind, 0) for kind in PING_ERRORS)
    p50, p95, p99 = window.latency.percentiles(0.50, 0.95, 0.99)
    service_p50, service_p99 = window.service.percentiles(0.50, 0.99)
    row.update(
        {
            P50_MS: _rounded(p50),
            P95_MS: _rounded(p95),
            P99_MS: _rounded(p99),
            MAX_MS: _rounded(window.latency.max_ms),
            SERVICE_P50_MS: _rounded(service_p50),
            SERVICE_P99_MS: _rounded(service_p99),
            SEND_LAG_MAX_MS: round(window.send_lag_max_ms, 1),
            FIRST_PONG_AT: _rounded(window.first_pong_at),
            FIRST_CONNECT_FAILED: _rounded(window.first_connect_failed_at),
            FIRST_CONNECT_OK: _rounded(window.first_connect_ok_at),
        }
    )
    return row


def merged(windows: list[EndpointWindow]) -> EndpointWindow:
    total = EndpointWindow()
    for window in windows:
        total.merge(window)
    return total


class Collector:
    def __init__(
        self,
        run_dir: Path,
        start: float,
        lag_s: float,
        phase_at: Callable[[int], str] = lambda s: RUN_PHASE,
        signatures: bool = True,
    ):
        self.start = start
        self.signatures = signatures  # False: no server log is read, every signature is unknown (empty, null)
        self.lag_s = lag_s
        self.phase_at = phase_at
        self.next_second = int(start)
        self.pending: dict[int, Window] = {}
        self.generator_limited_seconds = 0  # seconds written in which the generator was the limit
        self.process: dict[int, dict[str, int | str]] = {}  # users and workers, as Locust counts them
        self.server: dict[int, Counter] = {}
        self.server_totals: Counter = Counter()
        self.redis: dict[int, Sample] = {}
        self.history: list[dict] = []
        # The rows written last, kept for the web UI's chaos tab (load.user.chaostab).
        self.recent: deque[tuple[dict, list[dict]]] = deque(maxlen=RECENT_SECONDS)
        # The run's totals are the merge of its phases', made when a summary is asked for.
        self.phase_totals: dict[str, dict[str, EndpointWindow]] = {}
        self.late_windows = 0  # data for seconds already written; kept in the totals
        self.timeseries = AppendOnlyCsv(run_dir / TIMESERIES_CSV, TIMESERIES_COLUMNS)
        self.endpoints = AppendOnlyCsv(run_dir / ENDPOINTS_CSV, ENDPOINT_COLUMNS)
        self.groups = AppendOnlyCsv(run_dir / GROUPS_CSV, GROUP_COLUMNS)
        # Only where a log is read: a run folder without the file did not measure them.
        self.exceptions = AppendOnlyCsv(run_dir / EXCEPTIONS_CSV, EXCEPTION_COLUMNS) if signatures else None
        self.closed = False

    def merge(self, wire: dict[str, dict]) -> None:
        """A worker's windows, as they came over Locust's wire."""
        self.merge_windows(windows_from_wire(wire))

    def merge_windows(self, windows: dict[int, Window]) -> None:
        """Windows of this process's users (or a worker's, from the wire); they become ours."""
        for second, window in windows.items():
            phase = self.phase_totals.setdefault(self.phase_at(second), {})
            for path, endpoint in window.endpoints.items():
                phase.setdefault(path, EndpointWindow()).merge(endpoint)
            if second < self.next_second:
                self.late_windows += 1
                continue
            self.pending.setdefault(second, Window()).merge(window)

    def record_users(self, ts: float, users: int, workers: int | None = None) -> None:
        """Locust's user count, and on a master its connected workers (None elsewhere: empty cells)."""
        self.process[int(ts)] = {USERS: users, WORKERS: "" if workers is None else workers}

    def record_server(self, windows: dict[int, Counter]) -> None:
        """Server log signatures per second (load.probes.serverlog); late ones count in the totals only."""
        for second, counts in windows.items():
            self.server_totals.update(counts)
            if second >= self.next_second:
                self.server.setdefault(second, Counter()).update(counts)

    def record_exceptions(self, messages: dict[int, Counter]) -> None:
        """Exception messages per second, written at once: an event list, not a row per second."""
        if self.exceptions is None or self.closed:
            return
        self.exceptions.write_rows(
            [
                {**self.stamp(second), MESSAGE: message, COUNT: count}
                for second, counts in sorted(messages.items())
                for message, count in sorted(counts.items())
            ]
        )

    def record_redis(self, ts: float, sample: Sample) -> None:
        if sample.figures:
            self.redis[int(ts)] = sample

    def flush(self, now: float | None = None) -> list[dict]:
        """Write every second that can no longer change; returns the timeseries rows written."""
        until = int((now if now is not None else time.time()) - self.lag_s)
        return self._write_until(until)

    def close(self) -> None:
        """Write everything still pending (the run is over) and close the files."""
        if self.closed:
            return
        last = max([*self.pending, *self.server, *self.redis, self.next_second - 1])
        self._write_until(last + 1)
        for table in (self.timeseries, self.endpoints, self.groups, self.exceptions):
            if table is not None:
                table.close()
        self.closed = True

    def _write_until(self, until: int) -> list[dict]:
        series, per_endpoint, groups = [], [], []
        for second in range(self.next_second, until):
            window = self.pending.pop(second, Window())
            sample = self.redis.pop(second, None)
            row, endpoints = self._rows(
                second, window, self.process.pop(second, {}), self.server.pop(second, Counter()), sample
            )
            if sample is not None:
                groups += [
                    {**self.stamp(second), GROUP: g, MEMBERS: m, STALE_MEMBERS: st}
                    for g, (m, st) in sorted(sample.groups.items())
                ]
            series.append(row)
            self.generator_limited_seconds += row[GENERATOR_LIMITED] == 1
            self.history.append({column: row.get(column, "") for column in HISTORY_COLUMNS})
            per_endpoint += endpoints
            self.recent.append((row, endpoints))
        self.next_second = max(self.next_second, until)
        self.timeseries.write_rows(series)
        self.endpoints.write_rows(per_endpoint)
        self.groups.write_rows(groups)
        return series

    def _rows(
        self, second: int, window: Window, process: dict, server: Counter, sample: Sample | None
    ) -> tuple[dict, list[dict]]:
        """One second's timeseries.csv row and its endpoints.csv rows."""
        stamp = self.stamp(second)
        by_path = {path: figures(window.endpoints[path]) for path in sorted(window.endpoints)}
        if len(by_path) == 1:  # the one endpoint's figures are the second's: no merge, no second sort
            (overall,) = by_path.values()
        else:
            overall = figures(merged(list(window.endpoints.values())))
        row = {**stamp, **overall}
        # no sample of the open connections that second (a worker's report missed it): unknown, not 0
        cpu = window.generator_cpu
        row.update(
            {
                USERS: process.get(USERS, ""),
                WORKERS: process.get(WORKERS, ""),
                CONNECTIONS: window.gauges.get(CONNECTIONS, ""),
                GENERATOR_CPU: "" if cpu is None else cpu,
                GENERATOR_LIMITED: limited(row.get(SENT, 0), row.get(LATE_SENDS, 0), cpu),
            }
        )
        row.update({column: server.get(column, 0) if self.signatures else "" for column in SERVER_COLUMNS})
        if sample is not None:
            row.update(sample.figures)
        endpoints = [{**stamp, ENDPOINT: path, **figures_of} for path, figures_of in by_path.items()]
        return row, endpoints

    def written_since(self, since: int) -> list[tuple[dict, list[dict]]]:
        """The rows written for the seconds from `since` on (the last RECENT_SECONDS at most),
        as they went to the CSV files, each with its endpoints' rows."""
        return [(row, endpoints) for row, endpoints in self.recent if row[EPOCH_S] >= since]

    def provisional(self, now: float) -> list[tuple[dict, list[dict]]]:
        """The seconds ended but not yet written (a late pong may still change them), as their
        rows would be written now; built from the same windows, none of them consumed."""
        return [
            self._rows(
                second,
                self.pending.get(second, Window()),
                self.process.get(second, {}),
                self.server.get(second, Counter()),
                self.redis.get(second),
            )
            for second in range(self.next_second, int(now))
        ]

    def settle_recent(self, per_second: dict[tuple[int, str], Counter]) -> None:
        """The delivery cells settled at the end, filled in the rows kept here as in the files."""
        by_second: dict[int, dict[str, Counter]] = {}
        for (second, path), counts in per_second.items():
            by_second.setdefault(second, {})[path] = counts
        for row, endpoints in self.recent:
            paths = by_second.get(row[EPOCH_S], {})
            total = sum(paths.values(), Counter())
            row.update({column: total[column] for column in DELIVERY_COLUMNS})
            for endpoint in endpoints:
                counts = paths.get(endpoint[ENDPOINT], Counter())
                endpoint.update({column: counts[column] for column in DELIVERY_COLUMNS})

    def stamp(self, second: int) -> dict:
        return {
            TIME: datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            EPOCH_S: second,
            ELAPSED_S: second - int(self.start),
            PHASE: self.phase_at(second),
        }

    def summary(self) -> dict:
        totals: dict[str, EndpointWindow] = {}
        for paths in self.phase_totals.values():
            for path, window in paths.items():
                totals.setdefault(path, EndpointWindow()).merge(window)
        endpoints = {path: figures(window) for path, window in sorted(totals.items())}
        overall = figures(merged(list(totals.values())))
        server = {
            column: self.server_totals.get(column, 0) if self.signatures else None
            for column in SERVER_COLUMNS
        }
        phases = {
            name: {
                ALL: figures(merged(list(paths.values()))),
                ENDPOINTS: {p: figures(w) for p, w in sorted(paths.items())},
            }
            for name, paths in self.phase_totals.items()
        }
        return {
            ALL: overall,
            ENDPOINTS: endpoints,
            PHASES: phases,
            SERVER: server,
            LATE_WINDOWS: self.late_windows,
            GENERATOR_LIMITED_SECONDS: self.generator_limited_seconds,
        }
