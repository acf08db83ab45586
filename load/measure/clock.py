"""The clock of a load process: time.time(), plus, on a Locust worker, the offset of the
master's clock from this host's, so that a worker whose clock is off by seconds still
puts its pings, connects and deliveries in the master's seconds (load.user.clocksync
measures the offset). Durations do not change: every timestamp moves by the same amount.

CHANNELS_CHAOS_CLOCK_SKEW_S moves this process's clock by that many seconds, so the tests
can run a worker whose clock is wrong without changing the host's.
"""

import os
import time

_SKEW_S = float(os.environ.get("CHANNELS_CHAOS_CLOCK_SKEW_S") or 0)
_offset_s = 0.0


def now() -> float:
    return time.time() + _SKEW_S + _offset_s


def local_now() -> float:
    """This process's own clock (skew included, offset not): what the offset is measured from."""
    return time.time() + _SKEW_S


def set_offset(seconds: float) -> None:
    global _offset_s
    _offset_s = seconds


def offset() -> float:
    return _offset_s
