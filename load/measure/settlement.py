"""Room delivery accounting, settled when the run ends: every broadcast a member was owed
is received or lost.

The rule, on the users' clocks. A broadcast is sender S's ping k fanned out to S's room;
t_s is when S sent it. Its group_send ran before S's own copy came back (the echo, at
t_e) and before any member got a copy (the earliest at t_r): t_g = min(t_e, t_r) bounds it
from above; with neither, nothing shows that it was ever fanned out. A member M (one socket
life, joined when its welcome arrived, left when it stopped reading) is owed S's ping k
when M is not S, M joined at or before t_s and t_g is at or before M left: M was then in
the group when the group_send ran (group_add precedes the welcome). One exception, as
for pings: when M left because its user stopped (the run's end, a ramp-down), not because
its socket ended, a broadcast sent less than a pong timeout before is still on its way,
unless M got a later one from S (a channel delivers in order): not owed, counted apart
as in flight. A broadcast M got is received whether owed or not
(the first copy; further copies are duplicated), and an owed one M never got is lost.
So, exactly: owed = received + lost, and every broadcast frame received is a received
or a duplicated one. Each is counted in the second S sent it (the second of its first
receipt when S's sends are unknown), at M's endpoint.
"""

import csv
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from load.measure.collector import figures as figures_of
from load.measure.deliveries import DUPLICATES, ECHOES, FIRST_SEEN, GOT, LIVES, SENT, SeqSet
from load.measure.timeline import EndpointWindow
from load.runfolder.files import replace_csv
from load.runfolder.names import (
    ALL,
    BROADCASTS_DUPLICATED,
    BROADCASTS_IN_FLIGHT,
    BROADCASTS_LOST,
    BROADCASTS_RECEIVED,
    BROADCASTS_SENT,
    DELIVERIES,
    DELIVERY_COLUMNS,
    ENDPOINT,
    ENDPOINTS,
    EPOCH_S,
    MEMBER_LIVES,
)


@dataclass
class Life:
    room: str
    path: str
    joined: float | None = None
    left: float | None = None
    stopped: bool = False


@dataclass
class DeliveryLedger:
    """Every process's DeliveryLog deltas merged (on the master or the local runner)."""

    lives: dict[str, Life] = field(default_factory=dict)
    sent: dict[str, dict[int, float]] = field(default_factory=dict)  # sender -> seq -> send time
    echoes: dict[str, dict[int, float]] = field(default_factory=dict)  # sender -> seq -> echo time
    got: dict[str, dict[str, SeqSet]] = field(default_factory=dict)  # member -> sender -> seqs
    duplicates: list[tuple[str, str, int]] = field(default_factory=list)  # (member, sender, seq)
    first_seen: dict[tuple[str, int], float] = field(default_factory=dict)

    def merge(self, wire: dict) -> None:
        for name, header in wire.get(LIVES, {}).items():
            life = self.lives.setdefault(name, Life(header["room"], header["path"]))
            life.joined = header["joined"] if header["joined"] is not None else life.joined
            life.left = header["left"] if header["left"] is not None else life.left
            life.stopped = life.stopped or bool(header.get("stopped"))
        for name, pairs in wire.get(SENT, {}).items():
            self.sent.setdefault(name, {}).update((int(seq), ts) for seq, ts in pairs)
        for name, pairs in wire.get(ECHOES, {}).items():
            echoes = self.echoes.setdefault(name, {})
            for seq, ts in pairs:
                echoes[int(seq)] = min(ts, echoes.get(int(seq), math.inf))
        for member, senders in wire.get(GOT, {}).items():
            mine = self.got.setdefault(member, {})
            for sender, ranges in senders.items():
                seqs = mine.setdefault(sender, SeqSet())
                for lo, hi in ranges:
                    for seq in range(lo, hi + 1):
                        if not seqs.add(seq):
                            self.duplicates.append((member, sender, seq))
        for member, senders in wire.get(DUPLICATES, {}).items():
            for sender, seqs in senders.items():
                self.duplicates += [(member, sender, seq) for seq in seqs]
        for sender, seq, ts in wire.get(FIRST_SEEN, []):
            key = (sender, int(seq))
            self.first_seen[key] = min(ts, self.first_seen.get(key, math.inf))


@dataclass
class Settlement:
    """The settled figures: per (second, endpoint) and per endpoint, each of DELIVERY_COLUMNS."""

    per_second: dict[tuple[int, str], Counter] = field(default_factory=dict)
    per_endpoint: dict[str, Counter] = field(default_factory=dict)
    sent: int = 0  # room pings sent whose send the users reported
    member_lives: int = 0
    in_flight: int = 0  # not received by a member its user's stop ended, sent within a pong timeout of it

    def add(self, second: int, path: str, column: str, n: int = 1) -> None:
        self.per_second.setdefault((second, path), Counter())[column] += n
        self.per_endpoint.setdefault(path, Counter())[column] += n

    def total(self) -> Counter:
        total: Counter = Counter()
        for counts in self.per_endpoint.values():
            total.update(counts)
        return total


def settle(ledger: DeliveryLedger, end: float, pong_timeout: float) -> Settlement:
    """Received, lost and duplicated broadcasts by the rule in this module's docstring.
    `end` stands for the left time of a member whose leaving was never reported."""
    result = Settlement(sent=sum(len(s) for s in ledger.sent.values()), member_lives=len(ledger.lives))
    by_room: dict[str, list[str]] = {}
    for name, life in ledger.lives.items():
        by_room.setdefault(life.room, []).append(name)
    for member, senders in ledger.got.items():
        path = ledger.lives[member].path if member in ledger.lives else ""
        for sender, seqs in senders.items():
            for seq in seqs:
                result.add(_second(ledger, sender, seq), path, BROADCASTS_RECEIVED)
    for member, sender, seq in ledger.duplicates:
        path = ledger.lives[member].path if member in ledger.lives else ""
        result.add(_second(ledger, sender, seq), path, BROADCASTS_DUPLICATED)
    for sender, sends in ledger.sent.items():
        if sender not in ledger.lives:
            continue
        members = [m for m in by_room[ledger.lives[sender].room] if m != sender]
        echoes = ledger.echoes.get(sender, {})
        for seq, sent_at in sends.items():
            fanned_out = min(echoes.get(seq, math.inf), ledger.first_seen.get((sender, seq), math.inf))
            if fanned_out == math.inf:
                continue
            for member in members:
                life = ledger.lives[member]
                left = life.left if life.left is not None else end
                if life.joined is None or not life.joined <= sent_at or not fanned_out <= left:
                    continue
                got = ledger.got.get(member, {}).get(sender)
                if got is not None and seq in got:
                    continue
                overtaken = got is not None and got.ranges[-1][1] > seq
                if life.stopped and sent_at + pong_timeout > left and not overtaken:
                    result.in_flight += 1
                else:
                    result.add(int(sent_at), life.path, BROADCASTS_LOST)
    return result


def _second(ledger: DeliveryLedger, sender: str, seq: int) -> int:
    """The second sender sent seq in; the second of its first receipt when its send is unknown."""
    sent_at = ledger.sent.get(sender, {}).get(seq)
    return int(sent_at if sent_at is not None else ledger.first_seen[(sender, seq)])


def fill_csv(
    path: Path,
    columns: tuple[str, ...],
    settlement: Settlement,
    stamp: Callable[[int], dict],
    by_endpoint: bool,
) -> None:
    """Fill the delivery cells of timeseries.csv (by_endpoint False) or endpoints.csv, written
    empty as the run went; a second or endpoint with deliveries but no row gets one."""
    rows = read_rows(path)
    figures: dict[tuple[int, str], Counter] = {}  # (second, endpoint or "" for all of them)
    for (second, endpoint), counts in settlement.per_second.items():
        figures.setdefault((second, endpoint if by_endpoint else ""), Counter()).update(counts)
    keys = set(figures)
    for row in rows:
        key = (int(row[EPOCH_S]), row[ENDPOINT] if by_endpoint else "")
        keys.discard(key)
        counts = figures.get(key, Counter())
        row.update({column: counts[column] for column in DELIVERY_COLUMNS})
    for key in keys:  # deliveries in a second (or at an endpoint) that had no row
        extra = {**stamp(key[0]), **{column: figures[key][column] for column in DELIVERY_COLUMNS}}
        if by_endpoint:
            extra[ENDPOINT] = key[1]
        rows.append(extra)
    rows.sort(key=lambda row: (int(row[EPOCH_S]), row.get(ENDPOINT, "")))
    replace_csv(path, columns, rows)


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def fill_summary(summary: dict, settlement: Settlement | None) -> None:
    """The delivery figures of summary.json's endpoints and `all` (null when not settled)."""
    endpoints = summary[ENDPOINTS]
    for path in sorted(set(settlement.per_endpoint if settlement else ()) - set(endpoints)):
        endpoints[path] = figures_of(EndpointWindow())  # members, but no window: nothing else happened there
    for path, figures in [*endpoints.items(), (ALL, summary[ALL])]:
        if settlement is None:
            counts = None
        else:
            counts = settlement.total() if path == ALL else settlement.per_endpoint.get(path, Counter())
        figures.update(
            {column: counts[column] if counts is not None else None for column in DELIVERY_COLUMNS}
        )
    summary[DELIVERIES] = (
        {
            BROADCASTS_SENT: settlement.sent,
            MEMBER_LIVES: settlement.member_lives,
            BROADCASTS_IN_FLIGHT: settlement.in_flight,
        }
        if settlement
        else None
    )
