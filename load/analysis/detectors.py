"""Failure modes named from a finished run folder: small detectors, each from the folder's
data (nothing live) to findings with their evidence.

A finding says what happened (`title`), the figures that show it and where they are
(`evidence`), what it means and the knob or fix (pointing to FAILURE_MODES.md). A detector
whose evidence is absent says nothing; a detector whose evidence the run could not see
(no server log, no Redis probe, no way to tell live processes) says so in
`Diagnosis.not_checked`, never "0". Each detector checks what tells it apart from its
neighbours: an over-capacity line is FM-5 only where members or keys of dead processes
were seen, and a handshake cut short by a restart is not FM-8. The first and the last
second of a run are partial: rates are never taken from them.
"""

import shlex
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from load.analysis.headline import Headline, headline
from load.measure.generator import GENERATOR_CPU_LIMIT, SATURATED_SHARE, limited
from load.runfolder.loader import Run, count, number
from load.runfolder.names import (
    ACTION_ABORTED,
    AT_S,
    BROADCASTS,
    BROADCASTS_LOST,
    BROADCASTS_RECEIVED,
    CHAOS_FAILURES,
    CLOSE_COLUMNS,
    CONFIG,
    CONNECT_TIMEOUT,
    DEAD_PROCESS_KEYS,
    DELIVERIES,
    DOWN_S,
    ELAPSED_S,
    ENDPOINT,
    ENDPOINTS,
    EPOCH_S,
    ERRORS,
    EVENT,
    EXITED,
    GENERATOR_CPU,
    KILLED_AFTER_TIMEOUT,
    LATE_SENDS,
    MANIFEST_JSON,
    MESSAGE,
    NOT_RECOVERED_WITHIN_S,
    OPTIONS,
    P50_MS,
    PHASES,
    PING_ERRORS,
    PINGS,
    PONG_TIMEOUT,
    PONGS,
    RECOVERY_S,
    REDIS,
    SENT,
    SERVER_COLUMNS,
    SERVER_SIGNATURES,
    SIG_EXCEPTION,
    SIG_HANDSHAKE_INCOMPLETE,
    SIG_KILLED_ON_THREAD,
    SIG_KILLED_OTHER,
    SIG_KILLED_OWN_AWAIT,
    SIG_KILLED_PENDING,
    SIG_OVER_CAPACITY,
    SIG_OVER_CAPACITY_CHANNELS,
    STALE_MEMBERS,
    STALE_MEMBERS_AFTER,
    STALE_MEMBERS_BEFORE,
    SUMMARY_JSON,
    THREAD_DUMP,
    TIMESERIES_CSV,
    UNMATCHED,
    close_column,
)

FAILURE_MODES = "FAILURE_MODES.md"
MATCHING = 'README "Matching replies"'
POOL_PREFIX, SYNC_PREFIX = "/ws/ping/pool/", "/ws/ping/sync/"  # the target app's thread-pool and sync pings
SINGLE_THREAD_PREFIXES = (SYNC_PREFIX, "/ws/ping/db/")  # the styles that run on asgiref's one thread
SAME_LATENCY = 1.5  # a p50 within this factor across ASGI_THREADS steps did not change
FM7_TEXT = "Timeout reading from"  # redis-py's socket timeout, in Daphne's exception line
FAILED_SHARE = 0.01  # an endpoint whose pings failed this often gets a finding
SLOWER_RECOVERY = (
    1.5  # the last recovery this many times the first, with no restart faster than the one before
)


@dataclass(frozen=True)
class Finding:
    name: str  # a stable id: "FM-1", "slow-readers", ...
    title: str
    evidence: tuple[str, ...]  # each names its figures and where they are
    meaning: str
    fix: str = ""  # the knob or change, with its FAILURE_MODES.md section; "" where none is known
    first_s: int | None = None  # the first second (since the start of the run) of the evidence

    def as_json(self) -> dict:
        return {**asdict(self), "evidence": list(self.evidence)}


@dataclass
class Diagnosis:
    findings: list[Finding] = field(default_factory=list)
    not_checked: dict[str, str] = field(default_factory=dict)  # what could not be checked -> why

    def as_json(self) -> dict:
        return {"findings": [f.as_json() for f in self.findings], "not_checked": self.not_checked}

    def text(self) -> str:
        """The findings for a terminal: each with its evidence, meaning and fix; then what was not checked."""
        lines = [
            f"Findings ({len(self.findings)}):" if self.findings else "Findings: none in this run's data."
        ]
        for n, finding in enumerate(self.findings, 1):
            when = "" if finding.first_s is None else f"  [from +{finding.first_s} s]"
            lines.append(f"{n}. {finding.title}{when}")
            lines += [
                f"   {'evidence:' if i == 0 else '         '} {e}" for i, e in enumerate(finding.evidence)
            ]
            lines.append(f"   means:    {finding.meaning}")
            if finding.fix:
                lines.append(f"   fix:      {finding.fix}")
        if self.not_checked:
            lines.append(
                "Not checked (not measured in this run, which says nothing about whether it happened):"
            )
            lines += [f"   {what}: {why}" for what, why in self.not_checked.items()]
        return "\n".join(lines)


@dataclass
class Facts:
    """What every detector reads: the run, its headline figures and its inner seconds."""

    run: Run
    head: Headline

    @property
    def rows(self) -> list[dict]:
        return self.run.rows

    @property
    def inner(self) -> list[dict]:
        """The seconds that are whole: the first and the last second of a run are partial."""
        return self.run.rows[1:-1]

    @property
    def server_known(self) -> bool:
        return self.head.signatures_known

    def server(self, *columns: str) -> int:
        return int(sum(self.head.server.get(c) or 0 for c in columns))

    def first_second(self, *columns: str) -> int | None:
        """The first second in which any of the columns is above 0."""
        for row in self.rows:
            if any(count(row.get(c)) > 0 for c in columns):
                return int(row[ELAPSED_S])
        return None

    def peak(self, column: str) -> float | None:
        """The largest value of a column over the run; None when it was never measured."""
        values = [v for v in (number(r.get(column)) for r in self.rows) if v is not None]
        return max(values) if values else None

    def redis_why(self, column: str) -> str | None:
        """Why a Redis figure is not known in this run, or None if it is."""
        missing = self.head.not_measured
        return missing.get(REDIS) or missing.get(column)

    def restart_windows(self) -> list[tuple[float, float]]:
        """Epoch seconds from just before each restart until its users were served again."""
        windows = []
        for restart in self.head.restarts:
            lasted = (
                restart.get(RECOVERY_S) or restart.get(NOT_RECOVERED_WITHIN_S) or restart.get(DOWN_S) or 0
            )
            windows.append((restart["ts"] - 1, restart["ts"] + lasted + 2))
        return windows

    def during_restart(self, row: dict) -> bool:
        second = int(row[EPOCH_S])
        return any(begin <= second <= end for begin, end in self.restart_windows())


Detector = Callable[[Facts], list[Finding]]


def _at(second: int | None) -> str:
    return "" if second is None else f", first at +{second} s"


# -- the known failure modes ---------------------------------------------------------------


def fm1_killed_after_close(facts: Facts) -> list[Finding]:
    """FM-1: a consumer still inside a handler when its client left, killed by Daphne."""
    own = facts.server(SIG_KILLED_OWN_AWAIT, SIG_KILLED_OTHER)
    if not own:
        return []
    evidence = [
        f'{own} "took too long to shut down and was killed" lines in Daphne\'s log '
        f"(sig_killed_own_await {facts.server(SIG_KILLED_OWN_AWAIT)}, sig_killed_other "
        f"{facts.server(SIG_KILLED_OTHER)} in timeseries.csv{_at(facts.first_second(SIG_KILLED_OWN_AWAIT, SIG_KILLED_OTHER))})",
        *_leaked_members(facts),
    ]
    return [
        Finding(
            "FM-1",
            "Consumers were killed after their client had gone (FM-1)",
            tuple(evidence),
            "A handler was still running (its own await) when the socket closed; Daphne waited "
            "--application-close-timeout and cancelled the app, so disconnect() and group_discard() never ran.",
            "keep handlers short or cancellable (long work in a task of its own); --application-close-timeout "
            f"only delays the kill ({FAILURE_MODES} FM-1)",
            facts.first_second(SIG_KILLED_OWN_AWAIT, SIG_KILLED_OTHER),
        )
    ]


def fm1_through_the_thread(facts: Facts) -> list[Finding]:
    """FM-1 through the single thread: async consumers killed waiting for asgiref's one thread."""
    on_thread = facts.server(SIG_KILLED_ON_THREAD)
    if not on_thread:
        return []
    first = facts.first_second(SIG_KILLED_ON_THREAD)
    return [
        Finding(
            "FM-1-thread",
            "Consumers were killed while waiting for the single sync thread (FM-1 through FM-3)",
            (
                f"{on_thread} kills whose wait_for= shows a wait on a thread (sig_killed_on_thread in "
                f"timeseries.csv{_at(first)})",
                *_leaked_members(facts),
            ),
            "Every sync consumer, database_sync_to_async and Channels' aclose_old_connections share one "
            "thread per process; while a handler blocks it, async consumers queue behind it and are killed "
            "when their client leaves.",
            "move blocking work off the thread-sensitive path (sync_to_async(thread_sensitive=False) or an "
            f"async client); ASGI_THREADS does not size that thread ({FAILURE_MODES} FM-1, FM-3)",
            first,
        )
    ]


def _leaked_members(facts: Facts) -> list[str]:
    peak = facts.peak(STALE_MEMBERS)
    if peak:
        return [
            f"up to {int(peak)} group members of no live process stayed in Redis (stale_members, timeseries.csv)"
        ]
    return []


def fm3_threads_per_style(facts: Facts) -> list[Finding]:
    """FM-3: an ASGI_THREADS staircase under which the single-thread styles (sync, database)
    kept their latency while the thread-pool style, where present, changed."""
    phases = (facts.run.summary or {}).get(PHASES) or {}
    steps = {name: figures for name, figures in phases.items() if name.startswith("asgi_threads=")}
    if len(steps) < 2:
        return []
    p50 = {
        name: {path: f.get(P50_MS) for path, f in (figures.get(ENDPOINTS) or {}).items()}
        for name, figures in steps.items()
    }
    first, last = list(p50.values())[0], list(p50.values())[-1]

    def ratio(path: str) -> float | None:
        return first[path] / last[path] if first.get(path) and last.get(path) else None

    single = [p for p in first if p.startswith(SINGLE_THREAD_PREFIXES) and ratio(p) is not None]
    unchanged = [p for p in single if 1 / SAME_LATENCY <= (ratio(p) or 0) <= SAME_LATENCY]
    if not unchanged:
        return []
    pool = [p for p in first if p.startswith(POOL_PREFIX) and ratio(p) is not None]
    names = list(steps)
    evidence = [
        f"p50 of {p}: {' → '.join(f'{p50[n][p]:g} ms' for n in names if p50[n].get(p) is not None)} "
        f"over {' → '.join(names)} (summary.json phases)"
        for p in [*unchanged, *pool]
    ]
    return [
        Finding(
            "FM-3",
            "ASGI_THREADS did not change the sync consumers (FM-3)",
            tuple(evidence),
            "ASGI_THREADS sizes only the executor that run_in_executor and sync_to_async(thread_sensitive=False) "
            "use; sync consumers and database_sync_to_async run on one thread whatever it says.",
            f"for sync work, make it thread_sensitive=False or async; raising ASGI_THREADS is no fix ({FAILURE_MODES} FM-3)",
        )
    ]


def fm4_sigterm_ignored(facts: Facts) -> list[Finding]:
    """FM-4: Daphne still running long after SIGTERM, killed by the supervisor."""
    exits = [e for e in facts.run.events if e.get(EVENT) == EXITED]
    killed = [e for e in exits if e.get("how") == KILLED_AFTER_TIMEOUT]
    if not killed:
        return []
    waited = max(count(e.get("after_s")) for e in killed)
    first = int(min(e["ts"] for e in killed) - facts.run.t0)
    dumps = [e.get("file", "") for e in facts.run.events if e.get(EVENT) == THREAD_DUMP]
    return [
        Finding(
            "FM-4",
            "Daphne did not exit on SIGTERM (FM-4)",
            (
                f"{len(killed)} of {len(exits)} Daphne exits needed SIGKILL, still running {waited:g} s after SIGTERM "
                "(events.jsonl: exited, how=killed_after_timeout)",
                *(
                    f"the threads' stacks at SIGUSR1, before the SIGKILL: {file} (events.jsonl: thread_dump)"
                    for file in dumps
                ),
            ),
            "A sync consumer inside a handler at SIGTERM waits forever on the stopped event loop, and Python's "
            "exit joins that thread; only SIGKILL ends the process, and every restart takes that long.",
            "stop with a bounded SIGTERM-then-SIGKILL (--kill-after); keep handlers from calling send() after "
            f"shutdown; a SIGUSR1 thread dump shows the hang ({FAILURE_MODES} FM-4)",
            first,
        )
    ]


def fm5_members_leaked_per_restart(facts: Facts) -> list[Finding]:
    """FM-5: each restart leaves the old processes' group members (and their keys) in Redis,
    and nothing removes them (where they fall back, a short group_expiry is doing its work)."""
    restarts = facts.head.restarts
    grown = [
        (r[STALE_MEMBERS_BEFORE], r[STALE_MEMBERS_AFTER])
        for r in restarts
        if r.get(STALE_MEMBERS_BEFORE) is not None and r.get(STALE_MEMBERS_AFTER) is not None
    ]
    if not grown or sum(after - before for before, after in grown) <= 0 or _pruned(facts):
        return []
    chain = " → ".join(str(v) for v in [grown[0][0], *(after for _, after in grown)])
    mean = sum(after - before for before, after in grown) / len(grown)
    evidence = [
        f"stale group members {chain} over {len(grown)} restarts, {mean:.3g} more per restart (summary.json restarts)"
    ]
    dead_keys = facts.peak(DEAD_PROCESS_KEYS)
    if dead_keys:
        evidence.append(
            f"up to {int(dead_keys)} per-process keys of dead processes (dead_process_keys, timeseries.csv)"
        )
    if facts.server(SIG_OVER_CAPACITY):
        evidence.append(
            f'{facts.server(SIG_OVER_CAPACITY)} "channels over capacity in group" lines in the log '
            "(group_send still writing to the dead processes)"
        )
    if facts.server(SIG_KILLED_PENDING):
        evidence.append(
            f'SIGTERM cancelled {facts.server(SIG_KILLED_PENDING)} pending application instances ("Killed N pending")'
        )
    return [
        Finding(
            "FM-5",
            "Every restart leaked group members into Redis (FM-5)",
            tuple(evidence),
            "A restart cancels every consumer without disconnect(), so their members stay in the group for "
            "group_expiry (a day by default); every group_send then writes into the dead processes' channels "
            "and gets slower as they pile up.",
            f"a short --group-expiry, or clear the dead processes' members at deploy ({FAILURE_MODES} FM-5)",
        )
    ]


def _pruned(facts: Facts) -> bool:
    """Stale members fell back at some point: something (a short group_expiry) removed them."""
    stale = [v for v in (number(r.get(STALE_MEMBERS)) for r in facts.rows) if v is not None]
    return any(later < earlier for earlier, later in zip(stale, stale[1:], strict=False))


def over_capacity(facts: Facts) -> list[Finding]:
    """Channels over capacity: FM-5 where dead members were seen, else readers slower than the sends."""
    lines = facts.server(SIG_OVER_CAPACITY)
    if not lines:
        return []
    channels = facts.server(SIG_OVER_CAPACITY_CHANNELS)
    logged = (
        f'{lines} "channels over capacity in group" lines in the log ({channels} channels in all'
        f"{_at(facts.first_second(SIG_OVER_CAPACITY))})"
    )
    stale, dead = facts.peak(STALE_MEMBERS), facts.peak(DEAD_PROCESS_KEYS)
    if stale or dead:
        return []  # members or keys of dead processes: FM-5 (fm5_members_leaked_per_restart) or a leak below
    if stale is None and dead is None:
        return [
            Finding(
                "over-capacity",
                "Channels over capacity in a group; the cause is not told apart",
                (logged, f"stale members not measured ({facts.redis_why(STALE_MEMBERS) or 'no reading'})"),
                "group_send found a member's channel full: either members of dead processes (FM-5) or a member "
                "that reads slower than the group sends; without Redis figures the run cannot say which.",
                f"--redis-probe-url (or --stack local) to tell them apart ({FAILURE_MODES} FM-5)",
            )
        ]
    return [
        Finding(
            "slow-readers",
            "Group messages dropped: a member read slower than the group sent, every member alive",
            (logged, "no stale members and no keys of dead processes in any second (timeseries.csv)"),
            "channels_redis keeps at most --channel-capacity messages per channel; a consumer whose handler "
            "is slower than the group's send rate fills its channel, and later group_send messages to it are dropped.",
            "make the member's handler faster or the fan-out smaller; a larger --channel-capacity only delays it",
        )
    ]


def members_leaked_without_restart(facts: Facts) -> list[Finding]:
    peak = facts.peak(STALE_MEMBERS)
    if not peak or facts.head.restarts:
        return []
    killed = facts.server(SIG_KILLED_OWN_AWAIT, SIG_KILLED_OTHER, SIG_KILLED_ON_THREAD)
    crashed = facts.server(SIG_EXCEPTION)
    causes = (
        f" (Daphne killed {killed} consumers and logged {crashed} exceptions)" if facts.server_known else ""
    )
    return [
        Finding(
            "members-leaked",
            "Group members leaked without any restart",
            (
                f"up to {int(peak)} group members in Redis belonged to no live process (stale_members, timeseries.csv)",
            ),
            f"Consumers ended without disconnect(): killed or crashed{causes}; their members stay for group_expiry.",
            f"see the kills and exceptions above; --group-expiry bounds how long they stay ({FAILURE_MODES} FM-5)",
            facts.first_second(STALE_MEMBERS),
        )
    ]


def fm7_redis_read_timeout(facts: Facts) -> list[Finding]:
    """FM-7: idle consumers crash on redis-py's socket timeout."""
    messages = facts.head.exception_messages or {}
    timeouts = sum(n for message, n in messages.items() if FM7_TEXT in message)
    if not timeouts:
        return []
    evidence = [f'{timeouts} "Exception inside application: {FM7_TEXT} …" lines ({facts.head.messages_from})']
    closes_1011 = int(count(facts.head.overall.get(close_column(1011))))
    if closes_1011:
        evidence.append(f"{closes_1011} sockets closed with code 1011 (close_1011, summary.json)")
    evidence += _leaked_members(facts)
    return [
        Finding(
            "FM-7",
            "Consumers crashed on Redis' read timeout (FM-7)",
            tuple(evidence),
            "redis-py 8 times out a read after 5 s, the same 5 s channels_redis blocks in BZPOPMIN: a consumer "
            "idle that long crashes, its client gets 1011 and its member leaks.",
            f"--redis-socket-timeout 0 (socket_timeout None in the layer's host dict) ({FAILURE_MODES} FM-7)",
            _first_message_second(facts, FM7_TEXT),
        )
    ]


def fm8_handshakes_not_finished(facts: Facts) -> list[Finding]:
    """FM-8: handshakes that never finished, outside restarts."""
    if not facts.server(SIG_HANDSHAKE_INCOMPLETE):
        return []
    outside = [
        r for r in facts.rows if count(r.get(SIG_HANDSHAKE_INCOMPLETE)) and not facts.during_restart(r)
    ]
    unfinished = int(sum(count(r.get(SIG_HANDSHAKE_INCOMPLETE)) for r in outside))
    if not unfinished:
        return []  # every one was cut short by a restart
    evidence = [
        f"{unfinished} websocket handshakes began (WSCONNECTING) and never finished outside restarts "
        f"(sig_handshake_incomplete, timeseries.csv{_at(int(outside[0][ELAPSED_S]))})"
    ]
    timeouts = int(count(facts.head.overall.get(CONNECT_TIMEOUT)))
    if timeouts:
        evidence.append(f"{timeouts} connects timed out on the clients' side (connect_timeout, summary.json)")
    return [
        Finding(
            "FM-8",
            "Handshakes failed while the server was busy (FM-8)",
            tuple(evidence),
            "Daphne drops a handshake that has not completed within --websocket-connect-timeout (5 s) and logs "
            "nothing but the access lines; connects fail while the sync thread is busy.",
            f"keep the sync thread free; --websocket-connect-timeout 30 hides it ({FAILURE_MODES} FM-8)",
            int(outside[0][ELAPSED_S]),
        )
    ]


# -- beyond the known modes -----------------------------------------------------------------


def _first_message_second(facts: Facts, text: str) -> int | None:
    seconds = [int(count(r.get(ELAPSED_S))) for r in facts.run.exceptions or [] if text in r.get(MESSAGE, "")]
    return min(seconds) if seconds else None


def new_exceptions(facts: Facts) -> list[Finding]:
    """Every other "Exception inside application" message, by message."""
    messages = facts.head.exception_messages or {}
    findings = []
    for message, times in messages.items():
        if FM7_TEXT in message:
            continue
        first = _first_message_second(facts, message)
        findings.append(
            Finding(
                "exception",
                f'Daphne logged "Exception inside application: {message.strip()}"',
                (f"{times} times ({facts.head.messages_from}{_at(first)})",),
                "An app raised and Daphne closed its socket; the message is the exception's text.",
                first_s=first,
            )
        )
    return findings


def messages_lost(facts: Facts) -> list[Finding]:
    """Room broadcasts that members were owed and never received, whether or not anything
    failed (settled at the run's end: load.measure.settlement)."""
    lost = int(count(facts.head.overall.get(BROADCASTS_LOST)))
    if not lost:
        return []
    owed = lost + int(count(facts.head.overall.get(BROADCASTS_RECEIVED)))
    failed = int(count(facts.head.overall.get(ERRORS)))
    evidence = [
        f"{lost} of the {owed} broadcasts members were owed never arrived, while {failed} pings failed "
        "(broadcasts_lost, errors: summary.json)"
    ]
    for path, figures in facts.head.endpoints.items():
        missing = int(count(figures.get(BROADCASTS_LOST)))
        if missing:
            owed = missing + int(count(figures.get(BROADCASTS_RECEIVED)))
            errors = int(count(figures.get(ERRORS)))
            evidence.append(
                f"{path}: {missing} of the {owed} owed to its members, while {errors} of its pings failed"
            )
    first = facts.first_second(BROADCASTS_LOST)
    silent = failed == 0
    return [
        Finding(
            "messages-lost",
            "Room broadcasts were lost" + (" without any error" if silent else ""),
            tuple(evidence),
            "group_send delivered fewer messages than were sent: dropped at a full channel (a member reading "
            "slower than the room sends) or sent to members that were gone; no client sees an error for it.",
            f"see the capacity and member findings; --channel-capacity bounds each channel ({FAILURE_MODES} FM-5)",
            first,
        )
    ]


def unmatched_replies(facts: Facts) -> list[Finding]:
    """Frames from the server that answered no ping of their user: in a shared room, the other
    members' messages; without {user} in the template some of them are taken for pongs."""
    total = int(count(facts.head.overall.get(UNMATCHED)))  # None, not measured: not_checked says so
    if not total:
        return []
    seconds = [r for r in facts.rows if count(r.get(UNMATCHED))]
    first = facts.first_second(UNMATCHED)
    pongs = int(count(facts.head.overall.get(PONGS)))
    per_pong = f" ({total / pongs:.1f} per pong)" if pongs else ""
    where = f"{SUMMARY_JSON}; seconds: {TIMESERIES_CSV}" if facts.run.finished else TIMESERIES_CSV
    evidence = [
        f"{total} frames answered no ping, against {pongs} pongs{per_pong}, in {len(seconds)} of "
        f"{len(facts.rows)} seconds (unmatched, pongs: {where}{_at(first)})"
    ]
    for path, figures in facts.head.endpoints.items():
        frames = int(count(figures.get(UNMATCHED)))
        if frames:
            evidence.append(f"{path}: {frames} unmatched frames, {int(count(figures.get(PONGS)))} pongs")
    timeouts = int(count(facts.head.overall.get(PONG_TIMEOUT)))
    if timeouts:
        evidence.append(
            f"{timeouts} pings timed out (pong_timeout): a reply later than --pong-timeout is unmatched"
        )
    config = facts.run.manifest.get(CONFIG) or {}
    template, field = config.get("ping_template", ""), config.get("pong_field", "")
    template_mode = config.get("protocol") == "template"
    if not template_mode:
        title = "Unmatched replies: frames from the server answered no ping"
        meaning = (
            "The target app answers each ping with its seq: a frame that answers no pending ping is a pong "
            "that came after its ping had failed, or a frame the app sent on its own."
        )
        fix = f"see the pong timeouts; a longer --pong-timeout counts slow replies as pongs ({MATCHING})"
    elif "{user}" in template:
        title = "Unmatched replies: frames from the server answered no ping of their user"
        meaning = (
            "Each user matches only frames holding its own token, so its pongs are its own; the rest are other "
            "members' messages (a room of N users: N - 1 for each message, e.g. the chat app's /ws/chat/<room>/), "
            "replies after their ping failed, or the server's own frames."
        )
        fix = (
            "none in a shared room; with pong timeouts as well, check that the reply carries the user's token "
            f"and the field --pong-field names ({MATCHING})"
        )
    else:
        title = "Unmatched replies: the template cannot tell a user's replies from other members'"
        meaning = (
            "In a shared room (e.g. the chat app's /ws/chat/<room>/) every member gets every member's message, "
            "and without {user} in the template nothing tells them apart: another member's message is taken "
            "for this user's pong (false pongs, false latency), with --pong-field whenever it holds a pending "
            "seq, with an empty one (FIFO) always; the rest match no ping."
        )
        fix = (
            "put {user} in --ping-template and in the field --pong-field reads (--ping-template "
            '\'{"message": "{user} says {seq}"}\' --pong-field text), so each user matches only its own replies; '
            f"an empty --pong-field (FIFO) is no fix: every frame then counts as a reply ({MATCHING})"
        )
    if template_mode:
        evidence.append(
            f"--protocol template --ping-template {shlex.quote(template)} "
            f"--pong-field={shlex.quote(field) if field else ''} ({MANIFEST_JSON} config)"
        )
    return [Finding("unmatched-replies", title, tuple(evidence), meaning, fix, first)]


def silent_closes(facts: Facts) -> list[Finding]:
    """Sockets the server closed, outside restarts, in seconds when Daphne logged nothing we know."""
    if not facts.server_known:
        return []
    quiet = []
    for i, row in enumerate(facts.rows):
        if not any(count(row.get(c)) for c in CLOSE_COLUMNS) or facts.during_restart(row):
            continue
        near = facts.rows[max(0, i - 2) : i + 3]
        if not any(count(r.get(c)) for r in near for c in SERVER_COLUMNS):
            quiet.append(row)
    if not quiet:
        return []
    by_code = {c: int(sum(count(r.get(c)) for r in quiet)) for c in CLOSE_COLUMNS}
    codes = ", ".join(f"{c} {n}" for c, n in by_code.items() if n)
    return [
        Finding(
            "silent-closes",
            "The server closed sockets and logged nothing about it",
            (
                f"{sum(by_code.values())} closes ({codes}) in {len(quiet)} seconds outside restarts with no "
                f"failure signature in Daphne's log within 2 s (timeseries.csv{_at(int(quiet[0][ELAPSED_S]))})",
            ),
            "Something closed these sockets without a log line the suite knows: a consumer calling close(), "
            "--websocket-timeout, a proxy, or an error logged elsewhere.",
            "read server/ around those seconds",
            int(quiet[0][ELAPSED_S]),
        )
    ]


def slower_recovery(facts: Facts) -> list[Finding]:
    """Recovery that gets slower restart after restart: something accumulates."""
    times = [r[RECOVERY_S] for r in facts.head.restarts if r.get(RECOVERY_S) is not None]
    if len(times) < 3 or any(b < a for a, b in zip(times, times[1:], strict=False)):
        return []
    if times[-1] < times[0] * SLOWER_RECOVERY or times[-1] - times[0] < 1:
        return []
    return [
        Finding(
            "slower-recovery",
            "Recovery got slower restart after restart",
            (
                f"recovery {' → '.join(f'{t:g}' for t in times)} s over {len(times)} restarts (summary.json restarts)",
            ),
            "Each restart left something behind that the next start pays for: in Channels usually the dead "
            "members and keys of FM-5, which make every group_send slower.",
            f"see FM-5; compare with a run that flushes Redis between restarts ({FAILURE_MODES} FM-5)",
        )
    ]


def generator_saturated(facts: Facts) -> list[Finding]:
    """Seconds in which the load generator itself was the limit (late sends or CPU): their
    latencies are ours, not the server's."""

    def cpu(row: dict) -> float | None:
        return None if row.get(GENERATOR_CPU) in (None, "") else float(row[GENERATOR_CPU])

    limits = [
        r for r in facts.inner if limited(int(count(r.get(SENT))), int(count(r.get(LATE_SENDS))), cpu(r)) == 1
    ]
    if not limits:
        return []
    late = [
        r
        for r in limits
        if count(r.get(SENT)) and count(r.get(LATE_SENDS)) / count(r.get(SENT)) > SATURATED_SHARE
    ]
    busy = [r for r in limits if (cpu(r) or 0) >= GENERATOR_CPU_LIMIT]
    evidence = [
        f"{len(limits)} of {len(facts.inner)} whole seconds (generator_limited, timeseries.csv{_at(int(limits[0][ELAPSED_S]))})"
    ]
    if late:
        evidence.append(f"over 1 % of pings sent over 50 ms late in {len(late)} of them (late_sends / sent)")
    if busy:
        peak = max(cpu(r) or 0 for r in busy)
        evidence.append(
            f"a load process at {GENERATOR_CPU_LIMIT:g} % of a core or more in {len(busy)} of them, up to {peak:g} % (generator_cpu)"
        )
    return [
        Finding(
            "generator-saturated",
            "The load generator was the limit",
            tuple(evidence),
            "In those seconds the latency includes the generator's own delay: those figures are the client's, not the server's.",
            "more workers (--workers, --processes) or a lower rate",
            int(limits[0][ELAPSED_S]),
        )
    ]


def pings_failed(facts: Facts) -> list[Finding]:
    """Endpoints whose pings failed often, and how many of those failures fell outside restarts."""
    evidence = []
    for path, figures in facts.head.endpoints.items():
        pings, errors = count(figures.get(PINGS)), count(figures.get(ERRORS))
        if not pings or errors / pings < FAILED_SHARE:
            continue
        kinds = sorted(
            ((int(count(figures.get(k))), k) for k in PING_ERRORS if count(figures.get(k))), reverse=True
        )
        seconds = [r for r in facts.run.endpoint_rows if r[ENDPOINT] == path and count(r.get(ERRORS))]
        outside = int(sum(count(r.get(ERRORS)) for r in seconds if not facts.during_restart(r)))
        restarts = f"; {outside} outside restarts" if facts.head.restarts else ""
        evidence.append(
            f"{path}: {int(errors)} of {int(pings)} pings ({errors / pings * 100:.1f} %): "
            f"{', '.join(f'{k} {n}' for n, k in kinds)}{restarts} (summary.json, endpoints.csv)"
        )
    if not evidence:
        return []
    return [
        Finding(
            "pings-failed",
            "Pings failed",
            tuple(evidence),
            "pong_timeout: no answer within --pong-timeout; closed_by_server: the socket closed with the ping "
            "unanswered; not_sent_disconnected: due while the socket was down. Failures during restarts are "
            "the restarts' cost; the findings above say what caused the rest.",
        )
    ]


def failure_line(failure: dict, accepted: bool = False) -> str:
    """One chaos_failures entry of summary.json as the line the run ends with."""
    how = "was aborted" if failure[EVENT] == ACTION_ABORTED else "failed"
    consequence = (
        "accepted (--chaos-failures-ok)"
        if accepted
        else "the run did not test what it meant to (--chaos-failures-ok to accept)"
    )
    return f"chaos action {failure['action']} at {failure[AT_S]:g}s {how}: {failure['error']}; {consequence}"


def chaos_failed(facts: Facts) -> list[Finding]:
    """Chaos actions that failed or were aborted: the run did not test what its plan said."""
    failures = (facts.run.summary or {}).get(CHAOS_FAILURES) or []
    accepted = bool((facts.run.manifest.get(OPTIONS) or {}).get("chaos_failures_ok"))
    return [
        Finding(
            "chaos-failed",
            "A chaos action did not happen as planned",
            (f"{failure_line(f, accepted)} (summary.json chaos_failures)",),
            "The run did not test what its plan said.",
            "fix the target (local stack, agent or hook) and run again",
            int(count(f.get(AT_S))),
        )
        for f in failures
    ]


DETECTORS: tuple[Detector, ...] = (
    chaos_failed,
    fm1_killed_after_close,
    fm1_through_the_thread,
    fm3_threads_per_style,
    fm4_sigterm_ignored,
    fm5_members_leaked_per_restart,
    over_capacity,
    members_leaked_without_restart,
    fm7_redis_read_timeout,
    fm8_handshakes_not_finished,
    new_exceptions,
    messages_lost,
    unmatched_replies,
    silent_closes,
    slower_recovery,
    generator_saturated,
    pings_failed,
)


def not_checked(facts: Facts) -> dict[str, str]:
    """What this run's probes could not see, so no detector could speak of it."""
    missing = {}
    if not facts.server_known:
        why = facts.head.why(SERVER_SIGNATURES, "no server log was read")
        missing["FM-1, FM-7, FM-8, exceptions, silent closes"] = why
    overall = facts.head.overall
    if count(overall.get(BROADCASTS)) and overall.get(BROADCASTS_LOST) is None:
        missing["messages lost"] = facts.head.why(
            DELIVERIES, "room delivery was not settled (the run did not finish)"
        )
    if UNMATCHED in facts.head.not_measured:
        missing["unmatched replies"] = facts.head.not_measured[UNMATCHED]
    stale_why = facts.redis_why(STALE_MEMBERS)
    if stale_why:
        missing["FM-5 leaked members, slow readers"] = stale_why
    if (
        facts.head.restarts
        and all(r.get(STALE_MEMBERS_AFTER) is None for r in facts.head.restarts)
        and not stale_why
    ):
        missing["FM-5 members per restart"] = "no stale-member reading around the restarts"
    return missing


def diagnose(run: Run) -> Diagnosis:
    facts = Facts(run, headline(run))
    findings = [finding for detector in DETECTORS for finding in detector(facts)]
    return Diagnosis(findings, not_checked(facts))
