"""What a run's data shows, as sentences: restarts, exits, Redis, Daphne's log, errors,
ASGI_THREADS steps, the generator itself. Each sentence names its figures; where the run
could not measure something, no sentence is made from it."""

import statistics
from typing import cast

from load.analysis.headline import Headline
from load.analysis.summary_table import failure_line, recovery_text
from load.report.figures import Point, phase_points
from load.report.numbers import SIMILAR, Spread, change, fmt, percent, verdict
from load.runfolder.loader import Run, count, number
from load.runfolder.names import (
    ASGI_THREADS,
    AT_S,
    CHAOS_FAILURES,
    CLOSES,
    DOWN_BY_CLIENTS,
    DOWN_BY_DAPHNE,
    DOWN_S,
    DOWN_SOURCE,
    ERRORS,
    EVENT,
    EXITED,
    FAILED_PINGS,
    FIRST_PONG_S,
    KILLED_AFTER_TIMEOUT,
    LATE_SENDS,
    OPTIONS,
    P99_MS,
    PING_ERRORS,
    PINGS,
    PONGS,
    RECOVERY_S,
    SENT,
    SIG_EXCEPTION,
    SIG_HANDSHAKE_INCOMPLETE,
    SIG_KILLED_ON_THREAD,
    SIG_KILLED_OTHER,
    SIG_KILLED_OWN_AWAIT,
    SIG_KILLED_PENDING,
    SIG_OVER_CAPACITY,
    SIG_TASK_EXCEPTION,
    STALE_MEMBERS,
    STALE_MEMBERS_AFTER,
    STALE_MEMBERS_BEFORE,
    TOO_LONG_KILLS,
)

POOL_PREFIX, SYNC_PREFIX = "/ws/ping/pool/", "/ws/ping/sync/"


def _metric_sentence(
    what: str, unit: str, a: Point, b: Point, endpoint: str, column: str
) -> tuple[str, Spread | None, Spread | None]:
    sa, sb = a.per_second(endpoint, column), b.per_second(endpoint, column)
    if sa is None or sb is None:
        return "", sa, sb
    text = f"median per-second {what} {fmt(sa.median)} → {fmt(sb.median)}{unit} ({percent(change(sa.median, sb.median))}"
    if column == P99_MS and a.p99.get(endpoint) is not None and b.p99.get(endpoint) is not None:
        text += f"; whole-run p99 {fmt(a.p99[endpoint])} → {fmt(b.p99[endpoint])} ms"
    text += f"; IQR {fmt(sa.q1)}–{fmt(sa.q3)} vs {fmt(sb.q1)}–{fmt(sb.q3)}{unit}"
    return f"{text}: {verdict(sa, sb)})", sa, sb


def threads_findings(
    points: list[Point], knob_label: str = "ASGI_THREADS", single: str = "one run per value"
) -> list[str]:
    """What changing ASGI_THREADS did to the pool endpoint, and that the sync endpoint stayed
    the same, from the smallest to the largest value; only for endpoints the points hold."""
    if len({p.value for p in points}) < 2:
        return []
    low, high = min(points, key=lambda p: p.value), max(points, key=lambda p: p.value)
    endpoints = sorted(set(low.run.endpoints) & set(high.run.endpoints))
    findings = []
    caution = f"({single}: compared with the spread across seconds, not a significance test)"
    for endpoint in (e for e in endpoints if e.startswith(POOL_PREFIX)):
        parts = [
            s
            for s, *_ in (
                _metric_sentence("p99", " ms", low, high, endpoint, P99_MS),
                _metric_sentence("throughput", " pongs/s", low, high, endpoint, PONGS),
            )
            if s
        ]
        if parts:
            findings.append(
                f"{knob_label} {low.label} → {high.label}, thread-pool endpoint {endpoint}: {'; '.join(parts)} {caution}."
            )
    for endpoint in (e for e in endpoints if e.startswith(SYNC_PREFIX)):
        p99, sa, sb = _metric_sentence("p99", " ms", low, high, endpoint, P99_MS)
        rate, ra, rb = _metric_sentence("throughput", " pongs/s", low, high, endpoint, PONGS)
        changes = [
            change(x.median, y.median) for x, y in ((sa, sb), (ra, rb)) if x is not None and y is not None
        ]
        if not changes or any(c is None for c in changes):
            continue
        steady = all(c is not None and abs(c) <= SIMILAR for c in changes)  # no None: see above
        outcome = "did not change (within 20 %)" if steady else "changed by more than 20 %"
        findings.append(
            f"The sync endpoint {endpoint} {outcome} from {low.label} to {high.label}: {'; '.join(s for s in (p99, rate) if s)} {caution}."
        )
    return findings


def _chain(values: list[int | None]) -> str:
    return " → ".join("?" if v is None else str(v) for v in values)


def restart_name(restart: dict) -> str:
    at = f"+{fmt(restart.get(AT_S))} s"
    return f"{at}, ASGI_THREADS={restart.get('threads')}" if restart.get("action") == ASGI_THREADS else at


def exit_findings(run: Run) -> list[str]:
    """Daphne processes that ignored SIGTERM until the supervisor's SIGKILL (FM-4)."""
    killed = [e for e in run.events if e.get(EVENT) == EXITED and e.get("how") == KILLED_AFTER_TIMEOUT]
    if not killed:
        return []
    exits = [e for e in run.events if e.get(EVENT) == EXITED]
    waited = max(count(e.get("after_s")) for e in killed)
    return [
        f"{len(killed)} of {len(exits)} Daphne exits needed a SIGKILL: the process was still running {fmt(waited)} s "
        "after SIGTERM and was killed by the supervisor, so its restart took that long (FM-4)."
    ]


def _average(values: list[float], unit: str) -> str:
    """'0.52 s' for one restart; '0.67 s on average per restart (max 0.76 s)' for several."""
    if len(values) == 1:
        return f"{fmt(values[0])}{unit}"
    return f"{fmt(statistics.fmean(values))}{unit} on average per restart (max {fmt(max(values))}{unit})"


def restart_findings(restarts: list[dict], run_ended: bool) -> list[str]:
    findings: list[str] = []
    if not restarts:
        return findings
    n = len(restarts)
    leaks = [
        (r[STALE_MEMBERS_BEFORE], r[STALE_MEMBERS_AFTER])
        for r in restarts
        if r.get(STALE_MEMBERS_BEFORE) is not None and r.get(STALE_MEMBERS_AFTER) is not None
    ]
    if leaks and sum(after - before for before, after in leaks) > 0:
        mean = statistics.fmean(after - before for before, after in leaks)
        chain = _chain(
            [restarts[0].get(STALE_MEMBERS_BEFORE)] + [r.get(STALE_MEMBERS_AFTER) for r in restarts]
        )
        known = "" if len(leaks) == n else f"; known for {len(leaks)} of {n} restarts"
        lead = "The restart left" if n == 1 else "Each restart left on average"
        members = "group member" if mean == 1 else "group members"
        findings.append(
            f"{lead} {fmt(mean)} {members} in Redis that no live process owns ({chain}{known}; FM-5)."
        )
    downs = [
        r[DOWN_S]
        for r in restarts
        if r.get(DOWN_S) is not None and r.get(DOWN_SOURCE, DOWN_BY_DAPHNE) == DOWN_BY_DAPHNE
    ]
    if downs:
        findings.append(
            f"Daphne was down {_average(downs, ' s')}, from the signal to the new process answering."
        )
    seen = [
        r[DOWN_S] for r in restarts if r.get(DOWN_S) is not None and r.get(DOWN_SOURCE) == DOWN_BY_CLIENTS
    ]
    if seen:
        findings.append(
            f"The clients saw Daphne down {_average(seen, ' s')}, from the first failed connect to the first "
            "accepted one (the restart hook cannot say; to within a second)."
        )
    unseen = [restart_name(r) for r in restarts if r.get(DOWN_S) is None]
    if unseen:
        which = "the restart" if n == 1 else f"{len(unseen)} of {n} restarts ({'; '.join(unseen)})"
        findings.append(
            f"Down time of {which}: not measured (the restart hook cannot say, and no client connect failed "
            "between the restart and the next)."
        )
    recovered = [r for r in restarts if r.get(RECOVERY_S) is not None]
    recoveries = [r[RECOVERY_S] for r in recovered]
    if len(recovered) == 1:
        which = "the restart" if n == 1 else f"the restart at {restart_name(recovered[0])}"
        findings.append(f"Recovery after {which} took {fmt(recoveries[0])} s.")
    elif recovered:
        findings.append(
            f"Recovery after restarts took {fmt(statistics.fmean(recoveries))} s on average (max {fmt(max(recoveries))} s)."
        )
    first = [r[FIRST_PONG_S] for r in restarts if r.get(FIRST_PONG_S) is not None]
    if first:
        findings.append(
            f"The first pong on a new socket came {_average(first, ' s')} after the restart began."
        )
    never = [f"{restart_name(r)}: {recovery_text(r)}" for r in restarts if r.get(RECOVERY_S) is None]
    if never:
        until = "the end of the run" if run_ended else "the last second written"
        which = (
            f"the restart at {never[0]}" if n == 1 else f"{len(never)} of {n} restarts ({'; '.join(never)})"
        )
        findings.append(
            f"After {which}, the users were not seen served again before {until} or the next restart "
            "(no three seconds in which pings were answered with no more failures than before the restart); "
            "its recovery time is not known, only that it was longer."
        )
    failed = [r.get(FAILED_PINGS, 0) for r in restarts]
    closes = [r.get(CLOSES, 0) for r in restarts]
    if sum(failed) or sum(closes):
        if n == 1:
            findings.append(
                f"The restart cost {failed[0]} failed pings or connects and {closes[0]} closed sockets."
            )
        else:
            findings.append(
                f"Each restart cost on average {fmt(statistics.fmean(failed))} failed pings or connects "
                f"and {fmt(statistics.fmean(closes))} closed sockets (total {sum(failed)} and {sum(closes)})."
            )
    return findings


def server_findings(server: dict[str, float | None], messages: dict[str, int] | None) -> list[str]:
    findings: list[str] = []
    if any(value is None for value in server.values()):
        return findings  # no server log was read: the page says so where the figures would be
    known = cast("dict[str, float]", server)  # every value is a number past the return above
    too_long = {c: int(known.get(c, 0)) for c in TOO_LONG_KILLS}
    if sum(too_long.values()):
        how = ", ".join(
            f"{v} {label}"
            for v, label in (
                (too_long[SIG_KILLED_OWN_AWAIT], "in the app's own await"),
                (too_long[SIG_KILLED_ON_THREAD], "waiting on a thread"),
                (too_long[SIG_KILLED_OTHER], "other"),
            )
            if v
        )
        findings.append(
            f"{sum(too_long.values())} application instances (one per socket) were killed by Daphne for taking too long "
            f"to shut down after their connection closed (FM-1): {how}."
        )
    if known.get(SIG_KILLED_PENDING):
        findings.append(
            f"SIGTERM cancelled {int(known[SIG_KILLED_PENDING])} pending application instances "
            '("Killed N pending application instances").'
        )
    if known.get(SIG_EXCEPTION):
        top = ""
        if messages:
            message, times = max(messages.items(), key=lambda item: item[1])
            top = f'; the most frequent: "{message.strip()}" ({times}×)'
            if "Timeout reading from" in message:
                top += ", the signature of FM-7"
        findings.append(
            f'Daphne logged "Exception inside application" {int(known[SIG_EXCEPTION])} times{top}.'
        )
    if known.get(SIG_TASK_EXCEPTION):
        findings.append(
            f'"Task exception was never retrieved" was logged {int(known[SIG_TASK_EXCEPTION])} times.'
        )
    if known.get(SIG_OVER_CAPACITY):
        findings.append(
            f"channels_redis logged channels over capacity in a group {int(known[SIG_OVER_CAPACITY])} times "
            "(group_send into channels nobody reads, FM-5)."
        )
    if known.get(SIG_HANDSHAKE_INCOMPLETE):
        findings.append(
            f"{int(known[SIG_HANDSHAKE_INCOMPLETE])} websocket handshakes never completed (FM-8)."
        )
    return findings


def error_findings(head: Headline) -> list[str]:
    findings = []
    for path, figures in head.endpoints.items():
        pings, errors = count(figures.get(PINGS)), count(figures.get(ERRORS))
        if not pings or not errors or errors / pings < 0.01:
            continue
        kinds = sorted(((count(figures.get(k)), k) for k in PING_ERRORS if figures.get(k)), reverse=True)
        detail = ", ".join(f"{k} {int(v)}" for v, k in kinds)
        share = (
            "Every ping"
            if errors == pings
            else f"{int(errors)} of {int(pings)} pings ({errors / pings * 100:.1f} %)"
        )
        findings.append(f"{share} on {path} failed: {detail}.")
    return findings


def generator_findings(run: Run) -> list[str]:
    late = [
        r for r in run.rows if count(r.get(SENT)) and count(r.get(LATE_SENDS)) / count(r.get(SENT)) > 0.01
    ]
    if not late:
        return []
    return [
        f"The load generator was saturated in {len(late)} of {len(run.rows)} seconds (over 1 % of pings sent over 50 ms late): "
        "latency in those seconds includes the generator's own delay."
    ]


def redis_findings(run: Run, head: Headline) -> list[str]:
    stale = [v for v in (number(r.get(STALE_MEMBERS)) for r in run.rows) if v is not None]
    if not stale or max(stale) == 0 or head.restarts:
        return []  # with restarts, restart_findings says it per restart
    return [
        f"Without any restart, up to {int(max(stale))} group members in Redis belonged to no live process "
        f"({int(stale[-1])} at the last sample)."
    ]


def chaos_findings(run: Run) -> list[str]:
    """Chaos actions that failed or were aborted: the run did not test what its plan said."""
    failures = (run.summary or {}).get(CHAOS_FAILURES) or []
    return [
        failure_line(f, accepted=bool(run.manifest.get(OPTIONS, {}).get("chaos_failures_ok")))
        for f in failures
    ]


def findings(run: Run, head: Headline) -> list[str]:
    return [
        *chaos_findings(run),
        *restart_findings(head.restarts, run.finished),
        *exit_findings(run),
        *redis_findings(run, head),
        *server_findings(head.server, head.exception_messages),
        *error_findings(head),
        *threads_findings(phase_points(run, head.restarts), "ASGI_THREADS staircase", "one step per value"),
        *generator_findings(run),
    ]
