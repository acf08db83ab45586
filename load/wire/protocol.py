"""The ping/pong wire format, for the target app and for anyone's server.

- target mode: the target app's JSON (seq, sleep_ms, work_ms, pad); pongs, broadcasts,
  welcomes (a room socket's member name) and error frames told apart by `type`.
- template mode: a text template with `{seq}` in it; a reply is matched by a JSON field
  (`pong_field`) or, without one, to the oldest unanswered ping (in order).
"""

import json
from dataclasses import dataclass
from typing import Any

PONG, BROADCAST, WELCOME, ERROR, OTHER = "pong", "broadcast", "welcome", "error", "other"


@dataclass(frozen=True)
class Reply:
    kind: str  # PONG, BROADCAST, WELCOME, ERROR or OTHER
    seq: int | None = None  # None with a PONG means "the oldest pending ping"
    sender: str = ""  # broadcasts: the sending member; a welcome: the member it names
    detail: str = ""  # an error's reason; a welcome's room


class TargetAppCodec:
    def __init__(self, sleep_ms: float = 0, work_ms: float = 0, payload_bytes: int = 0):
        self.knobs: dict[str, Any] = {}
        if sleep_ms:
            self.knobs["sleep_ms"] = sleep_ms
        if work_ms:
            self.knobs["work_ms"] = work_ms
        if payload_bytes:
            self.knobs["pad"] = "x" * payload_bytes

    def encode(self, seq: int) -> str:
        return json.dumps({"type": "ping", "seq": seq, **self.knobs})

    def decode(self, frame: str | bytes) -> Reply:
        try:
            body = json.loads(frame)
        except ValueError:
            return Reply(ERROR, detail="reply is not JSON")
        if not isinstance(body, dict):
            return Reply(ERROR, detail="reply is not a JSON object")
        kind, seq = body.get("type"), body.get("seq")
        if kind == "pong" and isinstance(seq, int):
            return Reply(PONG, seq)
        if kind == "broadcast" and isinstance(seq, int):
            return Reply(BROADCAST, seq, sender=str(body.get("sender", "")))
        if kind == "welcome" and isinstance(body.get("member"), str):
            return Reply(WELCOME, sender=body["member"], detail=str(body.get("room", "")))
        if kind == "error":
            return Reply(ERROR, seq if isinstance(seq, int) else None, detail=str(body.get("reason", "")))
        return Reply(OTHER)


class TemplateCodec:
    def __init__(self, template: str, pong_field: str = ""):
        self.template = template
        self.pong_field = pong_field

    def encode(self, seq: int) -> str:
        # Plain replacement: JSON templates are full of braces that str.format would trip on.
        return self.template.replace("{seq}", str(seq))

    def decode(self, frame: str | bytes) -> Reply:
        if not self.pong_field:
            return Reply(PONG, None)
        try:
            body = json.loads(frame)
            value = body[self.pong_field]
            return Reply(PONG, int(value))
        except (ValueError, TypeError, KeyError):
            return Reply(OTHER)
