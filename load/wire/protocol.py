"""The ping/pong wire format, for the target app and for anyone's server.

- target mode: the target app's JSON (seq, sleep_ms, work_ms, pad); pongs, broadcasts,
  welcomes (a room socket's member name) and error frames told apart by `type`.
- template mode: a text template with `{seq}` (and `{user}`) in it; a reply is matched by a
  JSON field (`pong_field`) or, without one, to the oldest unanswered ping (in order); the
  rules are TemplateCodec's.
"""

import json
import re
from typing import Any, NamedTuple

import orjson

PONG, BROADCAST, WELCOME, ERROR, OTHER = "pong", "broadcast", "welcome", "error", "other"


class Reply(NamedTuple):  # one per frame received: a tuple's construction is the cheapest
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

        # The knobs never change: their JSON is made once, not per ping (a padded ping's pad too).
        self._tail = ", " + json.dumps(self.knobs)[1:] if self.knobs else "}"

    def encode(self, seq: int) -> str:
        return f'{{"type": "ping", "seq": {int(seq)}{self._tail}'

    def decode(self, frame: str | bytes) -> Reply:
        try:
            body = orjson.loads(frame)
        except ValueError:  # orjson.JSONDecodeError is one
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
    """Template mode, for anyone's server. The matching rules (README, "Matching replies"):

    - a ping is the template with `{seq}` (1, 2, ... per socket) and `{user}` (a token
      unique to this user in this run) replaced, as plain text: `{seq}` may sit inside a
      JSON string ("n{seq}") or stand as a number;
    - with `{user}` in the template, a frame is a reply only when it holds this user's token
      (anywhere in it, as a whole word): in a shared room, every other member's message is
      not ours;
    - with a pong field (`id`, or a dotted path `message.id`), the field's value is the seq:
      a number (7, 7.0), or a string whose last whole number, once the user's token is taken
      out, is the seq ("7", "ping 7", "u1a2b3c-4 says 7");
    - without a pong field, a reply answers the oldest unanswered ping (FIFO);
    - a frame that matches no unanswered ping is counted `unmatched` in its second.
    """

    def __init__(self, template: str, pong_field: str = "", user: str = ""):
        self.template = template
        self.pong_field = pong_field
        self._field_path = tuple(pong_field.split("."))
        self.user = user if "{user}" in template else ""
        self._own = re.compile(rf"(?<![\w-]){re.escape(self.user)}(?![\w-])") if self.user else None
        # Plain replacement, not str.format: JSON templates are full of braces it would trip
        # on. {user} is this user's for good; what is left around each {seq} is kept.
        self._around_seq = template.replace("{user}", self.user).split("{seq}")

    def encode(self, seq: int) -> str:
        return str(seq).join(self._around_seq)

    def decode(self, frame: str | bytes) -> Reply:
        text = frame.decode("utf-8", "replace") if isinstance(frame, bytes) else frame
        if self._own is not None and not self._own.search(text):
            return Reply(OTHER)  # someone else's message
        if not self.pong_field:
            return Reply(PONG, None)
        try:
            value: Any = orjson.loads(text)
        except ValueError:
            return Reply(OTHER)
        for key in self._field_path:
            value = value.get(key) if isinstance(value, dict) else None
        seq = self.seq_in(value)
        return Reply(OTHER) if seq is None else Reply(PONG, seq)

    def seq_in(self, value: Any) -> int | None:
        if isinstance(value, bool):
            return None
        if isinstance(value, int):
            return value
        if isinstance(value, float):
            return int(value) if value.is_integer() else None
        if isinstance(value, str):
            if self._own is not None:
                value = self._own.sub(" ", value)
            numbers = re.findall(r"\d+", value)
            return int(numbers[-1]) if numbers else None
        return None


def matching_warnings(template: str, pong_field: str) -> list[str]:
    """What a template cannot tell apart, said once at start (README, "Matching replies")."""
    if "{user}" in template:
        return []
    if not pong_field:
        return [
            "template mode with an empty --pong-field matches replies in order: any frame the server "
            "sends answers the oldest ping, another room member's message too; put {user} in --ping-template "
            "so only frames holding this user's token count"
        ]
    return [
        "--ping-template has no {user}: where the server fans out (a shared room) another member's "
        f"reply with the same {pong_field} is taken for this user's; put {{user}} in the template"
    ]
