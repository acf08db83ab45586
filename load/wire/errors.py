"""The error taxonomy: every ping ends as a pong or one of PING_ERRORS; every connect
attempt as connected or one of CONNECT_ERRORS. Server closes are counted by close code.
"""

import socket

# Every outcome but a pong is a count column of the run folder, so its name is defined there.
from load.runfolder.names import (
    BAD_PONG,
    CLOSE_CODES,
    CLOSED_BY_SERVER,
    CONNECT_ERRORS,
    CONNECT_REFUSED,
    CONNECT_TIMEOUT,
    HANDSHAKE_REJECTED,
    IN_FLIGHT,
    NOT_SENT_DISCONNECTED,
    PING_ERRORS,
    PONG_TIMEOUT,
    SEND_FAILED,
    close_column,
)

__all__ = [
    "BAD_PONG",
    "CLOSE_CODES",
    "CLOSED_BY_SERVER",
    "CONNECT_ERRORS",
    "CONNECT_REFUSED",
    "CONNECT_TIMEOUT",
    "HANDSHAKE_REJECTED",
    "IN_FLIGHT",
    "NOT_SENT_DISCONNECTED",
    "NO_CLOSE_FRAME",
    "PING_ERRORS",
    "PONG",
    "PONG_TIMEOUT",
    "SEND_FAILED",
    "WsFailure",
    "classify_connect_error",
    "close_column",
    "handshake_hint",
    "rejected_with_status",
]

PONG = "pong"  # a ping's outcome when answered; counted in the column PONGS

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


def rejected_with_status(status: int) -> WsFailure:
    """The server answered the upgrade with an HTTP status other than 101."""
    return WsFailure(HANDSHAKE_REJECTED, f"HTTP {status}")


def classify_connect_error(exc: BaseException) -> WsFailure:
    """A connect's exception other than a refusing HTTP status (the engine knows its own)."""
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return WsFailure(CONNECT_TIMEOUT)
    if isinstance(exc, ConnectionRefusedError):
        return WsFailure(CONNECT_REFUSED)
    # Reset or closed mid-handshake: the server took the TCP connection but never upgraded it.
    return WsFailure(HANDSHAKE_REJECTED, type(exc).__name__)


HANDSHAKE_HINTS = {
    403: "the server may check the Origin (give --origin https://your.site, as a browser would send it), "
    "or want a header or cookie (--header 'Name: value', --cookie)",
    401: "the server wants credentials (--cookie, --header 'Authorization: ...', or a token in the URL)",
    404: "the server has no websocket at that path; check --paths",
}


def handshake_hint(status: int) -> str:
    """What a refused handshake's HTTP status suggests the server wants."""
    return HANDSHAKE_HINTS.get(status, "check the URL and --paths")
