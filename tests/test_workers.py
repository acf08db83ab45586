"""A Locust master and workers as separate processes over TCP, as on separate hosts: the
master's seconds are exactly the sum of what its workers shipped, the chaos plan runs once
(on the master), a worker that joins late and is killed mid-run shows in the `workers`
column and the run still writes valid results, and a worker whose clock is seconds off still lands its pings in the
master's seconds."""

import json
import os
import re
import signal
from collections import Counter
from pathlib import Path

from load.runfolder.names import (
    ACTION_BEGIN,
    EVENTS_JSONL,
    RUN_END,
    RUN_START,
    SHIPPED_TO_MASTER,
    SUMMARY_JSON,
    TIMESERIES_CSV,
)
from load.supervise.procs import free_port
from locustrun import read_csv, read_json
from support import wait_until

SKEW_S = 3


def shipped(log: Path) -> Counter:
    """The pings a worker sent per second, as it shipped them to the master (its DEBUG lines)."""
    sent: Counter = Counter()
    for line in log.read_text(errors="replace").splitlines():
        if SHIPPED_TO_MASTER in line:
            sent.update({int(s): n for s, n in json.loads(line.split(SHIPPED_TO_MASTER, 1)[1]).items()})
    return sent


def test_workers_over_tcp_add_up_per_second_act_once_and_survive_a_death_and_a_wrong_clock(locust, tmp_path):
    results, port = tmp_path / "results", free_port()
    master = locust(
        "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port), "--expect-workers", "2",
        "--enable-rebalancing", "--headless", "-u", "9", "-r", "9", "-t", "22s", "--stack", "local", "--stack-daphne", "1",
        "--redis-socket-timeout", "none", "--ping-rate", "4", "--pong-timeout", "2", "--restart-at", "6",
        "--results-dir", str(results), name="master",
    )  # fmt: skip
    worker_args = ("--worker", "--master-host", "127.0.0.1", "--master-port", str(port), "-L", "DEBUG")
    steady = locust(*worker_args, name="worker1")
    skewed = locust(
        *worker_args, name="worker2", env={**os.environ, "CHANNELS_CHAOS_CLOCK_SKEW_S": str(SKEW_S)}
    )

    def master_said(text: str) -> bool:
        return text in master.output()

    # The CSV lags the run by seconds: follow the master's log to act in time.
    wait_until(lambda: master_said("restart at 6s done"), 40, f"the restart:\n{master.output()[-2000:]}")
    doomed = locust(*worker_args, name="worker3")  # joins late: users are rebalanced onto it
    wait_until(
        lambda: master_said("3 workers connected"), 20, f"the third worker:\n{master.output()[-2000:]}"
    )
    wait_until(lambda: shipped(tmp_path / "worker3.log"), 10, "the late worker's first pings shipped")
    master.note_descendants()
    doomed.child.signal_group(signal.SIGKILL)  # no goodbye: the master finds it missing
    folder = master.written(results, 90)  # 1: the restart failed pings
    rows = read_csv(folder / TIMESERIES_CSV)
    column = [r["workers"] for r in rows if r["workers"] not in ("", "0")]  # 0: they quit at the stop
    joined, left = column.index("3"), len(column) - column[::-1].index("3")
    assert set(column[:joined]) == {"2"} and set(column[left:]) == {"2"} and left < len(column)  # 2, 3, 2
    # Exactly what the workers shipped, second by second, the dead one's too.
    merged = Counter({int(r["epoch_s"]): int(r["sent"]) for r in rows if int(r["sent"])})
    sent = (
        shipped(tmp_path / "worker1.log")
        + shipped(tmp_path / "worker2.log")
        + shipped(tmp_path / "worker3.log")
    )
    assert merged == sent and sum(sent.values()) > 100
    # The wrong clock was measured and corrected: its pings lie within the run, by the master's clock.
    events = [json.loads(line) for line in (folder / EVENTS_JSONL).read_text().splitlines()]
    (start,) = [e["ts"] for e in events if e["event"] == RUN_START]
    (end,) = [e["ts"] for e in events if e["event"] == RUN_END]
    seconds = sorted(shipped(tmp_path / "worker2.log"))
    assert int(start) <= seconds[0] and seconds[-1] <= int(end), (start, seconds, end)
    said = re.search(r"this worker's clock is ([0-9.]+) s ahead of the master's", skewed.output())
    assert said and abs(float(said.group(1)) - SKEW_S) < 0.2, skewed.output()[-2000:]
    assert "clock is" not in steady.output()
    # The plan ran once, on the master.
    assert [e for e in events if e["event"] == ACTION_BEGIN and e.get("action") == "restart"].__len__() == 1
    summary = read_json(folder / SUMMARY_JSON)
    assert len(summary["restarts"]) == 1 and len(summary["workers"]) == 2  # the dead one sent no final
    assert "final report of 1 worker(s) never came" in summary["not_measured"]["deliveries"]
