"""A process-wide count of ping handlers in progress, reported by /healthz.

It lets a test or an operator see that a handler is busy (for example before sending
SIGTERM to show FM-4) without timing guesses. Handlers run on the event loop and on
worker threads, hence the lock.
"""

import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_count = 0


def current() -> int:
    return _count


@contextmanager
def track() -> Iterator[None]:
    global _count
    with _lock:
        _count += 1
    try:
        yield
    finally:
        with _lock:
            _count -= 1
