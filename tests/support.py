"""Helpers the tests share: polling with a deadline, and asking whether a process is gone."""

import time
from collections.abc import Callable
from typing import TypeVar

import psutil
import websocket

T = TypeVar("T")


def wait_until(probe: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    """Poll probe until it returns something truthy; fail the test with `what` after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def gone(pid: int) -> bool:
    """True when pid no longer runs (a zombie waiting for a reaper counts as gone)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def still_running(pids: list[int]) -> list[int]:
    return [pid for pid in pids if not gone(pid)]


def close_code(ws: websocket.WebSocket, timeout: float) -> int:
    """Read until the server ends the socket; return its close code (1006 = no close frame)."""
    ws.settimeout(timeout)
    try:
        while True:
            opcode, data = ws.recv_data(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                return int.from_bytes(data[:2], "big") if len(data) >= 2 else 1005
    except (websocket.WebSocketConnectionClosedException, ConnectionError):
        return 1006
