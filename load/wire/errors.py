"""The error taxonomy: every ping ends as a pong or one of PING_ERRORS; every connect
attempt as connected or one of CONNECT_ERRORS. Server closes are counted by close code.
"""

import socket

import websocket

PONG = "pong"
IN_FLIGHT = "in_flight"  # still unanswered when the user stopped: not an error, not a pong

PONG_TIMEOUT = "pong_timeout"
BAD_PONG = "bad_pong"
SEND_FAILED = "send_failed"
NOT_SENT_DISCONNECTED = "not_sent_disconnected"
CLOSED_BY_SERVER = "closed_by_server"
PING_ERRORS = (PONG_TIMEOUT, BAD_PONG, SEND_FAILED, NOT_SENT_DISCONNECTED, CLOSED_BY_SERVER)

CONNECT_REFUSED = "connect_refused"
CONNECT_TIMEOUT = "connect_timeout"
HANDSHAKE_REJECTED = "handshake_rejected"
CONNECT_ERRORS = (CONNECT_REFUSED, CONNECT_TIMEOUT, HANDSHAKE_REJECTED)

# Close codes worth a column of their own; anything else is counted as "other".
CLOSE_CODES = (1000, 1001, 1006, 1011, 1012)
NO_CLOSE_FRAME = 1006


class WsFailure(Exception):
    """What Locust records as the failure of a `connect` or `ping` request.

    The message is stable per kind (and close code or HTTP status), so Locust's failure
    table groups them instead of listing one row per seq.
    """

    def __init__(self, kind: str, detail: str = ""):
        super().__init__(f"{kind} {detail}".strip())
        self.kind = kind
        self.detail = detail


def classify_connect_error(exc: BaseException) -> WsFailure:
    if isinstance(exc, websocket.WebSocketBadStatusException):
        return WsFailure(HANDSHAKE_REJECTED, f"HTTP {exc.status_code}")
    if isinstance(exc, (websocket.WebSocketTimeoutException, socket.timeout, TimeoutError)):
        return WsFailure(CONNECT_TIMEOUT)
    if isinstance(exc, ConnectionRefusedError):
        return WsFailure(CONNECT_REFUSED)
    # Reset or closed mid-handshake: the server took the TCP connection but never upgraded it.
    return WsFailure(HANDSHAKE_REJECTED, type(exc).__name__)


def close_column(code: int) -> str:
    return f"close_{code}" if code in CLOSE_CODES else "close_other"
