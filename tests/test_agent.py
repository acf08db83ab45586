"""The agent's HTTP API over a real stack: token, restarts, threads, events, logs, bad requests."""

import http.client
import json
import os
import queue
import secrets
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import websocket

from conftest import stack_config
from load.agent.client import REFUSED_TOKEN, AgentClient, AgentError
from load.agent.server import LOG_CHUNK_BYTES, Agent, AgentConfig, is_loopback, run_agent
from load.chaos.controller import Controller, TargetError
from load.chaos.remote import AgentTarget, remote_agents
from load.config.settings import ChaosPlan, ConfigError
from load.probes.serverlog import ServerLogFollower
from load.supervise.procs import EXITED, SIGKILLED
from load.supervise.stack import healthz
from load.wire.pingclient import PingSocket
from locustrun import read_json
from support import close_code, still_running, wait_until

TOKEN = "t" + secrets.token_urlsafe(24)  # never "-...": that would read as an option on a command line
REPO = Path(__file__).resolve().parent.parent


def request(
    agent: Agent,
    method: str,
    target: str,
    body: bytes | None = None,
    authorization: str | None = f"Bearer {TOKEN}",
):
    """One raw HTTP request: (status, headers, body)."""
    host, port = agent.address
    connection = http.client.HTTPConnection(host, port, timeout=30)
    headers = {"Authorization": authorization} if authorization is not None else {}
    try:
        connection.request(method, target, body, headers)
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def one_line_error(body: bytes) -> str:
    error = json.loads(body)["error"]
    assert "\n" not in error and "Traceback" not in error
    return error


@pytest.fixture(scope="module")
def served_agent(served_stack):
    """An agent over the module's shared stack, for tests that change nothing."""
    with Agent(served_stack, AgentConfig(TOKEN)) as agent:
        yield agent


@pytest.fixture
def client(served_agent):
    return AgentClient(served_agent.url, TOKEN, timeout=60)


@pytest.fixture
def start_agent(start_stack):
    """A fresh stack (StackConfig overrides) with an agent over it: (stack, agent, client)."""
    agents: list[Agent] = []

    def start(**overrides):
        stack = start_stack(**overrides)
        agents.append(Agent(stack, AgentConfig(TOKEN)).start())
        return stack, agents[-1], AgentClient(agents[-1].url, TOKEN, timeout=60)

    yield start
    for agent in agents:
        agent.stop()


# -- the token and the address -------------------------------------------------------------


def test_status_answers_with_the_token(served_agent, client):
    status = client.status()
    assert [i["instance"] for i in status["instances"]] == ["daphne-0"]
    assert status["instances"][0]["alive"] and status["instances"][0]["health"]["status"] == "ok"
    assert status["redis_url"] == served_agent.stack.redis_url
    assert status["events"] == len(served_agent.stack.events)


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer wrong-token-of-some-length",
        f"Bearer {TOKEN}x",
        f"Bearer {TOKEN[:-1]}",
        f"Basic {TOKEN}",
        "Bearer ",
        TOKEN,
    ],
    ids=["none", "wrong", "longer", "shorter", "basic", "empty", "no-scheme"],
)
def test_requests_without_the_right_token_get_401_and_change_nothing(served_agent, authorization):
    stack = served_agent.stack
    pid, events = stack.instances[0].child.pid, len(stack.events)
    for method, target, body in [
        ("POST", "/restart", b'{"instance": 0, "mode": "hard"}'),
        ("POST", "/asgi-threads", b'{"threads": 2, "restart": "hard"}'),
        ("GET", "/status", None),
        ("GET", "/nowhere", None),  # no endpoint list for strangers either
    ]:
        status, headers, reply = request(served_agent, method, target, body, authorization)
        assert status == 401
        assert headers["WWW-Authenticate"] == "Bearer"
        assert "token" in one_line_error(reply)
    assert stack.instances[0].child.pid == pid and stack.instances[0].generation == 1
    assert len(stack.events) == events


def test_the_client_names_a_refused_token(served_agent):
    with pytest.raises(AgentError) as refused:
        AgentClient(served_agent.url, "not-the-token-but-long-enough").status()
    assert refused.value.status == 401
    assert str(refused.value).endswith(REFUSED_TOKEN)
    assert "not-the-token" not in str(refused.value)


def test_the_agent_listens_on_loopback_by_default(served_agent):
    assert AgentConfig(TOKEN).bind == "127.0.0.1"
    host, port = served_agent.address
    assert host == "127.0.0.1" and port > 0 and served_agent.loopback
    assert served_agent.url == f"http://127.0.0.1:{port}"
    assert TOKEN not in repr(AgentConfig(TOKEN))
    assert is_loopback("::1") and not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3")


@pytest.mark.parametrize(
    ("config", "option"),
    [
        ({"token": ""}, "--token"),
        ({"token": "short"}, "--token"),
        ({"token": "fifteen-chars-x"}, "--token"),
        ({"token": "sixteen chars with spaces"}, "--token"),
        ({"token": None}, "--token"),
        ({"token": TOKEN, "port": -1}, "--port -1"),
        ({"token": TOKEN, "port": 70000}, "--port 70000"),
        ({"token": TOKEN, "port": True}, "--port True"),
        ({"token": TOKEN, "bind": ""}, "--bind ''"),
        ({"token": TOKEN, "bind": "host name"}, "--bind 'host name'"),
    ],
)
def test_weak_tokens_and_bad_addresses_are_rejected_by_validation(config, option):
    with pytest.raises(ConfigError) as rejected:
        AgentConfig(**config).validate()
    line = rejected.value.as_option()
    assert line.startswith(option) and "\n" not in line
    if config["token"] and config["token"] != TOKEN:
        assert config["token"] not in line  # a rejected token is still a secret


# -- changes through the API -----------------------------------------------------------------


@pytest.mark.parametrize(("mode", "how"), [("graceful", EXITED), ("hard", SIGKILLED)])
def test_restart_through_the_api_closes_sockets_and_the_new_pid_answers(start_agent, mode, how):
    stack, _agent, client = start_agent(daphne_count=1)
    instance = stack.instances[0]
    old_pid = instance.child.pid
    sock = PingSocket(instance.ws_url("/ws/ping/"))
    assert sock.ping(1)["pid"] == old_pid

    (outcome,) = client.restart(0, mode)

    assert outcome["instance"] == "daphne-0" and outcome["index"] == 0 and outcome["mode"] == mode
    assert outcome["exit"]["how"] == how
    assert outcome["exit"]["returncode"] == (0 if mode == "graceful" else -9)
    assert outcome["new_pid"] != old_pid and outcome["generation"] == 2 and outcome["down_seconds"] > 0
    assert close_code(sock.ws, timeout=10) == 1006
    with PingSocket(instance.ws_url("/ws/ping/")) as fresh:
        assert fresh.ping(2)["pid"] == outcome["new_pid"]
    assert client.status()["instances"][0]["pid"] == outcome["new_pid"]


def test_restart_all_restarts_each_instance_in_turn(start_agent):
    stack, _agent, client = start_agent(daphne_count=2)
    outcomes = client.restart("all", "hard")
    assert [(o["instance"], o["generation"]) for o in outcomes] == [("daphne-0", 2), ("daphne-1", 2)]
    steps = [
        (e["event"], e["instance"]) for e in stack.events if e["event"] in ("restart_begin", "restart_done")
    ]
    assert steps == [
        ("restart_begin", "daphne-0"),
        ("restart_done", "daphne-0"),
        ("restart_begin", "daphne-1"),
        ("restart_done", "daphne-1"),
    ]
    for outcome, instance in zip(outcomes, stack.instances, strict=True):
        with PingSocket(instance.ws_url("/ws/ping/")) as sock:
            assert sock.ping(1)["pid"] == outcome["new_pid"]


def test_set_asgi_threads_with_a_restart_reaches_the_daphne_process(start_agent):
    stack, _agent, client = start_agent(daphne_count=1)
    port, pid = stack.instances[0].port, stack.instances[0].child.pid

    assert client.set_asgi_threads(5) == {"threads": 5, "restarts": []}
    assert healthz(port)["pid"] == pid and healthz(port)["asgi_threads"] is None  # not before a restart

    result = client.set_asgi_threads(3, restart="hard")
    assert result["threads"] == 3 and [r["mode"] for r in result["restarts"]] == ["hard"]
    assert healthz(port)["executor_max_workers"] == 3 and healthz(port)["asgi_threads"] == "3"

    client.set_asgi_threads(None, restart="graceful")
    assert healthz(port)["asgi_threads"] is None


def test_stop_and_start_make_an_outage_and_end_it(start_agent):
    stack, _agent, client = start_agent(daphne_count=1)
    url = stack.instances[0].ws_url("/ws/ping/")

    stopped = client.stop_instance(0, "hard")
    assert stopped["exit"]["how"] == SIGKILLED
    assert client.status()["instances"][0]["alive"] is False
    with pytest.raises(ConnectionRefusedError):
        websocket.create_connection(url, timeout=5)
    with pytest.raises(AgentError) as twice:
        client.stop_instance(0)
    assert twice.value.status == 409 and "already down" in twice.value.message

    started = client.start_instance(0)
    assert started["generation"] == 2
    with PingSocket(url) as sock:
        assert sock.ping(1)["pid"] == started["pid"]
    with pytest.raises(AgentError) as running:
        client.start_instance(0)
    assert running.value.status == 409 and "running" in running.value.message


def test_changes_wait_for_each_other_but_reads_do_not(start_agent):
    stack, agent, client = start_agent(daphne_count=1)
    outcomes: queue.Queue = queue.Queue()
    with agent.lock:  # as if a long graceful restart were in progress
        restarts = [
            threading.Thread(target=lambda: outcomes.put(client.restart(0, "hard"))) for _ in range(2)
        ]
        for thread in restarts:
            thread.start()
        assert AgentClient(agent.url, TOKEN, timeout=5).status()["instances"][0]["generation"] == 1
        assert AgentClient(agent.url, TOKEN, timeout=5).events(0)["next"] == len(stack.events)
        assert all(thread.is_alive() for thread in restarts)  # both wait for the lock
    for thread in restarts:
        thread.join(60)
    assert sorted(outcomes.get_nowait()[0]["generation"] for _ in range(2)) == [2, 3]
    steps = [e["event"] for e in stack.events if e["event"] in ("restart_begin", "restart_done")]
    assert steps == ["restart_begin", "restart_done", "restart_begin", "restart_done"]


# -- following events and logs ---------------------------------------------------------------


def test_events_since_return_only_new_events(served_agent, client):
    stack = served_agent.stack
    first = client.events(0)
    assert first["next"] == len(stack.events) and first["events"] == json.loads(json.dumps(stack.events))

    client.set_asgi_threads(None)  # one new event, no process touched

    second = client.events(first["next"])
    assert [e["event"] for e in second["events"]] == ["asgi_threads_set"]
    assert second["next"] == first["next"] + 1
    assert client.events(second["next"]) == {"events": [], "next": second["next"]}
    with pytest.raises(AgentError) as ahead:
        client.events(second["next"] + 5)
    assert ahead.value.status == 400 and f"since={second['next'] + 5}" in ahead.value.message


def test_logs_from_an_offset_return_only_new_bytes(served_agent, client):
    instance = served_agent.stack.instances[0]
    start, offset = client.logs(0, 1, 0)
    assert b"Listening on TCP address" in start and offset == len(start)

    os.kill(instance.child.pid, signal.SIGUSR1)  # the target app dumps its threads' stacks into the log

    dump, after = wait_until(
        lambda: (lambda chunk: chunk if chunk[0] else None)(client.logs(0, 1, offset)), 10, "the stack dump"
    )
    assert b"Listening" not in dump and b"File " in dump and after == offset + len(dump)

    with open(instance.child.log_path, "ab") as log:  # more than one call returns
        log.write(b"x" * (LOG_CHUNK_BYTES + 1000))
    size = instance.child.log_path.stat().st_size
    chunk, middle = client.logs(0, 1, after)
    assert len(chunk) == LOG_CHUNK_BYTES and middle == after + LOG_CHUNK_BYTES
    rest, end = client.logs(0, 1, middle)
    assert end == size and len(rest) == size - middle
    assert client.logs(0, 1, end) == (b"", end)


# -- bad requests ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "target", "body", "names"),
    [
        ("POST", "/restart", b'{"instance": 5, "mode": "hard"}', "instance=5"),
        ("POST", "/restart", b'{"instance": -1, "mode": "hard"}', "instance=-1"),
        ("POST", "/restart", b'{"instance": true, "mode": "hard"}', "instance=true"),
        ("POST", "/restart", b'{"instance": "0", "mode": "hard"}', 'instance="0"'),
        ("POST", "/restart", b'{"instance": 0, "mode": "soft"}', 'mode="soft"'),
        ("POST", "/restart", b'{"instance": 0, "mode": "hard"', "not JSON"),
        ("POST", "/restart", b"[0]", "body=[0]"),
        ("POST", "/restart", b'{"instance": 0, "mdoe": "hard"}', 'mdoe="hard"'),
        ("POST", "/restart", b"", "instance is missing"),
        ("POST", "/stop", b'{"instance": "all", "mode": "hard"}', 'instance="all"'),
        ("POST", "/start", b'{"instance": 0.0}', "instance=0.0"),
        ("POST", "/asgi-threads", b'{"threads": 0, "restart": "hard"}', "threads=0"),
        ("POST", "/asgi-threads", b'{"threads": 2, "restart": "later"}', 'restart="later"'),
        ("GET", "/events?since=-1", None, 'since="-1"'),
        ("GET", "/logs?instance=0&offset=x", None, 'offset="x"'),
        ("GET", "/logs?instance=0&generation=9", None, "generation=9"),
        ("GET", "/logs?instance=3", None, "instance=3"),
        ("GET", "/status?verbose=1", None, 'verbose="1"'),
    ],
)
def test_bad_requests_get_400_naming_the_value_and_change_nothing(served_agent, method, target, body, names):
    stack = served_agent.stack
    pid, events = stack.instances[0].child.pid, len(stack.events)
    status, _headers, reply = request(served_agent, method, target, body)
    assert status == 400
    assert names in one_line_error(reply)
    assert stack.instances[0].child.pid == pid and len(stack.events) == events


@pytest.mark.parametrize(
    ("method", "target", "status"),
    [("GET", "/nowhere", 404), ("GET", "/restart", 405), ("POST", "/status", 405), ("DELETE", "/stop", 405)],
)
def test_unknown_paths_get_404_and_wrong_methods_405(served_agent, method, target, status):
    answered, _headers, reply = request(served_agent, method, target, b"{}" if method != "GET" else None)
    assert answered == status
    assert one_line_error(reply)


def test_the_client_says_when_it_cannot_reach_the_agent():
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # bound, not listening: connections are refused
        with pytest.raises(AgentError) as unreachable:
            AgentClient(f"http://127.0.0.1:{port}", TOKEN, timeout=5).status()
    assert unreachable.value.status is None and "cannot reach the agent" in str(unreachable.value)
    assert TOKEN not in str(unreachable.value)
    with pytest.raises(ConfigError) as bad_url:
        AgentClient("ws://127.0.0.1:1", TOKEN)
    assert bad_url.value.as_option().startswith("--agent-url")


# -- run_agent: what `python -m load agent` calls ---------------------------------------------


def agent_script(log_dir: Path) -> list[str]:
    code = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from load.agent.server import AgentConfig, run_agent\n"
        "from load.config.settings import LayerOptions, StackConfig\n"
        "signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))\n"
        # As the CLI does: a SIGINT inherited ignored (a suite started with `&`) is Ctrl-C again.
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "config = StackConfig(app=LayerOptions(redis_socket_timeout='none'), kill_after=3.0, ready_timeout=30.0, log_dir=Path(sys.argv[1]))\n"
        "try:\n"
        "    run_agent(config, AgentConfig(os.environ['AGENT_TOKEN']), announce=lambda line: print(line, flush=True))\n"
        "except KeyboardInterrupt:\n"
        "    sys.exit(0)\n"
    )
    return [sys.executable, "-c", code, str(log_dir)]


@pytest.mark.parametrize(
    ("signum", "returncode"), [(signal.SIGTERM, 128 + signal.SIGTERM), (signal.SIGINT, 0)]
)
def test_run_agent_serves_until_a_signal_and_leaves_no_process(tmp_path, signum, returncode):
    process = subprocess.Popen(
        agent_script(tmp_path / "server"),
        cwd=REPO,
        env={**os.environ, "AGENT_TOKEN": TOKEN},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True)
    reader.start()
    output: list[str] = []

    def ready_line():
        while not lines.empty():
            output.append(lines.get())
        return next((line for line in output if line.startswith("agent http://")), None)

    try:
        ready = wait_until(ready_line, 60, f"the agent's ready line; so far {output}")
        url = ready.split()[1]
        assert url.startswith("http://127.0.0.1:") and "daphne-0 ws://127.0.0.1:" in ready
        client = AgentClient(url, TOKEN, timeout=30)
        assert client.status()["instances"][0]["alive"]
        events = client.events(0)["events"]
        pids = [e["pid"] for e in events if e["event"] in ("spawned", "redis_ready")]
        assert len(pids) == 2

        process.send_signal(signum)

        assert process.wait(30) == returncode
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        reader.join(10)  # the pipe ends with the process: only it writes there
        process.stdout.close()
    assert still_running(pids) == []
    ready_line()
    assert not any(TOKEN in line for line in output)
    assert not any("warning" in line for line in output)  # loopback: nothing to warn about
    assert (tmp_path / "events.jsonl").read_text().count('"spawned"') == 1


def test_run_agent_warns_off_loopback_and_stops_everything_when_interrupted(tmp_path, monkeypatch):
    monkeypatch.setattr(Agent, "loopback", property(lambda self: False))
    said: list[str] = []

    def announce(line: str) -> None:
        said.append(line)
        if line.startswith("agent http://"):
            raise KeyboardInterrupt  # as Ctrl-C would, once the agent is serving

    with pytest.raises(KeyboardInterrupt):
        run_agent(stack_config(tmp_path / "server"), AgentConfig(TOKEN), announce)

    assert sum(line.startswith("warning: the agent listens on") for line in said) == 1
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    pids = [e["pid"] for e in events if e["event"] in ("spawned", "redis_ready")]
    assert len(pids) == 2 and still_running(pids) == []
    assert "redis_stopped" in [e["event"] for e in events]


def test_run_agent_refuses_a_weak_token_or_a_busy_port_before_starting_anything(tmp_path):
    with pytest.raises(ConfigError) as weak:
        run_agent(stack_config(tmp_path / "a" / "server"), AgentConfig("short"), announce=lambda line: None)
    assert weak.value.as_option().startswith("--token")
    assert not (tmp_path / "a").exists()

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ConfigError) as taken:
            run_agent(
                stack_config(tmp_path / "b" / "server"),
                AgentConfig(TOKEN, port=port),
                announce=lambda line: None,
            )
    assert taken.value.as_option().startswith(f"--port {port}")
    assert "spawned" not in (tmp_path / "b" / "events.jsonl").read_text()


# -- several agents: one target over all their instances -------------------------------------


class FakeAgentClient:
    """An agent's client that answers from memory: `count` instances; restarts recorded.
    A restart waits at `barrier` (when given) for the other agents' to begin."""

    def __init__(self, url: str, count: int, order: list, barrier: threading.Barrier | None = None):
        self.url, self.count, self.order, self.barrier = url, count, order, barrier
        self.calls: list[tuple] = []

    def status(self) -> dict:
        return {"instances": [{"instance": f"daphne-{i}", "alive": True} for i in range(self.count)]}

    def restart(self, instance, mode="graceful", together=False) -> list[dict]:
        self.calls.append(("restart", instance, mode, together))
        self.order.append((self.url, instance))
        if self.barrier is not None:
            self.barrier.wait()  # BrokenBarrierError after its timeout: the agents went one by one
        indices = range(self.count) if instance == "all" else [instance]
        return [{"index": i, "instance": f"daphne-{i}", "mode": mode} for i in indices]

    def set_asgi_threads(self, threads, restart=None) -> dict:
        self.calls.append(("asgi_threads", threads))
        return {"threads": threads, "restarts": []}


def two_agents(barrier: threading.Barrier | None = None):
    order: list[tuple] = []  # (agent URL, instance) of every restart asked, in turn
    clients = [
        FakeAgentClient("http://10.0.0.1:8700", 2, order, barrier),
        FakeAgentClient("http://10.0.0.2:8700", 1, order, barrier),
    ]
    return clients, order, AgentTarget(remote_agents(clients))


def test_instances_are_numbered_across_agents_in_the_order_given_and_a_number_beyond_is_refused():
    (first, second), _order, target = two_agents()
    assert target.instance_count() == 3

    (outcome,) = target.restart([2], "hard")  # the second agent's first instance

    assert second.calls == [("restart", 0, "hard", False)] and first.calls == []
    assert (outcome["agent"], outcome["agent_host"], outcome["instance"]) == (
        "agent1",
        "10.0.0.2:8700",
        "daphne-0",
    )
    assert outcome["target_index"] == 2 and outcome["index"] == 0
    assert [o["target_index"] for o in target.restart([1], "hard")] == [1]
    assert first.calls[-1] == ("restart", 1, "hard", False)

    with pytest.raises(ConfigError) as beyond:
        ChaosPlan(restart_which="3").validate(target.instance_count())
    assert beyond.value.as_option().startswith(
        "--restart-which '3': there are 3 instance(s), numbered 0 to 2"
    )
    calls = len(first.calls) + len(second.calls)
    with pytest.raises(TargetError, match="no instance 3: the agents run 3"):
        target.restart([3], "hard")
    assert len(first.calls) + len(second.calls) == calls  # refused before any agent was asked

    target.set_asgi_threads(4)
    assert first.calls[-1] == second.calls[-1] == ("asgi_threads", 4)


def test_restart_all_restarts_every_agents_instances_at_once_and_rolling_one_after_another():
    # Each agent's restart of "all" waits for the other's to begin: done one by one, it fails.
    (first, second), _order, target = two_agents(threading.Barrier(2, timeout=10))
    outcomes = target.restart([0, 1, 2], "graceful")
    assert first.calls == [("restart", "all", "graceful", True)]  # its two together
    assert second.calls == [("restart", 0, "graceful", False)]
    assert [(o["agent"], o["instance"], o["target_index"]) for o in outcomes] == [
        ("agent0", "daphne-0", 0),
        ("agent0", "daphne-1", 1),
        ("agent1", "daphne-0", 2),
    ]

    _clients, order, target = two_agents()
    events: list[dict] = []
    Controller(ChaosPlan(restart_at=(1.0,), restart_which="rolling"), target, events.append, 0.0).run(
        sleep=lambda seconds: None
    )
    assert order == [("http://10.0.0.1:8700", 0), ("http://10.0.0.1:8700", 1), ("http://10.0.0.2:8700", 0)]
    (done,) = [e for e in events if e["event"] == "action_done"]
    assert [o["target_index"] for o in done["outcome"]] == [0, 1, 2]


def test_two_agents_restarted_in_rolling_order_one_host_ready_before_the_next(start_agent, locust, tmp_path):
    stack_a, agent_a, _client = start_agent(daphne_count=1)
    stack_b, agent_b, _client = start_agent(daphne_count=1, redis_url=stack_a.redis_url)  # one channel layer
    targets = [stack.instances[0].ws_url("") for stack in (stack_a, stack_b)]
    run = locust(
        "--headless", "--host", targets[0], "--targets", ",".join(targets),  # two users on each host
        "-u", "4", "-r", "4", "-t", "9s", "--pong-timeout", "1", "--reconnect-min", "0.2", "--reconnect-max", "1",
        "--agent-url", agent_a.url, "--agent-url", agent_b.url, f"--agent-token={TOKEN}",
        "--restart-at", "3", "--restart-which", "rolling",
        "--redis-probe-url", stack_a.redis_url, "--results-dir", str(tmp_path / "results"),
    )  # fmt: skip
    folder = run.written(tmp_path / "results", 60)
    events = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]

    steps = [
        (e["agent"], e["agent_host"], e["event"], e["ts"])
        for e in events
        if e.get("source") == "agent" and e["event"] in ("restart_begin", "ready", "restart_done")
    ]
    hosts = [url.removeprefix("http://") for url in (agent_a.url, agent_b.url)]
    assert [step[:3] for step in steps] == [
        (name, host, event)
        for name, host in zip(["agent0", "agent1"], hosts, strict=True)
        for event in ("restart_begin", "ready", "restart_done")
    ]
    assert steps[2][3] <= steps[3][3]  # agent0's instance ready before agent1's restart began
    (done,) = [e for e in events if e["event"] == "action_done"]
    assert [(o["agent"], o["target_index"], o["generation"]) for o in done["outcome"]] == [
        ("agent0", 0, 2),
        ("agent1", 1, 2),
    ]

    summary = read_json(folder / "summary.json")
    (restart,) = summary["restarts"]
    assert restart["which"] == "rolling" and restart["instances"] == ["agent0/daphne-0", "agent1/daphne-0"]

    # Each host's logs in its own folder, every generation; the one follower added them up.
    server = folder / "server"
    assert sorted(p.relative_to(server).as_posix() for p in server.rglob("daphne-*.log")) == [
        f"{name}/daphne-0.gen{g}.log" for name in ("agent0", "agent1") for g in (1, 2)
    ]
    killed = []
    for name in ("agent0", "agent1"):
        follower = ServerLogFollower(lambda name=name: sorted((server / name).glob("daphne-*.log")))
        follower.poll()
        killed.append(follower.totals["sig_killed_pending"])  # the SIGTERM cancelled its host's sockets
    assert min(killed) >= 1 and summary["server"]["sig_killed_pending"] == sum(killed)
    assert healthz(stack_b.instances[0].port)["pid"] == stack_b.instances[0].child.pid


@pytest.mark.parametrize("second", ["unreachable", "refused", "twice"])
def test_each_agent_is_checked_at_start_and_a_bad_one_is_named_in_one_line(
    served_stack, served_agent, locust, tmp_path, second
):
    with (
        socket.socket() as unused,
        Agent(served_stack, AgentConfig("another-token-of-enough-length")) as other,
    ):
        unused.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
        bad_url = {
            "unreachable": f"http://127.0.0.1:{unused.getsockname()[1]}",
            "refused": other.url,
            "twice": served_agent.url + "/",  # the same agent, spelt another way
        }[second]
        run = locust(
            "--headless",
            "--host",
            served_stack.instances[0].ws_url(""),
            "-t",
            "5s",
            "--agent-url",
            served_agent.url,
            "--agent-url",
            bad_url,
            f"--agent-token={TOKEN}",
            "--restart-at",
            "2",
            "--results-dir",
            str(tmp_path / "results"),
        )
        assert run.wait(60) == 2
    (line,) = [line for line in run.output().splitlines() if "error" in line.lower()]
    says = {"unreachable": "cannot reach the agent", "refused": REFUSED_TOKEN, "twice": "given twice"}[second]
    assert line.startswith(f"locust: error: --agent-url '{bad_url}': {says}")
    assert TOKEN not in run.output() and not (tmp_path / "results").exists()
