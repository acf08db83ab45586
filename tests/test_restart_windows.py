"""Each restart owns the seconds up to its recovery or the next restart; what it could not
see (a recovery after the run ended, a down time no one measured) is None, not a number."""

import pytest

from load.analysis.recovery import (
    FIRST_CONNECT_FAILED,
    FIRST_CONNECT_OK,
    KILL_COLUMNS,
    restart_costs,
)
from load.runfolder.derive import daphne_down_s

T0 = 1_700_000_000


def second(
    at: int, pings: int = 10, pongs: int | None = None, closes: int = 0, refused: int = 0, **cells
) -> dict:
    pongs = pings if pongs is None else pongs
    return {
        "epoch_s": T0 + at,
        "pings": pings,
        "pongs": pongs,
        "errors": pings - pongs,
        "closes": closes,
        "connect_refused": refused,
        "connect_timeout": 0,
        "handshake_rejected": 0,
        "first_pong_at": "",
        FIRST_CONNECT_FAILED: "",
        FIRST_CONNECT_OK: "",
        "stale_members": "",
        **cells,
    }


def restart(at: float, down_s: float | None = None) -> dict:
    return {"ts": T0 + at, "at_s": at, "action": "restart", "mode": "hard", "which": "all", "down_s": down_s}


def test_back_to_back_restarts_share_the_failures_and_sum_to_the_runs():
    # A restart every 2.5 s from +5 s, none ever recovers: every ping from +5 fails.
    rows = [second(s) for s in range(5)] + [second(s, pongs=0, closes=2, refused=1) for s in range(5, 60)]
    restarts = [restart(5 + 2.5 * k) for k in range(22)]
    costs = restart_costs(rows, restarts)
    run_failed = sum(r["errors"] + r["connect_refused"] for r in rows)
    assert sum(c["failed_pings"] for c in costs) == run_failed == 55 * 11
    assert sum(c["closes"] for c in costs) == sum(r["closes"] for r in rows)
    assert [c["failed_pings"] for c in costs[:4]] == [22, 33, 22, 33]  # [5, 7), [7, 10), [10, 12), [12, 15)
    assert all(c["recovery_s"] is None for c in costs)
    assert {c["not_recovered_until"] for c in costs[:-1]} == {"next_restart"} and costs[-1][
        "not_recovered_until"
    ] == "run_end"


def test_per_restart_failures_never_exceed_the_runs_when_some_recover():
    rows = (
        [second(s) for s in range(4)]
        + [second(4, pongs=0, refused=3), second(5, pongs=2)]
        + [second(s) for s in range(6, 12)]
    )
    rows += [second(12, pongs=0, refused=2)] + [second(s, pongs=8) for s in range(13, 16)]
    costs = restart_costs(rows, [restart(12.2), restart(4.1)])  # any order in: time order out
    assert [c["at_s"] for c in costs] == [4.1, 12.2]
    assert costs[0]["recovery_s"] == pytest.approx(1.9) and costs[0]["failed_pings"] == 13 + 8
    assert sum(c["failed_pings"] for c in costs) <= sum(r["errors"] + r["connect_refused"] for r in rows)


def test_a_restart_not_recovered_by_the_end_says_how_long_it_was_watched():
    rows = [second(s) for s in range(10)] + [second(s, pongs=0) for s in range(10, 16)]
    (cost,) = restart_costs(rows, [restart(10.0)])
    # Seconds 10..13 could start three served seconds inside the data (up to +16): none did.
    assert (
        cost["recovery_s"] is None
        and cost["not_recovered_within_s"] == 4.0
        and cost["not_recovered_until"] == "run_end"
    )


def test_down_time_from_the_clients_when_the_target_cannot_say():
    rows = [second(s) for s in range(6)]
    rows[2].update({FIRST_CONNECT_OK: T0 + 2.05})  # a connect before the restart: not its end
    rows[3].update(
        {FIRST_CONNECT_FAILED: T0 + 3.4, FIRST_CONNECT_OK: T0 + 3.1}
    )  # ok before the failure: the next second's
    rows[4].update({FIRST_CONNECT_FAILED: T0 + 4.0, FIRST_CONNECT_OK: T0 + 4.9})
    (hook,) = restart_costs(rows, [restart(3.2)])
    assert hook["down_s"] == pytest.approx(1.5) and hook["down_source"] == "clients"
    (measured,) = restart_costs(rows, [restart(3.2, down_s=0.8)])
    assert measured["down_s"] == 0.8 and measured["down_source"] == "daphne"
    (unseen,) = restart_costs([second(s) for s in range(6)], [restart(3.2)])
    assert unseen["down_s"] is None and unseen["down_source"] is None  # no connect failed: not 0


def test_unknown_server_signatures_and_stale_members_stay_unknown_per_restart():
    rows = [second(s, sig_killed_own_await="") for s in range(8)]
    (cost,) = restart_costs(rows, [restart(2)])
    assert (
        cost["server_kills"] is None
        and cost["stale_members_before"] is None
        and cost["stale_members_after"] is None
    )
    rows = [
        second(s, sig_killed_own_await=1 if s == 3 else 0, stale_members=0 if s < 2 else 4) for s in range(10)
    ]
    (cost,) = restart_costs(rows, [restart(2)])
    assert cost["server_kills"] == 1 and (cost["stale_members_before"], cost["stale_members_after"]) == (0, 4)


def test_recovery_is_the_first_of_three_served_seconds_allowing_the_failures_seen_before():
    # The endpoint fails one ping in ten by design: a second like that after the restart is served.
    before = [second(s, pongs=9) for s in range(10)]
    down = [second(10, pongs=0), second(11, pongs=0)]
    (cost,) = restart_costs(before + down + [second(s, pongs=9) for s in range(12, 16)], [restart(10.3)])
    assert cost["recovery_s"] == 1.7 and cost["failed_pings"] == 20  # seconds 10 and 11, all failed
    # Two in ten is over the one in ten before plus 1 %: second 12 is not served yet.
    (cost,) = restart_costs(
        before + down + [second(12, pongs=8)] + [second(s, pongs=9) for s in range(13, 17)], [restart(10.3)]
    )
    assert cost["recovery_s"] == 2.7
    # A served second followed by a failing one starts no recovery: three in a row do.
    rows = before + down + [second(12), second(13, pongs=0)] + [second(s) for s in range(14, 18)]
    (cost,) = restart_costs(rows, [restart(10.3)])
    assert cost["recovery_s"] == 3.7 and "not_recovered_within_s" not in cost


def test_first_pong_counts_from_the_restart_and_stops_at_the_next_one():
    rows = [second(s) for s in range(20)]
    rows[5]["first_pong_at"] = T0 + 5.5  # before the restart: the run's start, not the restart's
    rows[10]["first_pong_at"] = T0 + 10.1  # in the restart's second but before its signal
    rows[11]["first_pong_at"] = T0 + 11.6
    rows[12]["first_pong_at"] = T0 + 12.2
    (cost,) = restart_costs(rows, [restart(10.3)])
    assert cost["first_pong_s"] == 1.3
    first, second_restart = restart_costs(rows, [restart(10.3), restart(11.0)])
    assert first["first_pong_s"] is None  # 11.6 was the next restart's user served again
    assert second_restart["first_pong_s"] == 0.6
    (unseen,) = restart_costs([second(s) for s in range(20)], [restart(10.3)])
    assert unseen["first_pong_s"] is None  # no socket opened after it was served: unknown, not 0


def test_stale_members_just_before_and_settled_after_the_recovery():
    stale = {8: 1, 9: 0, 10: 0, 11: 3, 12: 5, 13: 4, 14: 2, 15: 2}
    rows = [second(s, stale_members=stale.get(s, "")) for s in range(18)]
    rows[10].update(pongs=0, errors=10)  # down in second 10, served again from 11
    (cost,) = restart_costs(rows, [restart(10.2)])
    assert cost["recovery_s"] == 0.8
    # Before: the second just ahead of the restart (9), not an older one; after: second 13, STALE_DELAY (2)
    # seconds after the recovery at 11, neither the peak (12) nor the last reading (15).
    assert (cost["stale_members_before"], cost["stale_members_after"]) == (0, 4)
    rows[9]["stale_members"] = ""
    (cost,) = restart_costs(rows, [restart(10.2)])
    assert (
        cost["stale_members_before"] is None
    )  # the probe missed that second: unknown, though second 8 had a reading


def test_stale_members_after_a_restart_never_recovered_are_its_last_reading():
    rows = [second(s) for s in range(10)] + [second(s, pongs=0, stale_members=s - 9) for s in range(10, 16)]
    (cost,) = restart_costs(rows, [restart(10.0)])
    assert cost["recovery_s"] is None and cost["stale_members_after"] == 6
    # The next restart's readings are not this one's.
    first, _ = restart_costs(rows, [restart(10.0), restart(13.0)])
    assert first["stale_members_after"] == 3


def test_down_time_comes_from_daphne_when_the_target_measured_every_instance():
    assert (
        daphne_down_s([{"down_seconds": 0.4}, {"down_seconds": 1.25}]) == 1.25
    )  # the longest: service was partial
    assert daphne_down_s([{"down_seconds": 0.4}, {"down_seconds": None}]) is None  # one unmeasured: no figure
    assert (
        daphne_down_s([{"command": "ssh app0 restart"}]) is None and daphne_down_s([]) is None
    )  # hooks measure nothing
    rows = [second(s) for s in range(8)]
    rows[3].update({FIRST_CONNECT_FAILED: T0 + 3.4, FIRST_CONNECT_OK: T0 + 4.2})
    (cost,) = restart_costs(rows, [restart(3.2, down_s=0.0)])
    assert (cost["down_s"], cost["down_source"]) == (
        0.0,
        "daphne",
    )  # measured, even as 0: the clients' 0.8 s is not used
    (cost,) = restart_costs(rows, [restart(3.2)])
    assert (cost["down_s"], cost["down_source"]) == (0.8, "clients")


def test_server_kills_are_counted_from_the_log_and_none_without_one():
    no_log = [second(s) for s in range(10)]  # no signature columns at all: no log was read
    (cost,) = restart_costs(no_log, [restart(3)])
    assert cost["server_kills"] is None
    kills = {
        3: ("sig_killed_pending", 2),
        4: ("sig_killed_on_thread", 1),
        6: ("sig_killed_other", 1),
        9: ("sig_killed_own_await", 5),
    }
    rows = [second(s, **{column: 0 for column in KILL_COLUMNS}) for s in range(12)]
    for s, (column, n) in kills.items():
        rows[s][column] = n
    (cost,) = restart_costs(rows, [restart(3)])
    # Recovered at once (second 3 is served): kills from 3 up to STALE_DELAY seconds after, not the one at 9.
    assert cost["recovery_s"] == 0.0 and cost["server_kills"] == 4
    first, _ = restart_costs(rows, [restart(3), restart(5)])
    assert first["server_kills"] == 3  # second 6's kill is the next restart's
