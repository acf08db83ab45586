"""What each restart cost, from the per-second series: errors, server kills, leaked group
members, how long Daphne was down and how long until the users were served again.

Each restart owns the seconds from its begin to its recovery, and never past the second
the next restart begins: a restart is not charged with the next one's failures, so the
per-restart counts add up to at most the run's (exactly its part, with back-to-back
restarts that never recover).

First pong: from the restart's begin to the first pong on a socket opened after it (a
user served again). Recovery time: from the restart's begin to the start of the first three consecutive
seconds in which pings were answered and no more pings failed than before the restart
plus 1 % (connect failures count as failed pings too: a user that cannot connect is not
served). "Before" is the five seconds ahead of the restart, so an endpoint that fails by
design (a ping that sleeps past the pong timeout) does not hide every recovery. A restart
not recovered before the run ended (or the next restart began) has no recovery time, only
the lower bound `not_recovered_within_s`: no recovery began in those seconds.

Down time: what Daphne's supervisor measured (process exit to ready, `down_source`
"daphne") when the target reports it; otherwise what the clients saw (`"clients"`): from
the first failed connect after the restart began to the first accepted connect after it.
None when neither can tell (no connect failed in the restart's window).
"""

from collections.abc import Iterable

from load.runfolder.names import (
    CLOSES,
    DOWN_BY_CLIENTS,
    DOWN_BY_DAPHNE,
    DOWN_S,
    DOWN_SOURCE,
    EPOCH_S,
    ERRORS,
    FAILED_PINGS,
    FIRST_CONNECT_FAILED,
    FIRST_CONNECT_OK,
    FIRST_PONG_AT,
    FIRST_PONG_S,
    KILL_COLUMNS,
    NOT_RECOVERED_UNTIL,
    NOT_RECOVERED_WITHIN_S,
    PINGS,
    PONGS,
    RECOVERY_S,
    SERVER_KILLS,
    STALE_MEMBERS,
    STALE_MEMBERS_AFTER,
    STALE_MEMBERS_BEFORE,
    UNTIL_NEXT_RESTART,
    UNTIL_RUN_END,
)
from load.runfolder.names import CONNECT_ERRORS as CONNECT_FAILURES

QUIET_SECONDS = 3
ERROR_SHARE = 0.01
BASELINE_SECONDS = 5
STALE_DELAY = 2  # stale members are read this many seconds after recovery (disconnects settle)


def _number(value) -> float:
    return float(value) if value not in ("", None) else 0.0


def _known(value) -> bool:
    return value not in ("", None)


def _failed(row: dict) -> float:
    return _number(row.get(ERRORS)) + sum(_number(row.get(c)) for c in CONNECT_FAILURES)


def _share_failed(rows: list[dict]) -> float:
    pings = sum(_number(r.get(PINGS)) for r in rows)
    return sum(_failed(r) for r in rows) / pings if pings else 0.0


def _served(row: dict, tolerated: float) -> bool:
    pings = _number(row.get(PINGS))
    return _number(row.get(PONGS)) > 0 and _failed(row) <= tolerated * max(pings, 1)


def _second(row: dict) -> int:
    return int(row[EPOCH_S])


def recovered_at(rows: list[dict], begin: float, before: int | None = None) -> int | None:
    """The epoch second at which service was back after `begin` (a second before `before`,
    if given), or None if it was not."""
    tolerated = (
        _share_failed([r for r in rows if int(begin) - BASELINE_SECONDS <= _second(r) < int(begin)])
        + ERROR_SHARE
    )
    after = [r for r in rows if _second(r) >= int(begin)]
    for i in range(len(after) - QUIET_SECONDS + 1):
        window = after[i : i + QUIET_SECONDS]
        if before is not None and _second(window[0]) >= before:
            return None
        if all(_served(r, tolerated) for r in window):
            return _second(window[0])
    return None


def clients_down_s(rows: list[dict], begin: float, stop: int) -> float | None:
    """From the first failed connect at or after `begin` (before second `stop`) to the first
    accepted connect after it; None when no connect failed, or none was accepted after.

    Per second only the earliest of each is kept: when an accepted connect came earlier in
    the failure's own second, the next second's earliest is taken (at most a second late).
    """
    failed = [
        _number(r[FIRST_CONNECT_FAILED])
        for r in rows
        if int(begin) <= _second(r) < stop
        and _known(r.get(FIRST_CONNECT_FAILED))
        and _number(r[FIRST_CONNECT_FAILED]) >= begin
    ]
    if not failed:
        return None
    first_failed = min(failed)
    accepted = [
        _number(r[FIRST_CONNECT_OK])
        for r in rows
        if _second(r) >= int(first_failed)
        and _known(r.get(FIRST_CONNECT_OK))
        and _number(r[FIRST_CONNECT_OK]) > first_failed
    ]
    return round(min(accepted) - first_failed, 3) if accepted else None


def _stale_after(rows: list[dict], begin: int, back: int | None, stop: int) -> int | None:
    """Stale members STALE_DELAY seconds after recovery, or the last reading of the window
    before that; None when the window has no reading (or the probe could not tell)."""
    readings = [r for r in rows if begin < _second(r) < stop and _known(r.get(STALE_MEMBERS))]
    if back is not None:
        settled = [r for r in readings if _second(r) >= back + STALE_DELAY]
        if settled:
            return int(_number(settled[0][STALE_MEMBERS]))
    return int(_number(readings[-1][STALE_MEMBERS])) if readings else None


def _stale_before(rows: list[dict], begin: int) -> int | None:
    for row in rows:
        if _second(row) == begin - 1 and _known(row.get(STALE_MEMBERS)):
            return int(_number(row[STALE_MEMBERS]))
    return None


def _sum(rows: list[dict], columns: Iterable[str]) -> int:
    return int(sum(_number(r.get(c)) for r in rows for c in columns))


def restart_cost(rows: list[dict], restart: dict, next_begin: float | None) -> dict:
    """One restart's figures from the rows, inside its own window (see the module doc)."""
    begin = restart["ts"]
    end_of_data = _second(rows[-1]) + 1 if rows else int(begin)
    cap = min(int(next_begin), end_of_data) if next_begin is not None else end_of_data
    back = recovered_at(rows, begin, int(next_begin) if next_begin is not None else None)
    stop = min(max(back if back is not None else cap, int(begin) + 1), cap)
    during = [r for r in rows if int(begin) <= _second(r) < stop]
    around = [r for r in rows if int(begin) <= _second(r) < min(stop + STALE_DELAY + 1, cap)]
    first_pong = min(
        (
            _number(r[FIRST_PONG_AT])
            for r in rows
            if _known(r.get(FIRST_PONG_AT))
            and begin <= _number(r[FIRST_PONG_AT])
            and (next_begin is None or _number(r[FIRST_PONG_AT]) < next_begin)
        ),
        default=None,
    )
    cost = {
        **restart,
        FIRST_PONG_S: round(first_pong - begin, 3) if first_pong is not None else None,
        RECOVERY_S: round(back - begin, 1) if back is not None else None,
        FAILED_PINGS: _sum(during, (ERRORS, *CONNECT_FAILURES)),
        CLOSES: _sum(during, (CLOSES,)),
        # None when no server log was read: every signature cell is empty
        SERVER_KILLS: _sum(around, KILL_COLUMNS)
        if any(_known(r.get(KILL_COLUMNS[0])) for r in rows)
        else None,
        STALE_MEMBERS_BEFORE: _stale_before(rows, int(begin)),
        STALE_MEMBERS_AFTER: _stale_after(rows, int(begin), back, cap),
    }
    if restart.get(DOWN_S) is not None:
        cost[DOWN_SOURCE] = DOWN_BY_DAPHNE
    else:
        cost[DOWN_S] = clients_down_s(rows, begin, cap)
        cost[DOWN_SOURCE] = DOWN_BY_CLIENTS if cost[DOWN_S] is not None else None
    if back is None:
        # Any recovery would have begun in a second we could still check: at least this long.
        last_start = min(cap, end_of_data - QUIET_SECONDS + 1)
        cost[NOT_RECOVERED_WITHIN_S] = round(max(0.0, last_start - begin), 1)
        cost[NOT_RECOVERED_UNTIL] = (
            UNTIL_NEXT_RESTART if last_start == cap and next_begin is not None else UNTIL_RUN_END
        )
    return cost


def restart_costs(rows: list[dict], restarts: Iterable[dict]) -> list[dict]:
    """One entry per restart ({"ts", "mode", "which", "instances", "down_s"}), in time order."""
    ordered = sorted(restarts, key=lambda r: r["ts"])
    nexts = [r["ts"] for r in ordered[1:]] + [None]
    return [
        restart_cost(rows, restart, next_begin) for restart, next_begin in zip(ordered, nexts, strict=False)
    ]
