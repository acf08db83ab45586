"""Failure signatures counted from the Daphne logs: the classifier on lines the real target
app wrote (each produced here on demand), and the follower on growing files."""

import calendar
import re
import socket
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlparse

import pytest
import websocket

from load.config.settings import DaphneOptions, LayerOptions
from load.probes.serverlog import (
    EXCEPTION,
    HANDSHAKE_INCOMPLETE,
    KILLED_ON_THREAD,
    KILLED_OTHER,
    KILLED_OWN_AWAIT,
    KILLED_PENDING,
    OVER_CAPACITY,
    OVER_CAPACITY_CHANNELS,
    TASK_EXCEPTION,
    CommandFollower,
    HandshakeTracker,
    ServerLogFollower,
    classify,
    daphne_logs,
    exception_message,
    line_second,
)
from load.supervise.stack import healthz
from load.wire.pingclient import PingSocket
from support import gone, wait_until

# Lines copied from logs this stack wrote while the tests below were developed (the same
# scenarios, run by hand). The tests also produce fresh ones; these pin the exact text.
REAL_OWN_AWAIT = (
    "2026-11-26 05:59:51,089 WARNING  Application instance <Task pending name='Task-2' coro=<ProtocolTypeRouter.__call__() "
    "running at /work/main/.venv/lib/python3.11/site-packages/channels/routing.py:48> wait_for=<Future pending "
    "cb=[Task.task_wakeup()]>> for connection <WebSocketProtocol client=['127.0.0.1', 33432] path=b'/ws/ping/'> "
    "took too long to shut down and was killed."
)
# A /ws/ping/ app whose ping waited for aclose_old_connections behind a sync consumer's work.
REAL_ON_THREAD = (
    "2026-11-26 05:59:57,865 WARNING  Application instance <Task pending name='Task-8' coro=<ProtocolTypeRouter.__call__() "
    "running at /work/main/.venv/lib/python3.11/site-packages/channels/routing.py:48> wait_for=<Future pending "
    "cb=[shield.<locals>._outer_done_callback() at /root/.pyenv/versions/3.11.7/lib/python3.11/asyncio/tasks.py:908, "
    "Task.task_wakeup()]>> for connection <WebSocketProtocol client=['127.0.0.1', 41384] path=b'/ws/ping/'> "
    "took too long to shut down and was killed."
)
# Hand-made from CPython's Future repr: not seen on this stack (asgiref shields its futures).
CHAIN_FUTURE = REAL_ON_THREAD.replace(
    "shield.<locals>._outer_done_callback() at /root/.pyenv/versions/3.11.7/lib/python3.11/asyncio/tasks.py:908",
    "_chain_future.<locals>._call_check_cancel() at /usr/lib/python3.11/asyncio/futures.py:387",
)
NO_WAIT_FOR = REAL_OWN_AWAIT.replace(" wait_for=<Future pending cb=[Task.task_wakeup()]>", "")
REAL_EXCEPTION = (
    "2026-11-26 06:00:44,006 ERROR    Exception inside application: Timeout reading from 127.0.0.1:51891"
)
REAL_TRACEBACK_END = "redis.exceptions.TimeoutError: Timeout reading from 127.0.0.1:51891"
REAL_KILLED_PENDING = "2026-11-26 06:00:30,120 INFO     Killed 3 pending application instances"
REAL_OVER_CAPACITY = "2026-11-26 06:00:06,113 INFO     1 of 3 channels over capacity in group room.c"
# asyncio's default exception handler, as Daphne's logging format prints it (not produced here).
TASK_NEVER_RETRIEVED = "2026-11-26 06:00:50,001 ERROR    Task exception was never retrieved"


def access(client: str, action: str, path: str = "/ws/ping/", when: str = "26/Nov/2026:05:18:21") -> str:
    return f'{client} - - [{when}] "{action} {path}" - -'


def handshake_and_leave(port: int, path: str) -> None:
    """A websocket handshake for `path`, the socket closed at once: Daphne starts the app
    (on a path without a route it raises at once) and the checker reaps all of it in one round."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )


def log_lines(stack, text: str) -> list[str]:
    return [
        line
        for path in daphne_logs(stack.server_dir)()
        for line in path.read_text().splitlines()
        if text in line
    ]


def count_until(
    follower: ServerLogFollower, column: str, at_least: int, timeout: float, what: str
) -> dict[int, Counter]:
    """Poll the follower until its total for column reaches at_least; the windows it returned."""
    windows: dict[int, Counter] = {}

    def probe() -> bool:
        for second, counts in follower.poll().items():
            windows.setdefault(second, Counter()).update(counts)
        return follower.totals[column] >= at_least

    wait_until(probe, timeout, what, interval=0.1)
    return windows


def inflight(instance) -> int | None:
    return (healthz(instance.port) or {}).get("inflight")


# -- the classifier, one line at a time ----------------------------------------------------


@pytest.mark.parametrize(
    ("line", "column"),
    [
        (REAL_OWN_AWAIT, KILLED_OWN_AWAIT),
        (REAL_ON_THREAD, KILLED_ON_THREAD),
        (CHAIN_FUTURE, KILLED_ON_THREAD),
        (NO_WAIT_FOR, KILLED_OTHER),
    ],
)
def test_a_killed_app_is_split_by_what_it_was_waiting_for(line, column):
    assert classify(line) == [(column, 1)]


def test_each_signature_counts_what_its_line_says():
    assert classify(REAL_EXCEPTION) == [(EXCEPTION, 1)]
    assert classify(REAL_KILLED_PENDING) == [(KILLED_PENDING, 3)]  # N, not 1
    assert classify(REAL_OVER_CAPACITY) == [(OVER_CAPACITY, 1), (OVER_CAPACITY_CHANNELS, 1)]
    assert classify(TASK_NEVER_RETRIEVED) == [(TASK_EXCEPTION, 1)]


@pytest.mark.parametrize(
    "line",
    [
        "2026-11-26 06:00:04,850 INFO     Killed 0 pending application instances",  # every clean stop
        REAL_TRACEBACK_END,  # a traceback repeats the message, but only the first line counts
        "2026-11-26 05:59:49,088 INFO     Listening on TCP address 127.0.0.1:41509",
        '127.0.0.1:33430 - - [26/Nov/2026:05:59:49] "GET /healthz" 200 199',
        access("127.0.0.1:33432", "WSCONNECTING"),
        "",
    ],
)
def test_ordinary_lines_count_nothing(line):
    assert classify(line) == []


def test_exception_messages_keep_their_text_and_mask_memory_ids():
    assert exception_message(REAL_EXCEPTION) == "Timeout reading from 127.0.0.1:51891"
    one = "2026-11-26 06:00:44,006 ERROR    Exception inside application: <Foo object at 0x7f0ef0f0eed0> is gone"
    other = one.replace("0x7f0ef0f0eed0", "0x7f0ef0a1b2c3")
    assert exception_message(one) == exception_message(other) == "<Foo object at 0x?> is gone"
    empty = "2026-11-26 06:00:44,006 ERROR    Exception inside application: "  # str(TimeoutError())
    assert exception_message(empty) == exception_message(empty.rstrip()) == "(no message)"
    assert classify(empty.rstrip()) == [(EXCEPTION, 1)]
    assert exception_message(REAL_TRACEBACK_END) is None


def test_both_timestamp_formats_are_read_as_utc():
    expected = calendar.timegm((2026, 11, 26, 5, 18, 21))
    assert (
        line_second("2026-11-26 05:18:21,250 INFO     Listening on TCP address 127.0.0.1:40337") == expected
    )
    assert line_second(access("127.0.0.1:48810", "WSCONNECTING", "/ws/room/lobby/")) == expected
    assert line_second(REAL_TRACEBACK_END) is None
    assert line_second('  File "/x.py", line 1, in <module>') is None


def test_a_handshake_that_ends_without_wsconnect_is_incomplete():
    tracker = HandshakeTracker()
    fed = [
        tracker.feed(access("127.0.0.1:1", "WSCONNECTING")),
        tracker.feed(access("127.0.0.1:2", "WSCONNECTING")),
        tracker.feed(access("127.0.0.1:3", "WSCONNECTING", "/ws/room/a/")),
        tracker.feed(access("127.0.0.1:1", "WSCONNECT")),
        tracker.feed(access("127.0.0.1:1", "WSDISCONNECT")),  # finished, then closed: fine
        tracker.feed(access("127.0.0.1:2", "WSDISCONNECT")),  # FM-8: never finished
        tracker.feed(access("127.0.0.1:3", "WSREJECT", "/ws/room/a/")),  # the app said no
        tracker.feed(access("127.0.0.1:3", "WSDISCONNECT", "/ws/room/a/")),  # already counted
        tracker.feed(access("127.0.0.1:9", "WSDISCONNECT")),  # began before we looked
    ]
    assert fed == [0, 0, 0, 0, 0, 1, 1, 0, 0]
    assert tracker.pending == 0


# -- the follower on files -------------------------------------------------------------------


def test_the_follower_reads_only_new_bytes_and_waits_for_a_line_to_finish(tmp_path):
    log = tmp_path / "daphne-0.gen1.log"
    log.write_text("2026-11-26 05:59:49,088 INFO     Listening on TCP address 127.0.0.1:41509\n")
    follower = ServerLogFollower(daphne_logs(tmp_path))
    assert follower.poll() == {}
    first = follower.bytes_read
    assert follower.poll() == {} and follower.bytes_read == first  # nothing new, nothing read

    head, tail = REAL_EXCEPTION[:40], REAL_EXCEPTION[40:] + "\n"
    with log.open("a") as file:
        file.write(head)
    assert follower.poll() == {}  # half a line counts nothing yet
    with log.open("a") as file:
        file.write(tail)
    assert follower.poll() == {line_second(REAL_EXCEPTION): Counter({EXCEPTION: 1})}
    assert follower.bytes_read == first + len(REAL_EXCEPTION) + 1
    assert follower.poll() == {}
    assert follower.messages == Counter({"Timeout reading from 127.0.0.1:51891": 1})


def test_lines_go_to_their_own_second_and_untimed_lines_to_the_second_they_were_read(tmp_path):
    log = tmp_path / "daphne-0.gen1.log"
    untimed = "Task exception was never retrieved"  # e.g. reformatted on the way
    log.write_text("\n".join([REAL_KILLED_PENDING, REAL_OVER_CAPACITY, untimed, REAL_OVER_CAPACITY]) + "\n")
    follower = ServerLogFollower(daphne_logs(tmp_path))
    windows = follower.poll(now=1_800_000_000.7)
    assert windows == {
        calendar.timegm((2026, 11, 26, 6, 0, 30)): Counter({KILLED_PENDING: 3}),
        calendar.timegm((2026, 11, 26, 6, 0, 6)): Counter({OVER_CAPACITY: 2, OVER_CAPACITY_CHANNELS: 2}),
        1_800_000_000: Counter({TASK_EXCEPTION: 1}),
    }
    assert follower.totals == Counter(
        {KILLED_PENDING: 3, OVER_CAPACITY: 2, OVER_CAPACITY_CHANNELS: 2, TASK_EXCEPTION: 1}
    )


def test_handshakes_are_tracked_per_file_and_new_files_are_picked_up(tmp_path):
    gen1, gen2 = tmp_path / "daphne-0.gen1.log", tmp_path / "daphne-0.gen2.log"
    gen1.write_text(access("127.0.0.1:5000", "WSCONNECTING") + "\n")
    follower = ServerLogFollower(daphne_logs(tmp_path))
    follower.poll()
    # The same client port in the next generation is another connection: no match across files.
    gen2.write_text(access("127.0.0.1:5000", "WSDISCONNECT") + "\n")
    assert follower.poll() == {}
    assert follower.paths == [gen1, gen2]
    with gen1.open("a") as file:
        file.write(access("127.0.0.1:5000", "WSDISCONNECT", when="26/Nov/2026:05:18:26") + "\n")
    assert follower.poll() == {calendar.timegm((2026, 11, 26, 5, 18, 26)): Counter({HANDSHAKE_INCOMPLETE: 1})}


def test_a_truncated_file_is_read_again_from_the_top(tmp_path):
    log = tmp_path / "daphne-0.gen1.log"
    log.write_text(REAL_EXCEPTION + "\n" + REAL_EXCEPTION + "\n")
    follower = ServerLogFollower(daphne_logs(tmp_path))
    follower.poll()
    log.write_text(REAL_KILLED_PENDING + "\n")  # shorter than what was read: rotated in place
    follower.poll()
    assert follower.totals == Counter({EXCEPTION: 2, KILLED_PENDING: 3})


def test_a_command_follower_counts_what_the_command_prints_and_stops_it(tmp_path):
    source = tmp_path / "remote.log"
    source.write_text(REAL_KILLED_PENDING + "\n")
    follower = CommandFollower(
        ["tail", "-n", "+1", "-F", str(source)], tmp_path / "follow" / "out.log"
    ).start()
    try:
        wait_until(lambda: follower.poll() and follower.totals[KILLED_PENDING] == 3, 10, "tail's first line")
        with source.open("a") as file:
            file.write(REAL_EXCEPTION + "\n")
        wait_until(
            lambda: follower.poll() is not None and follower.totals[EXCEPTION] == 1, 10, "the appended line"
        )
        assert follower.messages == Counter({"Timeout reading from 127.0.0.1:51891": 1})
    finally:
        record = follower.stop()
    assert record.how == "exited" and gone(follower.child.pid)
    with pytest.raises(FileExistsError):
        CommandFollower(["cat", str(source)], tmp_path / "follow" / "out.log").start()


# -- real Daphne, real lines -------------------------------------------------------------------


def test_a_handler_awaiting_past_the_close_timeout_is_killed_on_its_own_await(start_stack):
    """FM-1 as the seed saw it: `await asyncio.sleep` in receive; the disconnect waits behind it."""
    stack = start_stack(daphne_count=1, daphne=DaphneOptions(application_close_timeout=1))
    instance = stack.instances[0]
    follower = ServerLogFollower(daphne_logs(stack.server_dir))
    sock = PingSocket(instance.ws_url("/ws/ping/"))
    sock.send_json({"type": "ping", "seq": 1, "sleep_ms": 6000})
    wait_until(lambda: inflight(instance) == 1, 10, "the handler to start sleeping")
    sock.close()

    windows = count_until(follower, KILLED_OWN_AWAIT, 1, 10, "the kill in the log")

    (line,) = log_lines(stack, "took too long to shut down")
    assert "wait_for=<Future pending cb=[Task.task_wakeup()]>" in line
    assert windows == {line_second(line): Counter({KILLED_OWN_AWAIT: 1})}
    assert abs(line_second(line) - time.time()) < 30  # UTC, as the target app logs it


def test_apps_queued_behind_the_busy_thread_are_killed_waiting_on_it_and_handshakes_fail(start_stack):
    """FM-1's amplifier and FM-8: a sync consumer holds asgiref's one thread for 8 s.

    8 s leaves room for Daphne's 2 s handshake-timeout check on a loaded machine; it costs
    nothing, since teardown SIGKILLs the stuck process after kill_after (FM-4) either way.
    """
    stack = start_stack(
        daphne_count=1, daphne=DaphneOptions(application_close_timeout=1, websocket_connect_timeout=1)
    )
    instance = stack.instances[0]
    follower = ServerLogFollower(daphne_logs(stack.server_dir))
    busy = PingSocket(instance.ws_url("/ws/ping/sync/"))
    queued = PingSocket(instance.ws_url("/ws/ping/"))
    busy.send_json({"type": "ping", "seq": 1, "work_ms": 8000})
    wait_until(lambda: inflight(instance) == 1, 10, "the sync handler to hold the thread")
    # Channels runs aclose_old_connections on that thread before every async handler.
    queued.send_json({"type": "ping", "seq": 1, "sleep_ms": 10})
    busy.close()
    queued.close()
    with pytest.raises((websocket.WebSocketException, OSError)):
        websocket.create_connection(instance.ws_url("/ws/ping/"), timeout=5)  # its connect handler waits too

    count_until(follower, KILLED_ON_THREAD, 2, 10, "both kills in the log")
    count_until(follower, HANDSHAKE_INCOMPLETE, 1, 10, "the unfinished handshake")

    assert follower.totals[KILLED_OWN_AWAIT] == 0
    killed = log_lines(stack, "took too long to shut down")
    assert {re.search(r"path=b'([^']*)'", line).group(1) for line in killed} >= {
        "/ws/ping/sync/",
        "/ws/ping/",
    }
    assert all("shield.<locals>._outer_done_callback" in line or "_chain_future" in line for line in killed)


def test_a_graceful_restart_counts_the_apps_daphne_cancelled(start_stack):
    """FM-5: SIGTERM cancels every live app; their disconnect() never runs."""
    stack = start_stack(daphne_count=1)
    follower = ServerLogFollower(daphne_logs(stack.server_dir))
    sockets = [PingSocket(stack.instances[0].ws_url("/ws/room/gone/")) for _ in range(3)]
    # Daphne 4.2.3 keeps each upgraded HTTP request in its connection table until the 1 s
    # application checker reaps it. A SIGTERM before then makes kill_all_applications raise
    # KeyError: no app is cancelled and no Killed line is written. Wait for a checker round
    # after the sockets connected: the one that logs the crash of an app started after them.
    handshake_and_leave(stack.instances[0].port, "/ws/no-route/")
    wait_until(
        lambda: log_lines(stack, "No route found for path 'ws/no-route/'"),
        10,
        "a checker round after the connects",
    )

    stack.restart(0, "graceful")

    count_until(follower, KILLED_PENDING, len(sockets), 10, "the Killed line")
    (line,) = [line for line in log_lines(stack, "pending application instances") if "Killed 0 " not in line]
    assert follower.totals[KILLED_PENDING] == int(re.search(r"Killed (\d+)", line).group(1)) >= len(sockets)
    for sock in sockets:
        sock.close()


def test_redis_read_timeouts_are_counted_and_grouped_by_message(start_stack):
    """FM-7: redis-py's default 5 s socket timeout ends an idle consumer's 5 s BZPOPMIN."""
    stack = start_stack(daphne_count=1, app=LayerOptions())  # REDIS_SOCKET_TIMEOUT unset
    follower = ServerLogFollower(daphne_logs(stack.server_dir))
    sock = PingSocket(stack.instances[0].ws_url("/ws/room/idle/"))

    count_until(follower, EXCEPTION, 1, 15, "the crash in the log")

    redis = urlparse(stack.redis_url)
    assert follower.messages == Counter({f"Timeout reading from {redis.hostname}:{redis.port}": 1})
    wait_until(lambda: log_lines(stack, "WSDISCONNECT /ws/room/idle/"), 10, "the socket to close")
    follower.poll()
    assert follower.totals[EXCEPTION] == 1  # the traceback under it counted nothing
    sock.close()


def test_group_sends_to_members_a_sigkill_left_behind_go_over_capacity_in_the_next_generation(start_stack):
    """FM-5: the dead members' channel key fills up (capacity 1 here) and every send says so."""
    stack = start_stack(daphne_count=1, app=LayerOptions(redis_socket_timeout="none", capacity=1))
    instance = stack.instances[0]
    follower = ServerLogFollower(daphne_logs(stack.server_dir))
    leaked = [PingSocket(instance.ws_url("/ws/room/full/")) for _ in range(2)]
    follower.poll()
    assert follower.paths == [stack.server_dir / "daphne-0.gen1.log"]

    stack.restart(0, "hard")
    with PingSocket(instance.ws_url("/ws/room/full/")) as newcomer:
        for seq in range(1, 4):
            newcomer.ping(seq)  # its pong comes after the send logged

    count_until(follower, OVER_CAPACITY, 1, 10, "an over-capacity line")
    gen2 = stack.server_dir / "daphne-0.gen2.log"
    lines = [line for line in gen2.read_text().splitlines() if "over capacity" in line]
    assert gen2 in follower.paths
    assert follower.totals[OVER_CAPACITY] == len(lines)
    assert follower.totals[OVER_CAPACITY_CHANNELS] == sum(int(line.split()[3]) for line in lines)
    for sock in leaked:
        sock.close()


def test_daphne_logs_lists_every_generation(tmp_path):
    for name in ("daphne-0.gen1.log", "daphne-0.gen2.log", "daphne-1.gen1.log", "redis.log", "migrate.log"):
        (tmp_path / name).touch()
    assert [path.name for path in daphne_logs(tmp_path)()] == [
        "daphne-0.gen1.log",
        "daphne-0.gen2.log",
        "daphne-1.gen1.log",
    ]
    assert daphne_logs(Path(tmp_path / "missing"))() == []
