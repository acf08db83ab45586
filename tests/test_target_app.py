"""The target app answers every endpoint, and a bad frame never takes it down."""

import json
import os
import signal
import time

import pytest
import websocket

from load.supervise.stack import healthz
from load.wire.pingclient import ENDPOINTS, ErrorFrame, PingSocket
from support import wait_until


@pytest.mark.parametrize("path", ENDPOINTS)
def test_every_endpoint_answers_a_ping_with_its_seq(served_stack, path):
    with PingSocket(served_stack.instances[0].ws_url(path)) as sock:
        pong = sock.ping(41, work_ms=5, pad="x" * 100)
    assert pong["type"] == "pong"
    assert pong["seq"] == 41
    assert pong["pad"] == "x" * 100
    assert pong["instance"] == "daphne-0"


def test_sleep_ms_delays_the_pong_on_the_async_endpoint(served_stack):
    with PingSocket(served_stack.instances[0].ws_url("/ws/ping/")) as sock:
        sock.ping(1)  # warm up the connection
        started = time.perf_counter()
        sock.ping(2, sleep_ms=300)
        elapsed = time.perf_counter() - started
    assert 0.3 <= elapsed < 3.0


def test_db_endpoint_writes_and_reads_a_row_per_ping(served_stack):
    with PingSocket(served_stack.instances[0].ws_url("/ws/ping/db/")) as sock:
        first = sock.ping(1)["rows"]
        second = sock.ping(2)["rows"]
    assert second == first + 1


def test_layer_pong_travels_through_the_channel_layer(served_stack):
    with PingSocket(served_stack.instances[0].ws_url("/ws/ping/layer/")) as sock:
        assert sock.ping(5)["via"] == "layer"


def test_room_members_receive_each_others_pings_with_sender_and_seq(served_stack):
    url = served_stack.instances[0].ws_url("/ws/room/fanout/")
    with PingSocket(url) as alice, PingSocket(url) as bob:
        assert alice.welcome["type"] == "welcome"
        pong = alice.ping(7)
        broadcast = bob.recv_json(timeout=5)
    assert pong["via"] == "group"
    assert broadcast == {"type": "broadcast", "room": "fanout", "sender": alice.welcome["member"], "seq": 7}


MALFORMED = [
    ("not json", "frame is not valid JSON"),
    ("[1, 2]", "frame must be a JSON object"),
    ('{"type": "hello", "seq": 1}', "unknown type"),
    ('{"type": "ping", "seq": "one"}', "seq must be an integer"),
    ('{"type": "ping", "seq": true}', "seq must be an integer"),
    ('{"type": "ping", "seq": 1, "sleep_ms": -5}', "sleep_ms must be between"),
    ('{"type": "ping", "seq": 1, "sleep_ms": 1e12}', "sleep_ms must be between"),
    ('{"type": "ping", "seq": 1, "work_ms": "lots"}', "work_ms must be a number"),
    ('{"type": "ping", "seq": 1, "pad": 5}', "pad must be a string"),
    (json.dumps({"type": "ping", "seq": 1, "pad": "x" * 70_000}), "exceeds"),
    ("[" * 50_000, "frame nests 50000 levels deep; at most 16"),  # json.loads' RecursionError before
    ('{"type": "ping", "seq": 1, "pad": ' + "[" * 17 + "]" * 17 + "}", "nests 18 levels"),
]


@pytest.mark.parametrize("path", ENDPOINTS)
def test_malformed_frames_get_error_frames_and_the_socket_keeps_serving(served_stack, path):
    with PingSocket(served_stack.instances[0].ws_url(path)) as sock:
        for frame, reason in MALFORMED:
            sock.ws.send(frame)
            answer = sock.recv_json(timeout=5)
            assert answer["type"] == "error" and reason in answer["reason"], frame[:60]
        sock.ws.send_binary(b"\x00\x01")
        assert "binary" in sock.recv_json(timeout=5)["reason"]
        assert sock.ping(99)["seq"] == 99
    assert healthz(served_stack.instances[0].port)["status"] == "ok"


def test_an_error_frame_carries_the_seq_of_the_rejected_ping(served_stack):
    with PingSocket(served_stack.instances[0].ws_url("/ws/ping/")) as sock:
        with pytest.raises(ErrorFrame, match="work_ms"):
            sock.ping(12, work_ms=10**9)
        sock.send_json({"type": "ping", "seq": 13, "sleep_ms": "soon"})
        assert sock.recv_json(timeout=5) == {
            "type": "error",
            "reason": "sleep_ms must be a number of milliseconds",
            "seq": 13,
        }


def test_healthz_reports_the_process_and_its_executor(served_stack):
    body = healthz(served_stack.instances[0].port)
    assert body["pid"] == served_stack.instances[0].child.pid
    assert body["inflight"] == 0
    assert body["channel_layer"] == "redis"


def test_an_unknown_path_is_refused_and_the_server_keeps_serving(served_stack):
    instance = served_stack.instances[0]
    with pytest.raises(websocket.WebSocketException):
        websocket.create_connection(instance.ws_url("/ws/nowhere/"), timeout=5).recv()
    with PingSocket(instance.ws_url("/ws/ping/")) as sock:
        assert sock.ping(1)["seq"] == 1


def test_sigusr1_dumps_every_thread_into_the_log(served_stack):
    """How an FM-4 hang is diagnosed: faulthandler writes each thread's stack to the log."""
    instance = served_stack.instances[0]
    os.kill(instance.child.pid, signal.SIGUSR1)
    wait_until(lambda: "most recent call first" in instance.child.log_path.read_text(), 10, "the thread dump")
    assert healthz(instance.port)["status"] == "ok"  # and the server goes on


def test_a_frame_over_daphnes_1_mib_limit_ends_the_socket_without_an_error_frame(served_stack):
    """Daphne refuses it before the app sees it (README: size limits); other sockets go on."""
    instance = served_stack.instances[0]
    ws = websocket.create_connection(instance.ws_url("/ws/ping/"), timeout=5)
    try:
        ws.send(json.dumps({"type": "ping", "seq": 1, "pad": "x" * (1024 * 1024 + 1)}))
        with pytest.raises((websocket.WebSocketException, OSError)):  # here: ConnectionResetError
            while True:
                assert json.loads(ws.recv())["type"] != "error"
    finally:
        ws.close()
    with PingSocket(instance.ws_url("/ws/ping/")) as sock:
        assert sock.ping(2)["seq"] == 2
