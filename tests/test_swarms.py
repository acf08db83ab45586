"""The web UI as a place to work in, swarm after swarm: each swarm gets its own run folder,
named from its own start and the form's label, with its own Locust CSVs, closed when it ends;
the stack started with --stack local keeps its logs and events in a stack-<time> folder; and
Locust's Download Data tab links the current swarm's files, served from a fixed list only."""

import json
from pathlib import Path

import requests

from load.runfolder.names import (
    EVENTS_JSONL,
    READY,
    SERVER_DIR,
    STACK_FOLDER_PREFIX,
    SUMMARY_JSON,
    TIMESERIES_CSV,
)
from load.supervise.procs import free_port
from locustrun import read_csv, read_json, run_folders
from support import wait_until, web_page


def locust_requests(folder: Path) -> int:
    """Locust's own request count of the swarm written to folder (its Aggregated row)."""
    (total,) = [row for row in read_csv(folder / "locust_stats.csv") if row["Name"] == "Aggregated"]
    return int(total["Request Count"])


def swarm(url: str, results: Path, label: str, before: list[Path]) -> Path:
    """Start a swarm from the form with this label; its run folder once it has written rows."""
    form = {"user_count": "4", "spawn_rate": "4", "run_label": label}
    reply = requests.post(url + "/swarm", data=form, timeout=10)
    assert reply.status_code == 200 and reply.json()["success"], reply.text
    (folder,) = wait_until(
        lambda: [f for f in run_folders(results) if f not in before], 15, f"{label}'s folder"
    )
    wait_until(lambda: len(rows(folder)) >= 3, 20, f"three seconds of {label}")
    return folder


def rows(folder: Path) -> list[dict]:
    path = folder / TIMESERIES_CSV
    return read_csv(path) if path.is_file() else []


def stop(url: str, folder: Path) -> dict:
    assert requests.post(url + "/stop", timeout=10).ok  # Locust 2.47: POST only
    return read_json(
        wait_until(lambda: (folder / SUMMARY_JSON).is_file() and folder / SUMMARY_JSON, 30, "summary")
    )


def test_each_swarm_from_the_web_ui_has_its_own_folder_locust_csvs_and_downloads(locust, tmp_path):
    results, port = tmp_path / "results", free_port()
    run = locust(
        "--stack", "local", "--stack-daphne", "1", "--web-host", "127.0.0.1", "--web-port", str(port),
        "--results-dir", str(results), "--run-label", "from-cli", "--pong-timeout", "2",
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    page = wait_until(lambda: web_page(url + "/"), 60, f"the web UI; output:\n{run.output()[-2000:]}")
    run.note_descendants()
    assert f"/chaos/files/{TIMESERIES_CSV}" in page.text  # Locust's Download Data tab links it
    (stack_dir,) = results.glob(f"{STACK_FOLDER_PREFIX}-*")
    assert list((stack_dir / SERVER_DIR).glob("daphne-0*.log")) and run_folders(results) == []
    stack_events = [json.loads(line) for line in (stack_dir / EVENTS_JSONL).read_text().splitlines()]
    assert any(e["event"] == READY for e in stack_events)
    nothing_yet = requests.get(f"{url}/chaos/files/{TIMESERIES_CSV}", timeout=5)
    assert nothing_yet.status_code == 404 and "no swarm has started" in nothing_yet.json()["error"]

    first = swarm(url, results, "first", [])
    assert first.name.endswith("-first") and read_json(first / "manifest.json")["run_id"] == first.name
    live = requests.get(f"{url}/chaos/files/{TIMESERIES_CSV}", timeout=5)
    assert live.status_code == 200 and f"{first.name}-{TIMESERIES_CSV}" in live.headers["Content-Disposition"]
    assert (first / TIMESERIES_CSV).read_text().startswith(live.text)  # the file itself, as far as written
    early = requests.get(f"{url}/chaos/files/{SUMMARY_JSON}", timeout=5)
    assert early.status_code == 404 and "when the swarm ends" in early.json()["error"]
    for name in ["manifest.json", "..%2Fmanifest.json", "server", "locust.log"]:
        assert requests.get(f"{url}/chaos/files/{name}", timeout=5).status_code == 404, name
    first_summary = stop(url, first)
    first_stats = (first / "locust_stats.csv").read_text()
    first_history = (first / "locust_stats_history.csv").read_text()
    assert locust_requests(first) > 0

    second = swarm(url, results, "second", [first])
    assert second.name.endswith("-second") and second.name > first.name
    second_summary = stop(url, second)
    assert locust_requests(second) > 0
    # The first swarm's Locust CSVs were closed when it ended: the second did not rewrite them.
    assert (first / "locust_stats.csv").read_text() == first_stats
    assert (first / "locust_stats_history.csv").read_text() == first_history
    last_history_second = max(int(r["Timestamp"]) for r in read_csv(first / "locust_stats_history.csv"))
    assert last_history_second <= first_summary["ended_at"] + 1
    assert first_summary["run_id"] == first.name and second_summary["run_id"] == second.name
    summary = requests.get(f"{url}/chaos/files/{SUMMARY_JSON}", timeout=5)
    assert summary.status_code == 200 and summary.json() == second_summary  # the current swarm's
    assert run_folders(results) == [first, second] and "from-cli" not in " ".join(
        f.name for f in (first, second)
    )
