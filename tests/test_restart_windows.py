"""Each restart owns the seconds up to its recovery or the next restart; what it could not
see (a recovery after the run ended, a down time no one measured) is None, not a number."""

import pytest

from load.analysis.recovery import FIRST_CONNECT_FAILED, FIRST_CONNECT_OK, restart_costs

T0 = 1_700_000_000


def second(at: int, pings: int = 10, pongs: int | None = None, closes: int = 0, refused: int = 0, **cells) -> dict:
    pongs = pings if pongs is None else pongs
    return {"epoch_s": T0 + at, "pings": pings, "pongs": pongs, "errors": pings - pongs, "closes": closes,
            "connect_refused": refused, "connect_timeout": 0, "handshake_rejected": 0, "first_pong_at": "",
            FIRST_CONNECT_FAILED: "", FIRST_CONNECT_OK: "", "stale_members": "", **cells}


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
    assert {c["not_recovered_until"] for c in costs[:-1]} == {"next_restart"} and costs[-1]["not_recovered_until"] == "run_end"


def test_per_restart_failures_never_exceed_the_runs_when_some_recover():
    rows = [second(s) for s in range(4)] + [second(4, pongs=0, refused=3), second(5, pongs=2)] + [second(s) for s in range(6, 12)]
    rows += [second(12, pongs=0, refused=2)] + [second(s, pongs=8) for s in range(13, 16)]
    costs = restart_costs(rows, [restart(12.2), restart(4.1)])  # any order in: time order out
    assert [c["at_s"] for c in costs] == [4.1, 12.2]
    assert costs[0]["recovery_s"] == pytest.approx(1.9) and costs[0]["failed_pings"] == 13 + 8
    assert sum(c["failed_pings"] for c in costs) <= sum(r["errors"] + r["connect_refused"] for r in rows)


def test_a_restart_not_recovered_by_the_end_says_how_long_it_was_watched():
    rows = [second(s) for s in range(10)] + [second(s, pongs=0) for s in range(10, 16)]
    (cost,) = restart_costs(rows, [restart(10.0)])
    # Seconds 10..13 could start three served seconds inside the data (up to +16): none did.
    assert cost["recovery_s"] is None and cost["not_recovered_within_s"] == 4.0 and cost["not_recovered_until"] == "run_end"


def test_down_time_from_the_clients_when_the_target_cannot_say():
    rows = [second(s) for s in range(6)]
    rows[2].update({FIRST_CONNECT_OK: T0 + 2.05})  # a connect before the restart: not its end
    rows[3].update({FIRST_CONNECT_FAILED: T0 + 3.4, FIRST_CONNECT_OK: T0 + 3.1})  # ok before the failure: the next second's
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
    assert cost["server_kills"] is None and cost["stale_members_before"] is None and cost["stale_members_after"] is None
    rows = [second(s, sig_killed_own_await=1 if s == 3 else 0, stale_members=0 if s < 2 else 4) for s in range(10)]
    (cost,) = restart_costs(rows, [restart(2)])
    assert cost["server_kills"] == 1 and (cost["stale_members_before"], cost["stale_members_after"]) == (0, 4)
