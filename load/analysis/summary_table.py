"""summary.json as a short table for the terminal."""

import csv
from pathlib import Path

from load.analysis.detectors import diagnose
from load.runfolder.loader import load_run
from load.runfolder.names import (
    ALL,
    AT_S,
    BROADCASTS,
    BROADCASTS_DUPLICATED,
    BROADCASTS_LOST,
    BROADCASTS_RECEIVED,
    CLOSE_COLUMNS,
    CLOSES,
    COMPARISON_CSV,
    CONNECT_ERRORS,
    CONNECT_OK,
    CONNECTS,
    DOWN_BY_CLIENTS,
    DOWN_S,
    DOWN_SOURCE,
    DURATION_S,
    ENDPOINTS,
    ERROR_RATE,
    ERRORS,
    EXCEPTION_MESSAGES,
    FAILED_PINGS,
    FINDINGS_TXT,
    GENERATOR_LIMITED,
    GENERATOR_LIMITED_SECONDS,
    IN_FLIGHT,
    LATE_SENDS,
    MAX_MS,
    NOT_MEASURED,
    NOT_RECOVERED_UNTIL,
    NOT_RECOVERED_WITHIN_S,
    P50_MS,
    P95_MS,
    P99_MS,
    PING_ERRORS,
    PINGS,
    PONGS,
    PONGS_PER_S,
    RECOVERY_S,
    RESTART,
    RESTARTS,
    RUN_ID,
    SERVER,
    SERVER_KILLS,
    SERVER_SIGNATURES,
    SIG_OVER_CAPACITY_CHANNELS,
    SIGNATURE_LABELS,
    STALE_MEMBERS_AFTER,
    STALE_MEMBERS_BEFORE,
    TIMESERIES_CSV,
    UNMATCHED,
    UNTIL_NEXT_RESTART,
    WORKERS,
    endpoint_of,
    per_endpoint,
)

COLUMNS = ((PINGS, 7), (PONGS, 7), (ERRORS, 7), (P50_MS, 9), (P95_MS, 9), (P99_MS, 9), (MAX_MS, 9))


def _cell(value, width: int) -> str:
    if value is None or value == "":
        return f"{'-':>{width}}"
    return f"{value:>{width}.1f}" if isinstance(value, float) else f"{value:>{width}}"


def _errors_by_kind(figures: dict) -> str:
    kinds = [f"{kind}={figures[kind]}" for kind in (*PING_ERRORS, *CONNECT_ERRORS) if figures.get(kind)]
    closes = [
        f"{name}={figures[name]}" for name in sorted(figures) if name in CLOSE_COLUMNS and figures[name]
    ]
    return " ".join(kinds + closes)


# Every signature but the count of channels over capacity (its lines are counted already).
SIGNATURES = tuple(
    (column, label) for column, label in SIGNATURE_LABELS.items() if column != SIG_OVER_CAPACITY_CHANNELS
)


NOT_MEASURED_CELL = "not measured"


def recovery_text(restart: dict) -> str:
    """'2.5', or for a restart whose recovery the run did not see, for how long it looked."""
    if restart.get(RECOVERY_S) is not None:
        return f"{restart[RECOVERY_S]:g}"
    within = restart.get(NOT_RECOVERED_WITHIN_S)
    if within is None:  # a summary written before this field existed
        return "never"
    if restart.get(NOT_RECOVERED_UNTIL) == UNTIL_NEXT_RESTART:
        return f"not recovered in {within:g} s before the next restart"
    return f"not recovered in {within:g} s left"


def down_text(restart: dict) -> str:
    if restart.get(DOWN_S) is None:
        return NOT_MEASURED_CELL
    source = restart.get(DOWN_SOURCE)
    return f"{restart[DOWN_S]:.2f}" + (f" ({source})" if source else "")


def _columns(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.ljust(w) if i in (0, len(row) - 1) else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]


def format_restarts(restarts: list[dict]) -> str:
    rows = [
        ["restart", "down s", "recovery s", "failed pings", "closes", "server kills", "stale group members"]
    ]
    for r in restarts:
        what = (
            f"+{r[AT_S]:g}s {r['mode']} {r['which']}"
            if r["action"] == RESTART
            else f"+{r[AT_S]:g}s threads={r['threads']}"
        )
        stale = f"{_or_unknown(r[STALE_MEMBERS_BEFORE])} -> {_or_unknown(r[STALE_MEMBERS_AFTER])}"
        rows.append(
            [
                what,
                down_text(r),
                recovery_text(r),
                str(r[FAILED_PINGS]),
                str(r[CLOSES]),
                _or_unknown(r.get(SERVER_KILLS)),
                stale,
            ]
        )
    lines = _columns(rows)
    if any(r.get(DOWN_SOURCE) == DOWN_BY_CLIENTS for r in restarts):
        lines.append(
            "down s (clients): from the first failed connect to the first accepted one, as the users saw it"
        )
    return "\n".join(lines)


def _or_unknown(value) -> str:
    return NOT_MEASURED_CELL if value is None else str(value)


def format_server(summary: dict) -> str:
    server = summary.get(SERVER) or {}
    if any(value is None for value in server.values()) or not server:
        why = (summary.get(NOT_MEASURED) or {}).get(SERVER_SIGNATURES, "no server log was read")
        return f"  not measured ({why})"
    lines = [f"  {server[column]:>6}  {label}" for column, label in SIGNATURES if server.get(column)]
    for message, count in summary.get(EXCEPTION_MESSAGES, {}).items():
        lines.append(f"  {count:>6}  Exception inside application: {message}")
    return "\n".join(lines) if lines else "  (none of the failure signatures)"


def format_not_measured(summary: dict) -> str:
    """One line per figure the run could not measure, with why (server signatures have theirs above)."""
    missing = {k: v for k, v in (summary.get(NOT_MEASURED) or {}).items() if k != SERVER_SIGNATURES}
    by_why: dict[str, list[str]] = {}
    for figure, why in missing.items():
        by_why.setdefault(why, []).append(figure)
    return "\n".join(f"  {', '.join(figures)}: not measured ({why})" for why, figures in by_why.items())


def _deliveries(total: dict) -> str:
    """Room delivery as settled at the end; the frames alone when it could not be."""
    if total.get(BROADCASTS_LOST) is None:
        return f"frames received {total[BROADCASTS]} (delivery not settled)"
    return (
        f"received {total[BROADCASTS_RECEIVED]}, lost {total[BROADCASTS_LOST]}, "
        f"duplicated {total[BROADCASTS_DUPLICATED]}"
    )


def end_of_run_text(run_dir: Path) -> str:
    """What a finished run prints, from its folder: the summary table, then the findings.
    The same for `python -m load run`, the demo and a plain `locust` command."""
    run = load_run(run_dir)
    table = (
        format_summary(run.summary)
        if run.summary is not None
        else "(the run did not finish: no summary.json)"
    )
    return f"{table}\n\n{diagnose(run).text()}"


def format_summary(summary: dict) -> str:
    rows = [*summary[ENDPOINTS].items(), (ALL, summary[ALL])]
    first = max(len(name) for name, _ in rows) + 2
    header = (
        f"{'endpoint':<{first}}"
        + "".join(f"{name:>{width}}" for name, width in COLUMNS)
        + "  errors by kind, server closes"
    )
    lines = [header, "-" * len(header)]
    for name, figures in rows:
        cells = "".join(_cell(figures.get(column), width) for column, width in COLUMNS)
        lines.append(f"{name:<{first}}{cells}  {_errors_by_kind(figures)}".rstrip())
    total = summary[ALL]
    lines.append(
        f"\nconnects {total[CONNECTS]} ({total[CONNECT_OK]} ok), in flight at the end {total[IN_FLIGHT]}, "
        f"room broadcasts {_deliveries(total)}, "
        + (f"frames that answered no ping {total[UNMATCHED]}, " if total.get(UNMATCHED) else "")
        + f"late sends {total[LATE_SENDS]}; latency is from each ping's due time, in ms"
    )
    if summary.get(WORKERS):
        lines.append(format_workers(summary[WORKERS]))
    if summary.get(GENERATOR_LIMITED_SECONDS):
        lines.append(
            f"the load generator was the limit in {summary[GENERATOR_LIMITED_SECONDS]} second(s) (late sends or "
            f"CPU; {GENERATOR_LIMITED} in {TIMESERIES_CSV}): their latencies are the generator's, not the server's"
        )
    if summary.get(RESTARTS):
        lines += ["", format_restarts(summary[RESTARTS])]
    if SERVER in summary:
        lines += ["", "what Daphne logged:", format_server(summary)]
    if format_not_measured(summary):
        lines += ["", "not measured in this run:", format_not_measured(summary)]
    return "\n".join(lines)


def format_workers(workers: dict[str, dict]) -> str:
    """A distributed run's workers: how many sent their final report, and each one's pings."""
    each = ", ".join(f"{totals.get(PINGS, 0)}" for _, totals in sorted(workers.items()))
    return (
        f"workers {len(workers)} (pings each: {each}); connected workers per second: "
        f"the {WORKERS} column of {TIMESERIES_CSV}"
    )


def format_comparison(out_dir) -> str:
    """comparison.csv as a terminal table (pongs/s and p99 per endpoint), then the findings."""
    out_dir = Path(out_dir)
    with open(out_dir / COMPARISON_CSV, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return "(no runs)"
    first = list(rows[0])
    knobs = first[first.index(DURATION_S) + 1 : first.index(PINGS)]
    endpoints = [e for c in first if (e := endpoint_of(c, PONGS_PER_S)) is not None]
    header = f"{'point':<28}{'pongs/s':>9}{'err %':>7}{'p99 ms':>9}" + "".join(
        f"  {e[:28]:>28} pongs/s, p99" for e in endpoints
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        name = ",".join(f"{k}={row[k]}" for k in knobs) or row[RUN_ID]
        cells = "".join(
            f"  {_num(row[per_endpoint(PONGS_PER_S, e)]):>28} {_num(row[per_endpoint(P99_MS, e)]):>11}"
            for e in endpoints
        )
        lines.append(
            f"{name[:27]:<28}{_num(row[PONGS_PER_S]):>9}{_num(row[ERROR_RATE]):>7}{_num(row[P99_MS]):>9}{cells}"
        )
    findings = (out_dir / FINDINGS_TXT).read_text().splitlines() if (out_dir / FINDINGS_TXT).exists() else []
    return "\n".join(lines + [""] + [f"- {f}" for f in findings])


def _num(cell: str) -> str:
    try:
        value = float(cell)
    except ValueError:
        return "-"
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"
