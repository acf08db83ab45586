"""Issue 10, open doors: the web form runs no command and names no path; no secret is written."""

import argparse
import http.client
import json
import os
import queue
import secrets
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests

from load.agent.client import AgentClient
from load.config.options import HIDDEN, START_ONLY, mask_argv, mask_options, take_agent_token
from load.supervise.procs import free_port
from locustrun import REPO, read_json, run_folder, run_folders
from support import still_running, wait_until

TOKEN = "t" + secrets.token_urlsafe(24)  # never "-...": that would read as an option on a command line


# -- the web form ------------------------------------------------------------------------------


def test_start_only_options_are_the_ones_that_run_commands_name_files_or_carry_secrets():
    assert {
        "restart_cmd",
        "server_log_cmd",
        "server_log",
        "results_dir",
        "chaos_plan",
        "run_id",
        "agent_url",
        "agent_token",
        "redis_probe_url",
        "header",  # may carry credentials; Locust's form sends every field's value to the browser
        "cookie",
    } <= START_ONLY
    assert not {"ping_rate", "restart_at", "run_label", "origin", "subprotocol", "ping_template"} & START_ONLY


def web_form_options(page: str) -> dict:
    """The suite's options as Locust's page hands them to its form (templateArgs.extra_options)."""
    start = page.index('"extra_options":') + len('"extra_options":')
    options, _end = json.JSONDecoder().raw_decode(page[start:].lstrip())
    return options


def test_the_web_form_cannot_run_a_command_or_move_the_results_but_a_normal_swarm_runs(locust, tmp_path):
    results, marker, planted = tmp_path / "results", tmp_path / "restarted", tmp_path / "pwned"
    port = free_port()
    run = locust(
        "--web-host",
        "127.0.0.1",
        "--web-port",
        str(port),
        "--host",
        f"ws://127.0.0.1:{free_port()}",
        "--results-dir",
        str(results),
        "--restart-cmd",
        f"touch {marker}",
        "--connect-timeout",
        "1",
    )
    url = f"http://127.0.0.1:{port}"
    page = wait_until(lambda: _get(url + "/"), 30, f"Locust's web UI; output so far:\n{run.output()[-2000:]}")
    assert "ping_rate" in page.text and "restart_cmd" not in page.text and "results_dir" not in page.text
    options = web_form_options(page.text)
    assert options["protocol"]["choices"] == ["target", "template"]  # drop-downs for fixed values
    assert options["restart_mode"]["choices"] == ["graceful", "hard"]
    assert "error_rate>1%," in options["fail_on"]["help_text"]  # as written, not "%%"
    assert '"origin"' in page.text and '"cookie"' not in page.text and '"header"' not in page.text
    form = {"user_count": "1", "spawn_rate": "1", "host": f"ws://127.0.0.1:{free_port()}", "restart_at": "1"}

    for key, value in [
        ("restart_cmd", f"touch {planted}"),
        ("results_dir", str(tmp_path / "elsewhere")),
        ("server_log_cmd", f"touch {planted}"),
        ("agent_token", "stolen-token-123456"),
        ("cookie", "sessionid=stolen-cookie"),
        ("header", "Authorization: Bearer stolen-bearer"),
        ("html_file", str(planted)),
    ]:  # Locust's own options the form does not show, too
        reply = requests.post(url + "/swarm", data={**form, key: value}, timeout=10)
        assert reply.status_code == 400, reply.text
        message = reply.json()["message"]
        assert message.startswith(f"{key}=") and "command line" in message and "\n" not in message
        assert "stolen" not in message
    assert requests.get(url + "/stats/requests", timeout=10).json()["state"] == "ready"
    assert (
        list(results.glob("*/manifest.json")) == [] and not (tmp_path / "elsewhere").exists()
    )  # no run began

    reply = requests.post(
        url + "/swarm", data={**form, "results_dir": str(results)}, timeout=10
    )  # unchanged: fine
    assert reply.status_code == 200 and reply.json()["success"], reply.text
    wait_until(marker.exists, 30, f"the --restart-cmd given at start to run; output:\n{run.output()[-2000:]}")
    run.note_descendants()
    manifest = read_json(wait_until(lambda: next(results.glob("*/manifest.json"), None), 10, "manifest.json"))
    assert manifest["options"]["restart_cmd"] == f"touch {marker}"
    assert requests.post(url + "/stop", timeout=10).ok  # Locust 2.47: POST only
    (folder,) = run_folders(results)
    wait_until(lambda: (folder / "summary.json").is_file(), 30, "the run to be written")
    assert not planted.exists() and not (tmp_path / "elsewhere").exists()
    assert "web UI: refused a swarm request: restart_cmd=" in run.output()
    assert "stolen" not in run.output()
    logs = requests.get(url + "/logs", timeout=10).json()["master"]
    assert any(
        f"restart_cmd='touch {marker}'" in line and "results_dir=" in line for line in logs
    )  # read-only display


def _get(url: str) -> requests.Response | None:
    try:
        return requests.get(url, timeout=5)
    except requests.ConnectionError:
        return None


# -- secrets -----------------------------------------------------------------------------------


def test_mask_argv_hides_both_forms_and_abbreviations_and_url_passwords():
    argv = [
        "locust",
        "--agent-token",
        "s3cret",
        "--agent-token=s3cret",
        "--agent-tok",
        "s3cret",
        "--redis-probe-url",
        "redis://:s3cret@h:6379/0",
        "--agent-url",
        "http://h:8700",
        "--ping-rate",
        "2",
    ]
    assert mask_argv(argv) == [
        "locust",
        "--agent-token",
        HIDDEN,
        f"--agent-token={HIDDEN}",
        "--agent-tok",
        HIDDEN,
        "--redis-probe-url",
        f"redis://:{HIDDEN}@h:6379/0",
        "--agent-url",
        "http://h:8700",
        "--ping-rate",
        "2",
    ]
    assert mask_options({"agent_token": "s3cret", "ping_rate": 2.0}) == {
        "agent_token": HIDDEN,
        "ping_rate": 2.0,
    }
    assert mask_options({"agent_token": ""}) == {"agent_token": ""}  # not given: nothing to hide


def test_the_agent_token_is_not_among_the_options_a_master_sends_its_workers():
    options = argparse.Namespace(agent_token=TOKEN, agent_url=["http://h:8700"], ping_rate=2.0)
    assert take_agent_token(options) == TOKEN
    assert TOKEN not in repr(vars(options))  # what Locust's spawn message carries: vars(parsed_options)
    assert take_agent_token(argparse.Namespace(agent_token="")) == ""


@pytest.fixture(scope="module")
def agent_process(tmp_path_factory):
    """`python -m load agent` with its token in $LOAD_AGENT_TOKEN: (url, ws url, its folder)."""
    folder = tmp_path_factory.mktemp("agent")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "load",
            "agent",
            "--port",
            "0",
            "--results-dir",
            str(folder),
            "--redis-socket-timeout",
            "none",
            "--kill-after",
            "3",
        ],
        cwd=REPO,
        env={**os.environ, "LOAD_AGENT_TOKEN": TOKEN},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True)
    reader.start()
    output: list[str] = []

    def ready_line() -> str | None:
        while not lines.empty():
            output.append(lines.get())
        return next((line for line in output if line.startswith("agent http://")), None)

    try:
        words = wait_until(ready_line, 60, f"the agent's ready line; so far {output}").split()
        yield words[1], words[4], folder, output  # agent URL serving daphne-0 WS_URL ...
    finally:
        process.terminate()
        process.wait(30)
        reader.join(10)
        process.stdout.close()
        ready_line()


def test_the_agent_hands_its_token_to_none_of_the_processes_it_starts(agent_process):
    url, _ws, folder, _output = agent_process
    client = AgentClient(url, TOKEN, timeout=30)
    pids = [instance["pid"] for instance in client.status()["instances"]]
    pids += [event["pid"] for event in client.events(0)["events"] if event["event"] == "redis_ready"]
    assert len(pids) == 2 and still_running(pids) == pids
    for pid in pids:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
        assert TOKEN.encode() not in environ and b"LOAD_AGENT_TOKEN" not in environ


@pytest.mark.parametrize("how", ["environment", "argv"])
def test_no_file_of_a_run_folder_holds_the_agent_token(agent_process, locust, tmp_path, how):
    url, ws_url, agent_folder, agent_output = agent_process
    results = tmp_path / "results"
    token_args = ["--agent-token=" + TOKEN] if how == "argv" else []
    if how == "environment":
        os.environ["LOCUST_AGENT_TOKEN"] = TOKEN  # LocustProcess hands os.environ on
    try:
        run = locust(
            "--headless",
            "--host",
            ws_url.removesuffix("/ws/ping/"),
            "--results-dir",
            str(results),
            "-u",
            "2",
            "-r",
            "2",
            "-t",
            "4s",
            "--agent-url",
            url,
            *token_args,
        )
    finally:
        os.environ.pop("LOCUST_AGENT_TOKEN", None)
    assert run.wait(60) == 0, run.output()[-3000:]

    folder = run_folder(results)
    manifest = read_json(folder / "manifest.json")
    assert manifest["options"]["agent_token"] == HIDDEN and manifest["options"]["agent_url"] == [url]
    assert (f"--agent-token={HIDDEN}" in manifest["command"]) == (how == "argv")
    assert (folder / "report.html").exists() and (folder / "server").is_dir()  # the agent's logs mirrored
    files = [path for tree in (folder, agent_folder) for path in tree.rglob("*") if path.is_file()]
    assert len(files) > 10
    assert [path for path in files if TOKEN.encode() in path.read_bytes()] == []
    assert TOKEN not in run.output() and not any(TOKEN in line for line in agent_output)


# -- the agent's query values ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "shown"),
    [("since=%C2%B9", '"\\u00b9"'), ("since=%EF%BC%91", '"\\uff11"'), ("since=1%C2%B9", '"1\\u00b9"')],
)
def test_the_agent_takes_ascii_digits_only_and_names_the_parameter(agent_process, query, shown):
    url, _ws, _folder, _output = agent_process
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request("GET", f"/events?{query}", headers={"Authorization": f"Bearer {TOKEN}"})
        response = connection.getresponse()
        status, body = response.status, json.loads(response.read())
    finally:
        connection.close()
    assert status == 400, body
    assert (
        body["error"].startswith(f"since={shown}: a whole number") and "\n" not in body["error"]
    )  # not 500, not 200
