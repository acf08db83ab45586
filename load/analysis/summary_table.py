"""summary.json as a short table for the terminal."""

import csv
from pathlib import Path

from load.wire.errors import CONNECT_ERRORS, PING_ERRORS

COLUMNS = (("pings", 7), ("pongs", 7), ("errors", 7), ("p50_ms", 9), ("p95_ms", 9), ("p99_ms", 9), ("max_ms", 9))


def _cell(value, width: int) -> str:
    if value is None or value == "":
        return f"{'-':>{width}}"
    return f"{value:>{width}.1f}" if isinstance(value, float) else f"{value:>{width}}"


def _errors_by_kind(figures: dict) -> str:
    kinds = [f"{kind}={figures[kind]}" for kind in (*PING_ERRORS, *CONNECT_ERRORS) if figures.get(kind)]
    closes = [f"{name}={figures[name]}" for name in sorted(figures) if name.startswith("close_") and figures[name]]
    return " ".join(kinds + closes)


SIGNATURES = (
    ("sig_killed_own_await", "killed (took too long to shut down; own await)"),
    ("sig_killed_on_thread", "killed (took too long to shut down; waiting on a thread)"),
    ("sig_killed_other", "killed (took too long to shut down; other)"),
    ("sig_killed_pending", "pending application instances killed at SIGTERM"),
    ("sig_exception", "Exception inside application"),
    ("sig_task_exception", "Task exception was never retrieved"),
    ("sig_over_capacity", "channels over capacity in a group (lines)"),
    ("sig_handshake_incomplete", "handshakes that never completed"),
)


NOT_MEASURED_CELL = "not measured"


def recovery_text(restart: dict) -> str:
    """'2.5', or for a restart whose recovery the run did not see, for how long it looked."""
    if restart.get("recovery_s") is not None:
        return f"{restart['recovery_s']:g}"
    within = restart.get("not_recovered_within_s")
    if within is None:  # a summary written before this field existed
        return "never"
    if restart.get("not_recovered_until") == "next_restart":
        return f"not recovered in {within:g} s before the next restart"
    return f"not recovered in {within:g} s left"


def down_text(restart: dict) -> str:
    if restart.get("down_s") is None:
        return NOT_MEASURED_CELL
    source = restart.get("down_source")
    return f"{restart['down_s']:.2f}" + (f" ({source})" if source else "")


def _columns(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) if i in (0, len(row) - 1) else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))).rstrip()
            for row in rows]


def format_restarts(restarts: list[dict]) -> str:
    rows = [["restart", "down s", "recovery s", "failed pings", "closes", "server kills", "stale group members"]]
    for r in restarts:
        what = f"+{r['at_s']:g}s {r['mode']} {r['which']}" if r["action"] == "restart" else f"+{r['at_s']:g}s threads={r['threads']}"
        stale = f"{_or_unknown(r['stale_members_before'])} -> {_or_unknown(r['stale_members_after'])}"
        rows.append([what, down_text(r), recovery_text(r), str(r["failed_pings"]), str(r["closes"]),
                     _or_unknown(r.get("server_kills")), stale])
    lines = _columns(rows)
    if any(r.get("down_source") == "clients" for r in restarts):
        lines.append("down s (clients): from the first failed connect to the first accepted one, as the users saw it")
    return "\n".join(lines)


def _or_unknown(value) -> str:
    return NOT_MEASURED_CELL if value is None else str(value)


def format_server(summary: dict) -> str:
    server = summary.get("server") or {}
    if any(value is None for value in server.values()) or not server:
        why = (summary.get("not_measured") or {}).get("server_signatures", "no server log was read")
        return f"  not measured ({why})"
    lines = [f"  {server[column]:>6}  {label}" for column, label in SIGNATURES if server.get(column)]
    for message, count in summary.get("exception_messages", {}).items():
        lines.append(f"  {count:>6}  Exception inside application: {message}")
    return "\n".join(lines) if lines else "  (none of the failure signatures)"


def format_not_measured(summary: dict) -> str:
    """One line per figure the run could not measure, with why (server signatures have theirs above)."""
    missing = {k: v for k, v in (summary.get("not_measured") or {}).items() if k != "server_signatures"}
    by_why: dict[str, list[str]] = {}
    for figure, why in missing.items():
        by_why.setdefault(why, []).append(figure)
    return "\n".join(f"  {', '.join(figures)}: not measured ({why})" for why, figures in by_why.items())


def format_summary(summary: dict) -> str:
    rows = [*summary["endpoints"].items(), ("all", summary["all"])]
    first = max(len(name) for name, _ in rows) + 2
    header = f"{'endpoint':<{first}}" + "".join(f"{name:>{width}}" for name, width in COLUMNS) + "  errors by kind, server closes"
    lines = [header, "-" * len(header)]
    for name, figures in rows:
        cells = "".join(_cell(figures.get(column), width) for column, width in COLUMNS)
        lines.append(f"{name:<{first}}{cells}  {_errors_by_kind(figures)}".rstrip())
    total = summary["all"]
    lines.append(
        f"\nconnects {total['connects']} ({total['connect_ok']} ok), in flight at the end {total['in_flight']}, "
        f"room broadcasts received {total['broadcasts']} (missed {total['missed_broadcasts']}), "
        f"late sends {total['late_sends']}; latency is from each ping's due time, in ms"
    )
    if summary.get("restarts"):
        lines += ["", format_restarts(summary["restarts"])]
    if "server" in summary:
        lines += ["", "what Daphne logged:", format_server(summary)]
    if format_not_measured(summary):
        lines += ["", "not measured in this run:", format_not_measured(summary)]
    return "\n".join(lines)


def format_comparison(out_dir) -> str:
    """comparison.csv as a terminal table (pongs/s and p99 per endpoint), then the findings."""
    out_dir = Path(out_dir)
    with open(out_dir / "comparison.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return "(no runs)"
    first = list(rows[0])
    knobs = first[first.index("duration_s") + 1:first.index("pings")]
    endpoints = [c[len("pongs_per_s["):-1] for c in first if c.startswith("pongs_per_s[")]
    header = f"{'point':<28}{'pongs/s':>9}{'err %':>7}{'p99 ms':>9}" + "".join(f"  {e[:28]:>28} pongs/s, p99" for e in endpoints)
    lines = [header, "-" * len(header)]
    for row in rows:
        name = ",".join(f"{k}={row[k]}" for k in knobs) or row["run_id"]
        cells = "".join(f"  {_num(row[f'pongs_per_s[{e}]']):>28} {_num(row[f'p99_ms[{e}]']):>11}" for e in endpoints)
        lines.append(f"{name[:27]:<28}{_num(row['pongs_per_s']):>9}{_num(row['error_rate']):>7}{_num(row['p99_ms']):>9}{cells}")
    findings = (out_dir / "findings.txt").read_text().splitlines() if (out_dir / "findings.txt").exists() else []
    return "\n".join(lines + [""] + [f"- {f}" for f in findings])


def _num(cell: str) -> str:
    try:
        value = float(cell)
    except ValueError:
        return "-"
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"
