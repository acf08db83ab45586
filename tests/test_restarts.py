"""Restarts as clients see them: sockets drop, new sockets work once the new process is ready."""

from pathlib import Path

import pytest
import websocket

from load.supervise.procs import EXITED, KILLED_AFTER_TIMEOUT, SIGKILLED, free_port
from load.supervise.stack import healthz
from load.wire.pingclient import PingSocket
from support import close_code, wait_until


@pytest.mark.parametrize(("mode", "how", "returncode"), [("graceful", EXITED, 0), ("hard", SIGKILLED, -9)])
def test_restart_drops_connected_clients_and_the_next_generation_serves(start_stack, mode, how, returncode):
    stack = start_stack(daphne_count=1)
    instance = stack.instances[0]
    old_pid = instance.child.pid
    sock = PingSocket(instance.ws_url("/ws/ping/"))
    assert sock.ping(1)["pid"] == old_pid

    outcome = stack.restart(0, mode)

    assert outcome.exit.how == how
    assert outcome.exit.returncode == returncode
    assert close_code(sock.ws, timeout=10) == 1006  # no close frame: the process just went away
    assert outcome.new_pid != old_pid and outcome.generation == 2
    with PingSocket(instance.ws_url("/ws/ping/")) as fresh:
        assert fresh.ping(2)["pid"] == outcome.new_pid
    begin = next(i for i, event in enumerate(stack.events) if event["event"] == "restart_begin")
    steps = [event["event"] for event in stack.events[begin:]]
    assert steps == [
        "restart_begin",
        "signal_sent",
        "exited",
        "spawned",
        "listening",
        "ready",
        "restart_done",
    ]


def test_restart_records_each_step_with_its_time(start_stack):
    stack = start_stack(daphne_count=1)
    outcome = stack.restart(0, "graceful")
    steps = {
        e["event"]: e
        for e in stack.events
        if e.get("generation") == 2 or e["event"] in ("signal_sent", "exited")
    }
    assert steps["signal_sent"]["signal"] == "SIGTERM"
    assert steps["signal_sent"]["ts"] <= steps["exited"]["ts"] <= steps["spawned"]["ts"]
    assert (
        steps["spawned"]["ts"]
        <= steps["listening"]["ts"]
        <= steps["ready"]["ts"]
        <= steps["restart_done"]["ts"]
    )
    assert steps["restart_done"]["down_seconds"] == pytest.approx(outcome.down_seconds, abs=0.01)
    assert (stack.server_dir / "daphne-0.gen1.log").exists() and (
        stack.server_dir / "daphne-0.gen2.log"
    ).exists()


def test_a_sync_consumer_mid_handler_at_sigterm_hangs_until_sigkill(start_stack):
    """FM-4: the handler's self.send after SIGTERM waits forever on the stopped loop."""
    stack = start_stack(daphne_count=1, kill_after=4.0)
    instance = stack.instances[0]
    sock = PingSocket(instance.ws_url("/ws/ping/sync/"))
    sock.send_json({"type": "ping", "seq": 1, "work_ms": 1000})
    wait_until(lambda: (healthz(instance.port) or {}).get("inflight") == 1, 10, "the sync handler to start")

    outcome = stack.restart(0, "graceful")

    assert outcome.exit.how == KILLED_AFTER_TIMEOUT
    assert outcome.exit.returncode == -9
    assert outcome.exit.seconds >= 4.0 * 0.95
    signals = [e["signal"] for e in stack.events if e["event"] == "signal_sent"]
    assert signals == ["SIGTERM", "SIGUSR1", "SIGKILL"]  # SIGUSR1: the thread dump, kept
    (dump,) = [e for e in stack.events if e["event"] == "thread_dump"]
    stacks = Path(dump["file"]).read_text()
    assert (
        "run_until_future" in stacks and "_python_exit" in stacks
    )  # a worker in async_to_sync; exit joins it
    sock.close()
    with PingSocket(instance.ws_url("/ws/ping/sync/")) as fresh:
        assert fresh.ping(2)["pid"] == outcome.new_pid


def test_an_idle_server_exits_on_sigterm_well_before_kill_after(start_stack):
    stack = start_stack(daphne_count=1, kill_after=20.0)
    outcome = stack.restart(0, "graceful")
    assert outcome.exit.how == EXITED
    assert outcome.exit.seconds < 20.0 / 2


def test_restarting_one_instance_leaves_the_other_serving(start_stack):
    stack = start_stack(daphne_count=2)
    other = PingSocket(stack.instances[1].ws_url("/ws/ping/"))
    stack.restart(0, "hard")
    assert other.ping(3)["instance"] == "daphne-1"
    other.close()


def test_a_refused_connect_while_the_instance_is_down_is_a_connection_error(start_stack):
    stack = start_stack(daphne_count=1)
    instance = stack.instances[0]
    instance.child.stop("hard")
    with pytest.raises(ConnectionRefusedError):
        websocket.create_connection(instance.ws_url("/ws/ping/"), timeout=5)


def test_a_base_port_fixes_each_instance_port_across_restarts(start_stack):
    base = free_port()
    stack = start_stack(daphne_count=1, base_port=base)
    assert stack.instances[0].port == base
    stack.restart(0, "hard")
    assert stack.instances[0].port == base and healthz(base)["pid"] == stack.instances[0].child.pid
