"""events.jsonl: one JSON object per line, flushed as each is written."""

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from load.runfolder.names import EVENT


def format_event(event: dict) -> str:
    """One event as a terminal line: `HH:MM:SS.mmm daphne-0 gen2  ready  after_s=0.41`."""
    clock = datetime.fromtimestamp(event["ts"], UTC).strftime("%H:%M:%S.%f")[:-3]
    who = f"{event['instance']} gen{event['generation']}" if "instance" in event else "stack"
    details = " ".join(
        f"{k}={v}" for k, v in event.items() if k not in ("ts", EVENT, "instance", "generation", "log")
    )
    return f"{clock} {who:<16} {event[EVENT]:<14} {details}"


class EventLog:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] = open(path, "a", encoding="utf-8")

    def write(self, event: dict) -> None:
        self._file.write(json.dumps(event, sort_keys=True) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()
