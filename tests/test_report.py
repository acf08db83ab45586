"""report.html and comparison.html from real runs: one that finished, one SIGKILLed mid-way,
and two at different ASGI_THREADS; the report opened in a real headless Chromium. Figures a
real run seldom shows (unmatched frames, a folder older than a column) from hand-made folders."""

import html
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from load.analysis.headline import NO_UNMATCHED_COLUMN
from load.config.settings import ConfigError
from load.report.compare import ENDPOINT_METRICS, RUN_METRICS, write_comparison
from load.report.numbers import fmt
from load.report.plots import PLOTS, plot_errors
from load.report.runreport import write_report
from locustrun import LocustProcess, expected_exit_code, number, read_csv, read_json, rows_so_far, run_folder
from runfolders import second, write_run
from support import made_once, wait_until

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
)
POOL, SYNC = "/ws/ping/pool/?work_ms=100", "/ws/ping/sync/?work_ms=100"
COMMON = ("--headless", "--stack", "local", "--pong-timeout", "1", "--only-summary")
# Only what a page may point at: its own data URIs. No script, no address outside the file.
EXTERNAL = re.compile(
    r"""(?:src|href)\s*=\s*["'](?!data:)|url\(\s*["']?(?!data:)|<script|<link|@import""", re.I
)


@pytest.fixture(scope="session")
def runs(tmp_path_factory, worker_id):
    """The four runs, made once per session (by whichever worker asks first), copied for
    this worker: its tests write reports into them."""
    shared = made_once(tmp_path_factory, worker_id, "report-runs", make_runs)
    own = tmp_path_factory.mktemp("runs")
    return {name: Path(shutil.copytree(folder, own / name / folder.name)) for name, folder in shared.items()}


def make_runs(base: Path) -> dict[str, Path]:
    """Four light runs at once (about 20 s together): finished, killed, ASGI_THREADS 1 and 4."""

    def start(name: str, *args: str) -> LocustProcess:
        return LocustProcess(base, *COMMON, "--results-dir", str(base / name), *args, name=name)

    processes = {
        "finished": start(
            "finished",
            "-u",
            "6",
            "-r",
            "6",
            "-t",
            "7s",
            "--restart-at",
            "3",
            "--paths",
            "/ws/ping/:2,/ws/room/r/,/ws/ping/?sleep_ms=5000",
        ),
        "killed": start(
            "killed",
            "-u",
            "4",
            "-r",
            "4",
            "-t",
            "60s",
            "--restart-at",
            "2",
            "--paths",
            "/ws/ping/,/ws/room/k/",
        ),
        **{
            f"threads{n}": start(
                f"threads{n}",
                "-u",
                "6",
                "-r",
                "6",
                "-t",
                "7s",
                "--stack-daphne",
                "1",
                "--asgi-threads",
                str(n),
                "--kill-after",
                "2",  # the sync consumers busy at the stop never exit on SIGTERM (FM-4)
                "--paths",
                f"{POOL}:2,{SYNC}",
            )
            for n in (1, 4)
        },
    }
    try:
        killed = processes["killed"]
        wait_until(lambda: rows_so_far(base / "killed"), 40, "the killed run's first second")
        for process in processes.values():
            process.note_descendants()
        wait_until(
            lambda: len(rows_so_far(base / "killed")) >= 3,
            30,
            "three seconds in the killed run's timeseries.csv",
        )
        os.kill(killed.child.pid, signal.SIGKILL)
        assert killed.wait(10) == -signal.SIGKILL
        for name in ("finished", "threads1", "threads4"):
            code = processes[name].wait(60)
            assert code == expected_exit_code(run_folder(base / name)), processes[name].output()[-3000:]
        assert processes["finished"].child.process.returncode == 1  # its 5 s pings always time out: failures
        return {name: run_folder(base / name) for name in processes}
    finally:
        for process in processes.values():
            process.stop()


P99 = 8  # the p99 column of the endpoint table
UNMATCHED = 10


def total_row(page: str) -> list[str]:
    """The cells of the endpoint table's total row ("all"), as text."""
    (table,) = [t for t in page.split("<table>") if "errors by kind, closes</th>" in t]
    (row,) = re.findall(r'<tr class="total">(.*?)</tr>', table)
    return [html.unescape(cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row)]


def images(page: str) -> list[str]:
    return re.findall(r"<img [^>]*>", page)


def assert_self_contained(page: str, plots: int) -> None:
    assert EXTERNAL.search(page) is None, EXTERNAL.search(page).group(0)
    found = images(page)
    assert len(found) == plots
    assert all('src="data:image/png;base64,' in tag for tag in found)


def test_report_of_a_finished_run(runs):
    folder = runs["finished"]
    page_path = write_report(folder)
    page = page_path.read_text()
    summary = read_json(folder / "summary.json")

    assert page_path == folder / "report.html"
    assert sorted(p.name for p in (folder / "plots").iterdir()) == sorted(f"{name}.png" for name, *_ in PLOTS)
    assert_self_contained(page, len(PLOTS))
    assert summary["run_id"] in page and "did not finish" not in page
    for endpoint in summary["endpoints"]:
        assert html.escape(endpoint) in page
    # The total row shows the merged totals and the merged (exact) p99, not a sum or a bound of seconds.
    total = total_row(page)
    assert total[:4] == [
        "all",
        fmt(summary["all"]["pings"]),
        fmt(summary["all"]["pongs"]),
        fmt(summary["all"]["errors"]),
    ]
    assert total[P99] == fmt(summary["all"]["p99_ms"])
    assert "Percentiles are merged" in page
    (restart,) = summary["restarts"]
    assert "+3 s" in page and "<h2>Findings</h2>" in page
    assert f"Daphne was down {fmt(restart['down_s'])} s, from the signal" in page
    assert "daphne 4.2.3" in page  # versions from the manifest


def test_report_of_a_run_killed_mid_way(runs):
    folder = runs["killed"]
    assert not (folder / "summary.json").exists()
    page = write_report(folder).read_text()
    rows = read_csv(folder / "timeseries.csv")

    assert_self_contained(page, len(PLOTS))
    assert "This run did not finish" in page
    total = total_row(page)
    assert total[:2] == [
        "all",
        fmt(sum(number(r["pings"]) for r in rows)),
    ]  # counted from the seconds written
    p99 = max(number(r["p99_ms"]) for r in rows if r["p99_ms"])
    assert total[P99] == f"≤ {fmt(p99)}" and "largest per-second value" in page  # an upper bound, said so
    assert "+2 s" in page  # the restart, rebuilt from events.jsonl


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def console_errors(stderr: str) -> list[str]:
    return [
        line
        for line in stderr.splitlines()
        if any(mark in line for mark in ("Uncaught", "Failed to load", "ERR_"))
    ]


def test_reports_render_in_headless_chromium(runs, tmp_path):
    if not CHROMIUM.exists():
        message = "chromium not installed: apt-get install chromium"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    for name in ("finished", "killed"):
        page = write_report(runs[name])
        # A copy with a probe: once loaded, it writes how many images decoded with a size.
        probe = tmp_path / f"{name}-probe.html"
        probe.write_text(
            page.read_text().replace(
                "</body>",
                (
                    "<script>window.addEventListener('load', () => { const all = [...document.images];"
                    " const ok = all.filter(i => i.complete && i.naturalWidth > 0).length;"
                    " const out = document.createElement('p'); out.id = 'images-rendered';"
                    " out.textContent = ok + '/' + all.length; document.body.appendChild(out); });</script></body>"
                ),
            )
        )
        dom = chromium(
            "--run-all-compositor-stages-before-draw",
            "--virtual-time-budget=5000",
            "--dump-dom",
            probe.as_uri(),
            profile=tmp_path / f"{name}-profile-dom",
        )
        assert dom.returncode == 0, dom.stderr[-2000:]
        assert f'<p id="images-rendered">{len(PLOTS)}/{len(PLOTS)}</p>' in dom.stdout, dom.stdout[-500:]
        assert console_errors(dom.stderr) == []
        # The page itself (it has no script: assert_self_contained), as a reader sees it.
        shot = tmp_path / f"{name}.png"
        result = chromium(
            "--window-size=1200,3000",
            f"--screenshot={shot}",
            page.as_uri(),
            profile=tmp_path / f"{name}-profile-shot",
        )
        assert result.returncode == 0, result.stderr[-2000:]
        assert console_errors(result.stderr) == []
        assert shot.stat().st_size > 100_000  # text, tables and plots, not a blank page


def test_comparison_of_runs_at_two_asgi_threads(runs, tmp_path):
    folders = [runs["threads4"], runs["threads1"]]
    page = write_comparison(folders, tmp_path / "sweep", "asgi_threads").read_text()
    rows = read_csv(tmp_path / "sweep" / "comparison.csv")

    assert [r["asgi_threads"] for r in rows] == ["1", "4"]  # in knob order
    assert [r["run_id"] for r in rows] == [
        read_json(f / "manifest.json")["run_id"] for f in reversed(folders)
    ]
    for metric, _ in ENDPOINT_METRICS:
        assert {metric, f"{metric}[{POOL}]", f"{metric}[{SYNC}]"} <= set(rows[0])
    assert {"recovery_s_mean", "stale_members_max", "server_kills"} <= set(rows[0])
    for row, folder in zip(rows, reversed(folders), strict=True):
        summary = read_json(folder / "summary.json")
        assert int(float(row["pings"])) == summary["all"]["pings"]
        assert float(row[f"p99_ms[{POOL}]"]) == pytest.approx(summary["endpoints"][POOL]["p99_ms"], abs=0.001)

    plots = len(ENDPOINT_METRICS) + len(RUN_METRICS)
    assert_self_contained(page, plots)
    assert len(list((tmp_path / "sweep" / "plots").glob("*.png"))) == plots
    assert (
        f"thread-pool endpoint {html.escape(POOL)}" in page
        and f"The sync endpoint {html.escape(SYNC)}" in page
    )
    assert "not a significance test" in page

    # Without a knob named, the options that differ are found (not where the runs went).
    write_comparison(folders, tmp_path / "found")
    header = read_csv(tmp_path / "found" / "comparison.csv")[0]
    assert "asgi_threads" in header and "results_dir" not in header and "targets" not in header


def test_a_folder_without_timeseries_is_not_a_run_folder(tmp_path):
    with pytest.raises(ConfigError, match="not a run folder"):
        write_report(tmp_path)
    with pytest.raises(ConfigError, match="not a run folder"):
        write_comparison([tmp_path], tmp_path / "out")


def test_unmatched_frames_in_the_table_the_findings_and_their_own_axis(tmp_path):
    room = tmp_path / "room"  # 80 frames in 4 seconds answered no ping
    room.mkdir()
    run = write_run(room, [second(n, unmatched=20 if 3 <= n < 7 else 0) for n in range(10)], summary={})
    page = write_report(room).read_text()
    assert total_row(page)[UNMATCHED] == "80" and 'id="finding-unmatched-replies"' in page
    *_, frames = plot_errors(run, [], []).axes
    assert frames.get_title() == "Frames from the server that answered no ping (unmatched), per second"
    assert sum(bar.get_height() for bar in frames.patches) == 80
    quiet = tmp_path / "quiet"  # measured, and none: 0, and no axis for them
    quiet.mkdir()
    run = write_run(quiet, [second(n) for n in range(10)], summary={})
    assert total_row(write_report(quiet).read_text())[UNMATCHED] == "0"
    assert len(plot_errors(run, [], []).axes) == 2


def test_a_folder_older_than_the_unmatched_column_says_not_measured_not_0(tmp_path):
    for finished in (True, False):
        folder = tmp_path / ("finished" if finished else "killed")
        folder.mkdir()
        rows = [second(n) for n in range(10)]
        write_run(folder, rows, summary={} if finished else None, without=("unmatched",))
        page = write_report(folder).read_text()
        assert total_row(page)[UNMATCHED] == "not measured"
        assert html.escape(f"unmatched: not measured ({NO_UNMATCHED_COLUMN})") in page
