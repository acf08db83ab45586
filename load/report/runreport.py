"""report.html for one run folder: plots, the headline figures and what the data shows.

Reads only what the run wrote (timeseries.csv, endpoints.csv, exceptions.csv, events.jsonl,
manifest.json and, when the run finished, summary.json) and writes run_dir/report.html and
run_dir/plots/*.png. The page opens offline and can be mailed or attached to an issue as one
file.

Kept free of locust and gevent: `python -m load report` runs in a plain process.
"""

from pathlib import Path

from load.analysis.detectors import diagnose
from load.analysis.headline import headline, load_run
from load.report.findings import findings
from load.report.page import build_page
from load.report.plots import PLOTS, chaos_marks, phase_bands, save_png
from load.runfolder.names import (
    PLOTS_DIR,
    REPORT_HTML,
    plot_png,
)


def write_report(run_dir: Path) -> Path:
    """Write run_dir/report.html (self-contained) and run_dir/plots/*.png; returns the page's path."""
    run = load_run(run_dir)
    head = headline(run)
    marks, bands = chaos_marks(run), phase_bands(run)
    figures = []
    for name, draw, caption in PLOTS:
        png = save_png(draw(run, marks, bands), run.folder / PLOTS_DIR / plot_png(name))
        figures.append((name, caption, png))
    page = run.folder / REPORT_HTML
    page.write_text(build_page(run, head, diagnose(run), findings(run, head), figures), encoding="utf-8")
    return page
