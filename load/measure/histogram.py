"""Latency histograms that merge exactly, in the manner of HdrHistogram.

Values are kept in microseconds at four significant decimal digits, so a reported
percentile is at most 0.1 % above the true value (HdrHistogram's default precision);
the true maximum is kept exactly. A per-second window is one
histogram; a phase or a run is the merge of its seconds; a distributed run is the merge
of its workers. Percentiles are never averaged.
"""

import math
from collections import Counter


def bucket_of(microseconds: int) -> int:
    """The upper edge of the four-significant-digit bucket that holds the value."""
    if microseconds < 10_000:
        return microseconds
    scale = 10 ** (len(str(microseconds)) - 4)
    return -(-microseconds // scale) * scale


class Histogram:
    __slots__ = ("counts", "total", "max_us")

    def __init__(self) -> None:
        self.counts: Counter[int] = Counter()
        self.total = 0
        self.max_us = 0

    def record(self, milliseconds: float) -> None:
        value = max(0, int(round(milliseconds * 1000)))
        self.counts[bucket_of(value)] += 1
        self.total += 1
        self.max_us = max(self.max_us, value)

    def merge(self, other: "Histogram") -> "Histogram":
        self.counts.update(other.counts)
        self.total += other.total
        self.max_us = max(self.max_us, other.max_us)
        return self

    def percentile(self, fraction: float) -> float | None:
        """Nearest-rank percentile in ms (None when empty); never above the true maximum."""
        if self.total == 0:
            return None
        rank = max(1, math.ceil(fraction * self.total))
        seen = 0
        for value in sorted(self.counts):
            seen += self.counts[value]
            if seen >= rank:
                return min(value, self.max_us) / 1000
        return self.max_us / 1000

    @property
    def max_ms(self) -> float | None:
        return self.max_us / 1000 if self.total else None

    def to_wire(self) -> list:
        """A msgpack/JSON-friendly form: [max_us, [value, count, value, count, ...]]."""
        flat = [n for item in self.counts.items() for n in item]
        return [self.max_us, flat]

    @classmethod
    def from_wire(cls, wire: list) -> "Histogram":
        hist = cls()
        hist.max_us, flat = wire[0], wire[1]
        for value, count in zip(flat[::2], flat[1::2], strict=True):
            hist.counts[value] += count
            hist.total += count
        return hist
