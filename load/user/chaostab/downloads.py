"""The current swarm's files in Locust's Download Data tab: links (template_args'
extended_csv_files) to /chaos/files/<name>, which serves only the names in SWARM_DOWNLOADS
from the folder of the run under way or last ended, never a path from the request."""

from typing import Any

from flask import Response, jsonify, send_file

from load.runfolder.names import (
    ENDPOINTS_CSV,
    EVENTS_JSONL,
    REPORT_HTML,
    SUMMARY_JSON,
    SWARM_DOWNLOADS,
    TIMESERIES_CSV,
)

TITLES = {
    TIMESERIES_CSV: "Download this swarm's per-second figures",
    ENDPOINTS_CSV: "Download this swarm's per-second figures by endpoint",
    EVENTS_JSONL: "Download this swarm's events (restarts, signals, exits)",
    SUMMARY_JSON: "Download this swarm's summary (when it has ended)",
    REPORT_HTML: "Download this swarm's chaos report (when it has ended)",
}
WRITTEN_AT_END = (SUMMARY_JSON, REPORT_HTML)


def links(base: str) -> list[dict[str, str]]:
    return [
        {"href": f"{base}/chaos/files/{name}", "title": f"{TITLES[name]}: {name}"} for name in SWARM_DOWNLOADS
    ]


def download(run: Any, name: str) -> Response | tuple[Response, int]:
    """The file `name` of the current swarm's run folder, as an attachment named after the run."""
    if name not in SWARM_DOWNLOADS:
        return jsonify({"error": f"{name!r}: not a file of a run; one of {', '.join(SWARM_DOWNLOADS)}"}), 404
    if run is None:
        return jsonify({"error": "no swarm has started yet: its files exist once it runs"}), 404
    path = run.run_dir / name
    if not path.is_file():
        when = "when the swarm ends" if name in WRITTEN_AT_END else "within a few seconds of the start"
        return jsonify(
            {"error": f"{name} of {run.run_dir.name} is not written yet: it is written {when}"}
        ), 404
    return send_file(path, as_attachment=True, download_name=f"{run.run_dir.name}-{name}")
