"""Headless Locust runs against real Daphne: files, honest numbers, restarts, distribution."""

import json
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest

from load.analysis.detectors import diagnose
from load.analysis.summary_table import end_of_run_text
from load.config.settings import WS_ENGINES
from load.measure.collector import ENDPOINT_COLUMNS, TIMESERIES_COLUMNS
from load.runfolder.loader import load_run
from load.runfolder.names import (
    BROADCASTS,
    BROADCASTS_DUPLICATED,
    BROADCASTS_LOST,
    BROADCASTS_RECEIVED,
    DELIVERIES,
    MEMBER_LIVES,
)
from load.supervise.procs import free_port
from load.wire.errors import PING_ERRORS
from load.wire.pingclient import PingSocket
from locustrun import REPO, expected_exit_code, number, read_csv, read_json, rows_so_far, run_folder
from support import wait_until


def headless(host: str, results: object, *extra: str) -> tuple[str, ...]:
    return ("--headless", "--host", host, "--results-dir", str(results), "--pong-timeout", "2", *extra)


def assert_pings_add_up(rows: list[dict]) -> None:
    for row in rows:
        errors = sum(int(row[kind]) for kind in PING_ERRORS)
        assert int(row["errors"]) == errors
        assert int(row["pings"]) == int(row["pongs"]) + errors + int(row["in_flight"]), row


def rows_stored(stack) -> int:
    with sqlite3.connect(stack.server_dir / "target_app.sqlite3", timeout=5) as db:
        try:
            return db.execute("SELECT COUNT(*) FROM target_app_pingrecord").fetchone()[0]
        except sqlite3.OperationalError:  # the table is created by the stack's migrate; locked at worst
            return 0


# The default engine in every run; the other in `pytest -m slow` (tests/test_engines.py covers
# it frame by frame, against a raw server and Daphne, in the default command).
ENGINES = [WS_ENGINES[0], *(pytest.param(e, marks=pytest.mark.slow) for e in WS_ENGINES[1:])]


@pytest.mark.parametrize("engine", ENGINES)
def test_a_headless_run_writes_every_file_with_sane_numbers(start_stack, locust, tmp_path, engine):
    stack = start_stack(daphne_count=1)
    run = locust(
        *headless(
            stack.instances[0].ws_url(""),
            tmp_path / "results",
            "-u",
            "4",
            "-r",
            "4",
            "-t",
            "6s",
            "--paths",
            "/ws/ping/",
            "--sleep-ms",
            "200",
            "--ping-rate",
            "2",
            "--ws-engine",
            engine,
        )
    )
    assert run.wait(60) == 0, run.output()[-3000:]

    folder = run_folder(tmp_path / "results")
    names = {p.name for p in folder.iterdir()}
    assert {
        "manifest.json",
        "summary.json",
        "timeseries.csv",
        "endpoints.csv",
        "locust_stats.csv",
        "locust_stats_history.csv",
        "locust_failures.csv",
        "locust_exceptions.csv",
        "report.html",
    } <= names
    manifest = read_json(folder / "manifest.json")
    assert manifest["versions"]["locust"] == "2.47.0" and manifest["versions"]["daphne"] == "4.2.3"
    assert manifest["config"]["ping_rate"] == 2.0 and "ended_at" in manifest
    assert manifest["config"]["ws_engine"] == engine

    rows = read_csv(folder / "timeseries.csv")
    assert tuple(rows[0]) == TIMESERIES_COLUMNS
    assert tuple(read_csv(folder / "endpoints.csv")[0]) == ENDPOINT_COLUMNS
    seconds = [int(r["epoch_s"]) for r in rows]
    assert seconds == list(range(seconds[0], seconds[0] + len(seconds)))  # no gaps
    assert_pings_add_up(rows)
    cpu = [float(r["generator_cpu"]) for r in rows if r["generator_cpu"] != ""]  # this Locust's own CPU
    assert len(cpu) >= len(rows) - 3 and all(0 <= c < 90 for c in cpu)  # 4 users: far from the limit
    assert {r["generator_limited"] for r in rows[1:-1]} == {"0"}

    summary = read_json(folder / "summary.json")
    total = summary["all"]
    assert (
        total["pings"] == sum(int(r["pings"]) for r in rows) >= 30
        and summary["generator_limited_seconds"] == 0
    )
    assert total["errors"] == 0 and total["connect_ok"] == 4
    assert 200 <= total["p50_ms"] < 400  # sleep_ms 200 plus the base round trip

    stats = {row["Name"]: row for row in read_csv(folder / "locust_stats.csv")}
    assert int(stats["ping /ws/ping/"]["Request Count"]) == total["pongs"] + total["errors"]
    assert int(stats["connect /ws/ping/"]["Request Count"]) == 4


@pytest.mark.parametrize("engine", ENGINES)
def test_a_server_stall_shows_as_high_latency_in_the_seconds_it_stalled(
    start_stack, locust, tmp_path, engine
):
    stack = start_stack(daphne_count=1)
    instance = stack.instances[0]
    run = locust(
        *headless(
            instance.ws_url(""),
            tmp_path / "results",
            "-u",
            "1",
            "-r",
            "1",
            "-t",
            "9s",
            "--paths",
            "/ws/ping/db/",
            "--ping-rate",
            "10",
            "--pong-timeout",
            "6",
            "--ws-engine",
            engine,
        )
    )
    # Each ping on /ws/ping/db/ is a row: a steady second and a half before the stall.
    wait_until(lambda: rows_stored(stack) >= 15, 30, "15 pings stored by the server")
    with PingSocket(instance.ws_url("/ws/ping/")) as staller:
        stall_began = time.time()
        staller.ping(1, timeout=20, work_ms=3000)  # blocks Daphne's event loop for 3 s
    assert run.wait(60) == 0, run.output()[-3000:]

    rows = read_csv(run_folder(tmp_path / "results") / "timeseries.csv")
    slow = [int(r["epoch_s"]) for r in rows if number(r["p99_ms"]) >= 1000]
    # Pings due early in the stall wait about 3 s, later ones less: the seconds of the stall
    # show it as latency, in order, with every ping answered (late, not missing).
    assert len(slow) >= 2 and slow == list(range(slow[0], slow[0] + len(slow)))
    assert slow[0] in (int(stall_began), int(stall_began) + 1)
    first = next(r for r in rows if int(r["epoch_s"]) == slow[0])
    assert number(first["p99_ms"]) >= 2000
    assert all(int(r["pongs"]) == int(r["pings"]) for r in rows[:-1])
    assert all(number(r["p99_ms"]) < 1000 for r in rows if int(r["epoch_s"]) < int(stall_began))


def test_a_hard_restart_mid_run_puts_errors_in_its_seconds_and_recovery_after(start_stack, locust, tmp_path):
    stack = start_stack(daphne_count=1)
    run = locust(
        *headless(
            stack.instances[0].ws_url(""),
            tmp_path / "results",
            "-u",
            "4",
            "-r",
            "4",
            "-t",
            "120s",
            "--paths",
            "/ws/ping/",
            "--ping-rate",
            "5",
            "--reconnect-min",
            "0.2",
            "--reconnect-max",
            "1",
            "--fail-on",
            "closes>0,p99_ms>100000,pongs<1000000",
        )
    )
    series = tmp_path / "results"

    wait_until(lambda: any(int(r["pongs"]) for r in rows_so_far(series)), 30, "steady pongs")
    outcome = stack.restart(0, "hard")
    restarted, ready = outcome.exit.signal_sent_at, outcome.exit.signal_sent_at + outcome.down_seconds
    wait_until(
        lambda: any(int(r["epoch_s"]) > int(ready) + 5 for r in rows_so_far(series)),
        30,
        "seconds written after recovery",
    )
    run.child.process.send_signal(signal.SIGINT)
    assert run.wait(30) == 1  # Locust's own exit code: there were failures

    folder = run_folder(series)
    rows = read_csv(folder / "timeseries.csv")
    assert_pings_add_up(rows)
    failed = [
        int(r["epoch_s"]) for r in rows if int(r["errors"]) or int(r["connect_refused"]) or int(r["closes"])
    ]
    assert failed and int(restarted) <= min(failed) and max(failed) <= int(ready) + 3
    after = [r for r in rows[:-1] if int(r["epoch_s"]) > int(ready) + 3]  # the last second may be cut short
    assert after and all(int(r["pongs"]) > 0 and int(r["errors"]) == 0 for r in after)
    summary = read_json(folder / "summary.json")["all"]
    assert summary["close_1006"] == 4  # every connected user saw its socket die without a close frame
    # The threshold the restart breached was said as it happened, once; the others not at all.
    events = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    (said,) = [e for e in events if e["event"] == "threshold_breached"]
    assert said["threshold"] == "closes>0" and restarted < said["ts"] < events[-1]["ts"]
    assert run.output().count("threshold breached: closes>0") == 2  # so far, then the end's verdict
    assert summary["connect_ok"] == 8
    during = [r["users"] for r in rows if int(restarted) <= int(r["epoch_s"]) <= int(ready) + 1]
    assert during and set(during) == {"4"}  # users stay users while disconnected
    assert read_csv(folder / "locust_exceptions.csv") == []


DISTRIBUTED = """[tool.locust]
stack = "local"
stack-daphne = 1
users = 6
spawn-rate = 6
run-time = "8s"
paths = "/ws/ping/,/ws/room/merge/"
ping-rate = 5
pong-timeout = 2
redis-socket-timeout = "none"
"""


def test_a_run_with_two_workers_over_tcp_merges_them_exactly(tmp_path):
    scenario = tmp_path / "distributed.toml"
    scenario.write_text(DISTRIBUTED)
    command = [sys.executable, "-m", "load", "run", str(scenario), "--workers", "2"]
    result = subprocess.run(
        [*command, "--results-dir", str(tmp_path / "results")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    folder = run_folder(tmp_path / "results")
    assert (folder / "locust-worker-1.log").is_file() and (folder / "locust-worker-2.log").is_file()
    summary = read_json(folder / "summary.json")
    workers = summary["workers"]
    assert len(workers) == 2
    for figure in ("pings", "pongs", "connect_ok", "in_flight"):  # one name for a figure, everywhere
        assert summary["all"][figure] == sum(w.get(figure, 0) for w in workers.values()), figure
    assert (
        f"workers 2 (pings each: {', '.join(str(w['pings']) for _, w in sorted(workers.items()))})"
        in result.stdout
    )
    rows = read_csv(folder / "timeseries.csv")
    assert sum(int(r["pongs"]) for r in rows) == summary["all"]["pongs"] > 100
    counted = [
        r["workers"] for r in rows if r["users"] != ""
    ]  # the master's seconds (not the last, cut short)
    assert counted.count("2") == len(counted) >= 6  # both connected throughout
    # room deliveries travel with the workers' reports and are settled on the master
    total = summary["all"]
    assert summary[DELIVERIES][MEMBER_LIVES] >= 2 and total[BROADCASTS_LOST] is not None
    assert total[BROADCASTS] == total[BROADCASTS_RECEIVED] + total[BROADCASTS_DUPLICATED] > 50
    assert_pings_add_up(rows)
    stats = {row["Name"]: row for row in read_csv(folder / "locust_stats.csv")}
    pings_reported = sum(int(stats[name]["Request Count"]) for name in stats if name.startswith("ping "))
    assert pings_reported == summary["all"]["pongs"] + summary["all"]["errors"]


def test_idle_sockets_raise_no_false_timeouts(start_stack, locust, tmp_path):
    stack = start_stack(daphne_count=1)
    run = locust(
        *headless(
            stack.instances[0].ws_url(""),
            tmp_path / "results",
            "-u",
            "3",
            "-r",
            "3",
            "-t",
            "7s",
            "--paths",
            "/ws/ping/",
            "--ping-rate",
            "0.3",
            "--connect-timeout",
            "1",
            "--server-log",
            str(stack.server_dir / "daphne-*.log"),
            "--redis-probe-url",
            stack.redis_url,
        )
    )
    assert run.wait(60) == 0, run.output()[-3000:]
    folder = run_folder(tmp_path / "results")
    summary = read_json(folder / "summary.json")["all"]
    assert summary["closes"] == 0 and summary["errors"] == 0 and summary["pongs"] >= 3
    # A clean run names nothing, and a plain locust prints what `python -m load run` prints.
    assert diagnose(load_run(folder)).findings == []
    assert end_of_run_text(folder) in run.output()


def most_refusals_per_user(outage_s: float, reconnect_min: float, reconnect_max: float) -> int:
    """Tries a user can make in an outage if every backoff is the shortest allowed (half its cap).

    As ChannelsUser.run: a drop waits backoff(1); the k-th refusal in a row waits backoff(k).
    """

    def shortest(failures: int) -> float:
        return min(reconnect_max, reconnect_min * 2 ** (failures - 1)) / 2

    tries, at = 0, shortest(1)
    while at <= outage_s:
        tries += 1
        at += shortest(tries)
    return tries


def test_reconnects_back_off_instead_of_storming(start_stack, locust, tmp_path):
    stack = start_stack(daphne_count=1)
    users = 20
    run = locust(
        *headless(
            stack.instances[0].ws_url(""),
            tmp_path / "results",
            "-u",
            str(users),
            "-r",
            str(users),
            "-t",
            "120s",
            "--paths",
            "/ws/ping/",
            "--reconnect-min",
            "0.5",
            "--reconnect-max",
            "4",
        )
    )

    def connected() -> int:  # by the Daphne running now (a log per generation), as soon as it
        # logs them: the per-second CSV lags by the pong timeout
        return stack.instances[0].child.log_path.read_text().count("WSCONNECT /ws/ping/")

    wait_until(lambda: connected() >= users, 30, "all users to connect")
    outage_began = time.time()  # before the kill: the users may see it before stop_instance returns
    stack.stop_instance(0, "hard")
    wait_until(lambda: time.time() - outage_began > 3, 10, "a three-second outage")
    stack.start_instance(0)
    outage_s = time.time() - outage_began  # ready is after listening: an upper bound
    wait_until(lambda: connected() >= users, 30, "every user to reconnect")
    run.child.process.send_signal(signal.SIGINT)
    assert run.wait(30) == 1  # the outage's failures make it a failed run

    summary = read_json(run_folder(tmp_path / "results") / "summary.json")["all"]
    assert summary["connect_ok"] == 2 * users
    assert summary["connect_refused"] >= users  # every user noticed and retried
    # A storm would be hundreds per user; backing off from 0.5 s allows a handful in the outage.
    assert summary["connect_refused"] <= users * most_refusals_per_user(outage_s, 0.5, 4)


def test_template_mode_matches_pongs_by_field_or_in_order(start_stack, locust, tmp_path):
    """Staging mode against a server the suite did not start: here a plain Daphne on a port."""
    stack = start_stack(daphne_count=1)
    host = stack.instances[0].ws_url("")
    template = '{"type": "ping", "seq": {seq}}'
    # /anything/... is not routed: every handshake is rejected. Against --host the preflight
    # would refuse to start (tests/test_bad_inputs.py); a local stack is not preflighted.
    by_field = locust(
        "--headless",
        "--stack",
        "local",
        "--stack-daphne",
        "1",
        "--results-dir",
        str(tmp_path / "field"),
        "--pong-timeout",
        "2",
        "-u",
        "2",
        "-r",
        "2",
        "-t",
        "4s",
        "--protocol",
        "template",
        "--ping-template",
        template,
        "--pong-field",
        "seq",
        "--paths",
        "/anything/ws/ping/",
        "--ping-rate",
        "4",
        name="by-field",
    )
    assert by_field.wait(60) == 1
    in_order = locust(
        *headless(
            host,
            tmp_path / "order",
            "-u",
            "2",
            "-r",
            "2",
            "-t",
            "4s",
            "--protocol",
            "template",
            "--ping-template",
            template,
            "--paths",
            "/ws/ping/",
            "--ping-rate",
            "4",
        ),
        name="in-order",
    )
    assert in_order.wait(60) == 0, in_order.output()[-2000:]
    rejected = read_json(run_folder(tmp_path / "field") / "summary.json")["all"]
    answered = read_json(run_folder(tmp_path / "order") / "summary.json")["all"]
    assert rejected["handshake_rejected"] >= 2 and rejected["pongs"] == 0
    assert answered["pongs"] >= 16 and answered["errors"] == 0


def test_locust_conf_sets_our_options(start_stack, locust, tmp_path):
    stack = start_stack(daphne_count=1)
    conf = tmp_path / "chaos.conf"
    conf.write_text(
        f"host = {stack.instances[0].ws_url('')}\npaths = /ws/ping/layer/\nping-rate = 3\nrun-label = fromconf\n"
    )
    run = locust(
        "--config", str(conf), "--headless", "-u", "1", "-t", "3s", "--results-dir", str(tmp_path / "results")
    )
    assert run.wait(60) == 0, run.output()[-2000:]
    folder = run_folder(tmp_path / "results")
    assert folder.name.endswith("-fromconf")
    config = read_json(folder / "manifest.json")["config"]
    assert config["ping_rate"] == 3.0 and config["paths"] == [["/ws/ping/layer/", 1]]


def test_ctrl_c_stops_a_headless_run_cleanly_and_keeps_its_files(locust, tmp_path):
    # Pings sleep 300 ms at 4 a second: some are always unanswered when Ctrl-C comes.
    run = locust(
        "--headless",
        "--stack",
        "local",
        "--stack-daphne",
        "1",
        "-u",
        "3",
        "-r",
        "3",
        "-t",
        "60s",
        "--paths",
        "/ws/ping/?sleep_ms=300",
        "--ping-rate",
        "4",
        "--pong-timeout",
        "1",
        "--results-dir",
        str(tmp_path / "results"),
    )
    series = tmp_path / "results"
    wait_until(
        lambda: run.note_descendants() or any(int(r["pongs"]) for r in rows_so_far(series)),
        60,
        "pongs in the timeseries",
    )
    assert len(run.descendants) >= 2  # the Redis and Daphne of --stack local
    run.child.process.send_signal(signal.SIGINT)
    code = run.wait(30)
    folder = run_folder(series)
    assert code == expected_exit_code(folder), run.output()[
        -3000:
    ]  # Ctrl-C is a clean stop: Locust's own verdict
    summary = read_json(folder / "summary.json")["all"]
    assert summary["pongs"] > 0 and summary["in_flight"] > 0
    assert summary["pings"] == summary["pongs"] + summary["errors"] + summary["in_flight"]
    run.stop()  # asserts the stack Locust started is gone too


def test_a_sigkilled_run_leaves_valid_csv_and_no_stack(locust, tmp_path):
    run = locust(
        "--headless",
        "--stack",
        "local",
        "--stack-daphne",
        "1",
        "-u",
        "2",
        "-r",
        "2",
        "-t",
        "60s",
        "--paths",
        "/ws/ping/",
        "--ping-rate",
        "4",
        "--pong-timeout",
        "1",
        "--results-dir",
        str(tmp_path / "results"),
    )
    series = tmp_path / "results"

    def rows_written():
        run.note_descendants()
        return len(rows_so_far(series)) >= 3

    wait_until(rows_written, 60, "three rows in the timeseries")
    assert len(run.descendants) >= 2  # the Redis and Daphne of --stack local
    run.child.process.kill()
    assert run.wait(10) == -signal.SIGKILL
    run.stop()  # the Redis and Daphne it started die with it (parent-death signal)

    folder = run_folder(series)
    lines = (folder / "timeseries.csv").read_text().splitlines()
    rows = read_csv(folder / "timeseries.csv")
    assert len(lines) == len(rows) + 1 and all(
        len(line.split(",")) == len(TIMESERIES_COLUMNS) for line in lines
    )
    seconds = [int(r["epoch_s"]) for r in rows]
    assert seconds == list(range(seconds[0], seconds[0] + len(seconds)))
    assert {r[BROADCASTS_LOST] for r in rows} == {""}  # never settled: unknown, not 0
    assert read_json(folder / "manifest.json")["run_id"] == folder.name


def test_the_web_ui_shows_our_options_and_a_run_started_there_writes_results(locust, tmp_path):
    port = free_port()
    run = locust(
        "--stack",
        "local",
        "--stack-daphne",
        "1",
        "--web-host",
        "127.0.0.1",
        "--web-port",
        str(port),
        "--results-dir",
        str(tmp_path / "results"),
        "--pong-timeout",
        "1",
    )
    page = wait_until(lambda: http("GET", port, "/"), 60, "the web UI")
    for option in (
        "ping_rate",
        "paths",
        "sleep_ms",
        "pong_timeout",
    ):  # results_dir: start-only, not in the form
        assert f'"{option}"' in page
    form = {
        "user_count": "2",
        "spawn_rate": "2",
        "host": "",
        "paths": "/ws/ping/layer/",
        "ping_rate": "5",
        "restart_at": "1",
        "restart_mode": "hard",
    }
    assert json.loads(http("POST", port, "/swarm", form))["success"] is True
    series = tmp_path / "results"
    wait_until(lambda: any(int(r["pongs"]) for r in rows_so_far(series)), 60, "pongs")
    wait_until(
        lambda: any('"action_done"' in p.read_text() for p in series.glob("*/events.jsonl")),
        30,
        "the planned restart",
    )
    run.note_descendants()
    http("POST", port, "/stop", {})
    folder = run_folder(series)
    wait_until(lambda: (folder / "summary.json").exists(), 30, "the run to be written after Stop")
    config = read_json(folder / "manifest.json")["config"]
    assert config["ping_rate"] == 5.0 and config["paths"] == [["/ws/ping/layer/", 1]]
    assert read_json(folder / "summary.json")["endpoints"]["/ws/ping/layer/"]["pongs"] > 0
    (restart,) = read_json(folder / "summary.json")["restarts"]
    assert restart["mode"] == "hard" and restart["at_s"] == 1.0
    run.child.process.send_signal(signal.SIGTERM)
    # SIGTERM is a clean stop too: Locust's verdict on the failures it counted, written in its CSV.
    assert run.wait(30) == expected_exit_code(folder), run.output()[-3000:]


def http(method: str, port: int, path: str, form: dict | None = None) -> str | None:
    body = urllib.parse.urlencode(form).encode() if form is not None else None
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.read().decode()
    except OSError:
        return None


def test_locust_help_lists_our_options(tmp_path):
    """Locust answers --help without importing the locustfile; our .pth hook fills that gap."""
    result = subprocess.run(
        [sys.executable, "-m", "locust", "-f", "locustfile.py", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    for option in ("--paths", "--ping-rate", "--pong-timeout", "--reconnect-max", "--results-dir", "--stack"):
        assert option in result.stdout, option
