"""Numbers for a person: figures formatted, relative changes, and the spread of per-second
values (median and IQR) that says whether a difference is larger than the noise."""

import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass

SIMILAR = 0.20  # "did not change": within 20 %

NOTABLE = 0.10  # a smaller change is not called large, however tight the spread


@dataclass
class Spread:
    """Median and interquartile range of per-second values."""

    median: float
    q1: float
    q3: float
    n: int

    def text(self, unit: str) -> str:
        return f"median {fmt(self.median)}{unit} (IQR {fmt(self.q1)}–{fmt(self.q3)}{unit}, {self.n} s)"


def spread(values: Iterable[float | None]) -> Spread | None:
    """None with fewer than three seconds: too few to speak of a spread."""
    present = [v for v in values if v is not None]
    if len(present) < 3:
        return None
    q1, median, q3 = statistics.quantiles(present, n=4, method="inclusive")
    return Spread(median, q1, q3, len(present))


def separated(a: Spread, b: Spread) -> bool:
    """The interquartile ranges do not overlap: the seconds of one differ from the seconds of the other."""
    return a.q3 < b.q1 or b.q3 < a.q1


def verdict(a: Spread, b: Spread) -> str:
    """How a difference of per-second medians compares with the spread across seconds."""
    if not separated(a, b):
        return "within the spread across seconds"
    relative = change(a.median, b.median)
    if relative is not None and abs(relative) < NOTABLE:
        return "outside the spread across seconds but under 10 %"
    return "a difference large relative to the spread across seconds"


def clearly_apart(a: Spread, b: Spread) -> bool:
    return verdict(a, b).startswith("a difference large")


def change(a: float | None, b: float | None) -> float | None:
    """Relative change from a to b (0.25 = +25 %), None when it cannot be said."""
    if a is None or b is None:
        return None
    if a == 0:
        return 0.0 if b == 0 else None
    return b / a - 1


def fmt(value, unit: str = "") -> str:
    """A figure for a person: integers whole, others with sensible digits; '–' for none."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool):
        return str(value)
    value = float(value)
    if value.is_integer():
        return f"{int(value)}{unit}"
    digits = (
        0 if abs(value) >= 100 else 1 if abs(value) >= 10 else 2 if abs(value) >= 0.01 or value == 0 else 4
    )
    return f"{value:.{digits}f}{unit}"


def percent(value: float | None) -> str:
    """A relative change as '+17 %', '−4 %' or '±0 %'."""
    if value is None:
        return "–"
    rounded = round(value * 100)
    return "±0 %" if rounded == 0 else f"{rounded:+d} %".replace("-", "−")
