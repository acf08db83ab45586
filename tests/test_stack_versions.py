"""The version matrix: the target app under another pinned stack (stacks/channels2.txt) in its
own virtualenv, beside today's; the channels2 virtualenv is built once per checkout (.stacks/)."""

import csv
import json
import os
import subprocess
import sys
import time

import pytest
import redis

from conftest import stack_config
from load.config.settings import ConfigError, LayerOptions
from load.probes.redisprobe import RedisProbe
from load.runfolder.names import MIGRATE_LOG, NOT_APPLICABLE, STACK_VERSIONS, TARGET_STACK
from load.supervise import targetstack
from load.supervise.redisserver import StackError
from load.supervise.stack import Stack
from load.supervise.targetstack import TargetStack, target_stack
from load.wire.pingclient import PingSocket
from locustrun import REPO
from support import close_code

OLD = "channels2"
# pip's words when it cannot reach the package index (or the index lacks the pins)
UNREACHABLE = ("No matching distribution", "Could not find a version", "connection", "Network is unreachable")


@pytest.fixture(scope="session")
def channels2() -> TargetStack:
    """The channels2 virtualenv, built here on first use (about 15 s), else reused from .stacks/."""
    began = time.monotonic()
    try:
        stack = target_stack(OLD)
    except StackError as exc:
        if os.environ.get("CI") == "true" or not any(word in str(exc) for word in UNREACHABLE):
            raise
        pytest.skip(f"the {OLD} stack cannot be installed here (no package index?): {exc}")
    print(f"{OLD} virtualenv ready in {time.monotonic() - began:.1f} s (built: {stack.build_s} s)")
    return stack


def test_the_old_stack_serves_every_endpoint_and_its_leaks_are_measured(channels2, start_stack):
    assert channels2.versions["channels"] == "2.4.0" and channels2.versions["daphne"] == "2.5.0"
    assert channels2.versions["channels-redis"] == "2.4.2" and channels2.versions["django"].startswith("3.1.")
    stack = start_stack(daphne_count=1, versions=OLD)
    (chosen,) = [e for e in stack.events if e["event"] == TARGET_STACK]
    assert chosen[STACK_VERSIONS] == OLD and chosen["versions"]["asgiref"] == "3.2.10"
    assert "REDIS_SOCKET_TIMEOUT" in chosen[NOT_APPLICABLE]["env"]  # aioredis has none: said, not dropped
    assert stack.target_versions()["channels"] == "2.4.0"
    instance = stack.instances[0]
    for path in ("/ws/ping/", "/ws/ping/sync/", "/ws/ping/pool/", "/ws/ping/db/", "/ws/ping/layer/"):
        with PingSocket(instance.ws_url(path)) as sock:
            assert sock.ping(1, work_ms=5)["seq"] == 1, path
    probe = RedisProbe(stack.redis_url, stack.live_prefixes)
    members = [PingSocket(instance.ws_url("/ws/room/old/")) for _ in range(3)]
    assert members[0].ping(7)["via"] == "group"
    assert members[1].recv_json(timeout=5) == {
        "type": "broadcast",
        "room": "old",
        "sender": members[0].welcome["member"],
        "seq": 7,
    }
    keys = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    assert keys.zcard("asgi::group:room.old") == 3  # channels_redis 2's key name
    assert probe.sample().figures["group_members"] == 3

    stack.restart(0, "hard")

    for sock in members:
        assert close_code(sock.ws, timeout=10) == 1006
    after = probe.sample()
    assert after.groups["room.old"] == (3, 3)  # every member of the killed process is stale
    assert after.figures["stale_members"] == 3 and after.figures["live_processes"] == 1


def test_only_the_daphne_flags_a_version_has_are_passed_and_the_rest_are_named():
    old_daphne = TargetStack(OLD, "python", ("daphne",), daphne_flags=frozenset({"--ping-interval"}))
    flags = ["--ping-interval", "5", "--websocket_connect_timeout", "3"]
    assert old_daphne.daphne_argv(flags) == (["--ping-interval", "5"], ["--websocket_connect_timeout"])
    assert TargetStack("current", "python", ("daphne",)).daphne_argv(flags) == (flags, [])


def test_a_layer_the_old_stack_lacks_is_refused_before_anything_starts(channels2, tmp_path):
    config = stack_config(tmp_path, versions=OLD, app=LayerOptions(layer="redis-pubsub"))
    with pytest.raises(ConfigError, match="channels_redis 2.x has no pub/sub layer"):
        Stack(config).start()
    assert not (tmp_path / MIGRATE_LOG).exists()  # refused before migrate, Redis or Daphne


def test_a_set_that_cannot_be_installed_is_one_line_with_pip_s_log(tmp_path, monkeypatch):
    (tmp_path / "stacks").mkdir()
    (tmp_path / "stacks" / "broken.txt").write_text("./no-such-package-here\n")
    monkeypatch.setattr("load.config.settings.STACKS_DIR", tmp_path / "stacks")
    monkeypatch.setattr(targetstack, "CACHE_DIR", tmp_path / "cache")
    with pytest.raises(StackError) as raised:
        target_stack("broken")
    message = str(raised.value)
    assert "\n" not in message and message.startswith("cannot build the broken stack's virtualenv (")
    (log,) = (tmp_path / "cache").glob("broken-*.log")
    assert str(log) in message and "no-such-package-here" in log.read_text()
    assert [p.name for p in (tmp_path / "cache").iterdir() if p.is_dir()] == []  # no half-built venv kept


SCENARIO = """
[tool.locust]
users = 4
spawn-rate = 4
run-time = "2s"
stack = "local"
stack-daphne = 1
paths = "/ws/ping/:1,/ws/room/matrix/:1"
ping-rate = 2
redis-socket-timeout = "none"
"""


def test_a_sweep_over_stack_versions_runs_each_set_and_compares_them(channels2, tmp_path):
    scenario = tmp_path / "matrix.toml"
    scenario.write_text(SCENARIO)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "load",
            "sweep",
            "--scenario",
            str(scenario),
            "--stack-versions",
            f"current,{OLD}",
        ]
        + ["--results-dir", str(tmp_path / "results")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (sweep_dir,) = (tmp_path / "results").iterdir()
    channels = {}
    for point in ("stack_versions=current", f"stack_versions={OLD}"):
        manifest = json.loads((sweep_dir / point / "manifest.json").read_text())
        versions = manifest["versions"]
        channels[versions[STACK_VERSIONS]] = versions["channels"]
        not_applicable = manifest["stack"][TARGET_STACK][NOT_APPLICABLE]["env"]
        assert ("REDIS_SOCKET_TIMEOUT" in not_applicable) == (versions[STACK_VERSIONS] == OLD)
        summary = json.loads((sweep_dir / point / "summary.json").read_text())
        assert summary["all"]["pongs"] > 0, point
    assert channels == {"current": "4.3.2", OLD: "2.4.0"}  # the target's, not the suite's
    with open(sweep_dir / "comparison.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(row[STACK_VERSIONS] for row in rows) == ["channels2", "current"]  # a row per set
