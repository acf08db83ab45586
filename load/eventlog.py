"""events.jsonl: one JSON object per line, flushed as each is written."""

import json
from pathlib import Path
from typing import IO


class EventLog:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] = open(path, "a", encoding="utf-8")

    def write(self, event: dict) -> None:
        self._file.write(json.dumps(event, sort_keys=True) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()
