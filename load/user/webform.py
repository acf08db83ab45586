"""What Locust's web form may change: not the options that run commands or name files.

Locust's POST /swarm copies every form field whose name is a parsed option into
environment.parsed_options, shown in the form or not (locust/web.py, `case _ if key in
parsed_options_dict`). So hiding an option from the form (include_in_web_ui=False) does not
protect it: whoever reaches the web UI could post restart_cmd='...' and have the Locust host
run it. Two guards close that door:

- a Flask before_request on the web UI's app refuses (HTTP 400, one line) a POST /swarm that
  would change an option the form does not show: every option of Locust's and of ours other
  than the form's own fields and the suite options shown in it;
- at test_start, the suite's start-only options (load.config.options.START_ONLY) are put back to
  their start values should anything have changed them anyway.

The form cannot show an option read-only (Locust 2.47 renders every shown option as an
editable field), so start-only options are hidden from it and their values are logged once
at start, which the web UI's Logs tab shows.
"""

import copy
import logging
from typing import Any

from flask import jsonify, request
from locust.runners import WorkerRunner

from load.config.options import FORM_FIELDS, SECRETS, START_ONLY, mask_options

logger = logging.getLogger("load")

SWARM_ENDPOINT = "locust.swarm"  # Locust's blueprint "locust", view swarm()
# Fields of Locust's own form, which its swarm handler reads by name.
LOCUST_FORM_FIELDS = frozenset(
    {"user_count", "spawn_rate", "host", "run_time", "user_classes", "shape_class", "profile"}
)
SUITE_FORM_FIELDS = FORM_FIELDS


def changes(start: Any, text: str) -> bool:
    """Whether Locust, given `text` from the form, would store a value other than `start`."""
    if start is None:
        return text != ""
    if isinstance(start, bool):
        return (text == "true") != start
    if isinstance(start, list):
        return text != ",".join(map(str, start))
    try:
        return type(start)(text) != start
    except (TypeError, ValueError):
        return True


def refusal(key: str, text: str) -> str:
    """One line: which option, and where it can be set instead."""
    shown = "<hidden>" if key in SECRETS else repr(mask_options({key: text})[key])
    where = "on the command line, in an environment variable or a config file"
    if key in START_ONLY:
        where = (
            f"on the command line (--{key.replace('_', '-')}), as LOCUST_{key.upper()} or in a config file"
        )
    return f"{key}={shown}: the web form cannot set this option; set it {where} when starting Locust"


class WebFormGuard:
    """Installed on the master or local runner when Locust serves its web UI."""

    def __init__(self, environment: Any):
        self.env = environment
        self.at_start = copy.deepcopy(vars(environment.parsed_options))
        environment.web_ui.app.before_request(self.check_swarm_form)
        environment.events.test_start.add_listener(self.restore_start_only)
        set_at_start = {
            k: v for k, v in mask_options(self.at_start).items() if k in START_ONLY and v not in ("", None)
        }
        if set_at_start:
            logger.info(
                "set at start, not in the web form: %s",
                ", ".join(f"{k}={v!r}" for k, v in sorted(set_at_start.items())),
            )

    def check_swarm_form(self):
        if request.method != "POST" or request.endpoint != SWARM_ENDPOINT:
            return None
        for key, text in request.form.items():
            protected = key in self.at_start and key not in LOCUST_FORM_FIELDS | SUITE_FORM_FIELDS
            if protected and changes(self.at_start[key], text):
                message = refusal(key, text)
                logger.warning("web UI: refused a swarm request: %s", message)
                return jsonify({"success": False, "message": message, "host": self.env.host}), 400
        return None

    def restore_start_only(self, **_kwargs) -> None:
        """Defence in depth: the start-only options a run uses are the ones given at start."""
        options = self.env.parsed_options
        for key in sorted(START_ONLY):
            if getattr(options, key, None) != self.at_start.get(key):
                logger.error("%s was changed after start; the run uses the value given at start", key)
                setattr(options, key, copy.deepcopy(self.at_start.get(key)))


def guard_web_form(environment: Any) -> WebFormGuard | None:
    """Install the guard where a web UI serves the suite's options; None elsewhere."""
    options = environment.parsed_options
    if environment.web_ui is None or options is None or not hasattr(options, "ping_rate"):
        return None
    if isinstance(environment.runner, WorkerRunner):
        return None
    return WebFormGuard(environment)
