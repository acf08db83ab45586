"""A plain, synchronous ping client for the target app (websocket-client, no gevent).

Used by the demo's one-ping check and by the tests; the Locust user is separate.
"""

import json
import time
from typing import Any

import websocket

ENDPOINTS = (
    "/ws/ping/",
    "/ws/ping/sync/",
    "/ws/ping/pool/",
    "/ws/ping/db/",
    "/ws/ping/layer/",
    "/ws/room/demo/",
)
ROUTES = (
    "/ws/ping/",
    "/ws/ping/sync/",
    "/ws/ping/pool/",
    "/ws/ping/db/",
    "/ws/ping/layer/",
    "/ws/room/<name>/",
    "/ws/chat/<room>/",
)


class ErrorFrame(RuntimeError):
    """The server answered a ping with {"type": "error"}; str() is its reason."""


class PingSocket:
    """One websocket to the target app; room sockets keep their welcome frame."""

    def __init__(self, url: str, timeout: float = 10.0):
        self.url = url
        self.ws = websocket.create_connection(url, timeout=timeout)
        self.welcome: dict[str, Any] | None = None
        if "/ws/room/" in url:
            self.welcome = self.recv_json()

    def send_json(self, body: dict[str, Any]) -> None:
        self.ws.send(json.dumps(body))

    def recv_json(self, timeout: float | None = None) -> dict[str, Any]:
        if timeout is not None:
            self.ws.settimeout(timeout)
        return json.loads(self.ws.recv())

    def ping(self, seq: int, timeout: float = 10.0, **knobs: Any) -> dict[str, Any]:
        """Send one ping and return its pong; other frames (broadcasts) are skipped."""
        self.send_json({"type": "ping", "seq": seq, **knobs})
        deadline = time.monotonic() + timeout
        while True:
            frame = self.recv_json(max(deadline - time.monotonic(), 0.01))
            if frame.get("type") == "error":
                raise ErrorFrame(frame.get("reason", "?"))
            if frame.get("type") == "pong" and frame.get("seq") == seq:
                return frame

    def close(self) -> None:
        self.ws.close()

    def __enter__(self) -> "PingSocket":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
