"""FM-5 and FM-7: what a killed or crashed consumer leaves in Redis."""

import redis

from load.config.settings import LayerOptions
from load.probes.redisprobe import RedisProbe
from load.wire.pingclient import PingSocket
from support import close_code, wait_until


def group_members(stack, room: str) -> set[str]:
    client = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    return set(client.zrange(f"asgi:group:room.{room}", 0, -1))


def test_a_sigkill_restart_leaves_the_connected_members_in_the_group(start_stack):
    stack = start_stack(daphne_count=1)
    url = stack.instances[0].ws_url("/ws/room/leak/")
    sockets = [PingSocket(url) for _ in range(5)]
    members = {sock.welcome["member"] for sock in sockets}
    assert group_members(stack, "leak") == members

    stack.restart(0, "hard")

    for sock in sockets:
        assert close_code(sock.ws, timeout=10) == 1006
    assert group_members(stack, "leak") == members  # disconnect() never ran: all five leaked
    with PingSocket(url) as newcomer:
        assert newcomer.ping(1)["seq"] == 1
        live_prefix = newcomer.welcome["member"].split("!")[0]
        assert group_members(stack, "leak") == members | {newcomer.welcome["member"]}
    assert all(not m.startswith(live_prefix) for m in members)


def test_members_that_close_cleanly_are_discarded(start_stack):
    stack = start_stack(daphne_count=1)
    url = stack.instances[0].ws_url("/ws/room/tidy/")
    sockets = [PingSocket(url) for _ in range(3)]
    assert len(group_members(stack, "tidy")) == 3
    for sock in sockets:
        sock.close()
    wait_until(lambda: group_members(stack, "tidy") == set(), 10, "the group to empty")


def test_redis_py_default_socket_timeout_crashes_idle_consumers(start_stack):
    """FM-7: BZPOPMIN blocks 5 s and redis-py 8 times the read out at 5 s."""
    stack = start_stack(daphne_count=1, app=LayerOptions())  # REDIS_SOCKET_TIMEOUT unset
    sock = PingSocket(stack.instances[0].ws_url("/ws/room/idle/"))

    assert close_code(sock.ws, timeout=20) == 1011
    assert group_members(stack, "idle") == {sock.welcome["member"]}
    log = stack.instances[0].child.log_path
    wait_until(
        lambda: "Exception inside application: Timeout reading from" in log.read_text(),
        5,
        "the crash in the log",
    )


def test_the_redis_probe_counts_as_stale_exactly_the_members_a_sigkill_left(start_stack):
    stack = start_stack(daphne_count=2)
    probe = RedisProbe(stack.redis_url, stack.live_prefixes)
    on_killed = [PingSocket(stack.instances[0].ws_url("/ws/room/probe/")) for _ in range(4)]
    on_survivor = [PingSocket(stack.instances[1].ws_url("/ws/room/probe/")) for _ in range(2)]
    before = probe.sample()
    assert before.figures["group_members"] == 6 and before.figures["stale_members"] == 0
    assert before.figures["live_processes"] == 2

    stack.restart(0, "hard")

    after = probe.sample()
    assert after.figures["stale_members"] == len(on_killed)
    assert after.groups["room.probe"] == (6, 4)
    assert after.figures["member_processes"] == 2 and after.figures["live_processes"] == 2
    for sock in on_survivor + on_killed:
        sock.ws.close()
