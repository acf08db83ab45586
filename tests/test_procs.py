"""Child supervision: stop semantics and children that die with their owner, not a thread."""

import sys
import threading

from load.supervise.procs import ALREADY_GONE, EXITED, KILLED_AFTER_TIMEOUT, Child, stop_all
from load.wire.pingclient import PingSocket
from support import gone, wait_until

IGNORES_SIGTERM = "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(60)"


def python_child(tmp_path, name: str, code: str) -> Child:
    return Child(name, [sys.executable, "-c", code], {}, tmp_path / f"{name}.log", tmp_path).start()


def test_a_child_that_ignores_sigterm_is_killed_after_kill_after(tmp_path):
    child = python_child(tmp_path, "stubborn", IGNORES_SIGTERM)
    wait_until(lambda: "up" in child.log_path.read_text(), 10, "the child to install its handler")
    record = child.stop("graceful", kill_after=1.0)
    assert record.how == KILLED_AFTER_TIMEOUT
    assert record.returncode == -9
    assert record.seconds >= 0.95
    assert gone(child.pid)


def test_stop_all_reports_each_child_and_a_child_already_gone(tmp_path):
    quick = python_child(tmp_path, "quick", "import time; time.sleep(60)")
    done = python_child(tmp_path, "done", "pass")
    done.wait(10)
    records = stop_all([quick, done], "graceful", kill_after=5.0)
    assert [r.how for r in records] == [EXITED, ALREADY_GONE]
    assert records[0].returncode == -15


def test_a_stack_started_from_a_short_lived_thread_outlives_that_thread(start_stack):
    """PR_SET_PDEATHSIG fires when the forking thread exits; the spawner thread prevents that."""
    started = {}
    thread = threading.Thread(target=lambda: started.update(stack=start_stack(daphne_count=1)))
    thread.start()
    thread.join()
    with PingSocket(started["stack"].instances[0].ws_url("/ws/ping/")) as sock:
        assert sock.ping(1)["seq"] == 1
