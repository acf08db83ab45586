"""Whether the load generator itself was the limit in a second: its sends fell behind
schedule (more than SATURATED_SHARE of the second's pings went out over LATE_SEND_S late),
or one of its processes used GENERATOR_CPU_LIMIT of a core or more. In such a second the
latencies include the generator's own delay: they are the client's, not the server's."""

import time

SATURATED_SHARE = 0.01
GENERATOR_CPU_LIMIT = 90.0  # percent of one core: past it, a gevent loop starts to fall behind


def limited(sent: int, late: int, cpu: float | None) -> int | str:
    """1 or 0; empty (unknown) when nothing was sent and the CPU was not sampled."""
    if cpu is None and not sent:
        return ""
    behind = bool(sent) and late / sent > SATURATED_SHARE
    busy = cpu is not None and cpu >= GENERATOR_CPU_LIMIT
    return int(behind or busy)


class CpuMeter:
    """This process's CPU (user + system, all threads) as a percent of one core since the
    last reading; read each second, so from the clock, not from /proc (psutil)."""

    def __init__(self) -> None:
        self.last: tuple[float, float] | None = None

    def read(self) -> float | None:
        now, used = time.monotonic(), time.process_time()
        last, self.last = self.last, (now, used)
        if last is None or now <= last[0]:
            return None
        return round(100 * (used - last[1]) / (now - last[0]), 1)
