"""summary.json as a short table for the terminal."""

from load.errors import CONNECT_ERRORS, PING_ERRORS

COLUMNS = (("pings", 7), ("pongs", 7), ("errors", 7), ("p50_ms", 9), ("p95_ms", 9), ("p99_ms", 9), ("max_ms", 9))


def _cell(value, width: int) -> str:
    if value is None or value == "":
        return f"{'-':>{width}}"
    return f"{value:>{width}.1f}" if isinstance(value, float) else f"{value:>{width}}"


def _errors_by_kind(figures: dict) -> str:
    kinds = [f"{kind}={figures[kind]}" for kind in (*PING_ERRORS, *CONNECT_ERRORS) if figures.get(kind)]
    closes = [f"{name}={figures[name]}" for name in sorted(figures) if name.startswith("close_") and figures[name]]
    return " ".join(kinds + closes)


def format_summary(summary: dict) -> str:
    header = f"{'endpoint':<20}" + "".join(f"{name:>{width}}" for name, width in COLUMNS) + "  errors by kind, server closes"
    lines = [header, "-" * len(header)]
    rows = [*summary["endpoints"].items(), ("all", summary["all"])]
    for name, figures in rows:
        cells = "".join(_cell(figures.get(column), width) for column, width in COLUMNS)
        lines.append(f"{name:<20}{cells}  {_errors_by_kind(figures)}")
    total = summary["all"]
    lines.append(
        f"\nconnects {total['connects']} ({total['connect_ok']} ok), in flight at the end {total['in_flight']}, "
        f"room broadcasts received {total['broadcasts']} (missed {total['missed_broadcasts']}), "
        f"late sends {total['late_sends']}; latency is from each ping's due time, in ms"
    )
    return "\n".join(lines)
