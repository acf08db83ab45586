"""Latency histograms that merge exactly, in the manner of HdrHistogram.

Values are kept in microseconds at four significant decimal digits, so a reported
percentile is at most 0.1 % above the true value (HdrHistogram's default precision);
the true maximum is kept exactly. A per-second window is one
histogram; a phase or a run is the merge of its seconds; a distributed run is the merge
of its workers. Percentiles are never averaged.
"""

import math
from bisect import bisect_left
from collections import Counter
from itertools import accumulate, repeat
from operator import add


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
        # Called twice per pong: the common case (under 10 ms, no new maximum) takes no call.
        value = round(milliseconds * 1000)
        if value < 0:
            value = 0
        self.counts[value if value < 10_000 else bucket_of(value)] += 1
        self.total += 1
        if value > self.max_us:
            self.max_us = value

    def merge(self, other: "Histogram") -> "Histogram":
        # Counter.update adds in a Python loop; this adds the same in C (a run's totals take
        # every second's buckets).
        counts, values = self.counts, other.counts.keys()
        sums = map(add, map(counts.get, values, repeat(0)), other.counts.values())
        dict.update(counts, zip(values, sums, strict=True))
        self.total += other.total
        self.max_us = max(self.max_us, other.max_us)
        return self

    def percentile(self, fraction: float) -> float | None:
        """Nearest-rank percentile in ms (None when empty); never above the true maximum."""
        return self.percentiles(fraction)[0]

    def percentiles(self, *fractions: float) -> list[float | None]:
        """Several nearest-rank percentiles in ms from one sort of the buckets."""
        if self.total == 0:
            return [None] * len(fractions)
        values = sorted(self.counts)
        below_or_at = list(accumulate(map(self.counts.__getitem__, values)))
        ranks = (max(1, math.ceil(fraction * self.total)) for fraction in fractions)
        return [min(values[bisect_left(below_or_at, rank)], self.max_us) / 1000 for rank in ranks]

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
        # Each value once in a wire form (it is a Counter's items): a dict built at C speed.
        hist.counts.update(dict(zip(flat[::2], flat[1::2], strict=True)))
        hist.total = sum(flat[1::2])
        return hist
