"""Figures derived from what a run folder holds, one function each, for the recorder at the
end of a run and for the report of a folder alike."""

from load.runfolder.loader import count, number
from load.runfolder.names import (
    ACTION_BEGIN,
    ACTION_DONE,
    AGENT,
    AT_S,
    COUNT_COLUMNS,
    DELIVERY_COLUMNS,
    DOWN_S,
    ERRORS,
    EVENT,
    LATENCY_COLUMNS,
    MODE,
    PING_ERRORS,
    PINGS,
    RESTART_ACTIONS,
    SEND_LAG_MAX_MS,
    WHICH,
)


def daphne_down_s(outcomes: list[dict]) -> float | None:
    """The longest down time the target measured, None unless it measured every instance's
    (restart hooks measure none: 0 would be a false figure)."""
    downs = [o.get("down_seconds") for o in outcomes]
    if not downs or any(d is None for d in downs):
        return None
    return max(d for d in downs if d is not None)  # all are, past the return above


def instance_label(outcome: dict) -> str | None:
    """A restarted instance as the summary names it: with its agent's name when an agent
    restarted it (agent1/daphne-0), as every agent's first instance is daphne-0."""
    instance = outcome.get("instance")
    return f"{outcome[AGENT]}/{instance}" if outcome.get(AGENT) else instance


def restarts_from_events(events: list[dict], mode: str, which: str) -> list[dict]:
    """The restarts the chaos controller completed (an action_begin of a restarting action
    and its action_done), in the order they ended; the input of analysis.recovery.restart_costs.
    mode and which are the plan's restart_mode and restart_which."""
    begun: dict[tuple, dict] = {}
    restarts = []
    for event in events:
        if event.get("action") not in RESTART_ACTIONS:
            continue
        key = (event["action"], event.get(AT_S))
        if event.get(EVENT) == ACTION_BEGIN:
            begun[key] = event
        elif event.get(EVENT) == ACTION_DONE and key in begun:
            begin, outcomes = begun.pop(key), event.get("outcome") or []
            restarts.append(
                {
                    "ts": begin["ts"],
                    AT_S: event.get(AT_S),
                    "action": event["action"],
                    "threads": event.get("threads"),
                    "mode": event.get(MODE, mode),  # an action asked for by hand says its own
                    "which": event.get(WHICH, which),
                    "instances": [instance_label(o) for o in outcomes],
                    DOWN_S: daphne_down_s(
                        outcomes
                    ),  # None for hooks: restart_costs takes what the clients saw
                }
            )
    return restarts


def error_rate(figures: dict) -> float | None:
    """Failed pings per ping, a fraction (what --fail-on compares; the report and compare show
    it times 100); None without pings. Failed connects are in connect_error_rate, not here."""
    pings = count(figures.get(PINGS))
    return count(figures.get(ERRORS)) / pings if pings else None


def totals_from_rows(rows: list[dict]) -> dict:
    """What summary.json would say, from per-second rows: exact counts and maxima; the
    percentiles as the largest per-second value, which bounds the run's from above."""
    totals: dict = {column: int(sum(count(r.get(column)) for r in rows)) for column in COUNT_COLUMNS}
    totals[ERRORS] = sum(totals[kind] for kind in PING_ERRORS)
    for column in DELIVERY_COLUMNS:  # settled at the run's end: unknown while any cell is empty
        cells = [number(r.get(column)) for r in rows]
        totals[column] = None if not rows or None in cells else int(sum(c for c in cells if c is not None))
    for column in (*LATENCY_COLUMNS, SEND_LAG_MAX_MS):
        values = [v for v in (number(r.get(column)) for r in rows) if v is not None]
        totals[column] = max(values) if values else None
    return totals
