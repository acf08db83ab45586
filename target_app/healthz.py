"""GET /healthz, answered on the event loop without going through Django.

Django's ASGI handler sends `request_started` through asgiref's single thread-sensitive
thread, so a Django view would stall whenever a sync consumer holds that thread (FM-3).
Readiness must mean "this process listens and its loop runs", nothing more.
"""

import asyncio
import json
import os

from channels.layers import get_channel_layer

from target_app import inflight
from target_app.pingframes import INSTANCE


def layer_prefix() -> str | None:
    """This process's channels_redis client prefix: its members are `specific.<prefix>!...`.

    A Redis probe compares group members' prefixes with the live processes' to count the
    members that dead processes left behind (FM-5).
    """
    layer = get_channel_layer()
    return getattr(layer, "client_prefix", None)


def health() -> dict:
    executor = getattr(asyncio.get_running_loop(), "_default_executor", None)
    return {
        "status": "ok",
        "instance": INSTANCE,
        "pid": os.getpid(),
        "asgi_threads": os.environ.get("ASGI_THREADS"),
        "executor_max_workers": getattr(executor, "_max_workers", None),
        "channel_layer": os.environ.get("CHANNEL_LAYER", "redis"),
        "inflight": inflight.current(),
        "layer_prefix": layer_prefix(),
    }


class HealthzOr:
    """An ASGI app that answers /healthz itself and hands every other request on."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"].rstrip("/") != "/healthz":
            return await self.app(scope, receive, send)
        body = json.dumps(health()).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
