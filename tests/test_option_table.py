"""Issue 11, each option declared once: one table makes every entry point's options.

The table (load.config.options.OPTIONS) makes Locust's options and scenario keys, the
flags of `python -m load stack up`, `agent` and `demo`, and the sweep dimensions; every
stack knob is reachable from each. The target app's variables set in the environment are
used when their option is left at its default, and a line says so.
"""

import os
import signal
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import psutil
import pytest

from load.cli import build_parser
from load.config.options import LOCAL_STACK_OPTIONS, OPTIONS, STACK_OPTIONS, stack_config
from load.config.settings import ConfigError, DaphneOptions, LayerOptions, StackConfig
from load.runs.scenario import option_names, unknown_option
from load.runs.sweep import locust_environment, sweep_points
from locustrun import REPO
from support import still_running, wait_until

NEW_KNOBS = (
    "channel-capacity",
    "channel-expiry",
    "group-expiry",
    "websocket-timeout",
    "daphne-ping-interval",
    "daphne-ping-timeout",
)


def test_every_stack_setting_is_one_option_of_the_table():
    nested = {"app": LayerOptions, "daphne": DaphneOptions}
    settings = {
        f"{f.name}.{g.name}" if f.name in nested else f.name
        for f in fields(StackConfig)
        if f.name != "log_dir"
        for g in (fields(nested[f.name]) if f.name in nested else [f])
    }
    assert sorted(option.stack for option in STACK_OPTIONS) == sorted(settings)
    names = [name for option in OPTIONS for name in (option.name, *option.aliases)]
    assert len(names) == len(set(names))  # each name (and old spelling) means one option


def _flags(parser) -> set[str]:
    return {flag for action in parser._actions for flag in action.option_strings}


def _command(parser, *path: str):
    for name in path:
        parser = next(a for a in parser._actions if a.dest in ("command", "action")).choices[name]
    return parser


def test_every_stack_knob_is_a_flag_of_stack_up_agent_demo_and_sweep_and_a_scenario_key():
    parser = build_parser()
    for path in [("stack", "up"), ("agent",)]:
        assert {option.flag for option in STACK_OPTIONS} <= _flags(_command(parser, *path))
    for path in [("demo",), ("sweep",)]:
        assert {option.flag for option in LOCAL_STACK_OPTIONS} <= _flags(_command(parser, *path))
    old = {"--daphne", "--layer", "--capacity", "--expiry", "--ping-interval", "--ping-timeout"}
    assert old <= _flags(_command(parser, "stack", "up")) and {"--daphne", "--layer"} <= _flags(
        _command(parser, "sweep")
    )
    assert {option.name for option in LOCAL_STACK_OPTIONS} <= option_names()
    assert (
        unknown_option("capacity") == "did you mean 'channel-capacity'?"
    )  # stack up's spelling, in a scenario


def test_locust_help_lists_the_new_stack_knobs():
    result = subprocess.run(
        [sys.executable, "-m", "locust", "-f", "locustfile.py", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    for name in NEW_KNOBS:
        assert f"--{name}" in result.stdout


def test_each_new_knob_is_a_sweep_dimension_passed_to_locust_by_its_name():
    points = sweep_points({"group_expiry": "60,120", "daphne_ping_interval": "3"})
    assert [p.name for p in points] == [
        "group_expiry=60,daphne_ping_interval=3",
        "group_expiry=120,daphne_ping_interval=3",
    ]
    assert points[0].options() == ["--group-expiry", "60", "--daphne-ping-interval", "3"]
    with pytest.raises(ConfigError) as raised:
        sweep_points({"channel_capacity": "100,0"})
    assert raised.value.as_option().startswith("--channel-capacity '100,0': comma-separated values")


def test_a_sweep_sets_aside_the_variables_of_the_knobs_it_sweeps(monkeypatch, capsys):
    monkeypatch.setenv("CHANNEL_CAPACITY", "500")
    monkeypatch.setenv("GROUP_EXPIRY", "77")
    env = locust_environment({"channel_capacity": "100,1000", "group_expiry": ""})
    assert (
        "CHANNEL_CAPACITY" not in env and env["GROUP_EXPIRY"] == "77"
    )  # not swept: the plugin decides, and says
    assert (
        capsys.readouterr().out
        == "CHANNEL_CAPACITY='500' in the environment is not used: the sweep sets channel-capacity at each point\n"
    )


def test_the_environment_is_used_when_the_option_is_left_at_its_default_and_said():
    environ = {"CHANNEL_CAPACITY": "500", "GROUP_EXPIRY": "77", "ASGI_THREADS": "4"}
    config, notes = stack_config({"group_expiry": 120}, Path("server"), environ)
    assert (config.app.capacity, config.app.group_expiry, config.asgi_threads) == (500, 120, 4)
    assert notes == [
        "ASGI_THREADS='4' from the environment (asgi-threads was left at its default)",
        "CHANNEL_CAPACITY='500' from the environment (channel-capacity was left at its default)",
        "GROUP_EXPIRY='77' in the environment is not used: group-expiry 120 was given",
    ]
    assert stack_config({}, Path("server"), {})[1] == []


@pytest.mark.parametrize(
    ("variable", "says"),
    [("CHANNEL_CAPACITY", "not a whole number"), ("GROUP_EXPIRY", "must be a positive number")],
)
def test_a_bad_environment_value_is_named_by_its_variable(variable, says):
    raw = "many" if says.startswith("not") else "-5"
    with pytest.raises(ConfigError) as raised:
        stack_config({}, Path("server"), {variable: raw})
    assert (
        raised.value.as_option() == f"{variable}={raw!r}: {says} (set in the environment; fix it or unset it)"
    )


def _daphnes(root: int) -> list[psutil.Process]:
    try:
        children = psutil.Process(root).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    return [p for p in children if "target_app.asgi:application" in p.cmdline()]


def _flag(process: psutil.Process, name: str) -> str:
    argv = process.cmdline()
    return argv[argv.index(name) + 1]


def test_a_scenario_sets_the_new_knobs_on_the_local_stack_and_the_environment_fills_the_rest(tmp_path):
    scenario = tmp_path / "knobs.toml"
    scenario.write_text(
        '[tool.locust]\nusers = 1\nspawn-rate = 1\nrun-time = "6s"\nstack = "local"\nstack-daphne = 1\n'
        "channel-capacity = 7\nwebsocket-timeout = 600\ndaphne-ping-interval = 3\ndaphne-ping-timeout = 9\n"
    )
    env = {**os.environ, "GROUP_EXPIRY": "90", "CHANNEL_CAPACITY": "500"}
    run = subprocess.Popen(
        [sys.executable, "-m", "load", "run", str(scenario), "--results-dir", str(tmp_path / "results")],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        (daphne,) = wait_until(lambda: _daphnes(run.pid), 60, "the local stack's Daphne")
        seen = wait_until(lambda: _environ(daphne), 10, "Daphne's environment")
        argv_flags = {
            name: _flag(daphne, name) for name in ("--websocket_timeout", "--ping-interval", "--ping-timeout")
        }
        pids = [p.pid for p in psutil.Process(run.pid).children(recursive=True)]
        output, _ = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait(10)
    assert run.returncode == 0, output[-3000:]
    assert (seen["CHANNEL_CAPACITY"], seen["GROUP_EXPIRY"]) == (
        "7",
        "90",
    )  # the option given wins; the environment fills the rest
    assert argv_flags == {"--websocket_timeout": "600", "--ping-interval": "3", "--ping-timeout": "9"}
    (run_dir,) = (tmp_path / "results").iterdir()
    log = (run_dir / "locust.log").read_text()
    assert "GROUP_EXPIRY='90' from the environment (group-expiry was left at its default)" in log
    assert "CHANNEL_CAPACITY='500' in the environment is not used: channel-capacity 7 was given" in log
    wait_until(lambda: still_running(pids) == [], 15, f"the run's processes {pids} to end")


def _environ(process: psutil.Process) -> dict[str, str] | None:
    try:
        environ = process.environ()
    except psutil.Error:
        return None
    return environ if "TARGET_INSTANCE" in environ else None


def test_stack_up_says_which_variable_of_the_environment_it_uses_and_which_it_overrides(tmp_path):
    out = tmp_path / "stack-up.out"
    env = {**os.environ, "CHANNEL_EXPIRY": "33", "GROUP_EXPIRY": "90"}
    with open(out, "w") as handle:
        up = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "load",
                "stack",
                "up",
                "--results-dir",
                str(tmp_path / "results"),
                "--group-expiry",
                "120",
                "--ping-interval",
                "4",
                "--kill-after",
                "3",
            ],
            cwd=REPO,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until(lambda: "Ctrl-C stops everything." in out.read_text(), 60, "stack up to be ready")
        (daphne,) = _daphnes(up.pid)
        seen, interval = _environ(daphne), _flag(daphne, "--ping-interval")
        pids = [p.pid for p in psutil.Process(up.pid).children(recursive=True)]
        up.send_signal(signal.SIGINT)
        assert up.wait(30) == 0
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGKILL)
            up.wait(10)
    text = out.read_text()
    assert "CHANNEL_EXPIRY='33' from the environment (channel-expiry was left at its default)" in text
    assert "GROUP_EXPIRY='90' in the environment is not used: group-expiry 120 was given" in text
    assert (seen["CHANNEL_EXPIRY"], seen["GROUP_EXPIRY"], interval) == ("33", "120", "4")
    assert still_running(pids) == []
