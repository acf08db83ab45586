"""Bad input stops before the run: one line naming the value and the fix, exit 2, no run folder.

One row per case: (command, argv, the first words of the error line). `locust` rows run
`locust -f locustfile.py --headless -u 1 -t 3s --results-dir R ARGV` as a process; `load`
rows call `python -m load ARGV [--results-dir R]` in this process (load.cli.main), which
starts Locust itself only where Locust is the one to refuse. Placeholders in ARGV:
{scenario} a good scenario file, {nested} / {typo} bad ones, {forbidden} a server that
answers every request with HTTP 403, {daphne} a real Daphne of the target app.
"""

import http.server
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from load.cli import main
from locustrun import REPO

NO_SERVER = "ws://127.0.0.1:9"  # discard port: nothing listens
LOCUST, LOAD = "locust", "load"

ROWS = [
    # the users' options
    (LOCUST, ["--host", NO_SERVER, "--paths", "/ws/nope/"], "--paths '/ws/nope/': the target app serves"),
    (
        LOCUST,
        ["--host", NO_SERVER, "--paths", "/ws/ping/:x"],
        "--paths '/ws/ping/:x': the weight 'x' of /ws/ping/ must be a whole number",
    ),
    (LOCUST, ["--host", NO_SERVER, "--paths", "/ws/ping/:-1"], "--paths '/ws/ping/:-1': the weight '-1'"),
    (LOCUST, ["--host", NO_SERVER, "--ping-rate", "-1"], "--ping-rate -1.0: must be a positive number"),
    (
        LOCUST,
        ["--host", NO_SERVER, "--ping-jitter", "2"],
        "--ping-jitter 2.0: a fraction of the ping interval",
    ),
    (
        LOCUST,
        ["--targets", "http://127.0.0.1:8000"],
        "--host 'http://127.0.0.1:8000': websocket servers take ws:// or wss:// URLs, e.g. ws://127.0.0.1:8000",
    ),
    (LOCUST, ["--host", NO_SERVER, "--protocol", "template"], "--ping-template '': template mode needs"),
    (
        LOCUST,
        ["--host", NO_SERVER, "--ws-engine", "aiohttp"],
        "--ws-engine 'aiohttp': choose one of buffered, websocket-client, websockets",
    ),
    (LOCUST, ["--host", NO_SERVER, "--fail-on", "garbage"], "--fail-on 'garbage': write METRIC"),
    (LOCUST, [], "--host '': give --host ws://HOST:PORT"),
    # the handshake: a malformed header is not echoed (it may hold a token)
    (
        LOCUST,
        ["--host", NO_SERVER, "--header", "Authorization Bearer s3cret"],
        "--header '<hidden>': give 'Name: value'",
    ),
    (
        LOCUST,
        ["--host", NO_SERVER, "--header", "Origin: https://a.example"],
        "--header 'Origin: https://a.example': give Origin with --origin",
    ),
    (LOCUST, ["--host", NO_SERVER, "--origin", "a.example"], "--origin 'a.example': give scheme and host"),
    # the servers: nothing listening, or a handshake refused
    (LOCUST, ["--host", NO_SERVER], "--host ws://127.0.0.1:9: nothing accepts connections at 127.0.0.1:9"),
    (
        LOCUST,
        ["--host", "{forbidden}"],
        "--host {forbidden}: the websocket handshake to {forbidden}/ws/ping/ got HTTP 403; the server may check the Origin (give --origin",
    ),
    (
        LOCUST,
        [
            "--host",
            "{daphne}",
            "--protocol",
            "template",
            "--ping-template",
            "{{seq}}",
            "--paths",
            "/ws/ping/,/ws/nowhere/",
        ],
        "--host {daphne}: the websocket handshake to {daphne}/ws/nowhere/ got HTTP 500; check the URL and --paths",
    ),
    # the local stack
    (LOCUST, ["--stack", "remote"], "--stack 'remote': use --stack local"),
    (
        LOCUST,
        ["--stack", "local", "--asgi-threads", "0"],
        "--asgi-threads '0': use a positive number, or leave it out for Daphne's default",
    ),
    (LOCUST, ["--stack", "local", "--stack-daphne", "0"], "--stack-daphne 0: run between 1 and 64 instances"),
    (LOCUST, ["--stack", "local", "--run-id", "a/b"], "--run-id 'a/b': one folder name, without '/'"),
    (LOCUST, ["--stack", "local", "--results-dir", "{plain}"], "--results-dir '{plain}': {plain} is a file"),
    # the chaos plan
    (
        LOCUST,
        ["--stack", "local", "--restart-which", "5", "--restart-at", "5"],
        "--restart-which '5': there are 2 instance(s), numbered 0 to 1",
    ),
    (
        LOCUST,
        [
            "--host",
            NO_SERVER,
            "--restart-cmd",
            "true",
            "--hook-instances",
            "2",
            "--restart-which",
            "2",
            "--restart-at",
            "5",
        ],
        "--restart-which '2': there are 2 instance(s)",
    ),
    (
        LOCUST,
        ["--host", NO_SERVER, "--restart-cmd", "true", "--hook-timeout", "0"],
        "--hook-timeout 0.0: seconds a --restart-cmd may take",
    ),
    (
        LOCUST,
        ["--host", NO_SERVER, "--restart-at", "20"],
        "--restart-at '20': a chaos plan needs something to act on",
    ),
    (
        LOCUST,
        ["--host", NO_SERVER, "--restart-every", "5"],
        "--restart-every 5.0: a chaos plan needs something to act on",
    ),
    (
        LOCUST,
        ["--stack", "local", "--restart-mode", "gentle", "--restart-at", "5"],
        "--restart-mode 'gentle': choose graceful",
    ),
    (LOCUST, ["--stack", "local", "--restart-at", "soon"], "--restart-at 'soon': give seconds"),
    (
        LOCUST,
        ["--stack", "local", "--chaos-plan", "/nonexistent/plan.toml"],
        "--chaos-plan '/nonexistent/plan.toml': cannot read it",
    ),
    (
        LOCUST,
        ["--stack", "local", "--asgi-threads-steps", "1,4"],
        "--step-seconds 0.0: an ASGI_THREADS staircase needs",
    ),
    (
        LOCUST,
        [
            "--host",
            NO_SERVER,
            "--agent-url",
            "http://127.0.0.1:9",
            "--agent-token",
            "x" * 20,
            "--restart-at",
            "5",
        ],
        "--agent-url 'http://127.0.0.1:9'",
    ),
    # python -m load run / sweep / demo
    (LOAD, ["run", "/nonexistent/scenario.toml"], "scenario '/nonexistent/scenario.toml': cannot read it"),
    (LOAD, ["run", "{plain}"], "scenario '{plain}': a scenario keeps its options in a [tool.locust] table"),
    (
        LOAD,
        ["run", "{typo}"],
        "scenario '{typo}': unknown key 'png-rate' in [tool.locust]; did you mean 'ping-rate'?",
    ),
    (LOAD, ["run", "{nested}"], "scenario '{nested}': key 'foo' in [tool.locust] holds a table"),
    (LOAD, ["run", "{scenario}", "--set", "ping-rate"], "--set 'ping-rate': write KEY=VALUE"),
    (
        LOAD,
        ["run", "{scenario}", "--set", "png-rate=5"],
        "--set 'png-rate=5': unknown option 'png-rate'; did you mean 'ping-rate'?",
    ),
    (LOAD, ["run", "{scenario}", "--set", "run-label=a b"], "--run-label 'a b': use letters, digits"),
    (
        LOAD,
        ["run", "{scenario}", "--set", "ping-rate=0"],
        "--ping-rate 0.0: must be a positive number",
    ),  # refused by Locust
    (
        LOAD,
        ["sweep", "--scenario", "{scenario}", "--asgi-threads", "one,2"],
        "--asgi-threads 'one,2': comma-separated values",
    ),
    (LOAD, ["sweep", "--scenario", "{scenario}"], "--asgi-threads '': name at least one knob"),
    (
        LOAD,
        ["sweep", "--scenario", "{scenario}", "--asgi-threads", "1", "--set", "paths=/ws/nope/"],
        "--paths '/ws/nope/': the target app serves",
    ),
    (
        LOAD,
        ["demo", "--asgi-threads", "0"],
        "--asgi-threads 0: use a positive number, or leave it out for Daphne's default",
    ),
    (LOAD, ["demo", "--users", "0"], "--users 0: must be a positive number"),
    (LOAD, ["demo", "--workers", "-1"], "--workers -1: worker processes, 0 (one process) to 64"),
    (LOAD, ["run", "scenarios/seed_restarts.toml", "--workers", "99"], "--workers 99: worker processes"),
    (
        LOAD,
        ["sweep", "--scenario", "{scenario}", "--stack-versions", "current,channels9"],
        "--stack-versions 'current,channels9': comma-separated values, e.g. current,channels2 ('channels9': choose one of current, channels2",
    ),
    (
        LOAD,
        ["demo", "--stack-versions", "../requirements"],
        "--stack-versions '../requirements': choose one of current, channels2 (a set is stacks/NAME.txt)",
    ),
    (LOAD, ["report", "/nonexistent/run"], "run folder '/nonexistent/run': not a run folder"),
]
WRITES_RUNS = ("run", "sweep", "demo")  # the commands that take --results-dir

SCENARIO = """
[tool.locust]
users = 1
run-time = "3s"
stack = "local"
stack-daphne = 1
"""
FILES = {
    "scenario": SCENARIO,
    "plain": "users = 3\n",
    "typo": SCENARIO + "png-rate = 5\n",
    "nested": SCENARIO + "[tool.locust.foo]\nbar = 1\n",
}


class Forbidden(http.server.BaseHTTPRequestHandler):
    """A server that refuses every websocket handshake, as one with an origin check does."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.send_error(403, "Forbidden origin")

    def log_message(self, *_args) -> None:
        pass


@pytest.fixture(scope="module")
def forbidden():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Forbidden)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"ws://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join(10)
    server.server_close()


@pytest.fixture
def places(request, tmp_path) -> dict[str, str]:
    """The placeholders' values; servers are started only for the rows that name them."""
    values = {}
    for name, text in FILES.items():
        (tmp_path / f"{name}.toml").write_text(text)
        values[name] = str(tmp_path / f"{name}.toml")
    if "{forbidden}" in str(request.node.callspec.params):
        values["forbidden"] = request.getfixturevalue("forbidden")
    if "{daphne}" in str(request.node.callspec.params):
        values["daphne"] = request.getfixturevalue("served_stack").instances[0].ws_url("")
    return values


def fill(text: str, places: dict[str, str]) -> str:
    for name, value in places.items():
        text = text.replace("{" + name + "}", value)
    return text.replace("{{", "{").replace("}}", "}")


def run_load_cli(argv: list[str], capfd) -> tuple[int, str, str]:
    """`python -m load ARGV` in this process; main's signal handlers do not outlive it."""
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
    captured = capfd.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(("command", "argv", "says"), ROWS, ids=[" ".join([c, *a])[:80] for c, a, _ in ROWS])
def test_bad_input_is_one_line_exit_2_and_leaves_no_run_folder(command, argv, says, places, tmp_path, capfd):
    results = tmp_path / "results"
    argv, says = [fill(a, places) for a in argv], fill(says, places)
    if command == LOCUST:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "locust",
                "-f",
                str(REPO / "locustfile.py"),
                "--headless",
                "-u",
                "1",
                "-t",
                "3s",
                "--results-dir",
                str(results),
                *argv,
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
        code, output, prefix = result.returncode, result.stdout + result.stderr, "locust: error: "
    else:
        folder = ["--results-dir", str(results)] if argv[0] in WRITES_RUNS else []
        code, _out, output = run_load_cli([*argv, *folder], capfd)
        prefix = "python -m load: error: "
    errors = [line for line in output.splitlines() if line.startswith(prefix)]
    assert code == 2, output[-2000:]
    assert len(errors) == 1 and errors[0].startswith(prefix + says), output[-2000:]
    assert "Traceback" not in output
    assert not results.exists() or list(results.iterdir()) == []


def test_a_scenario_run_goes_to_its_results_dir_with_its_label(tmp_path, capfd):
    """`load run` uses the scenario's results-dir and run-label, and a refused run leaves nothing there."""
    chosen = tmp_path / "chosen"
    scenario = tmp_path / "labelled.toml"
    scenario.write_text(SCENARIO + f'results-dir = "{chosen}"\nrun-label = "mine"\nping-rate = 0\n')
    code, out, err = run_load_cli(["run", str(scenario)], capfd)
    assert code == 2 and "--ping-rate 0.0" in err
    (announced,) = [line.split(" ", 1)[1] for line in out.splitlines() if line.startswith("results: ")]
    assert (
        Path(announced).parent == chosen
        and Path(announced).name.startswith("labelled-")
        and announced.endswith("-mine")
    )
    assert not chosen.exists() or list(chosen.iterdir()) == []
