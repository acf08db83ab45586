"""FM-3: ASGI_THREADS sizes the pool behind sync_to_async(thread_sensitive=False), nothing else.

Eight sockets each send one ping with the same blocking work at the same moment; the wall
time to the last pong is counted in units of that work. Ratios only: the machine is noisy.
"""

import threading
import time

import pytest

from conftest import stack_config
from load.config.settings import LayerOptions
from load.supervise.stack import Stack, healthz
from load.wire.pingclient import PingSocket
from support import still_running

WORK_MS = 300
PARALLEL = 8


def units_for_parallel_pings(url: str) -> float:
    """Wall time until all PARALLEL pongs arrived, in units of WORK_MS."""
    sockets = [PingSocket(url) for _ in range(PARALLEL)]
    for i, sock in enumerate(sockets):
        sock.ping(-1 - i)  # connected and answering before the clock starts
    start = threading.Barrier(PARALLEL + 1)
    errors: list[BaseException] = []

    def one(sock: PingSocket, seq: int) -> None:
        start.wait()
        try:
            sock.ping(seq, timeout=30, work_ms=WORK_MS)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(sock, i)) for i, sock in enumerate(sockets)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    for sock in sockets:
        sock.close()
    assert not errors, errors
    return elapsed / (WORK_MS / 1000)


@pytest.fixture(scope="module")
def stacks_by_threads(tmp_path_factory):
    """One memory-layer Daphne per ASGI_THREADS value (no Redis needed for these paths)."""
    stacks = {}
    try:
        for threads in (1, 8):
            config = stack_config(
                tmp_path_factory.mktemp(f"threads{threads}"),
                asgi_threads=threads,
                app=LayerOptions(layer="memory"),
            )
            stacks[threads] = Stack(config).start()
        yield stacks
    finally:
        for stack in stacks.values():
            stack.stop()
    assert still_running([pid for stack in stacks.values() for pid in stack.pids()]) == []


def test_asgi_threads_reaches_the_daphne_process(stacks_by_threads):
    for threads, stack in stacks_by_threads.items():
        assert healthz(stack.instances[0].port)["executor_max_workers"] == threads


def test_pool_endpoint_scales_with_asgi_threads(stacks_by_threads):
    one = units_for_parallel_pings(stacks_by_threads[1].instances[0].ws_url("/ws/ping/pool/"))
    eight = units_for_parallel_pings(stacks_by_threads[8].instances[0].ws_url("/ws/ping/pool/"))
    assert one > PARALLEL * 0.8  # about 8 units: one thread, eight pings in a row
    assert eight < PARALLEL * 0.4  # about 1 unit: eight threads
    assert one / eight > 3


def test_sync_endpoint_stays_serial_whatever_asgi_threads_says(stacks_by_threads):
    with_one = units_for_parallel_pings(stacks_by_threads[1].instances[0].ws_url("/ws/ping/sync/"))
    with_eight = units_for_parallel_pings(stacks_by_threads[8].instances[0].ws_url("/ws/ping/sync/"))
    pool_eight = units_for_parallel_pings(stacks_by_threads[8].instances[0].ws_url("/ws/ping/pool/"))
    assert with_eight > PARALLEL * 0.8
    assert 0.7 < with_eight / with_one < 1.4
    assert with_eight / pool_eight > 3


def test_set_asgi_threads_applies_to_the_next_generation(start_stack):
    stack = start_stack(daphne_count=1, asgi_threads=2, app=LayerOptions(layer="memory"))
    assert healthz(stack.instances[0].port)["executor_max_workers"] == 2
    stack.set_asgi_threads(5)
    assert healthz(stack.instances[0].port)["executor_max_workers"] == 2  # not before a restart
    stack.restart(0, "graceful")
    assert healthz(stack.instances[0].port)["executor_max_workers"] == 5
    stack.set_asgi_threads(None)
    stack.restart(0, "hard")
    assert healthz(stack.instances[0].port)["asgi_threads"] is None
