"""The websocket engines under the Locust user: one interface, two implementations.

`--ws-engine websocket-client` is the library the suite began with; `websockets` is the
sans-I/O protocol of the `websockets` package (C speedups for masking) over a plain
socket, reading many frames per socket read. The user (load.user.ws_user) sees only this
interface: connect() gives a Socket or raises ConnectFailed; Socket.recv() gives one
message or the close, never an exception.
"""

import importlib
from collections.abc import Callable
from typing import Any, Protocol

from load.config.handshake import Handshake
from load.config.settings import WS_ENGINES
from load.wire.errors import WsFailure

TEXT, BINARY, CLOSE = "text", "binary", "close"


class ConnectFailed(Exception):
    """A connect that did not end in an open websocket: what the user counts, and the HTTP
    status when the server answered the upgrade with one (for errors.handshake_hint)."""

    def __init__(self, failure: WsFailure, status: int | None = None):
        super().__init__(str(failure))
        self.failure, self.status = failure, status


class SendFailed(OSError):
    """A frame could not be written: the socket is broken or already closed."""


class Socket(Protocol):
    def recv(self) -> tuple[str, Any]:
        """The next message: (TEXT, bytes) or (BINARY, bytes); or (CLOSE, code) once the
        socket ends: the server's close code, 1005 for a close frame without one, 1006
        when the stream ends (or breaks) without a close frame."""
        ...

    def send_text(self, text: str) -> None:
        """Raises SendFailed."""
        ...

    def send_close(self) -> None:
        """Our close frame, without waiting for the answer; raises SendFailed."""
        ...

    def shutdown(self) -> None:
        """Ends the TCP stream both ways: a reader blocked in recv() gets its close."""
        ...

    def close(self, timeout: float) -> None:
        """The close handshake, waiting at most `timeout` for the server's answer; never raises."""
        ...


Connect = Callable[[str, float, Handshake | None], Socket]


_MODULES = {"buffered": "buffered", "websocket-client": "wsclient", "websockets": "sansio"}


def connector(engine: str) -> Connect:
    """connect(url, timeout, handshake) of the engine named by --ws-engine; its module (and
    library) is imported only when chosen."""
    if engine not in _MODULES:
        raise ValueError(f"no websocket engine {engine!r}: choose one of {', '.join(WS_ENGINES)}")
    return importlib.import_module(f"load.wire.engines.{_MODULES[engine]}").connect
