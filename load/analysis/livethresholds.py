"""--fail-on while the run goes: each threshold checked every few seconds against the
seconds written so far, and its first breach said as it happens (the console, the web UI's
Logs tab, events.jsonl and so the chaos tab's events). The verdict and the exit code stay
the end's (thresholds.check on summary.json): a rate over its limit at second 30 may be
back under it by the end, and a count over its limit stays over it."""

from load.analysis.thresholds import Threshold, check
from load.runfolder.names import ALL, BROADCASTS_LOST, ENDPOINTS, IN_FLIGHT, RECOVERY_S, STALE_MEMBERS

# Figures known only once the run has ended: restarts' recovery and stale members are
# derived from the whole series, deliveries are settled, pings in flight are counted.
AT_THE_END_ONLY = (RECOVERY_S, STALE_MEMBERS, BROADCASTS_LOST, IN_FLIGHT)
# Only limits from above: counts grow, so `pongs<1000` is "breached" by every run's start.
LIVE_OPERATORS = (">", ">=")
CHECK_EVERY_S = 5.0


class BreachWatch:
    def __init__(self, thresholds: tuple[Threshold, ...]):
        self.thresholds = tuple(
            t for t in thresholds if t.metric not in AT_THE_END_ONLY and t.op in LIVE_OPERATORS
        )
        self.said: set[str] = set()

    def __bool__(self) -> bool:
        return bool(self.thresholds)

    def new_breaches(self, so_far: dict) -> list[tuple[Threshold, str]]:
        """Each threshold breached by the figures so far and not said yet, with its line."""
        found = []
        for threshold in self.thresholds:
            unused = threshold.endpoint != ALL and threshold.endpoint not in so_far.get(ENDPOINTS, {})
            if threshold.text in self.said or unused:  # an endpoint may get its first user later
                continue
            lines, _notes = check((threshold,), so_far)
            if lines:
                self.said.add(threshold.text)
                found.append((threshold, f"{lines[0]} so far (the end's figures decide the exit code)"))
        return found
