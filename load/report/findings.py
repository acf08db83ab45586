"""What a run's data shows, as sentences: restarts, exits, Redis, Daphne's log, errors,
ASGI_THREADS steps, the generator itself. Each sentence names its figures; where the run
could not measure something, no sentence is made from it."""

import statistics

from load.analysis.detectors import POOL_PREFIX, SYNC_PREFIX
from load.analysis.headline import Headline
from load.analysis.summary_table import recovery_text
from load.report.figures import Point, phase_points
from load.report.numbers import SIMILAR, Spread, change, fmt, percent, verdict
from load.runfolder.loader import Run
from load.runfolder.names import (
    ASGI_THREADS,
    AT_S,
    CLOSES,
    DOWN_BY_CLIENTS,
    DOWN_BY_DAPHNE,
    DOWN_S,
    DOWN_SOURCE,
    FAILED_PINGS,
    FIRST_PONG_S,
    P99_MS,
    PONGS,
    RECOVERY_S,
)


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


def restart_name(restart: dict) -> str:
    at = f"+{fmt(restart.get(AT_S))} s"
    return f"{at}, ASGI_THREADS={restart.get('threads')}" if restart.get("action") == ASGI_THREADS else at


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


def findings(run: Run, head: Headline) -> list[str]:
    """What the figures show beyond the detectors' findings: what the restarts cost and what
    each ASGI_THREADS step did."""
    return [
        *restart_findings(head.restarts, run.finished),
        *threads_findings(phase_points(run, head.restarts), "ASGI_THREADS staircase", "one step per value"),
    ]
