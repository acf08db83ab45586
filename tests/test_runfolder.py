"""load.runfolder: the run-folder package imports nothing of the suite, reads back what a
killed run left, and derives restarts from events as both the recorder and the report do."""

import ast
import json
import re
import subprocess
import sys

import pytest

from load.runfolder import names
from load.runfolder.derive import restarts_from_events, totals_from_rows
from load.runfolder.files import AppendOnlyCsv, write_json
from load.runfolder.loader import NotARunFolder, load_run
from locustrun import REPO


def test_the_package_imports_nothing_of_the_suite():
    code = (
        "import sys; import load.runfolder.names, load.runfolder.files, load.runfolder.loader, load.runfolder.derive, "
        "load.runfolder.manifest, load.runfolder.eventlog, load.runfolder.runids; "
        "print(sorted({m.split('.')[1] for m in sys.modules if m.startswith('load.')}))"
    )
    # -S: without site, no .pth file imports load.user for Locust's --help before this runs
    out = subprocess.run(
        [sys.executable, "-S", "-c", f"import sys; sys.path[:0] = {sys.path!r}; {code}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == "['runfolder']"


def _action(event: str, action: str, at_s: float, ts: float, **fields) -> dict:
    return {"ts": ts, names.EVENT: event, "action": action, "at_s": at_s, **fields}


FILE_NAME = re.compile(r"\.(csv|json|jsonl|log|html|png|txt)$")
# Files that are in no run folder: the pinned stacks' requirements files and pip's build log.
NOT_RUN_FOLDER_FILES = {
    "load/config/settings.py: .txt",
    "load/supervise/targetstack.py: .log",
    "load/user/chaostab/web.py: index.html",  # the chaos tab's page, shipped in the package
}


def test_no_file_of_a_run_folder_is_named_outside_the_names_module():
    """Every file name a run folder holds is spelled once, in runfolder/names.py."""
    spelled = []
    for path in sorted((REPO / "load").rglob("*.py")):
        if path == REPO / "load" / "runfolder" / "names.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            text = node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None
            if text and FILE_NAME.search(text) and " " not in text:
                if f"{path.relative_to(REPO)}: {text}" not in NOT_RUN_FOLDER_FILES:
                    spelled.append(f"{path.relative_to(REPO)}:{node.lineno}: {text}")
    assert spelled == []


def test_restarts_pair_each_done_with_its_begin_and_leave_out_the_rest():
    events = [
        _action(names.ACTION_BEGIN, names.RESTART, 5, 105.0),
        {"ts": 105.1, names.EVENT: names.RESTART_BEGIN, "instance": "daphne-0"},
        _action(
            names.ACTION_DONE,
            names.RESTART,
            5,
            106.0,
            outcome=[
                {"instance": "daphne-0", "down_seconds": 0.8},
                {"instance": "daphne-1", "down_seconds": 1.2},
            ],
        ),
        _action(names.ACTION_BEGIN, names.REDIS_FLUSH, 7, 107.0),
        _action(names.ACTION_DONE, names.REDIS_FLUSH, 7, 107.1, outcome=None),
        _action(names.ACTION_BEGIN, names.ASGI_THREADS, 10, 110.0, threads=4),
        _action(
            names.ACTION_DONE, names.ASGI_THREADS, 10, 111.0, threads=4, outcome=[{"instance": "daphne-0"}]
        ),
        _action(names.ACTION_BEGIN, names.RESTART, 15, 115.0),
        _action(names.ACTION_FAILED, names.RESTART, 15, 116.0, error="boom"),
    ]
    restarts = restarts_from_events(events, "hard", "all")
    assert [(r["ts"], r["action"], r["threads"]) for r in restarts] == [
        (105.0, names.RESTART, None),
        (110.0, names.ASGI_THREADS, 4),
    ]
    assert restarts[0]["down_s"] == 1.2 and restarts[0]["instances"] == ["daphne-0", "daphne-1"]
    assert restarts[1]["down_s"] is None  # one instance did not say: no false 0
    assert {r["mode"] for r in restarts} == {"hard"}


def test_a_killed_run_reads_back_up_to_its_last_whole_row(tmp_path):
    table = AppendOnlyCsv(tmp_path / names.TIMESERIES_CSV, names.TIMESERIES_COLUMNS)
    table.write_rows(
        [
            {
                names.EPOCH_S: 100 + i,
                names.ELAPSED_S: i,
                names.PINGS: 10,
                names.PONGS: 9,
                names.PONG_TIMEOUT: 1,
                names.P99_MS: 5 + i,
                names.PHASE: names.RUN_PHASE,
            }
            for i in range(3)
        ]
    )
    table.close()
    with open(tmp_path / names.TIMESERIES_CSV, "a") as handle:
        handle.write("x,103,3")  # the line being written when the run was killed
    (tmp_path / names.EVENTS_JSONL).write_text(
        json.dumps({"ts": 100, names.EVENT: names.RUN_START}) + '\n{"ts": 1'
    )
    write_json(tmp_path / names.MANIFEST_JSON, {names.RUN_ID: "r1", names.STARTED_AT: 100.2})

    run = load_run(tmp_path)
    assert (len(run.rows), len(run.events), run.run_id, run.finished, run.t0) == (3, 1, "r1", False, 100)
    totals = totals_from_rows(run.rows)
    assert (totals[names.PINGS], totals[names.PONGS], totals[names.ERRORS], totals[names.P99_MS]) == (
        30,
        27,
        3,
        7.0,
    )


def test_a_folder_without_timeseries_is_not_a_run_folder(tmp_path):
    with pytest.raises(NotARunFolder, match=names.TIMESERIES_CSV):
        load_run(tmp_path)
