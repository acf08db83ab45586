"""--ws-engine websocket-client: the websocket-client library, as the suite has always used it."""

from typing import Any

import websocket

from load.config.handshake import Handshake
from load.wire import errors
from load.wire.engines import BINARY, CLOSE, TEXT, ConnectFailed, SendFailed

_KINDS = {websocket.ABNF.OPCODE_TEXT: TEXT, websocket.ABNF.OPCODE_BINARY: BINARY}


def connect(url: str, timeout: float, handshake: Handshake | None) -> "ClientSocket":
    kwargs = handshake.connect_kwargs() if handshake else {}
    try:
        ws = websocket.create_connection(url, timeout=timeout, enable_multithread=True, **kwargs)
    except websocket.WebSocketBadStatusException as exc:
        raise ConnectFailed(errors.rejected_with_status(exc.status_code), exc.status_code) from exc
    except websocket.WebSocketTimeoutException as exc:
        raise ConnectFailed(errors.WsFailure(errors.CONNECT_TIMEOUT)) from exc
    except (OSError, websocket.WebSocketException) as exc:
        raise ConnectFailed(errors.classify_connect_error(exc)) from exc
    # create_connection's timeout would stay on every later recv(): idle sockets would
    # raise false timeouts. Pong timeouts are the user's to track.
    ws.settimeout(None)
    return ClientSocket(ws)


class ClientSocket:
    def __init__(self, ws: websocket.WebSocket):
        self.ws = ws

    def recv(self) -> tuple[str, Any]:
        while True:
            try:
                opcode, data = self.ws.recv_data(control_frame=True)
            except (OSError, websocket.WebSocketException):
                return CLOSE, errors.NO_CLOSE_FRAME
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                return CLOSE, int.from_bytes(data[:2], "big") if len(data) >= 2 else 1005
            kind = _KINDS.get(opcode)
            if kind is not None:
                return kind, data

    def send_text(self, text: str) -> None:
        try:
            self.ws.send(text)
        except (OSError, websocket.WebSocketException) as exc:
            raise SendFailed(str(exc)) from exc

    def send_close(self) -> None:
        try:
            self.ws.send_close()
        except (OSError, websocket.WebSocketException) as exc:
            raise SendFailed(str(exc)) from exc

    def shutdown(self) -> None:
        self.ws.shutdown()

    def close(self, timeout: float) -> None:
        try:
            self.ws.close(timeout=timeout)
        except Exception:  # already broken: closing is only tidying up
            pass
