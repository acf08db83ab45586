"""The report's plots, one matplotlib Figure each, drawn from a run folder's per-second rows
and its events (restart marks, phase bands). No pyplot: nothing here needs a display."""

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot is imported anywhere: no display, PNG only

from matplotlib.figure import Figure  # noqa: E402
from matplotlib.transforms import blended_transform_factory  # noqa: E402

from load.analysis.headline import not_measured_from_rows  # noqa: E402
from load.report.figures import endpoint_series  # noqa: E402
from load.runfolder.loader import Run, count, number  # noqa: E402
from load.runfolder.names import (  # noqa: E402
    ACTION_BEGIN,
    ACTION_ENDS,
    ASGI_THREADS,
    AT_S,
    BROADCASTS,
    BROADCASTS_DUPLICATED,
    BROADCASTS_LOST,
    BROADCASTS_RECEIVED,
    CLIENT_CLOSES,
    CLOSE_COLUMNS,
    CONFIG,
    CONNECT_ERRORS,
    CONNECT_OK,
    CONNECTIONS,
    DEAD_PROCESS_KEYS,
    DELIVERIES,
    ELAPSED_S,
    EVENT,
    GROUP_MEMBERS,
    MAX_MS,
    NOT_MEASURED,
    P50_MS,
    P95_MS,
    P99_MS,
    PHASE,
    PING_ERRORS,
    REDIS_FLUSH,
    REDIS_KEYS,
    REDIS_RESTART,
    RESTART,
    RESTART_BEGIN,
    RUN_PHASE,
    SERVER_COLUMNS,
    SERVER_SIGNATURES,
    SIG_OVER_CAPACITY_CHANNELS,
    SIGNATURE_LABELS,
    STALE_MEMBERS,
    UNMATCHED,
    USERS,
)

OTHER_ACTIONS = {REDIS_RESTART: "Redis restart", REDIS_FLUSH: "Redis FLUSHDB"}

DPI = 100

BARS_UP_TO = 600  # seconds; longer runs draw per-second counts as stepped areas


def _series(rows: list[dict], column: str) -> list[float]:
    return [v if (v := number(r.get(column))) is not None else math.nan for r in rows]


def _dots(run: Run) -> dict:
    """A dot on each second while there are few enough seconds to see them."""
    return {"marker": ".", "ms": 3} if len(run.rows) <= BARS_UP_TO else {}


def _x(rows: list[dict]) -> list[float]:
    return [int(r[ELAPSED_S]) + 0.5 for r in rows]  # the middle of each second


@dataclass
class Mark:
    x: float
    label: str
    kind: str  # "restart" or "redis"


def chaos_marks(run: Run) -> list[Mark]:
    """Every restart (controller actions; a restart_begin no action explains) and Redis action."""
    marks, windows = [], []
    done = {(e.get("action"), e.get(AT_S)): e["ts"] for e in run.events if e.get(EVENT) in ACTION_ENDS}
    for event in run.events:
        if event.get(EVENT) != ACTION_BEGIN:
            continue
        action = event.get("action")
        end = done.get((action, event.get(AT_S)), math.inf)
        windows.append((event["ts"], end))
        if action == RESTART:
            marks.append(Mark(event["ts"] - run.t0, "restart", "restart"))
        elif action == ASGI_THREADS:
            marks.append(Mark(event["ts"] - run.t0, f"threads={event.get('threads')}", "restart"))
        elif action in OTHER_ACTIONS:
            marks.append(Mark(event["ts"] - run.t0, OTHER_ACTIONS[action], "redis"))
    for event in run.events:
        if event.get(EVENT) == RESTART_BEGIN and not any(b <= event["ts"] <= e + 1 for b, e in windows):
            marks.append(
                Mark(event["ts"] - run.t0, f"restart {event.get('instance', '')}".strip(), "restart")
            )
    return marks


def phase_bands(run: Run) -> list[tuple[float, float, str]]:
    """Contiguous stretches of one phase: (start s, end s, name); none if the run had one phase 'run'."""
    if {r[PHASE] for r in run.rows} <= {RUN_PHASE}:
        return []
    bands: list[tuple[float, float, str]] = []
    for row in run.rows:
        second = int(row[ELAPSED_S])
        if bands and bands[-1][2] == row[PHASE] and bands[-1][1] == second:
            bands[-1] = (bands[-1][0], second + 1, row[PHASE])
        else:
            bands.append((second, second + 1, row[PHASE]))
    return bands


BAND_COLOURS = ("#e8eef7", "#f7efe3", "#e9f5e9", "#f5e6ef", "#efefef")


def _decorate(
    ax, run: Run, marks: list[Mark], bands: list[tuple[float, float, str]], label_bands: bool = True
) -> None:
    names = list(dict.fromkeys(name for *_, name in bands))
    top = blended_transform_factory(ax.transData, ax.transAxes)
    for start, end, name in bands:
        ax.axvspan(start, end, color=BAND_COLOURS[names.index(name) % len(BAND_COLOURS)], zorder=0, lw=0)
        if label_bands:
            ax.text(start + 0.2, 0.98, name, transform=top, va="top", ha="left", fontsize=7, color="#555")
    labelled = set()
    for mark in marks:
        colour = "#c0392b" if mark.kind == "restart" else "#8e44ad"
        legend = mark.kind if mark.kind not in labelled else None
        labelled.add(mark.kind)
        ax.axvline(
            mark.x,
            color=colour,
            ls="--",
            lw=1,
            zorder=3,
            label=legend and ("restart" if mark.kind == "restart" else "Redis action"),
        )
        ax.annotate(
            mark.label,
            (mark.x, 0.02),
            xycoords=top,
            xytext=(2, 0),
            textcoords="offset points",
            rotation=90,
            va="bottom",
            ha="left",
            fontsize=7,
            color=colour,
        )
    if run.rows:
        ax.set_xlim(0, int(run.rows[-1][ELAPSED_S]) + 1)
    ax.grid(True, color="#ddd", lw=0.5)
    ax.set_axisbelow(True)


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="#777")


def _figure(rows: int = 1, height: float = 3.4) -> tuple[Figure, list]:
    fig = Figure(figsize=(11, height * rows), dpi=DPI, layout="constrained")
    axes = fig.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
    return fig, list(axes)


def _per_second(ax, x: list[float], bottom: list[float], top: list[float], **style) -> None:
    """Counts per second: a bar each second, or for long runs (where bars would blur into
    thousands of patches) the same as a stepped area."""
    if len(x) <= BARS_UP_TO:
        ax.bar(x, [t - b for b, t in zip(bottom, top, strict=True)], width=0.9, bottom=bottom, **style)
    else:
        ax.fill_between(x, bottom, top, step="mid", lw=0, **style)


def _stacked_bars(
    ax, x: list[float], rows: list[dict], columns: Iterable[str], label: Callable[[str], str]
) -> bool:
    bottom = [0.0] * len(rows)
    drawn = False
    for column in columns:
        values = [count(r.get(column)) for r in rows]
        if not any(values):
            continue
        top = [b + v for b, v in zip(bottom, values, strict=True)]
        _per_second(ax, x, bottom, top, label=label(column))
        bottom = top
        drawn = True
    return drawn


def _finish(ax, run: Run, marks, bands, title: str, ylabel: str, legend: str = "upper right") -> None:
    """A one-axis plot's title, labels, restart marks, phase bands and legend."""
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.set_xlabel("seconds since the start of the run")
    _decorate(ax, run, marks, bands)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc=legend, fontsize=8)


def plot_latency(run: Run, marks, bands) -> Figure:
    fig, (ax, by_endpoint) = _figure(2)
    x = _x(run.rows)
    drawn = False
    for column, style in ((P50_MS, "-"), (P95_MS, "-"), (P99_MS, "-"), (MAX_MS, ":")):
        values = _series(run.rows, column)
        if any(not math.isnan(v) for v in values):
            ax.plot(x, values, style, **_dots(run), lw=1.2, label=column.replace("_ms", ""))
            drawn = True
    timeout = number((run.manifest.get(CONFIG) or {}).get("pong_timeout"))
    for axis in (ax, by_endpoint):
        if timeout and drawn:
            axis.axhline(timeout * 1000, color="#999", ls=":", lw=1, label="pong timeout")
    ax.set_title("Latency of all pings (from each ping's due time), per second")
    for endpoint in run.endpoints:
        rows = endpoint_series(run, endpoint)
        values = _series(rows, P99_MS)
        if any(not math.isnan(v) for v in values):
            by_endpoint.plot(_x(rows), values, **_dots(run), lw=1.2, label=endpoint)
    by_endpoint.set_title("p99 per endpoint, per second")
    for axis in (ax, by_endpoint):
        axis.set_ylabel("ms (log scale)")
        if drawn:
            axis.set_yscale("log")
        else:
            _empty(axis, "no pongs: nothing to draw")
        _decorate(axis, run, marks, bands)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(loc="upper right", fontsize=8)
    by_endpoint.set_xlabel("seconds since the start of the run")
    return fig


def plot_errors(run: Run, marks, bands) -> Figure:
    unmatched = [count(r.get(UNMATCHED)) for r in run.rows]
    # Only where there were any: their own axis, as they can outnumber the errors a hundredfold
    # (a room of N users: N - 1 for each message).
    fig, axes = _figure(3 if any(unmatched) else 2)
    ax, closes, *unmatched_axes = axes
    x = _x(run.rows)
    kinds = (*PING_ERRORS, *CONNECT_ERRORS)
    if not _stacked_bars(ax, x, run.rows, kinds, lambda c: f"{c} (connect)" if c in CONNECT_ERRORS else c):
        _empty(ax, "no failed pings or connects")
    ax.set_title("Failed pings by kind and failed connects, per second (stacked)")
    ax.set_ylabel("per second")
    if not _stacked_bars(closes, x, run.rows, CLOSE_COLUMNS, lambda c: c.replace("_", " ")):
        _empty(closes, "no sockets closed by the server")
    client = [count(r.get(CLIENT_CLOSES)) for r in run.rows]
    if any(client):
        closes.plot(x, client, "k-", lw=1, **_dots(run), label="closed by the client (reconnect)")
    closes.set_title("Socket closes by close code, per second (stacked; 1006 = no close frame)")
    closes.set_ylabel("per second")
    for axis in unmatched_axes:
        _per_second(axis, x, [0.0] * len(x), unmatched, color="#969696", label=UNMATCHED)
        axis.set_title("Frames from the server that answered no ping (unmatched), per second")
        axis.set_ylabel("per second")
    axes[-1].set_xlabel("seconds since the start of the run")
    for axis in axes:
        _decorate(axis, run, marks, bands)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(loc="upper right", fontsize=8)
    return fig


def plot_connections(run: Run, marks, bands) -> Figure:
    fig, (ax,) = _figure(1, 3.6)
    x = _x(run.rows)
    _per_second(
        ax,
        x,
        [0.0] * len(x),
        [count(r.get(CONNECT_OK)) for r in run.rows],
        color="#9ecae1",
        label="connects that succeeded, per second",
    )
    ax.step(x, _series(run.rows, USERS), where="mid", lw=1.5, color="#333", label="users")
    ax.plot(
        x, _series(run.rows, CONNECTIONS), **_dots(run), lw=1.5, color="#2171b5", label="open connections"
    )
    _finish(ax, run, marks, bands, "Users and open websocket connections", "count", legend="lower right")
    return fig


def plot_server(run: Run, marks, bands) -> Figure:
    fig, (ax,) = _figure(1, 3.6)
    columns = [c for c in SERVER_COLUMNS if c != SIG_OVER_CAPACITY_CHANNELS]
    if SERVER_SIGNATURES in not_measured_from_rows(run.rows):
        _empty(ax, "not measured: no server log was read in this run")
    elif not _stacked_bars(ax, _x(run.rows), run.rows, columns, lambda c: SIGNATURE_LABELS.get(c, c)):
        _empty(ax, "none of the failure signatures in Daphne's log")
    _finish(
        ax,
        run,
        marks,
        bands,
        "Failure signatures in Daphne's log, per second (stacked)",
        "log lines / instances",
    )
    return fig


def plot_redis(run: Run, marks, bands) -> Figure:
    fig, (ax,) = _figure(1, 3.6)
    x = _x(run.rows)
    drawn = False
    for column, label in (
        (REDIS_KEYS, "keys"),
        (GROUP_MEMBERS, "group members"),
        (STALE_MEMBERS, "stale members (no live process)"),
        (DEAD_PROCESS_KEYS, "keys of dead processes"),
    ):
        values = _series(run.rows, column)
        if any(not math.isnan(v) for v in values) and (
            column != DEAD_PROCESS_KEYS or any(v > 0 for v in values if not math.isnan(v))
        ):
            ax.plot(x, values, **_dots(run), lw=1.5, label=label)
            drawn = True
    if not drawn:
        _empty(ax, "not measured: no Redis probe in this run (--redis-probe-url)")
    _finish(
        ax,
        run,
        marks,
        bands,
        "Redis: keys, group members and stale members, each second",
        "count",
        "upper left",
    )
    return fig


def plot_rooms(run: Run, marks, bands) -> Figure:
    """Room delivery per second of sending: owed broadcasts received and lost, and copies beyond the first."""
    fig, (ax,) = _figure(1, 3.6)
    x = _x(run.rows)
    settled = any(number(r.get(BROADCASTS_RECEIVED)) is not None for r in run.rows)
    if not any(count(r.get(BROADCASTS)) for r in run.rows) and not settled:
        _empty(ax, "no room broadcasts in this run")
    elif not settled:
        why = ((run.summary or {}).get(NOT_MEASURED) or {}).get(DELIVERIES, "the run did not settle them")
        _empty(ax, f"not measured: {why}")
    else:
        received = [count(r.get(BROADCASTS_RECEIVED)) for r in run.rows]
        lost = [count(r.get(BROADCASTS_LOST)) for r in run.rows]
        _per_second(ax, x, [0.0] * len(x), received, color="#74c476", label="received")
        _per_second(
            ax,
            x,
            received,
            [a + b for a, b in zip(received, lost, strict=True)],
            color="#de2d26",
            label="lost",
        )
        duplicated = [count(r.get(BROADCASTS_DUPLICATED)) for r in run.rows]
        if any(duplicated):
            ax.plot(x, duplicated, "k-", lw=1, **_dots(run), label="duplicated")
    _finish(
        ax,
        run,
        marks,
        bands,
        "Room broadcasts owed to members, by the second they were sent (stacked)",
        "broadcasts",
    )
    return fig


PLOTS = (
    ("latency", plot_latency, "Latency p50/p95/p99/max of all pings (log scale), and p99 per endpoint."),
    (
        "errors",
        plot_errors,
        "Failed pings by kind, failed connects, socket closes by close code and, where there were any, "
        "frames that answered no ping.",
    ),
    ("connections", plot_connections, "Users, open connections and successful connects."),
    ("server", plot_server, "Daphne's failure signatures, from its log."),
    ("redis", plot_redis, "Redis keys, group members, and members whose process is gone."),
    (
        "rooms",
        plot_rooms,
        "Room delivery: every broadcast a member was owed, received or lost, settled at the run's end.",
    ),
)


def save_png(fig: Figure, path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=DPI)
    return path.read_bytes()
