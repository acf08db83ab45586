"""Per-second windows of what the users saw, recorded where the users run.

Attribution: a ping's outcome (pong with its latency, or an error) belongs to the second
in which the ping was *due*, so a stalled server shows as high latency in the seconds it
stalled, not as missing samples. Connects, closes and broadcasts belong to the second
they happened in. Gauges (open connections) are sampled once a second.

A Timeline is process-local and cheap to record into. `take()` hands over everything
recorded since the last call, in a msgpack/JSON-friendly form, and forgets it: workers
ship that to the master; the master (or a local runner) merges it in a Collector.
"""

import weakref
from collections import Counter
from dataclasses import dataclass, field

from load.measure.deliveries import DeliveryLog
from load.measure.generator import CpuMeter
from load.measure.histogram import Histogram
from load.runfolder.names import (
    BROADCASTS,
    CLIENT_CLOSES,
    CLOSES,
    CONNECT_OK,
    CONNECTIONS,
    CONNECTS,
    FRESH_SOCKET_PONGS,
    LATE_SENDS,
    PINGS,
    PONGS,
    SENT,
    UNMATCHED,
)
from load.wire.errors import PONG, close_column

LATE_SEND_S = 0.05  # a ping sent this much after its due time counts as a late send


@dataclass
class EndpointWindow:
    latency: Histogram = field(default_factory=Histogram)  # from the due time, ms
    service: Histogram = field(default_factory=Histogram)  # from the actual send, ms
    counts: Counter = field(default_factory=Counter)
    send_lag_max_ms: float = 0.0
    first_pong_at: float | None = None  # the earliest first pong on a newly opened socket in this second
    # The earliest failed and accepted connects of this second: what the clients saw of a
    # restart's down time when the target cannot say (restart hooks).
    first_connect_failed_at: float | None = None
    first_connect_ok_at: float | None = None

    def merge(self, other: "EndpointWindow") -> "EndpointWindow":
        self.latency.merge(other.latency)
        self.service.merge(other.service)
        self.counts.update(other.counts)
        self.send_lag_max_ms = max(self.send_lag_max_ms, other.send_lag_max_ms)
        self.first_pong_at = earliest(self.first_pong_at, other.first_pong_at)
        self.first_connect_failed_at = earliest(self.first_connect_failed_at, other.first_connect_failed_at)
        self.first_connect_ok_at = earliest(self.first_connect_ok_at, other.first_connect_ok_at)
        return self

    def to_wire(self) -> dict:
        return {
            "lat": self.latency.to_wire(),
            "svc": self.service.to_wire(),
            "c": dict(self.counts),
            "lag": self.send_lag_max_ms,
            "fp": self.first_pong_at,
            "cf": self.first_connect_failed_at,
            "co": self.first_connect_ok_at,
        }

    @classmethod
    def from_wire(cls, wire: dict) -> "EndpointWindow":
        return cls(
            Histogram.from_wire(wire["lat"]),
            Histogram.from_wire(wire["svc"]),
            Counter(wire["c"]),
            wire["lag"],
            wire.get("fp"),
            wire.get("cf"),
            wire.get("co"),
        )


def earliest(a: float | None, b: float | None) -> float | None:
    """The earlier of two timestamps, either of which may be missing."""
    return b if a is None else a if b is None else min(a, b)


@dataclass
class Window:
    endpoints: dict[str, EndpointWindow] = field(default_factory=dict)
    gauges: Counter = field(default_factory=Counter)  # summed over processes when merged
    generator_cpu: float | None = None  # the busiest load process's CPU, % of a core (max when merged)

    def endpoint(self, path: str) -> EndpointWindow:
        window = self.endpoints.get(path)
        if window is None:
            window = self.endpoints[path] = EndpointWindow()
        return window

    def merge(self, other: "Window") -> "Window":
        for path, window in other.endpoints.items():
            self.endpoint(path).merge(window)
        self.gauges.update(other.gauges)
        if other.generator_cpu is not None:
            self.generator_cpu = max(self.generator_cpu or 0.0, other.generator_cpu)
        return self

    def to_wire(self) -> dict:
        return {
            "e": {path: w.to_wire() for path, w in self.endpoints.items()},
            "g": dict(self.gauges),
            "cpu": self.generator_cpu,
        }

    @classmethod
    def from_wire(cls, wire: dict) -> "Window":
        endpoints = {path: EndpointWindow.from_wire(w) for path, w in wire["e"].items()}
        return cls(endpoints, Counter(wire["g"]), wire.get("cpu"))


def windows_to_wire(windows: dict[int, Window]) -> dict[str, dict]:
    # String keys: msgpack maps on Locust's wire want them.
    return {str(second): window.to_wire() for second, window in windows.items()}


def windows_from_wire(wire: dict[str, dict]) -> dict[int, Window]:
    return {int(second): Window.from_wire(window) for second, window in wire.items()}


class Timeline:
    """The recorder the users of one process write into."""

    def __init__(self) -> None:
        self.windows: dict[int, Window] = {}
        self.connections_open = 0
        self.totals: Counter = Counter()  # this process's own totals, for logs and checks
        self.stop_began: float | None = None  # when Locust began to stop this process's users
        self.deliveries = DeliveryLog()  # room members' and senders' records, shipped beside the windows
        self.cpu = CpuMeter()  # this process's CPU each second: is the generator the limit?

    def begin_stop(self, ts: float) -> None:
        """Locust is stopping the users (test_stopping): from now on no ping comes due."""
        if self.stop_began is None:
            self.stop_began = ts

    def is_due(self, due: float) -> bool:
        """A ping is due unless the stop began at or before its due time."""
        return self.stop_began is None or due < self.stop_began

    def _at(self, ts: float, path: str) -> EndpointWindow:
        window = self.windows.get(second := int(ts))
        if window is None:
            window = self.windows[second] = Window()
        return window.endpoint(path)

    def ping_due(self, path: str, due: float, sent: bool, lag_s: float = 0.0) -> None:
        window = self._at(due, path)
        window.counts[PINGS] += 1
        self.totals[PINGS] += 1
        if sent:
            window.counts[SENT] += 1
            if lag_s * 1000 > window.send_lag_max_ms:
                window.send_lag_max_ms = lag_s * 1000
            if lag_s > LATE_SEND_S:
                window.counts[LATE_SENDS] += 1

    def ping_done(
        self, path: str, due: float, kind: str, latency_ms: float = 0.0, service_ms: float = 0.0
    ) -> None:
        """kind is PONG, IN_FLIGHT or one of errors.PING_ERRORS."""
        window = self._at(due, path)
        window.counts[kind] += 1
        self.totals[PONGS if kind == PONG else kind] += 1  # totals use summary.json's names
        if kind == PONG:
            window.latency.record(latency_ms)
            window.service.record(service_ms)

    def connect(self, path: str, ts: float, kind: str) -> None:
        """kind is 'connect_ok' or one of errors.CONNECT_ERRORS."""
        window = self._at(ts, path)
        window.counts[CONNECTS] += 1
        window.counts[kind] += 1
        self.totals[kind] += 1
        if kind == CONNECT_OK:
            window.first_connect_ok_at = earliest(window.first_connect_ok_at, ts)
        else:
            window.first_connect_failed_at = earliest(window.first_connect_failed_at, ts)

    def closed(self, path: str, ts: float, code: int) -> None:
        window = self._at(ts, path)
        window.counts[CLOSES] += 1
        window.counts[close_column(code)] += 1
        self.totals[CLOSES] += 1

    def first_pong(self, path: str, ts: float) -> None:
        """The first pong on a socket opened since the last one broke: service is back for a user."""
        window = self._at(ts, path)
        window.counts[FRESH_SOCKET_PONGS] += 1
        window.first_pong_at = earliest(window.first_pong_at, ts)

    def client_closed(self, path: str, ts: float) -> None:
        """We closed the socket (reconnect-on-timeout): not the server's doing."""
        self._at(ts, path).counts[CLIENT_CLOSES] += 1
        self.totals[CLIENT_CLOSES] += 1

    def broadcast(self, path: str, ts: float) -> None:
        """A broadcast frame received; whether it was owed, lost or duplicated is settled at the end."""
        self._at(ts, path).counts[BROADCASTS] += 1
        self.totals[BROADCASTS] += 1

    def unmatched(self, path: str, ts: float) -> None:
        """A frame that answered no pending ping (and is no broadcast, welcome or error)."""
        self._at(ts, path).counts[UNMATCHED] += 1
        self.totals[UNMATCHED] += 1

    def sample_gauges(self, ts: float) -> None:
        second = int(ts)
        if second not in self.windows:
            self.windows[second] = Window()
        self.windows[second].gauges[CONNECTIONS] = self.connections_open
        self.windows[second].generator_cpu = self.cpu.read()

    def take(self) -> dict[str, dict]:
        """The windows recorded since the last take, in the wire form a worker ships."""
        return windows_to_wire(self.take_windows())

    def take_windows(self) -> dict[int, Window]:
        """The windows recorded since the last take, handed over: nothing here writes them again."""
        windows, self.windows = self.windows, {}
        return windows


_timelines: "weakref.WeakKeyDictionary[object, Timeline]" = weakref.WeakKeyDictionary()


def timeline_for(environment: object) -> Timeline:
    """The Timeline of this process's Locust environment (one per environment)."""
    if environment not in _timelines:
        _timelines[environment] = Timeline()
    return _timelines[environment]
