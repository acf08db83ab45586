"""Writing a run folder's files so that a run killed at any moment leaves them valid: CSV
appended a batch of rows per write() system call, JSON replaced whole by a rename."""

import csv
import io
import json
import os
from pathlib import Path


class AppendOnlyCsv:
    """A CSV file whose every batch of rows lands in a single write() system call."""

    def __init__(self, path: Path, columns: tuple[str, ...]):
        self.columns = columns
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
        self.write_rows([dict(zip(columns, columns, strict=True))])

    def write_rows(self, rows: list[dict]) -> None:
        if not rows:
            return
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, self.columns, extrasaction="ignore", lineterminator="\n")
        writer.writerows(rows)
        os.write(self.fd, buffer.getvalue().encode())

    def close(self) -> None:
        os.close(self.fd)


def write_json(path: Path, body: dict) -> None:
    """Write a JSON file whole or not at all (a rename is atomic)."""
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(json.dumps(body, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(temporary, path)


def replace_csv(path: Path, columns: tuple[str, ...], rows: list[dict]) -> None:
    """Write a CSV file whole or not at all (a rename is atomic): a reader sees the old or the new."""
    temporary = path.with_suffix(path.suffix + ".tmp")
    with open(temporary, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(temporary, path)
