"""Room delivery accounting on hand-made data: the users' records, their trip as wire
deltas, and the settlement's rule (load.measure.settlement)."""

import csv

import roomscript

from load.analysis.detectors import diagnose
from load.config.settings import LayerOptions
from load.measure.deliveries import DeliveryLog, SeqSet
from load.measure.settlement import DeliveryLedger, fill_csv, fill_summary, settle
from load.runfolder.files import AppendOnlyCsv
from load.runfolder.loader import load_run
from load.runfolder.names import (
    ALL,
    BROADCASTS,
    BROADCASTS_DUPLICATED,
    BROADCASTS_IN_FLIGHT,
    BROADCASTS_LOST,
    BROADCASTS_RECEIVED,
    BROADCASTS_SENT,
    CLIENT_CLOSES,
    CLOSES,
    DELIVERIES,
    ENDPOINTS,
    EPOCH_S,
    MEMBER_LIVES,
    TIMESERIES_COLUMNS,
)
from load.wire.protocol import WELCOME, TargetAppCodec
from locustrun import REPO, expected_exit_code, read_csv, read_json, run_folder

ROOM, SLOW = "/ws/room/r/", "/ws/room/r/?sleep_ms=500"


def test_a_seqset_keeps_ranges_and_tells_duplicates():
    seqs = SeqSet()
    assert all(seqs.add(s) for s in (1, 2, 3, 7, 5, 4))
    assert seqs.ranges == [[1, 5], [7, 7]]
    assert not seqs.add(4) and not seqs.add(7)
    assert seqs.add(6) and seqs.ranges == [[1, 7]] and len(seqs) == 7
    assert 0 not in seqs and 7 in seqs and list(SeqSet.of([3, 1])) == [1, 3]


def test_a_welcome_names_the_member():
    reply = TargetAppCodec().decode('{"type": "welcome", "room": "r", "member": "specific.a!b"}')
    assert (reply.kind, reply.sender, reply.detail) == (WELCOME, "specific.a!b", "r")


def scripted_run() -> DeliveryLedger:
    """Two processes, one room. A sends 1..4 (echoes back for 1..3; 4 is never echoed and
    nobody gets it); B sends 1..2 then drops before its echo of 2 (C got 2: it was fanned
    out); C (slow endpoint) joined after A's 1, lost A's 2, got A's 3 twice; D left at 25,
    between A's 2 and A's 3; E never got a welcome (a ping socket)."""
    first, second = DeliveryLog(), DeliveryLog()
    a, b = first.open(ROOM), first.open(ROOM)
    c, d, e = second.open(SLOW), second.open(ROOM), second.open("/ws/ping/")
    first.sent(a, 100, 0.5)  # sent before its welcome arrived: still A's
    for log, life, name, ts in ((first, a, "A", 1.0), (first, b, "B", 1.5), (second, d, "D", 2.0)):
        log.welcome(life, name, "r", ts)
    second.sent(e, 1, 3.0)
    second.other_frame(e)  # a pong: E is no room socket; its send is forgotten
    first.echo(a, 100, 1.2)
    first.sent(a, 1, 10.0)  # before C joined
    first.echo(a, 1, 10.1)
    second.welcome(c, "C", "r", 10.5)
    second.broadcast(d, "A", 1, 10.2)
    second.broadcast(d, "A", 100, 2.1)
    first.broadcast(b, "A", 100, 1.6)
    first.broadcast(b, "A", 1, 10.2)
    first.sent(a, 2, 20.0)
    first.echo(a, 2, 20.1)
    first.broadcast(b, "A", 2, 20.1)
    second.broadcast(d, "A", 2, 20.1)  # C lost it
    first.sent(b, 1, 21.0)
    first.echo(b, 1, 21.1)
    for life in (a, d):
        (first if life is a else second).broadcast(life, "B", 1, 21.1)
    second.broadcast(c, "B", 1, 21.2)
    wire = [first.take(), second.take()]  # a report mid-run
    second.close(d, 25.0)
    first.sent(a, 3, 30.0)
    first.echo(a, 3, 30.1)
    first.broadcast(b, "A", 3, 30.1)
    second.broadcast(c, "A", 3, 30.2)
    second.broadcast(c, "A", 3, 30.3)  # a duplicate
    first.sent(b, 2, 31.0)
    first.close(b, 31.05)  # dropped before its echo
    second.broadcast(c, "B", 2, 31.1)
    first.sent(a, 4, 40.0)  # no echo, no receipt: no sign it was fanned out
    for log, life in ((first, a), (second, c), (second, e)):
        log.close(life, 50.0)
    wire += [first.take(), second.take()]
    ledger = DeliveryLedger()
    for part in wire:
        ledger.merge(part)
    return ledger


def test_settlement_follows_the_rule_and_balances():
    settlement = settle(scripted_run(), end=60.0, pong_timeout=5.0)
    assert settlement.member_lives == 4 and settlement.sent == 7
    room, slow = settlement.per_endpoint[ROOM], settlement.per_endpoint[SLOW]
    # A's 100 (sent before everyone's welcome, so owed only to those who got it): B, D.
    # A's 1: B, D (C joined after). A's 2: B, D; C lost it. A's 3: B, C (twice); D had left.
    # B's 1: A, C, D. B's 2: C got it, A was owed it (C's copy at 31.1 shows the fan-out;
    # A still read then) and lost it; D had left. A's 4: nobody owed.
    assert room[BROADCASTS_RECEIVED] == 2 + 2 + 2 + 1 + 2  # B, D for 100, 1, 2; B for 3; A, D for B's 1
    assert room[BROADCASTS_LOST] == 1  # A never got B's 2
    assert slow[BROADCASTS_RECEIVED] == 3 and slow[BROADCASTS_LOST] == 1 and slow[BROADCASTS_DUPLICATED] == 1
    assert room[BROADCASTS_DUPLICATED] == 0
    # each in the second it was sent
    assert settlement.per_second[(20, SLOW)][BROADCASTS_LOST] == 1
    assert settlement.per_second[(31, ROOM)][BROADCASTS_LOST] == 1
    assert settlement.per_second[(30, SLOW)][BROADCASTS_DUPLICATED] == 1
    assert settlement.per_second[(0, ROOM)][BROADCASTS_RECEIVED] == 2


def test_a_member_that_never_reported_leaving_is_settled_at_the_end():
    log = DeliveryLog()
    sender, member = log.open(ROOM), log.open(ROOM)
    log.welcome(sender, "S", "r", 1.0)
    log.welcome(member, "M", "r", 1.0)
    log.sent(sender, 1, 5.0)
    log.echo(sender, 1, 5.1)
    ledger = DeliveryLedger()
    ledger.merge(log.take())
    assert settle(ledger, end=6.0, pong_timeout=5.0).per_endpoint[ROOM][BROADCASTS_LOST] == 1
    assert BROADCASTS_LOST not in settle(ledger, end=5.05, pong_timeout=5.0).per_endpoint.get(ROOM, {})


def test_a_member_its_user_stopped_has_a_pong_timeout_for_what_is_on_its_way():
    """The run's stop: a broadcast sent within a pong timeout of it is in flight, an older
    one lost, and so is one a later broadcast overtook; a socket that ended by itself gets
    no such grace."""
    log = DeliveryLog()
    sender, stopped, dropped = log.open(ROOM), log.open(ROOM), log.open(ROOM)
    for life, name in ((sender, "S"), (stopped, "M"), (dropped, "D")):
        log.welcome(life, name, "r", 1.0)
    for seq, at in ((1, 10.0), (2, 18.0), (3, 18.5), (4, 19.0)):
        log.sent(sender, seq, at)
        log.echo(sender, seq, at + 0.1)
    log.broadcast(stopped, "S", 4, 19.2)
    log.broadcast(dropped, "S", 4, 19.2)
    log.close(stopped, 20.0, stopped=True)
    log.close(dropped, 20.0)
    ledger = DeliveryLedger()
    ledger.merge(log.take())
    settlement = settle(ledger, end=21.0, pong_timeout=5.0)
    assert (
        settlement.per_endpoint[ROOM][BROADCASTS_LOST] == 3 + 3
    )  # M: 1, and 2 and 3 that 4 overtook; D: 1-3
    assert settlement.in_flight == 0
    ledger.got["M"]["S"] = SeqSet.of([1])  # M got nothing after 1: 2 and 3 may still come
    settlement = settle(ledger, end=21.0, pong_timeout=5.0)
    assert settlement.in_flight == 3 and settlement.per_endpoint[ROOM][BROADCASTS_LOST] == 3  # 2, 3, 4


def test_settled_cells_fill_the_csv_and_an_unsettled_summary_says_null(tmp_path):
    settlement = settle(scripted_run(), end=60.0, pong_timeout=5.0)
    path = tmp_path / "timeseries.csv"
    table = AppendOnlyCsv(path, TIMESERIES_COLUMNS)
    table.write_rows([{EPOCH_S: second} for second in range(0, 35)])
    table.close()
    with open(path, newline="") as handle:
        assert {row[BROADCASTS_LOST] for row in csv.DictReader(handle)} == {""}  # unsettled: empty
    fill_csv(path, TIMESERIES_COLUMNS, settlement, lambda s: {EPOCH_S: s}, by_endpoint=False)
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r[EPOCH_S]) for r in rows] == list(range(0, 35))  # no second past 34 had deliveries
    total = settlement.total()
    for column in (BROADCASTS_RECEIVED, BROADCASTS_LOST, BROADCASTS_DUPLICATED):
        assert sum(int(r[column]) for r in rows) == total[column]
    summary = {ALL: {}, ENDPOINTS: {ROOM: {}}}
    fill_summary(summary, None)
    assert summary[ALL][BROADCASTS_LOST] is None and summary[ENDPOINTS][ROOM][BROADCASTS_RECEIVED] is None
    fill_summary(summary, settlement)
    assert summary[ALL][BROADCASTS_LOST] == 2 and summary[ENDPOINTS][ROOM][BROADCASTS_LOST] == 1


def test_a_room_run_settles_every_owed_broadcast_exactly(start_stack, locust, tmp_path):
    """Five scripted members (tests/roomusers.py): a slow member that loses broadcasts while
    its consumer sleeps (channel capacity 5), a sender that stops after one ping, a member
    that leaves mid-run; every owed broadcast is received or lost, by endpoint and second."""
    stack = start_stack(daphne_count=1, app=LayerOptions(redis_socket_timeout="none", capacity=5))
    results = tmp_path / "results"
    run = locust(
        "-f",
        str(REPO / "tests" / "roomusers.py"),
        "--headless",
        "--host",
        stack.instances[0].ws_url(""),
        "--results-dir",
        str(results),
        "-u",
        "5",
        "-r",
        "50",
        "-t",
        "5s",
        "--pong-timeout",
        "1",  # the run's stop comes 2 s after the last broadcast: nothing is in flight then
    )
    run.wait(60)
    folder = run_folder(results)
    assert run.child.process.returncode == expected_exit_code(folder), run.output()[-3000:]
    summary = read_json(folder / "summary.json")
    total, endpoints = summary[ALL], summary[ENDPOINTS]
    assert summary[DELIVERIES] == {
        BROADCASTS_SENT: roomscript.SENT,
        MEMBER_LIVES: roomscript.MEMBERS,
        BROADCASTS_IN_FLIGHT: 0,
    }
    room, slow = endpoints[roomscript.ROOM], endpoints[roomscript.SLOW]
    assert room[BROADCASTS_RECEIVED] + room[BROADCASTS_LOST] == roomscript.OWED_ROOM
    assert slow[BROADCASTS_RECEIVED] + slow[BROADCASTS_LOST] == roomscript.OWED_SLOW
    # capacity 5, and about 30 broadcasts sent while the slow member's consumer slept
    assert room[BROADCASTS_LOST] == 0 and slow[BROADCASTS_LOST] > 10
    assert total[BROADCASTS_DUPLICATED] == 0
    assert total[BROADCASTS] == total[BROADCASTS_RECEIVED] + total[BROADCASTS_DUPLICATED]
    assert total[CLOSES] == 0 and total[CLIENT_CLOSES] == 1  # only the leaver's own close

    rows = read_csv(folder / "timeseries.csv")
    per_endpoint = read_csv(folder / "endpoints.csv")
    for column in (BROADCASTS_RECEIVED, BROADCASTS_LOST, BROADCASTS_DUPLICATED):
        assert all(row[column] != "" for row in rows)  # settled: every second has its figure
        assert sum(int(row[column]) for row in rows) == total[column]
        for path, figures in endpoints.items():
            assert sum(int(r[column]) for r in per_endpoint if r["endpoint"] == path) == figures[column]
    lost_seconds = [int(row["elapsed_s"]) for row in rows if int(row[BROADCASTS_LOST])]
    assert lost_seconds and max(lost_seconds) - min(lost_seconds) <= 1  # wave 1 only: [T0, T0 + 1)
    # Named from the folder, and on the page: the losses with their endpoint, in words.
    (lost,) = [f for f in diagnose(load_run(folder)).findings if f.name == "messages-lost"]
    assert any(
        line.startswith(f"{roomscript.SLOW}: {slow[BROADCASTS_LOST]} of the") for line in lost.evidence
    )
    page = (folder / "report.html").read_text()
    assert "Room broadcasts were lost" in page and "Room delivery" in page and "plots/rooms.png" in page
