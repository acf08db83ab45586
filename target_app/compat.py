"""Every difference between the stacks the target app runs on, in one place.

The suite runs the app under today's stack (Channels 4, Django 5, channels_redis 4 on
redis-py) and under older pinned sets (stacks/*.txt), e.g. Channels 2.4 with Django 3.1
and channels_redis 2.4 on aioredis. What differs:

- Channels 2 applications are double callables (`app(scope)` returns the instance that is
  awaited with receive and send), so routes take consumer classes (no `as_asgi()`), and
  an ASGI 3 app (Django's handler, /healthz) is wrapped to sit under its router.
- channels_redis 2 has no pub/sub layer and, on aioredis, no socket timeout (FM-7 is a
  redis-py behaviour): the layer is refused, the timeout is not applicable.
"""

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import channels

from target_app.envconfig import EnvConfigError

CHANNELS_MAJOR = int(channels.__version__.split(".")[0])
OLD_CHANNELS = CHANNELS_MAJOR < 3

# The target app's variables that mean nothing on this stack, and why (the stack records them).
NOT_APPLICABLE_ENV = (
    {"REDIS_SOCKET_TIMEOUT": "channels_redis 2 talks to Redis through aioredis, which has no socket timeout"}
    if OLD_CHANNELS
    else {}
)
UNSUPPORTED_LAYERS = (
    {
        "redis-pubsub": f"channels_redis {CHANNELS_MAJOR}.x has no pub/sub layer (it came in channels_redis 3.3)"
    }
    if OLD_CHANNELS
    else {}
)

Asgi3 = Callable[[dict, Any, Any], Awaitable[None]]


def consumer_app(consumer: Any) -> Any:
    """What a URL route takes: `Consumer.as_asgi()` from Channels 3 on, the class before."""
    return consumer if OLD_CHANNELS else consumer.as_asgi()


def _double_callable(app: Asgi3) -> Callable[[dict], Callable[[Any, Any], Awaitable[None]]]:
    """An ASGI 3 app as Channels 2's router calls its children: app(scope)(receive, send)."""

    def instance(scope: dict) -> Callable[[Any, Any], Awaitable[None]]:
        async def serve(receive: Any, send: Any) -> None:
            await app(scope, receive, send)

        return serve

    return instance


def protocol_router(http: Asgi3, websocket: Any) -> Any:
    """The top-level application: http (an ASGI 3 app) and websocket (a URLRouter)."""
    from channels.routing import ProtocolTypeRouter

    if OLD_CHANNELS:
        return ProtocolTypeRouter({"http": _double_callable(http), "websocket": websocket})
    return ProtocolTypeRouter({"http": http, "websocket": websocket})


def layer_environment(env: Mapping[str, str]) -> Mapping[str, str]:
    """The variables the channel layer is built from, on this stack: a layer it lacks is
    refused with one line; a variable that means nothing here is left out."""
    layer = env.get("CHANNEL_LAYER", "")
    if layer in UNSUPPORTED_LAYERS:
        raise EnvConfigError(f"CHANNEL_LAYER={layer!r}: {UNSUPPORTED_LAYERS[layer]}; use redis or memory")
    return {name: value for name, value in env.items() if name not in NOT_APPLICABLE_ENV}
