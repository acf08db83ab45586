"""The wire format of the target app: JSON text frames.

A ping is ``{"type": "ping", "seq": N}`` with optional knobs:

- ``sleep_ms``: an asynchronous wait (``await asyncio.sleep``) inside the handler
- ``work_ms``: blocking work (``time.sleep``) on the endpoint's own execution path
- ``pad``: a string echoed back, to set the payload size

Every answer is a JSON object with a ``type``: ``pong`` (echoes ``seq`` and ``pad``),
``broadcast`` (a room member's ping), ``welcome`` (room join) or ``error`` (``reason``).
"""

import json
import os
import re
from dataclasses import dataclass
from typing import Any

MAX_FRAME_CHARS = 64 * 1024
# A ping nests one level; json.loads recurses per level and a 40 KB "[[[[..." would
# raise RecursionError (a traceback and close 1011) instead of an error frame.
MAX_DEPTH = 16
MAX_SLEEP_MS = 120_000
MAX_WORK_MS = 60_000
INSTANCE = os.environ.get("TARGET_INSTANCE") or f"pid{os.getpid()}"


class BadFrame(ValueError):
    """The frame is not a ping this server can answer; the message is the reason sent back."""


@dataclass(frozen=True)
class Ping:
    seq: int
    sleep_ms: float = 0.0
    work_ms: float = 0.0
    pad: str = ""


def _milliseconds(data: dict[str, Any], name: str, limit: int) -> float:
    value = data.get(name, 0)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadFrame(f"{name} must be a number of milliseconds")
    if not 0 <= value <= limit:
        raise BadFrame(f"{name} must be between 0 and {limit}")
    return float(value)


def parse_ping(text_data: str | None, bytes_data: bytes | None = None) -> Ping:
    """Validate one incoming frame; raise BadFrame with the reason otherwise."""
    if text_data is None:
        raise BadFrame("binary frames are not supported; send JSON text")
    if len(text_data) > MAX_FRAME_CHARS:
        raise BadFrame(f"frame of {len(text_data)} characters exceeds {MAX_FRAME_CHARS}")
    data = _loads(text_data)
    if not isinstance(data, dict):
        raise BadFrame("frame must be a JSON object")
    if data.get("type") != "ping":
        raise BadFrame('unknown type; expected "ping"')
    seq = data.get("seq")
    if isinstance(seq, bool) or not isinstance(seq, int):
        raise BadFrame("seq must be an integer")
    pad = data.get("pad", "")
    if not isinstance(pad, str):
        raise BadFrame("pad must be a string")
    return Ping(
        seq=seq,
        sleep_ms=_milliseconds(data, "sleep_ms", MAX_SLEEP_MS),
        work_ms=_milliseconds(data, "work_ms", MAX_WORK_MS),
        pad=pad,
    )


_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]")


def nesting_depth(text: str) -> int:
    """How deep the JSON text's arrays and objects nest, brackets inside strings not counted."""
    depth = deepest = 0
    for char in _NOT_BRACKET.sub("", _STRING.sub("", text)):
        depth += 1 if char in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def _loads(text: str) -> Any:
    """json.loads, but only of frames it can parse without running out of stack."""
    depth = nesting_depth(text)
    if depth > MAX_DEPTH:
        raise BadFrame(f"frame nests {depth} levels deep; at most {MAX_DEPTH}")
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise BadFrame("frame is not valid JSON") from None


def seq_of(text_data: str | None) -> int | None:
    """Best-effort seq of a rejected frame, so a client can match the error to its ping.

    A frame over the size limit is not parsed at all: it costs CPU, and it was refused unread.
    """
    if len(text_data or "") > MAX_FRAME_CHARS:
        return None
    try:
        seq = _loads(text_data or "").get("seq")
    except (BadFrame, AttributeError):
        return None
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else None


def pong(ping: Ping, **extra: Any) -> str:
    body = {"type": "pong", "seq": ping.seq, "instance": INSTANCE, "pid": os.getpid()}
    if ping.pad:
        body["pad"] = ping.pad
    body.update(extra)
    return json.dumps(body)


def error(reason: str, seq: int | None = None) -> str:
    body: dict[str, Any] = {"type": "error", "reason": reason}
    if seq is not None:
        body["seq"] = seq
    return json.dumps(body)
