"""A chat app no one here wrote, as staging servers have them: /ws/chat/<room>/.

Behind Django's origin check (AllowedHostsOriginValidator: the handshake's Origin must
name one of ALLOWED_HOSTS, else HTTP 403). Every member of a room receives every member's
message, its own included, as `{"user": ..., "text": ...}`; the user is the handshake's
`X-Chat-User` header (a login would give it), so users sharing an account look alike. A
frame that is not `{"message": "<text>"}` gets `{"error": ...}` and the socket keeps serving.

Each connect logs what the server saw of the handshake (the cookie only as a digest: the
log may end up in a run folder), which the tests read.
"""

import hashlib
import json
import logging

from channels.generic.websocket import AsyncWebsocketConsumer

logger = logging.getLogger("target_app.chat")
MAX_TEXT = 4096


def handshake_seen(scope: dict) -> dict:
    headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
    cookie = headers.get("cookie", "")
    return {
        "origin": headers.get("origin", ""),
        "user": headers.get("x-chat-user", ""),
        "tenant": headers.get("x-tenant", ""),
        "cookie_sha256": hashlib.sha256(cookie.encode()).hexdigest()[:16] if cookie else "",
        "subprotocols": list(scope.get("subprotocols") or []),
    }


def message_of(text_data: str | None) -> str:
    """The text of a chat frame; ValueError with the reason for anything else."""
    if text_data is None:
        raise ValueError("send text frames")
    body = json.loads(text_data)  # a JSONDecodeError is a ValueError
    if not isinstance(body, dict) or not isinstance(body.get("message"), str):
        raise ValueError('send {"message": "<text>"}')
    if len(body["message"]) > MAX_TEXT:
        raise ValueError(f"a message is at most {MAX_TEXT} characters")
    return body["message"]


class ChatConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        seen = handshake_seen(self.scope)
        logger.info("chat handshake %s", json.dumps(seen, sort_keys=True))
        self.user = seen["user"] or "anonymous"
        self.group = f"chat.{self.scope['url_route']['kwargs']['room']}"
        await self.channel_layer.group_add(self.group, self.channel_name)
        offered = seen["subprotocols"]
        await self.accept(subprotocol=offered[0] if offered else None)

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None) -> None:
        try:
            text = message_of(text_data)
        except ValueError as exc:
            await self.send(json.dumps({"error": str(exc)}))
            return
        await self.channel_layer.group_send(
            self.group, {"type": "chat.message", "user": self.user, "text": text}
        )

    async def chat_message(self, event: dict) -> None:
        await self.send(json.dumps({"user": event["user"], "text": event["text"]}))
