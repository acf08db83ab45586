"""Helpers the tests share: polling with a deadline, and asking whether a process is gone."""

import fcntl
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import psutil
import requests
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


def made_once(
    tmp_path_factory, worker_id: str, name: str, make: Callable[[Path], dict[str, Path]]
) -> dict[str, Path]:
    """Run folders that `make` writes into a folder shared by this session's xdist workers:
    the first worker to ask makes them, the others wait on a lock and read them. Treat them
    as read-only (copy before writing into them)."""
    base = tmp_path_factory.getbasetemp()
    shared = (base if worker_id == "master" else base.parent) / name  # one per session
    with open(shared.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        index = shared / "made.json"
        if not index.exists():
            shared.mkdir(exist_ok=True)
            made = make(shared)
            index.write_text(json.dumps({key: str(folder) for key, folder in made.items()}))
    return {key: Path(folder) for key, folder in json.loads(index.read_text()).items()}


def web_page(url: str) -> requests.Response | None:
    """GET url once: the reply when it is 2xx, None while nothing answers (or answers an error)."""
    try:
        reply = requests.get(url, timeout=5)
    except requests.ConnectionError:
        return None
    return reply if reply.ok else None
