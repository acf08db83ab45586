"""Locust's own CSV files (locust_stats.csv, ..._history.csv, ...) for one swarm, in its
run folder: opened when the swarm starts, written each second by Locust's own writer, and
closed with a last pass once the swarm's stats are final, so that a second swarm from the
web UI writes its own files instead of rewriting the first one's.

When are they final? On a local runner, when the run is written (the users have stopped).
On a master, once each worker that stopped has sent a stats report after its final
timeline message: a worker sends its stats every 3 s and, on Locust's `stop`, not at once.
Otherwise at the next swarm's start (Locust has just cleared its stats: no last pass, the
files hold the previous second's) or when Locust quits.
"""

import time
from pathlib import Path
from typing import Any

import gevent
import locust.stats

from load.runfolder.names import LOCUST_PREFIX


class SwarmCsv:
    def __init__(self, environment: Any, run_dir: Path, full_history: bool):
        self.writer = locust.stats.StatsCSVFileWriter(
            environment, locust.stats.PERCENTILES_TO_REPORT, str(run_dir / LOCUST_PREFIX), full_history
        )
        self.greenlet: gevent.Greenlet | None = gevent.spawn(self.writer.stats_writer)
        self.owed: set[str] = set()  # workers whose last stats report has not come yet
        self.run_written = False

    @property
    def open(self) -> bool:
        return self.greenlet is not None

    def worker_stopped(self, client_id: str) -> None:
        self.owed.add(client_id)

    def worker_reported(self, client_id: str) -> None:
        self.owed.discard(client_id)
        if self.run_written and not self.owed:
            self.close()

    def written(self) -> None:
        """The run is written: close now, or when the stopped workers' last stats arrive."""
        self.run_written = True
        if not self.owed:
            self.close()

    def close(self, last_pass: bool = True) -> None:
        if self.greenlet is None:
            return
        self.greenlet.kill()  # it yields only in its sleep between passes: no pass is cut short
        self.greenlet = None
        if last_pass:
            self._last_pass()
        self.writer.close_files()

    def _last_pass(self) -> None:
        # Locust's writer keeps where its data starts in a local variable: rewrite from the top.
        # The underscored methods are Locust's own row writers (locust 2.47, pinned).
        writer = self.writer
        rewritten = [
            (writer.requests_csv_filehandle, writer.requests_csv_writer, writer.requests_csv_columns, writer._requests_data_rows),
            (writer.failures_csv_filehandle, writer.failures_csv_writer, writer.failures_columns, writer._failures_data_rows),
            (writer.exceptions_csv_filehandle, writer.exceptions_csv_writer, writer.exceptions_columns, writer._exceptions_data_rows),
        ]  # fmt: skip
        for handle, csv_writer, columns, rows in rewritten:
            handle.seek(0)
            csv_writer.writerow(columns)
            rows(csv_writer)
            handle.truncate()
        if writer.stats_history_csv_filehandle.tell() == 0:  # closed before its first pass
            writer.stats_history_csv_writer.writerow(writer.stats_history_csv_columns)
        writer._stats_history_data_rows(writer.stats_history_csv_writer, time.time())
