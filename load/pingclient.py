"""A plain, synchronous ping client for the target app (websocket-client, no gevent).

Used by the demo's one-ping check and by the tests; the Locust user is separate.
"""

import json
import time
from dataclasses import dataclass
from typing import Any

import websocket

ENDPOINTS = ("/ws/ping/", "/ws/ping/sync/", "/ws/ping/pool/", "/ws/ping/db/", "/ws/ping/layer/", "/ws/room/demo/")
ROUTES = ("/ws/ping/", "/ws/ping/sync/", "/ws/ping/pool/", "/ws/ping/db/", "/ws/ping/layer/", "/ws/room/<name>/")


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


@dataclass(frozen=True)
class PingResult:
    url: str
    ok: bool
    ms: float
    instance: str
    detail: str


def ping_once(url: str, timeout: float = 10.0, **knobs: Any) -> PingResult:
    """Connect, ping once, close; any failure becomes a PingResult with ok=False."""
    started = time.perf_counter()
    try:
        with PingSocket(url, timeout) as sock:
            pong = sock.ping(1, timeout, **knobs)
    except (OSError, websocket.WebSocketException, ErrorFrame, ValueError) as exc:
        return PingResult(url, False, (time.perf_counter() - started) * 1000, "", f"{type(exc).__name__}: {exc}")
    elapsed = (time.perf_counter() - started) * 1000
    return PingResult(url, True, elapsed, pong.get("instance", ""), "pong")
