"""comparison.html and comparison.csv for several run folders: each headline figure against
a knob (ASGI_THREADS, the number of Daphne processes, the layer, ...).

The knob values come from each run's manifest.json: the names a sweep gives, or else every
option that differs between the runs. comparison.csv has one row per run (its knob values,
then the headline figures overall and per endpoint); comparison.html has one plot per
figure (x = knob value, one line per endpoint) and the findings the data supports.

With one run per value a comparison cannot be a significance test. A difference is called
large only when the interquartile ranges of the per-second values do not overlap, and the
page says that this is all it means.

Reads only what the runs wrote; kept free of locust and gevent.
"""

import csv
import html
import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from matplotlib.figure import Figure  # no pyplot: nothing here needs a display
from matplotlib.lines import Line2D

from load.analysis.headline import Headline, headline, load_run
from load.config.settings import ConfigError
from load.report.figures import Point, default_threads
from load.report.findings import threads_findings
from load.report.numbers import clearly_apart, fmt, percent
from load.report.page import STYLE, img, table
from load.report.plots import save_png
from load.runfolder.derive import error_rate, totals_from_rows
from load.runfolder.loader import Run, number
from load.runfolder.names import (
    CHAOS_PLAN,
    COMPARISON_CSV,
    COMPARISON_HTML,
    CONFIG,
    DURATION_S,
    ERROR_RATE,
    FINDINGS_TXT,
    FINISHED,
    KILL_COLUMNS,
    KILLED_PENDING,
    KILLED_TOO_LONG,
    OPTIONS,
    P50_MS,
    P99_MS,
    PERCENTILES_FROM,
    PINGS,
    PLOTS_DIR,
    PONGS,
    PONGS_PER_S,
    RECOVERY_S,
    RECOVERY_S_MEAN,
    RESTARTS,
    RESTARTS_NOT_RECOVERED,
    RUN_DIR,
    RUN_ID,
    SERVER_KILLS,
    SIG_KILLED_PENDING,
    STALE_MEMBERS,
    STALE_MEMBERS_MAX,
    TOO_LONG_KILLS,
    per_endpoint,
    plot_png,
)

# Options that name where a run went or how it was reached, not how it was configured.
NOT_KNOBS = {
    RUN_ID,
    "run_label",
    "results_dir",
    "targets",
    "host",
    "csv_prefix",
    "html_file",
    "json_file",
    "logfile",
    "web_host",
    "web_port",
    "web_base_path",
    "master_host",
    "master_port",
    "master_bind_host",
    "master_bind_port",
    "locustfile",
    "agent_token",
    "agent_url",
    "redis_probe_url",
    "restart_cmd",
    "server_log",
    "server_log_cmd",
    "tls_cert",
    "tls_key",
    "config",
    "base_port",
    "seed",
}
ENDPOINT_METRICS = (
    (PINGS, PINGS),
    (PONGS, PONGS),
    (ERROR_RATE, "error rate %"),
    (P50_MS, "p50 ms (whole run)"),
    (P99_MS, "p99 ms (whole run)"),
    (PONGS_PER_S, "pongs per second"),
)
RUN_METRICS = (
    (RECOVERY_S_MEAN, "mean recovery after a restart, s"),
    (STALE_MEMBERS_MAX, "stale group members, max"),
    (SERVER_KILLS, "server kills (too long to shut down + pending at SIGTERM)"),
)
GRID = ".grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(480px, 1fr)); gap: 0 1.5em; } .grid figure { margin: .5em 0 1.5em; }"
RUN_COLUMNS = (RESTARTS, RESTARTS_NOT_RECOVERED, KILLED_TOO_LONG, KILLED_PENDING)


@dataclass
class Entry:
    """One run in the comparison."""

    run: Run
    head: Headline
    values: dict[str, object]  # knob -> value as the manifest holds it (None: not there)
    position: float  # on the x axis
    label: str  # "asgi_threads=4"


def knob_names(runs: list[Run], knob: str | None) -> list[str]:
    """The names given (comma-separated), or every option that differs between the runs."""
    if knob:
        names = [name.strip().lstrip("-").replace("-", "_") for name in knob.split(",") if name.strip()]
        for name in names:
            if all(knob_value(run.manifest, name) is None for run in runs):
                raise ConfigError(
                    "knob",
                    name,
                    "no run's manifest.json holds this option; name an option the runs were started with",
                )
        return names
    options = [run.manifest.get(OPTIONS) or {} for run in runs]
    keys = sorted(set().union(*options)) if options else []
    return [
        k
        for k in keys
        if k not in NOT_KNOBS
        and len({json.dumps(o.get(k), sort_keys=True, default=str) for o in options}) > 1
    ]


def knob_value(manifest: dict, name: str):
    for section in (OPTIONS, CONFIG, CHAOS_PLAN):
        values = manifest.get(section) or {}
        if isinstance(values, dict) and name in values:
            return values[name]
    return None


def display(name: str, value, manifest: dict) -> str:
    if value is None:
        return "?"
    if name == "asgi_threads" and value in (0, "0", "", "unset"):
        return f"unset ({default_threads(manifest)})"
    if value == "":
        return "default"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def axis_value(name: str, value, manifest: dict) -> float | None:
    """Where the value sits on a numeric axis; None if it is not a number."""
    if name == "asgi_threads" and value in (0, "0", "", "unset"):
        return float(default_threads(manifest))
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def entries(runs: list[Run], names: list[str]) -> tuple[list[Entry], bool]:
    """The runs in knob order, and whether the x axis is numeric (one knob, all numbers)."""
    rows = []
    for run in runs:
        values = {name: knob_value(run.manifest, name) for name in names}
        label = (
            ", ".join(f"{name}={display(name, values[name], run.manifest)}" for name in names) or run.run_id
        )
        positions = [axis_value(name, values[name], run.manifest) for name in names]
        rows.append((run, values, label, positions))
    numeric = len(names) == 1 and all(p[0] is not None for *_, p in rows)

    def order(row) -> tuple:  # numbers by value, then other values by their text, then the run id
        run, values, _, positions = row
        return (
            *(
                (0, p, "") if p is not None else (1, 0, str(values[n]))
                for n, p in zip(names, positions, strict=True)
            ),
            run.run_id,
        )

    rows.sort(key=order)
    result = [
        Entry(
            run,
            headline(run),
            values,
            positions[0] if numeric and positions[0] is not None else float(i),
            label,
        )
        for i, (run, values, label, positions) in enumerate(rows)
    ]
    return result, numeric


# -- the figures of a run -------------------------------------------------------------


def run_metrics(entry: Entry) -> dict[str, float | None]:
    head, rows = entry.head, entry.run.rows
    recoveries = [r[RECOVERY_S] for r in head.restarts if r.get(RECOVERY_S) is not None]
    stale = [v for v in (number(r.get(STALE_MEMBERS)) for r in rows) if v is not None]
    return {
        RECOVERY_S_MEAN: statistics.fmean(recoveries) if recoveries else None,
        RESTARTS: len(head.restarts),
        RESTARTS_NOT_RECOVERED: len(head.restarts) - len(recoveries),
        STALE_MEMBERS_MAX: max(stale) if stale else None,
        # None (an empty cell, "–") when the run read no server log: unknown, not 0
        SERVER_KILLS: _total(head, KILL_COLUMNS),
        KILLED_TOO_LONG: _total(head, TOO_LONG_KILLS),
        KILLED_PENDING: _total(head, (SIG_KILLED_PENDING,)),
    }


def _total(head: Headline, columns: tuple[str, ...]) -> float | None:
    return sum(head.server.get(c) or 0 for c in columns) if head.signatures_known else None


def endpoint_metrics(figures: dict) -> dict[str, float | None]:
    return {metric: number(figures.get(metric)) for metric, _ in ENDPOINT_METRICS}


def csv_row(entry: Entry, names: list[str], endpoints: list[str]) -> dict:
    row = {
        RUN_ID: entry.run.run_id,
        RUN_DIR: str(entry.run.folder),
        FINISHED: entry.run.finished,
        PERCENTILES_FROM: "merged" if entry.head.exact_percentiles else "max_per_second",
        DURATION_S: entry.head.duration_s,
    }
    row.update({name: entry.values[name] for name in names})
    row.update(endpoint_metrics(entry.head.overall))
    row.update(run_metrics(entry))
    for endpoint in endpoints:
        figures = entry.head.endpoints.get(endpoint)
        for metric, value in endpoint_metrics(figures or {}).items():
            row[per_endpoint(metric, endpoint)] = value if figures is not None else None
    return {k: _cell(v) for k, v in row.items()}


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, float):
        return int(value) if value.is_integer() else round(value, 3)
    return value


def csv_columns(names: list[str], endpoints: list[str]) -> list[str]:
    return [
        RUN_ID,
        RUN_DIR,
        FINISHED,
        PERCENTILES_FROM,
        DURATION_S,
        *names,
        *(m for m, _ in ENDPOINT_METRICS),
        *(m for m, _ in RUN_METRICS),
        *RUN_COLUMNS,
        *(per_endpoint(m, e) for e in endpoints for m, _ in ENDPOINT_METRICS),
    ]


def write_csv(path: Path, rows: list[dict], columns: list[str]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


# -- plots ----------------------------------------------------------------------------


def tick_labels(items: list[Entry], numeric: bool) -> list[str]:
    """The knob's value; for long multi-knob labels the run id (the Runs table says which is which)."""
    if numeric:
        return [e.label.split("=", 1)[1] for e in items]
    if max(len(e.label) for e in items) > 30:
        return [e.run.run_id for e in items]
    return [e.label.replace(", ", "\n") for e in items]


def plot_metric(
    metric: str, title: str, items: list[Entry], numeric: bool, endpoints: list[str], knob_title: str
) -> Figure:
    fig = Figure(figsize=(8, 3.6), dpi=100, layout="constrained")
    ax = fig.subplots()
    x = [e.position for e in items]
    if metric in dict(ENDPOINT_METRICS):
        lines = [("all endpoints", [e.head.overall for e in items])]
        lines += [(endpoint, [e.head.endpoints.get(endpoint, {}) for e in items]) for endpoint in endpoints]
        for label, figures in lines:
            y = [v if (v := number(f.get(metric))) is not None else math.nan for f in figures]
            style = {"color": "#333", "lw": 2} if label == "all endpoints" else {"lw": 1.4}
            ax.plot(x, y, marker="o", ms=5, label=label, ls="-" if numeric else "none", **style)
    else:
        y = [v if (v := run_metrics(e)[metric]) is not None else math.nan for e in items]
        ax.plot(x, y, marker="o", ms=5, color="#333", lw=2, label="run", ls="-" if numeric else "none")
    ax.set_xticks(x, tick_labels(items, numeric), rotation=0 if numeric or len(items) < 4 else 20, fontsize=8)
    ax.set_xlabel(knob_title)
    ax.set_title(title)
    if metric in (P50_MS, P99_MS):
        ax.set_ylabel("ms")
    ax.grid(True, color="#ddd", lw=0.5)
    if all(math.isnan(v) for line in ax.get_lines() for v in _ydata(line)):
        ax.text(
            0.5, 0.5, "no value in these runs", transform=ax.transAxes, ha="center", va="center", color="#777"
        )
    ax.legend(fontsize=7, loc="best")
    ax.margins(x=0.08)
    # Every figure here is a count, a rate or a time: from zero, so that small differences look small.
    top = max((v for line in ax.get_lines() for v in _ydata(line) if not math.isnan(v)), default=0)
    ax.set_ylim(0, top * 1.12 if top > 0 else 1)
    return fig


def _ydata(line: Line2D) -> list[float]:
    # matplotlib types get_ydata() as any array-like; ours are the lists of floats plotted above.
    return cast("list[float]", line.get_ydata())


# -- findings -------------------------------------------------------------------------


def _groups(items: list[Entry], knob: str, names: list[str]) -> list[tuple[str, list[Entry]]]:
    """The runs that share every other knob's value, each group to be read along `knob`."""
    others = [n for n in names if n != knob]
    groups: dict[str, list[Entry]] = {}
    for entry in items:
        key = ", ".join(f"{n}={display(n, entry.values[n], entry.run.manifest)}" for n in others)
        groups.setdefault(key, []).append(entry)
    return list(groups.items())


def _point(entry: Entry, knob: str) -> Point:
    value = axis_value(knob, entry.values.get(knob), entry.run.manifest)
    p99 = (
        {path: f.get(P99_MS) for path, f in entry.head.endpoints.items()}
        if entry.head.exact_percentiles
        else {}
    )
    return Point(
        f"{knob}={display(knob, entry.values.get(knob), entry.run.manifest)}",
        value if value is not None else math.nan,
        entry.run,
        entry.run.rows,
        p99,
    )


def overall_findings(items: list[Entry], knob: str, names: list[str]) -> list[str]:
    """Overall p99 and error rate, smallest against largest value, only when clearly apart."""
    findings = []
    for others, group in _groups(items, knob, names):
        points = [p for p in (_point(e, knob) for e in group) if not math.isnan(p.value)]
        if len({p.value for p in points}) < 2:
            continue
        low, high = min(points, key=lambda p: p.value), max(points, key=lambda p: p.value)
        where = f" ({others})" if others else ""
        errors = _whole_run_error_rate(low), _whole_run_error_rate(high)
        for column, what, unit in ((P99_MS, "p99", " ms"), (ERROR_RATE, "error rate", " %")):
            a, b = low.per_second(None, column), high.per_second(None, column)
            if a is None or b is None or not clearly_apart(a, b):
                continue
            caveat = ""
            low_rate, high_rate = errors
            if (
                column == P99_MS
                and low_rate is not None
                and high_rate is not None
                and abs(low_rate - high_rate) >= 5
            ):
                # Latency covers answered pings only: when failures turn into slow pongs, p99 rises.
                caveat = (
                    f"; the whole-run error rate moved {fmt(errors[0])} → {fmt(errors[1])} % at the same time, "
                    "so these percentiles describe different sets of pings"
                )
            findings.append(
                f"All endpoints{where}, {low.label} → {high.label}: median per-second {what} {fmt(a.median)} → {fmt(b.median)}{unit} "
                f"({percent(_change(a.median, b.median))}; IQR {fmt(a.q1)}–{fmt(a.q3)} vs {fmt(b.q1)}–{fmt(b.q3)}{unit}), "
                f"large relative to the spread across seconds{caveat} (one run per value: not a significance test)."
            )
    return findings


def _whole_run_error_rate(point: Point) -> float | None:
    rate = error_rate(totals_from_rows(point.rows))
    return rate * 100 if rate is not None else None


def _change(a: float, b: float) -> float | None:
    return None if a == 0 else b / a - 1


def listing_findings(items: list[Entry]) -> list[str]:
    """Run-level figures that differ between the runs, listed with their knob values."""
    findings = []
    for metric, title in RUN_METRICS:
        values = [run_metrics(e)[metric] for e in items]
        if all(v is None for v in values) or len(set(values)) < 2:
            continue
        listed = "; ".join(f"{e.label}: {fmt(v)}" for e, v in zip(items, values, strict=True))
        findings.append(f"{title[0].upper()}{title[1:]}: {listed}.")
    return findings


def comparison_findings(items: list[Entry], names: list[str]) -> list[str]:
    findings = []
    if "asgi_threads" in names:
        for others, group in _groups(items, "asgi_threads", names):
            label = f"ASGI_THREADS ({others})" if others else "ASGI_THREADS"
            findings += threads_findings([_point(e, "asgi_threads") for e in group], label)
    numeric_knobs = [
        n for n in names if all(axis_value(n, e.values.get(n), e.run.manifest) is not None for e in items)
    ]
    for knob in numeric_knobs:
        findings += overall_findings(items, knob, names)
    findings += listing_findings(items)
    unfinished = [e.run.run_id for e in items if not e.run.finished]
    if unfinished:
        findings.append(
            f"{len(unfinished)} of {len(items)} runs did not finish ({', '.join(unfinished)}): their figures come "
            "from the per-second CSV and their percentiles are the largest per-second value."
        )
    return findings


# -- the page -------------------------------------------------------------------------


def build_page(
    items: list[Entry],
    names: list[str],
    endpoints: list[str],
    sentences: list[str],
    plots: list[tuple[str, str, bytes]],
) -> str:
    title = f"Comparison of {len(items)} runs" + (f" over {', '.join(names)}" if names else "")
    overview = []
    for e in items:
        o = e.head.overall
        m = run_metrics(e)
        bound = "" if e.head.exact_percentiles else "≤ "
        overview.append(
            [
                e.label,
                e.run.run_id,
                "yes" if e.run.finished else "no",
                fmt(number(o.get(PINGS))),
                fmt(number(o.get(PONGS))),
                fmt(o.get(ERROR_RATE)),
                bound + fmt(o.get(P50_MS)),
                bound + fmt(o.get(P99_MS)),
                fmt(o.get(PONGS_PER_S)),
                fmt(m[RECOVERY_S_MEAN]),
                fmt(m[STALE_MEMBERS_MAX]),
                fmt(m[SERVER_KILLS]),
            ]
        )
    per_endpoint = []
    for endpoint in endpoints:
        for e in items:
            f = e.head.endpoints.get(endpoint)
            if f is None:
                continue
            bound = "" if e.head.exact_percentiles else "≤ "
            per_endpoint.append(
                [
                    endpoint,
                    e.label,
                    fmt(number(f.get(PINGS))),
                    fmt(number(f.get(PONGS))),
                    fmt(f.get(ERROR_RATE)),
                    bound + fmt(f.get(P50_MS)),
                    bound + fmt(f.get(P99_MS)),
                    fmt(f.get(PONGS_PER_S)),
                ]
            )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{STYLE}{GRID}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        '<p class="sub">Knob values from each run\'s manifest.json; figures from summary.json, or from the per-second CSV '
        "for a run that did not finish (percentiles then marked ≤: the largest per-second value).</p>",
        "<h2>Findings</h2>",
        ('<ul class="findings">' + "".join(f"<li>{html.escape(s)}</li>" for s in sentences) + "</ul>")
        if sentences
        else "<p>No difference between these runs is clear enough in the data to state as a finding.</p>",
        '<p class="note">One run per value: a difference is called large only when the interquartile ranges of the '
        "per-second values (steady seconds: every user running) do not overlap. That says the seconds of one run differ from "
        "the seconds of the other, not that another pair of runs would differ the same way.</p>",
        "<h2>Runs</h2>",
        table(
            [
                "knobs",
                "run",
                FINISHED,
                PINGS,
                PONGS,
                "error rate %",
                "p50 ms",
                "p99 ms",
                "pongs/s",
                "recovery s (mean)",
                "stale members (max)",
                "server kills",
            ],
            overview,
            left=(0, 1),
        ),
        "<h2>Per endpoint</h2>",
        table(
            ["endpoint", "knobs", PINGS, PONGS, "error rate %", "p50 ms", "p99 ms", "pongs/s"],
            per_endpoint,
            left=(0, 1),
        ),
        "<h2>Each figure against the knob</h2>",
        '<div class="grid">',
    ]
    for name, caption, png in plots:
        parts.append(
            f'<figure id="{name}">{img(png, caption)}<figcaption>{html.escape(caption)} (plots/{name}.png)</figcaption></figure>'
        )
    parts.append("</div></body></html>")
    return "\n".join(parts)


def write_comparison(run_dirs: list[Path], out_dir: Path, knob: str | None = None) -> Path:
    """Write out_dir/comparison.html (self-contained), out_dir/comparison.csv,
    out_dir/findings.txt (one sentence a line) and out_dir/plots/*.png; knob: the knob
    names (comma-separated) or None to find them."""
    if not run_dirs:
        raise ConfigError("run_dirs", [], "give at least one run folder")
    runs = [load_run(Path(d)) for d in run_dirs]
    names = knob_names(runs, knob)
    items, numeric = entries(runs, names)
    endpoints = sorted({path for e in items for path in e.head.endpoints})
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_csv(
        out_dir / COMPARISON_CSV,
        [csv_row(e, names, endpoints) for e in items],
        csv_columns(names, endpoints),
    )
    knob_title = names[0] if numeric else (", ".join(names) or "run")
    if len(knob_title) > 60:
        knob_title = f"{len(names)} options that differ (see the Runs table)"
    plots = []
    for metric, title in (*ENDPOINT_METRICS, *RUN_METRICS):
        figure = plot_metric(metric, title, items, numeric, endpoints, knob_title)
        plots.append(
            (
                metric,
                f"{title} against {knob_title}",
                save_png(figure, out_dir / PLOTS_DIR / plot_png(metric)),
            )
        )
    sentences = comparison_findings(items, names)
    (out_dir / FINDINGS_TXT).write_text("".join(f"{sentence}\n" for sentence in sentences), encoding="utf-8")
    page = out_dir / COMPARISON_HTML
    page.write_text(build_page(items, names, endpoints, sentences, plots), encoding="utf-8")
    return page
