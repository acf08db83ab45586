"""Issue 14: docker-compose.yml is the whole distributed stack (Redis, the agent over N
Daphne, a Locust master and its workers), checked without a Docker engine: the file
against the compose specification, every command against the parser that will read it,
the image's install step against the README's, and the agent token against being written
down. Nothing here runs the stack: CI has no Docker engine."""

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from load.cli import build_parser
from load.config.options import stack_config
from locustrun import REPO

COMPOSE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
SERVICES = {"redis", "target", "locust-master", "locust-worker"}
TOKEN_VARIABLES = ("LOAD_AGENT_TOKEN", "LOCUST_AGENT_TOKEN")
# What a user exports before `docker compose up` (the file requires it); anything else is
# left unset, so each setting takes the file's default.
USER_ENVIRONMENT = {"LOAD_AGENT_TOKEN": "a-token-of-sixteen-or-more-characters"}

# Compose's interpolation: $$ is a dollar; $NAME, ${NAME}, ${NAME:-default}, ${NAME-default},
# ${NAME:?error}, ${NAME?error}.
_VARIABLE = re.compile(
    r"\$(?:(?P<dollar>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


class Unset(Exception):
    """A variable the file uses with neither a value nor a default."""


def interpolate(text: str, environ: Mapping[str, str]) -> str:
    """`text` as Compose hands it to the container, given the user's environment; stricter
    than Compose on one point: a variable with neither a value nor a default raises Unset
    (Compose would warn and put ''), so a setting the file forgot to default shows here."""

    def value(match: re.Match) -> str:
        if match["dollar"]:
            return "$"
        name = match["braced"] or match["bare"]
        op, arg = match["op"] or "", match["arg"] or ""
        given = environ.get(name)
        missing = given is None or (given == "" and op.startswith(":"))
        if not missing:
            return given
        if op.endswith("-"):
            return arg
        raise Unset(f"${{{name}}} has no value and no default{': ' + arg if arg else ''}")

    return _VARIABLE.sub(value, text)


def compose_file() -> dict:
    return YAML(typ="safe").load(COMPOSE.read_text())


def services() -> dict:
    return compose_file()["services"]


def command(service: str, environ: Mapping[str, str] = USER_ENVIRONMENT) -> list[str]:
    raw = services()[service]["command"]
    return [interpolate(arg, environ) for arg in (shlex.split(raw) if isinstance(raw, str) else raw)]


def environment(service: str) -> dict[str, str]:
    """The service's environment as the container gets it (interpolated)."""
    raw = services()[service].get("environment") or {}
    pairs = dict(item.split("=", 1) for item in raw) if isinstance(raw, list) else raw
    return {name: interpolate(str(value), USER_ENVIRONMENT) for name, value in pairs.items()}


def option(argv: list[str], flag: str) -> str:
    assert flag in argv, f"{flag} missing from {argv}"
    return argv[argv.index(flag) + 1]


def scalars(node) -> list[str]:
    """Every key and string value of a YAML document."""
    if isinstance(node, dict):
        return [text for key, value in node.items() for text in [str(key), *scalars(value)]]
    if isinstance(node, list):
        return [text for item in node for text in scalars(item)]
    return [node] if isinstance(node, str) else []


# -- (a) the compose specification --------------------------------------------------------


def check_jsonschema(path: Path) -> subprocess.CompletedProcess:
    """check-jsonschema (pinned in requirements-test.txt) with the compose spec it ships."""
    program = Path(sys.executable).parent / "check-jsonschema"
    return subprocess.run(
        [str(program), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_compose_file_validates_against_the_compose_specification():
    result = check_jsonschema(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok -- validation done" in result.stdout


def test_the_validation_refuses_a_key_the_specification_does_not_have(tmp_path):
    wrong = tmp_path / "docker-compose.yml"
    wrong.write_text(COMPOSE.read_text().replace("stop_grace_period:", "stop_grace_periods:", 1))
    result = check_jsonschema(wrong)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "stop_grace_periods" in result.stdout


# -- the stack's shape --------------------------------------------------------------------


def test_one_dockerfile_builds_every_service_of_ours_and_results_go_to_a_named_volume():
    document = compose_file()
    assert set(document["services"]) == SERVICES
    built = {name for name, service in document["services"].items() if "build" in service}
    assert built == SERVICES - {"redis"}
    assert {document["services"][name]["build"] for name in built} == {"."}
    assert DOCKERFILE.is_file()
    assert "results" in document["volumes"]
    for name, flag in (("target", "--results-dir"), ("locust-master", "--results-dir")):
        mounted = dict(volume.split(":", 1) for volume in document["services"][name]["volumes"])
        assert mounted["results"] == option(command(name), flag), name


def test_the_web_ui_alone_is_published_and_workers_scale():
    every = services()
    assert every["locust-master"]["ports"] == ["127.0.0.1:8089:8089"]
    published = {name for name, service in every.items() if service.get("ports")}
    assert published == {"locust-master"}
    # `--scale locust-worker=N` needs a worker with no fixed name and no host port.
    assert "container_name" not in every["locust-worker"]


def test_every_variable_has_one_default_and_nothing_is_left_unset():
    defaults: dict[str, set[str]] = {}
    for text in scalars(compose_file()):
        for match in _VARIABLE.finditer(text):
            if match["op"] == ":-":
                defaults.setdefault(match["braced"], set()).add(match["arg"])
            elif match["braced"] or match["bare"]:
                # Only the token is required; every other setting has a default.
                assert match["braced"] == "LOAD_AGENT_TOKEN" and match["op"] == ":?", match[0]
    assert {name: len(values) for name, values in defaults.items() if len(values) > 1} == {}
    assert "DAPHNE_INSTANCES" in defaults and "TARGETS" in defaults and "ASGI_THREADS" in defaults


# -- (b) every command parses with the parser that will read it ----------------------------


def test_every_service_built_from_our_image_runs_the_suite_or_locust_with_our_locustfile():
    for name, service in services().items():
        if "build" not in service:
            continue
        argv = command(name)
        assert argv[:3] == ["python", "-m", "load"] or argv[:3] == ["locust", "-f", "locustfile.py"], argv


def parsed_agent():
    argv = command("target")
    assert argv[:4] == ["python", "-m", "load", "agent"]
    try:
        args = build_parser().parse_args(argv[3:])
    except SystemExit as exc:  # argparse has printed the one line that says why
        pytest.fail(f"`{shlex.join(argv)}` does not parse (exit code {exc.code})")
    return args


def test_the_agent_command_parses_with_the_suites_cli_and_its_settings_validate(tmp_path):
    args = parsed_agent()
    assert args.command == "agent" and args.token is None  # the token comes from the environment
    assert (args.bind, args.port) == ("0.0.0.0", 8700)
    # The container's environment as the agent reads it: the target app's variables empty (= unset).
    config, notes = stack_config(vars(args), tmp_path, environment("target"))
    assert notes == []
    assert (config.daphne_count, config.daphne_bind, config.base_port) == (2, "0.0.0.0", 8000)
    assert config.redis_url == "redis://redis:6379/0" and config.asgi_threads is None


def test_the_agent_takes_the_target_apps_variables_from_the_environment(tmp_path):
    argv = command("target", {**USER_ENVIRONMENT, "DAPHNE_INSTANCES": "3"})
    args = build_parser().parse_args(argv[3:])
    container = {**environment("target"), "ASGI_THREADS": "4"}
    config, notes = stack_config(vars(args), tmp_path, container)
    assert config.daphne_count == 3 and config.asgi_threads == 4
    assert notes == ["ASGI_THREADS='4' from the environment (asgi-threads was left at its default)"]


# Runs in a child process (importing locust patches the process with gevent) the way
# `locust -f locustfile.py ...` reads its command line: the locustfile imported first (it
# registers the suite's options on init_command_line_parser), then Locust's parser, which
# also reads LOCUST_* variables and the image's pyproject.toml / locust.conf. The master's
# options then go through the plugin's own validation.
_PARSE_WITH_LOCUST = """
import contextlib, importlib.util, io, json, sys
import locust
from locust.argument_parser import get_parser
from load.config.options import config_from_options
from load.config.settings import ConfigError

argv = json.loads(sys.stdin.read())
sys.argv = argv[:1]  # the program name Locust's errors start with
spec = importlib.util.spec_from_file_location("locustfile", argv[argv.index("-f") + 1])
spec.loader.exec_module(importlib.util.module_from_spec(spec))
stderr = io.StringIO()
try:
    with contextlib.redirect_stderr(stderr):
        options = get_parser(default_config_files=["locust.conf", "pyproject.toml"]).parse_args(argv[1:])
except SystemExit as exc:
    print(json.dumps({"error": stderr.getvalue().strip() or f"exit code {exc.code}"}))
    sys.exit(0)
answer = {key: getattr(options, key) for key in (
    "master", "worker", "master_host", "host", "targets", "agent_url", "redis_probe_url",
    "results_dir", "web_port")}
answer["agent_token_given"] = bool(options.agent_token)
if not options.worker:
    try:
        answer["targets_parsed"] = list(config_from_options(options, options.host).targets)
    except ConfigError as exc:
        answer["error"] = exc.as_option()
print(json.dumps(answer))
"""


def parsed_by_locust(service: str) -> dict:
    argv = command(service)
    assert argv[:3] == ["locust", "-f", "locustfile.py"]
    environ = {key: value for key, value in os.environ.items() if not key.startswith("LOCUST_")}
    environ.update(environment(service), PYTHONPATH=str(REPO))
    result = subprocess.run(
        [sys.executable, "-c", _PARSE_WITH_LOCUST],
        input=json.dumps(argv),
        cwd=REPO,  # the image's WORKDIR holds the same files (Dockerfile COPY)
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert "error" not in answer, f"`{shlex.join(argv)}`: {answer['error']}"
    return answer


def test_the_master_command_parses_with_locusts_parser_and_points_at_the_agent():
    master = parsed_by_locust("locust-master")
    target, daphne = command("target"), parsed_agent()
    assert master["master"] and not master["worker"]
    assert master["agent_url"] == [f"http://target:{option(target, '--port')}"]  # repeatable: one per host
    assert master["agent_token_given"]  # from LOCUST_AGENT_TOKEN, the compose file's ${LOAD_AGENT_TOKEN}
    assert master["redis_probe_url"] == daphne.redis_url
    # One URL per Daphne the agent runs, instance i on base port + i; --host is the first.
    expected = [f"ws://target:{daphne.base_port + i}" for i in range(daphne.stack_daphne)]
    assert master["targets_parsed"] == expected
    assert master["host"] == expected[0]
    assert services()["locust-master"]["ports"][0].endswith(f":{master['web_port']}")


def test_the_worker_command_parses_with_locusts_parser_and_finds_the_master():
    worker = parsed_by_locust("locust-worker")
    assert worker["worker"] and not worker["master"]
    assert worker["master_host"] == "locust-master" and "locust-master" in services()
    assert not worker["agent_token_given"]  # only the master acts on the agent


def test_the_targets_healthcheck_is_python_that_asks_every_daphne():
    test = [interpolate(arg, USER_ENVIRONMENT) for arg in services()["target"]["healthcheck"]["test"]]
    assert test[:3] == ["CMD", "python", "-c"]
    compile(test[3], "target healthcheck", "exec")
    assert f"range({parsed_agent().stack_daphne})" in test[3]  # every instance, not only the first


# -- (c) the image installs what the README installs ---------------------------------------


def first_install(text: str) -> str:
    found = re.search(r"pip install (?:--no-cache-dir )?-r (\S+)", text)
    assert found, "no `pip install -r FILE`"
    return found[1]


def test_the_dockerfile_installs_the_requirements_the_readmes_first_command_installs():
    readme = (REPO / "README.md").read_text()
    first_block = readme.split("```sh\n", 1)[1].split("```", 1)[0]
    installed = first_install(first_block)
    runs = [line for line in DOCKERFILE.read_text().splitlines() if line.startswith("RUN ")]
    assert [first_install(line) for line in runs if "pip install" in line] == [installed]
    copied = [line.split()[1:-1] for line in DOCKERFILE.read_text().splitlines() if line.startswith("COPY ")]
    assert any(installed in sources for sources in copied)
    assert (REPO / installed).is_file()


# -- (d) the agent token is never written in the file --------------------------------------


def test_the_agent_token_is_read_from_the_environment_never_written_in_the_file():
    for name, service in services().items():
        for text in scalars(service):
            assert "--token" not in text and "--agent-token" not in text, (name, text)
            for variable in TOKEN_VARIABLES:
                if variable in text and text != variable:  # an environment key is fine
                    # the only value: the user's variable, required, no default to fall back on
                    assert re.fullmatch(r"\$\{LOAD_AGENT_TOKEN:\?[^}]*\}", text), (name, text)
        for key, value in (service.get("environment") or {}).items():
            if key in TOKEN_VARIABLES:
                with pytest.raises(Unset):
                    interpolate(str(value), {})
    assert environment("target")["LOAD_AGENT_TOKEN"] == USER_ENVIRONMENT["LOAD_AGENT_TOKEN"]
    assert environment("locust-master")["LOCUST_AGENT_TOKEN"] == USER_ENVIRONMENT["LOAD_AGENT_TOKEN"]
