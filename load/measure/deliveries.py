"""What room members and senders saw, recorded where the users run, for the delivery
accounting the run's end settles (load.measure.settlement).

A room socket's life is one member and one sender: the target app names it in its
`welcome` frame (the server's channel name), and the broadcasts of its pings carry that
name. Per life the users record when it joined (the welcome arrived) and left (it stopped
reading), each ping it sent (seq, send time) and when its own copy came back (the echo:
proof that the room's group_send ran), and each broadcast it received (sender, seq).

A DeliveryLog is process-local, like the Timeline; `take()` hands over what was recorded
since the last call, as msgpack/JSON-friendly deltas, and forgets it (a life's received
seqs are kept while it lives, to tell a duplicate from a first copy).
"""

import bisect
from dataclasses import dataclass, field

# Keys of the wire form (short: every worker report carries it).
LIVES, SENT, ECHOES, GOT, DUPLICATES, FIRST_SEEN = "l", "s", "e", "g", "d", "f"


def _low(seqs: list[int]) -> int:
    return seqs[0]


class SeqSet:
    """A set of ints as sorted, disjoint [lo, hi] ranges: a sender's seqs arrive in order,
    so a member's receipts from one sender are one range unless some were lost."""

    def __init__(self) -> None:
        self.ranges: list[list[int]] = []

    def add(self, seq: int) -> bool:
        """Add seq; False when it was there already (a duplicate)."""
        ranges = self.ranges
        if ranges and seq == ranges[-1][1] + 1:  # the usual case: the next one in order
            ranges[-1][1] = seq
            return True
        i = bisect.bisect_right(ranges, seq, key=_low)  # ranges[:i] start at or before seq
        if i and ranges[i - 1][1] >= seq:
            return False
        ranges.insert(i, [seq, seq])
        self._join(i)
        return True

    def _join(self, i: int) -> None:
        """Merge range i with its neighbours where they touch."""
        ranges = self.ranges
        if i + 1 < len(ranges) and ranges[i][1] + 1 == ranges[i + 1][0]:
            ranges[i][1] = ranges.pop(i + 1)[1]
        if i > 0 and ranges[i - 1][1] + 1 == ranges[i][0]:
            ranges[i - 1][1] = ranges.pop(i)[1]

    def __contains__(self, seq: int) -> bool:
        i = bisect.bisect_right(self.ranges, seq, key=_low)
        return bool(i) and self.ranges[i - 1][1] >= seq

    def __len__(self) -> int:
        return sum(hi - lo + 1 for lo, hi in self.ranges)

    def __iter__(self):
        for lo, hi in self.ranges:
            yield from range(lo, hi + 1)

    @classmethod
    def of(cls, seqs) -> "SeqSet":
        result = cls()
        for seq in seqs:
            result.add(seq)
        return result


@dataclass
class SocketLife:
    """One socket of one user: a room member and sender once its welcome names it."""

    path: str
    name: str = ""  # the server's channel name, from the welcome; "" until then
    room: str = ""
    joined: float | None = None  # when the welcome arrived
    left: float | None = None  # when the user stopped reading this socket
    stopped: bool = False  # left because the user stopped (the run's end), not because the socket ended
    is_room: bool | None = None  # None until the first frame says (a welcome or not)
    sent: list[list[float]] = field(default_factory=list)  # [seq, send time], not shipped yet
    echoes: list[list[float]] = field(default_factory=list)  # [seq, echo time], not shipped yet
    received: dict[str, SeqSet] = field(default_factory=dict)  # sender -> every seq got, kept
    got: dict[str, SeqSet] = field(default_factory=dict)  # sender -> first copies, not shipped yet
    duplicates: dict[str, list[int]] = field(default_factory=dict)  # sender -> seqs, not shipped yet
    own_seqs: set[int] = field(default_factory=set)  # what this socket sent, to know its echoes

    def header(self) -> dict:
        return {
            "room": self.room,
            "path": self.path,
            "joined": self.joined,
            "left": self.left,
            "stopped": self.stopped,
        }


class DeliveryLog:
    """The recorder the room users of one process write into."""

    def __init__(self) -> None:
        self.lives: list[SocketLife] = []  # open, or closed with something not shipped yet
        self.first_seen: dict[tuple[str, int], float] = {}  # (sender, seq) -> earliest receipt here

    def open(self, path: str) -> SocketLife:
        life = SocketLife(path)
        self.lives.append(life)
        return life

    def welcome(self, life: SocketLife, name: str, room: str, ts: float) -> None:
        if life.is_room is None:
            life.is_room, life.name, life.room, life.joined = True, name, room, ts

    def other_frame(self, life: SocketLife) -> None:
        """A first frame that is no welcome: not a room socket, nothing to record."""
        if life.is_room is None:
            life.is_room = False
            life.sent.clear()
            life.own_seqs.clear()

    def sent(self, life: SocketLife, seq: int, ts: float) -> None:
        if life.is_room is not False:  # before the first frame: perhaps a room socket
            life.sent.append([seq, ts])
            life.own_seqs.add(seq)

    def echo(self, life: SocketLife, seq: int, ts: float) -> None:
        if life.is_room and seq in life.own_seqs:
            life.echoes.append([seq, ts])

    def broadcast(self, life: SocketLife, sender: str, seq: int, ts: float) -> None:
        if not life.is_room:
            return
        if life.received.setdefault(sender, SeqSet()).add(seq):
            life.got.setdefault(sender, SeqSet()).add(seq)
            key = (sender, seq)
            if key not in self.first_seen:
                self.first_seen[key] = ts
        else:
            life.duplicates.setdefault(sender, []).append(seq)

    def close(self, life: SocketLife, ts: float, stopped: bool = False) -> None:
        if life.left is None:
            life.left, life.stopped = ts, stopped

    def take(self) -> dict:
        """Everything recorded since the last call, in wire form; closed lives are then forgotten."""
        lives: dict[str, dict] = {}
        sent: dict[str, list] = {}
        echoes: dict[str, list] = {}
        got: dict[str, dict] = {}
        duplicates: dict[str, dict] = {}
        keep = []
        for life in self.lives:
            if life.is_room:
                lives[life.name] = life.header()
                _move(life.sent, sent, life.name)
                _move(life.echoes, echoes, life.name)
                if life.got:
                    got[life.name] = {s: seqs.ranges for s, seqs in life.got.items()}
                    life.got = {}
                if life.duplicates:
                    duplicates[life.name], life.duplicates = life.duplicates, {}
            if life.left is None and life.is_room is not False:
                keep.append(life)  # a socket without its first frame yet keeps its sends
        self.lives = keep
        first = [[sender, seq, ts] for (sender, seq), ts in self.first_seen.items()]
        self.first_seen = {}
        return {LIVES: lives, SENT: sent, ECHOES: echoes, GOT: got, DUPLICATES: duplicates, FIRST_SEEN: first}

    def clear(self) -> None:
        self.take()


def _move(items: list, into: dict, name: str) -> None:
    if items:
        into[name] = items[:]
        items.clear()
