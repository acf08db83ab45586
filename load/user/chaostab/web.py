"""The chaos tab in Locust's web UI, added as Locust supports extension: a tab in its own
page (template_args' extended_tabs and extended_tables, rows in /stats/requests'
extended_stats), the swarm's files in the Download Data tab (downloads.py), and a Flask
blueprint on environment.web_ui.app for the charts, the buttons and the files.

Every route is behind Locust's login when --web-login is on. The buttons act only on the
target given at start (--stack local, --agent-url, --restart-cmd): a request names an
action and its restart mode and instance, never a command, a file or a URL.
"""

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, jsonify, request, send_from_directory

from load.chaos.controller import NOTHING_TO_ACT_ON, Refused
from load.runfolder.names import ASGI_THREADS, RESTART
from load.user.chaostab.downloads import download, links
from load.user.chaostab.view import LAYOUT, Findings, series, table_rows, with_durations

logger = logging.getLogger("load")

STATIC = Path(__file__).parent / "static"
TAB_KEY = "chaos"
TAB_COLUMNS = [
    ("time", "time (UTC)"),
    ("t_s", "+s"),
    ("event", "event"),
    ("who", "who"),
    ("details", "details"),
]
INDEX_ENDPOINT = "locust.index"
STATS_PATH = "/stats/requests"
MAX_THREADS = 256


class ChaosTab:
    def __init__(self, environment: Any, current_run: Callable[[], Any]):
        self.env = environment
        self.current_run = current_run
        self.findings = Findings()
        options = environment.parsed_options
        self.base = (getattr(options, "web_base_path", "") or "").rstrip("/")
        controllable = options.stack == "local" or options.agent_url or options.restart_cmd
        self.no_target = "" if controllable else NOTHING_TO_ACT_ON

    def install(self) -> None:
        web_ui = self.env.web_ui
        web_ui.template_args["extended_tabs"] = [{"title": "Chaos", "key": TAB_KEY}]
        web_ui.template_args["extended_tables"] = [
            {"key": TAB_KEY, "structure": [{"key": k, "title": t} for k, t in TAB_COLUMNS]}
        ]
        web_ui.template_args["extended_csv_files"] = links(self.base)
        web_ui.app.register_blueprint(self.blueprint(web_ui.auth_required_if_enabled))
        web_ui.app.after_request(self.extend_locust_pages)

    def blueprint(self, protect: Callable) -> Blueprint:
        page = Blueprint("chaos", __name__, url_prefix=f"{self.base}/chaos")
        routes: list[tuple[str, Callable, list[str]]] = [
            ("/", self.page, ["GET"]),
            ("/static/<path:name>", self.static, ["GET"]),
            ("/layout", lambda: jsonify(LAYOUT), ["GET"]),
            ("/series", self.series, ["GET"]),
            ("/events", self.events, ["GET"]),
            ("/restart", self.restart, ["POST"]),
            ("/threads", self.threads, ["POST"]),
            ("/files/<name>", lambda name: download(self.current_run(), name), ["GET"]),
        ]
        for rule, view, methods in routes:
            endpoint = rule.strip("/").split("/")[0] or "page"
            page.add_url_rule(rule, endpoint, protect(view), methods=methods)
        return page

    # -- Locust's own page ------------------------------------------------------------------

    def extend_locust_pages(self, response: Response) -> Response:
        """Locust's page loads the tab's script; its stats poll carries the events table."""
        if (
            request.endpoint == INDEX_ENDPOINT
            and response.status_code == 200
            and not response.direct_passthrough
        ):
            script = f'<script src="{self.base}/chaos/static/chaos.js"></script></body>'
            response.set_data(response.get_data(as_text=True).replace("</body>", script, 1))
        elif request.path == f"{self.base}{STATS_PATH}" and response.is_json:
            body = response.get_json()
            body["extended_stats"] = [*body.get("extended_stats", []), {"key": TAB_KEY, "data": self.table()}]
            response.set_data(json.dumps(body))
        return response

    def table(self) -> list[dict]:
        run = self.current_run()
        return table_rows(with_durations(run.recent_events, run.started)) if run else []

    # -- the blueprint's routes -----------------------------------------------------------------

    def page(self) -> Response:
        return send_from_directory(STATIC, "index.html")

    def static(self, name: str) -> Response:
        return send_from_directory(STATIC, name)

    def series(self) -> Response | tuple[Response, int]:
        try:
            since = int(request.args.get("since", "0"))
        except ValueError:
            return jsonify({"error": "since: a second (epoch s), e.g. since=0"}), 400
        return jsonify(series(self.current_run(), since))

    def events(self) -> Response:
        run = self.current_run()
        body: dict = {"run_id": None, "events": [], "findings": [], "not_checked": {}}
        if run is not None:
            body.update(
                {
                    "run_id": run.manifest.get("run_id"),
                    "started": run.started,
                    "events": with_durations(run.recent_events, run.started),
                    **self.findings.of(run.run_dir, time.time()),
                }
            )
        body["controls"] = {
            "refused": self.refusal(run),
            "busy": bool(run and run.controller and run.controller.busy),
        }
        if run is not None and run.controller is not None:
            body["controls"]["instances"] = run.controller.target.instance_count()
        return jsonify(body)

    def refusal(self, run: Any) -> str | None:
        """Why the buttons cannot act now; None when they can."""
        if self.no_target:
            return self.no_target
        if run is None:
            return "no run under way: start a swarm first (an action belongs to a run's events.jsonl)"
        if run.closing or run.done:
            return "the run has ended: start a swarm to act again"
        return None

    def restart(self) -> tuple[Response, int]:
        form = request.get_json(silent=True) or request.form
        return self.act(RESTART, form)

    def threads(self) -> tuple[Response, int]:
        form = request.get_json(silent=True) or request.form
        text = str(form.get("threads", "")).strip()
        if text not in ("", "unset") and not (text.isdigit() and 1 <= int(text) <= MAX_THREADS):
            message = f"threads={text!r}: ASGI_THREADS is a whole number from 1 to {MAX_THREADS}, or unset"
            return jsonify({"accepted": False, "reason": message}), 400
        return self.act(ASGI_THREADS, form, int(text) if text.isdigit() else None)

    def act(self, kind: str, form: Any, threads: int | None = None) -> tuple[Response, int]:
        run = self.current_run()
        reason = self.refusal(run)
        try:
            if reason:
                raise Refused(reason)
            fields = run.act(kind, str(form.get("mode", "")), str(form.get("which", "")), threads)
        except Refused as exc:
            logger.warning("chaos tab: %s refused: %s", kind, exc)
            return jsonify({"accepted": False, "reason": str(exc)}), 409
        logger.info("chaos tab: %s asked for in the web UI: %s", kind, fields)
        return jsonify({"accepted": True, "action": fields}), 202


def install_chaos_tab(environment: Any, current_run: Callable[[], Any]) -> ChaosTab | None:
    """The tab, where Locust serves its web UI and the run is whole (not on a worker)."""
    from locust.runners import WorkerRunner  # here: importing locust patches gevent in, too late for tests

    if environment.web_ui is None or isinstance(environment.runner, WorkerRunner):
        return None
    tab = ChaosTab(environment, current_run)
    tab.install()
    return tab
