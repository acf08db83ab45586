"""report.html: the page itself, its tables and its style. Self-contained: plots are PNG data
URIs, the style sheet is inline, there is no script and no external address."""

import base64
import html
import json
import shlex
from collections.abc import Iterable
from datetime import UTC, datetime

from load.analysis.detectors import Diagnosis, Finding
from load.analysis.headline import Headline
from load.analysis.summary_table import NOT_MEASURED_CELL, down_text, recovery_text
from load.config.options import mask_argv
from load.report.figures import endpoint_series
from load.report.numbers import fmt
from load.runfolder.derive import error_rate, totals_from_rows
from load.runfolder.loader import Run, count
from load.runfolder.names import (
    ALL,
    AT_S,
    BROADCASTS,
    BROADCASTS_DUPLICATED,
    BROADCASTS_IN_FLIGHT,
    BROADCASTS_LOST,
    BROADCASTS_RECEIVED,
    CHAOS_PLAN,
    CLOSE_COLUMNS,
    CLOSES,
    COMMAND,
    CONFIG,
    CONNECT_ERRORS,
    DELIVERIES,
    ENDPOINT,
    ENDPOINTS,
    ERROR_RATE,
    ERRORS,
    FAILED_PINGS,
    FIRST_PONG_S,
    GIT_SHA,
    MAX_MS,
    NO_SERVER_LOG,
    PERCENTILES,
    PHASE,
    PHASES,
    PING_ERRORS,
    PINGS,
    PONGS,
    PONGS_PER_S,
    REDIS,
    RESTART,
    SERVER_KILLS,
    SERVER_SIGNATURES,
    SIGNATURE_LABELS,
    STALE_MEMBERS,
    STALE_MEMBERS_AFTER,
    STALE_MEMBERS_BEFORE,
    STARTED_AT,
    UNMATCHED,
    VERSIONS,
)

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; margin: 0 auto; max-width: 1150px; padding: 1em 1.5em 3em; }
h1 { font-size: 1.5em; margin-bottom: .2em; } h2 { font-size: 1.2em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
.sub { color: #666; margin-top: 0; } code, .mono { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: .92em; }
table { border-collapse: collapse; margin: .5em 0 1em; font-size: .92em; }
th, td { padding: .25em .6em; border-bottom: 1px solid #eee; text-align: right; vertical-align: top; }
th { background: #f5f5f5; } td.l, th.l { text-align: left; }
tr.total td { font-weight: 600; border-top: 1px solid #bbb; }
.warn { background: #fff4e5; border: 1px solid #f0b060; padding: .6em 1em; border-radius: 4px; }
ul.findings li { margin: .3em 0; } .finding { border-left: 3px solid #c0392b; padding: 0 1em; margin: 1em 0; }
.finding h3 { margin: .2em 0; font-size: 1.05em; } .finding ul { margin: .3em 0; } figure { margin: 1em 0 2em; } figure img { max-width: 100%; height: auto; display: block; }
figcaption { color: #555; font-size: .92em; } .note { color: #666; font-size: .9em; }
"""


def table(headers: list[str], rows: list[list], left: Iterable[int] = (0,), total_last: bool = False) -> str:
    """An HTML table; the columns in `left` are text (left-aligned), the others figures."""
    left = set(left)

    def cls(i: int) -> str:
        return ' class="l"' if i in left else ""

    head = "".join(f"<th{cls(i)}>{html.escape(h)}</th>" for i, h in enumerate(headers))
    body = []
    for n, row in enumerate(rows):
        cells = "".join(f"<td{cls(i)}>{html.escape(str(c))}</td>" for i, c in enumerate(row))
        total = ' class="total"' if total_last and n == len(rows) - 1 else ""
        body.append(f"<tr{total}>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _kinds(figures: dict) -> str:
    kinds = [
        f"{k}={int(count(figures.get(k)))}" for k in (*PING_ERRORS, *CONNECT_ERRORS) if count(figures.get(k))
    ]
    closes = [f"{c}={int(count(figures.get(c)))}" for c in CLOSE_COLUMNS if count(figures.get(c))]
    return " ".join(kinds + closes)


# The columns of a row of figures, in the endpoint and the phase tables.
FIGURE_HEADERS = [PINGS, PONGS, ERRORS, "error rate %", "pongs/s", "p50 ms", "p95 ms", "p99 ms", "max ms"]


def endpoint_table(head: Headline) -> str:
    bound = "" if head.exact_percentiles else "≤ "
    rows = []
    for name, f in [*head.endpoints.items(), (ALL, head.overall)]:
        rows.append(
            [
                name,
                fmt(count(f.get(PINGS))),
                fmt(count(f.get(PONGS))),
                fmt(count(f.get(ERRORS))),
                fmt(f.get(ERROR_RATE)),
                fmt(f.get(PONGS_PER_S)),
                *((bound + fmt(f.get(p))) if f.get(p) is not None else "–" for p in PERCENTILES),
                fmt(f.get(MAX_MS)),
                _known_or(f.get(UNMATCHED), UNMATCHED not in head.not_measured),
                _kinds(f),
            ]
        )
    headers = [ENDPOINT, *FIGURE_HEADERS, UNMATCHED, "errors by kind, closes"]
    text = table(headers, rows, left=(0, len(headers) - 1), total_last=True)
    note = (
        "Percentiles are merged from the run's histograms (exact to 0.1 %)."
        if head.exact_percentiles
        else "Percentiles are the largest per-second value (“≤”): per-second percentiles cannot be merged, and the "
        "run's merged histograms are only in summary.json, which a run that did not finish never wrote. The largest "
        "per-second p99 bounds the run's p99 from above."
    )
    return text + (
        f'<p class="note">{note} Error rate = failed pings / pings; pongs/s over {fmt(head.duration_s)} s. '
        "Latency is from each ping's due time. Unmatched: frames from the server that answered no ping of "
        "their user (another member's message in a shared room, a reply after its ping timed out; README, "
        '"Matching replies").</p>' + _not_measured_note(head, [UNMATCHED])
    )


def delivery_table(run: Run, head: Headline) -> str:
    """Room delivery per endpoint: what members were owed, received, lost; or why it is not known."""
    rooms = {
        path: f for path, f in head.endpoints.items() if count(f.get(BROADCASTS)) or f.get(BROADCASTS_LOST)
    }
    if not rooms:
        return ""
    if DELIVERIES in head.not_measured:
        return f"<h3>Room delivery</h3><p>Not measured ({html.escape(head.not_measured[DELIVERIES])}).</p>"
    rows = []
    for path, f in rooms.items():
        received, lost = f.get(BROADCASTS_RECEIVED), f.get(BROADCASTS_LOST)
        owed = None if received is None or lost is None else count(received) + count(lost)
        rows.append([path, fmt(owed), fmt(received), fmt(lost), fmt(f.get(BROADCASTS_DUPLICATED))])
    in_flight = ((run.summary or {}).get(DELIVERIES) or {}).get(BROADCASTS_IN_FLIGHT)
    return (
        "<h3>Room delivery</h3>"
        + table([ENDPOINT, "owed", "received", "lost", "duplicated"], rows)
        + '<p class="note">Owed: every broadcast sent while the member was in the room (after its welcome, until '
        "it left), settled when the run ended; a cell left empty was not settled (unknown, not 0). "
        + (
            f"{fmt(in_flight)} broadcasts were still on their way when their member's user stopped: neither. "
            if in_flight
            else ""
        )
        + "</p>"
    )


def phase_table(run: Run) -> str:
    """Each phase's figures: merged percentiles from summary.json when it has them, else from the CSV."""
    phases = run.phases()
    if len(phases) < 2:
        return ""
    merged = (run.summary or {}).get(PHASES) or {}
    rows = []
    for phase in phases:
        seconds = [r for r in run.rows if r[PHASE] == phase]
        exact = phase in merged
        for endpoint in [*run.endpoints, None]:
            if exact:
                f = merged[phase][ALL] if endpoint is None else merged[phase].get(ENDPOINTS, {}).get(endpoint)
                if f is None:
                    continue
            else:
                f = totals_from_rows(endpoint_series(run, endpoint, seconds))
            pings, pongs, errors, rate = (
                count(f.get(PINGS)),
                count(f.get(PONGS)),
                count(f.get(ERRORS)),
                error_rate(f),
            )
            bound = "" if exact else "≤ "
            rows.append(
                [
                    phase,
                    endpoint or ALL,
                    len(seconds),
                    fmt(pings),
                    fmt(pongs),
                    fmt(errors),
                    fmt(rate * 100 if rate is not None else None),
                    fmt(pongs / len(seconds) if seconds else None),
                    *((bound + fmt(f.get(p))) if f.get(p) is not None else "–" for p in PERCENTILES),
                    fmt(f.get(MAX_MS)),
                ]
            )
    headers = [PHASE, ENDPOINT, "seconds", *FIGURE_HEADERS]
    source = (
        "Percentiles merged per phase (summary.json)."
        if all(p in merged for p in phases)
        else "Phases marked ≤ come from the per-second CSV: their percentiles are the largest per-second value."
    )
    return (
        "<h3>Per phase</h3>"
        + table(headers, rows, left=(0, 1))
        + f'<p class="note">{source} Each phase includes the restart that began it.</p>'
    )


def restart_table(head: Headline) -> str:
    if not head.restarts:
        return "<p>No restarts in this run.</p>"
    first_pong = any(FIRST_PONG_S in r for r in head.restarts)
    rows = []
    for r in head.restarts:
        what = (
            f"{r.get('mode', '')} {r.get('which', '')}".strip()
            if r.get("action") == RESTART
            else f"ASGI_THREADS={r.get('threads')}"
        )
        rows.append(
            [
                f"+{fmt(r.get(AT_S))} s",
                what,
                down_text(r),
                *([fmt(r.get(FIRST_PONG_S))] if first_pong else []),
                recovery_text(r),
                r.get(FAILED_PINGS, 0),
                r.get(CLOSES, 0),
                _known_or(r.get(SERVER_KILLS), head.signatures_known),
                f"{_stale_cell(r.get(STALE_MEMBERS_BEFORE), head)} → {_stale_cell(r.get(STALE_MEMBERS_AFTER), head)}",
            ]
        )
    headers = [
        "restart at",
        "what",
        "down s",
        *(["first pong s"] if first_pong else []),
        "recovery s",
        "failed pings",
        "closes",
        "server kills",
        "stale members before → after",
    ]
    return table(headers, rows, left=(0, 1, 3 + first_pong)) + (
        '<p class="note">Down: from the signal to the new process answering, as Daphne\'s supervisor measured it '
        "(“daphne”), or for restart hooks, which cannot say, from the first failed connect to the first accepted one "
        "as the users saw it (“clients”, to within a second). "
        + (
            "First pong: from the restart to the first pong on a socket opened after it. "
            if first_pong
            else ""
        )
        + "Recovery: from the restart to the first of three "
        "seconds in which pings were answered with no more failures (connect failures included) than in the five seconds "
        "before, plus 1 %; “not recovered in N s” when none began in the N s the run (or the time to the next restart) left. "
        "Each restart's failures, closes and server kills are counted from its begin to its recovery, never past the "
        'next restart\'s begin. Server kills: Daphne\'s "took too long to shut down" and "Killed N pending" counts '
        "around the restart. Stale members: group members in Redis whose process is no longer alive.</p>"
        + _not_measured_note(head, [SERVER_SIGNATURES, STALE_MEMBERS, REDIS])
    )


def _known_or(value, known: bool) -> str:
    """A figure, 'not measured' when the run could not measure it, '–' when it had no reading."""
    if value is not None:
        return fmt(value)
    return "–" if known else NOT_MEASURED_CELL


def _stale_cell(value, head: Headline) -> str:
    return _known_or(value, STALE_MEMBERS not in head.not_measured and REDIS not in head.not_measured)


def _not_measured_note(head: Headline, figures: list[str]) -> str:
    whys = [
        f"{figure}: not measured ({head.not_measured[figure]})"
        for figure in figures
        if figure in head.not_measured
    ]
    return f'<p class="note">{html.escape("; ".join(whys))}.</p>' if whys else ""


def server_table(head: Headline) -> str:
    if not head.signatures_known:
        return f"<p>Not measured ({html.escape(head.why(SERVER_SIGNATURES, NO_SERVER_LOG))}).</p>"
    rows = [
        [label, int(head.server.get(column) or 0)]  # the filter below keeps non-zero numbers only
        for column, label in SIGNATURE_LABELS.items()
        if head.server.get(column)
    ]
    text = (
        table(["what Daphne logged", "count"], rows)
        if rows
        else "<p>None of the failure signatures was logged.</p>"
    )
    if head.exception_messages is None:
        text += '<p class="note">Exception messages: not measured (neither summary.json nor exceptions.csv holds them: no server log was read).</p>'
    elif head.exception_messages:
        text += (
            "<h3>Exception inside application: messages</h3>"
            + table(["message", "count"], [[m.strip(), c] for m, c in head.exception_messages.items()])
            + f'<p class="note">From {html.escape(head.messages_from)}.</p>'
        )
    return text


def not_measured_section(head: Headline) -> str:
    """Every figure the run could not measure, with why: its cells are empty, not 0."""
    if not head.not_measured:
        return ""
    rows = [[figure, f"not measured ({why})"] for figure, why in sorted(head.not_measured.items())]
    return (
        "<h3>Not measured</h3>"
        + table(["figure", "why"], rows, left=(0, 1))
        + '<p class="note">These figures are empty (or absent) in timeseries.csv and null (or absent) in summary.json: '
        "the run could not see them, which says nothing about whether they were 0.</p>"
    )


def run_info(run: Run, head: Headline) -> str:
    manifest = run.manifest
    started = (run.summary or {}).get(STARTED_AT) or manifest.get(STARTED_AT)
    when = datetime.fromtimestamp(started, UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if started else "–"
    command = shlex.join(mask_argv(manifest.get(COMMAND, []))) or "–"  # manifests before masking, too
    rows = [
        ["run id", run.run_id],
        ["folder", str(run.folder)],
        ["started", when],
        [
            "duration",
            f"{fmt(head.duration_s)} s"
            + ("" if run.finished else f" (seconds written before the run stopped: {len(run.rows)})"),
        ],
        ["finished", "yes" if run.finished else "no: no summary.json"],
        ["command", command],
        ["git sha", manifest.get(GIT_SHA) or "–"],
    ]
    plan = {k: v for k, v in (manifest.get(CHAOS_PLAN) or {}).items() if v not in ([], 0, 0.0, "", None)}
    if plan:
        rows.append(["chaos plan", ", ".join(f"{k}={v}" for k, v in plan.items())])
    config = manifest.get(CONFIG) or {}
    for key in ("paths", "ping_rate", "pong_timeout", "targets"):
        if key in config:
            rows.append([key, json.dumps(config[key])])
    versions = manifest.get(VERSIONS) or {}
    if versions:
        rows.append(["versions", ", ".join(f"{k} {v}" for k, v in versions.items() if v)])
    return table(["", ""], rows, left=(0, 1))


def finding_block(finding: Finding) -> str:
    when = "" if finding.first_s is None else f' <span class="note">from +{finding.first_s} s</span>'
    evidence = "".join(f"<li>{html.escape(e)}</li>" for e in finding.evidence)
    fix = f"<p><strong>Fix:</strong> {html.escape(finding.fix)}</p>" if finding.fix else ""
    return (
        f'<div class="finding" id="finding-{html.escape(finding.name)}"><h3>{html.escape(finding.title)}{when}</h3>'
        f"<ul>{evidence}</ul><p><strong>Means:</strong> {html.escape(finding.meaning)}</p>{fix}</div>"
    )


def findings_section(diagnosis: Diagnosis) -> str:
    """The detectors' findings, each with its evidence, and what the run could not check."""
    text = (
        "".join(finding_block(f) for f in diagnosis.findings)
        or "<p>No failure mode found in this run's data.</p>"
    )
    if diagnosis.not_checked:
        rows = [[what, f"not measured ({why})"] for what, why in diagnosis.not_checked.items()]
        text += "<h3>Not checked</h3>" + table(["what", "why"], rows, left=(0, 1))
    return text


def build_page(
    run: Run,
    head: Headline,
    diagnosis: Diagnosis,
    sentences: list[str],
    figures: list[tuple[str, str, bytes]],
) -> str:
    """The page; figures are (name, caption, PNG) in the order they are shown."""
    title = f"Run {run.run_id}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="sub">{fmt(head.duration_s)} s, {int(count(head.overall.get(PINGS)))} pings on '
        f"{len(head.endpoints)} endpoints, {len(head.restarts)} restarts</p>",
    ]
    if not run.finished:
        parts.append(
            '<p class="warn"><strong>This run did not finish</strong> (it has no summary.json: it was killed or crashed). '
            f"Everything below comes from the {len(run.rows)} seconds written to timeseries.csv and endpoints.csv; "
            "percentiles are upper bounds (the largest per-second value) and restarts are reconstructed from events.jsonl.</p>"
        )
    parts += ["<h2>Findings</h2>", findings_section(diagnosis)]
    if sentences:
        parts.append(
            "<h3>What the figures show</h3>"
            + '<ul class="findings">'
            + "".join(f"<li>{html.escape(s)}</li>" for s in sentences)
            + "</ul>"
        )
    parts += [
        "<h2>Headline</h2>",
        endpoint_table(head),
        delivery_table(run, head),
        phase_table(run),
        "<h3>Restarts</h3>",
        restart_table(head),
        "<h3>What Daphne logged</h3>",
        server_table(head),
        not_measured_section(head),
        "<h2>Over time</h2>",
        '<p class="note">Time axes: seconds since the start of the run; each point is one second. Dashed lines: '
        "restarts and Redis actions (from events.jsonl). Shaded bands: phases (the <code>phase</code> column).</p>",
    ]
    for name, caption, png in figures:
        parts.append(
            f'<figure id="{name}">{img(png, caption)}<figcaption>{html.escape(caption)} plots/{name}.png</figcaption></figure>'
        )
    parts += ["<h2>Run</h2>", run_info(run, head), "</body></html>"]
    return "\n".join(parts)
