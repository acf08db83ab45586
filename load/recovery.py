"""What each restart cost, from the per-second series: errors, server kills, leaked group
members, and how long until the users were served again.

First pong: from the restart's begin to the first pong on a socket opened after it (a
user served again). Recovery time: from the restart's begin to the start of the first three consecutive
seconds in which pings were answered and no more pings failed than before the restart
plus 1 % (connect failures count as failed pings too: a user that cannot connect is not
served). "Before" is the five seconds ahead of the restart, so an endpoint that fails by
design (a ping that sleeps past the pong timeout) does not hide every recovery.
"""

from collections.abc import Iterable

QUIET_SECONDS = 3
ERROR_SHARE = 0.01
BASELINE_SECONDS = 5
KILL_COLUMNS = ("sig_killed_own_await", "sig_killed_on_thread", "sig_killed_other", "sig_killed_pending")
CONNECT_FAILURES = ("connect_refused", "connect_timeout", "handshake_rejected")


def _number(value) -> float:
    return float(value) if value not in ("", None) else 0.0


def _failed(row: dict) -> float:
    return _number(row.get("errors")) + sum(_number(row.get(c)) for c in CONNECT_FAILURES)


def _share_failed(rows: list[dict]) -> float:
    pings = sum(_number(r.get("pings")) for r in rows)
    return sum(_failed(r) for r in rows) / pings if pings else 0.0


def _served(row: dict, tolerated: float) -> bool:
    pings = _number(row.get("pings"))
    return _number(row.get("pongs")) > 0 and _failed(row) <= tolerated * max(pings, 1)


def recovered_at(rows: list[dict], begin: float) -> int | None:
    """The epoch second at which service was back after `begin`, or None if it never was."""
    before = [r for r in rows if int(begin) - BASELINE_SECONDS <= int(r["epoch_s"]) < int(begin)]
    tolerated = _share_failed(before) + ERROR_SHARE
    after = [r for r in rows if int(r["epoch_s"]) >= int(begin)]
    for i in range(len(after) - QUIET_SECONDS + 1):
        window = after[i:i + QUIET_SECONDS]
        if all(_served(r, tolerated) for r in window):
            return int(window[0]["epoch_s"])
    return None


def _value_at(rows: list[dict], second: int, column: str, within: int = 3):
    """The column's value at that second, or the next second that has one (a sample may be missing)."""
    for row in rows:
        if second <= int(row["epoch_s"]) <= second + within and row.get(column) not in ("", None):
            return int(_number(row[column]))
    return None


def _stale_after(rows: list[dict], begin: int, end: int):
    """Stale members two seconds after recovery; without a recovery, the last reading after the restart."""
    value = _value_at(rows, end + 2, "stale_members")
    if value is not None:
        return value
    later = [r for r in rows if int(r["epoch_s"]) > begin and r.get("stale_members") not in ("", None)]
    return int(_number(later[-1]["stale_members"])) if later else None


def restart_costs(rows: list[dict], restarts: Iterable[dict]) -> list[dict]:
    """One entry per restart event ({"ts", "mode", "which", "instances", "down_s"})."""
    costs = []
    for restart in restarts:
        begin = restart["ts"]
        back = recovered_at(rows, begin)
        end = back if back is not None else int(rows[-1]["epoch_s"]) + 1 if rows else int(begin)
        during = [r for r in rows if int(begin) <= int(r["epoch_s"]) < max(end, int(begin) + 1)]
        around = [r for r in rows if int(begin) <= int(r["epoch_s"]) <= end + 2]
        first_pong = min((_number(r["first_pong_at"]) for r in rows if r.get("first_pong_at") not in ("", None)
                          and _number(r["first_pong_at"]) >= begin), default=None)
        costs.append({
            **restart,
            "first_pong_s": round(first_pong - begin, 3) if first_pong is not None else None,
            "recovery_s": round(back - begin, 1) if back is not None else None,
            "failed_pings": int(sum(_failed(r) for r in during)),
            "closes": int(sum(_number(r.get("closes")) for r in during)),
            "server_kills": int(sum(_number(r.get(c)) for r in around for c in KILL_COLUMNS)),
            "stale_members_before": _value_at(rows, int(begin) - 1, "stale_members"),
            "stale_members_after": _stale_after(rows, int(begin), end),
        })
    return costs
