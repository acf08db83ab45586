"""Any websocket app: a chat app behind Django's origin check, driven in template mode.

The chat app (target_app/chat.py) stands for a staging server no one here wrote: Django's
AllowedHostsOriginValidator in front (ALLOWED_HOSTS=chat.example), every member of a room
gets every member's message as {"user", "text"}, and each connect logs what the server saw
of the handshake (the cookie as a digest).
"""

import hashlib
import json
import tomllib
from pathlib import Path

import pytest

from load.config.handshake import HIDDEN, handshake_from
from load.config.options import mask_argv, mask_options
from load.config.settings import ConfigError, LayerOptions, LoadConfig
from load.runfolder.names import HANDSHAKE_REJECTED, PONGS, UNMATCHED
from load.runs.scenario import unknown_option
from load.wire.protocol import OTHER, PONG, Reply, TemplateCodec, matching_warnings
from locustrun import REPO, number, read_csv, read_json, run_folder

ORIGIN = "https://chat.example"
COOKIE = "sessionid=c00kie-s3cret-4711"
BEARER = "Bearer t0ken-s3cret-0815"
TEMPLATE = '{"message": "{user} says {seq}"}'
ROOM = "/ws/chat/lobby/"
ME, OTHER_USER = "uab12cd-1", "uab12cd-12"  # one is a prefix of the other


# -- the matching rules ---------------------------------------------------------------------


def chat(text: str, user: str = "staging-bot") -> str:
    return json.dumps({"user": user, "text": text})


def test_a_json_field_holds_the_seq_as_a_number_or_in_a_string():
    codec = TemplateCodec('{"action": "ping", "id": "n{seq}"}', "id")
    assert codec.encode(7) == '{"action": "ping", "id": "n7"}'
    assert codec.decode('{"id": 7}') == Reply(PONG, 7)
    assert codec.decode('{"id": 7.0}') == Reply(PONG, 7)
    assert codec.decode('{"id": "7"}') == Reply(PONG, 7)
    assert codec.decode('{"id": "n7"}') == Reply(PONG, 7)
    assert codec.decode('{"id": "ping 3 of 7"}') == Reply(PONG, 7)  # the last number
    for unmatched in (
        '{"id": true}',
        '{"id": 7.5}',
        '{"id": "seven"}',
        '{"other": 7}',
        "7",
        "not json",
        "[7]",
    ):
        assert codec.decode(unmatched).kind == OTHER, unmatched
    nested = TemplateCodec('{"seq": {seq}}', "data.seq")
    assert nested.decode('{"data": {"seq": 4}}') == Reply(PONG, 4)
    assert nested.decode('{"data": 4}').kind == OTHER


def test_without_a_field_any_frame_answers_the_oldest_ping_and_the_start_says_so():
    assert TemplateCodec("ping {seq}").decode("anything") == Reply(PONG, None)
    assert "in order" in matching_warnings("ping {seq}", "")[0]
    assert "{user}" in matching_warnings('{"id": {seq}}', "id")[0]
    assert matching_warnings(TEMPLATE, "") == matching_warnings(TEMPLATE, "text") == []


def test_with_user_only_own_messages_match_in_a_shared_room():
    mine = TemplateCodec(TEMPLATE, "text", ME)
    assert mine.encode(3) == '{"message": "uab12cd-1 says 3"}'
    assert mine.decode(chat("uab12cd-1 says 3")) == Reply(PONG, 3)
    # Another user of the same account: the same "user", another token, the same seq.
    assert mine.decode(chat("uab12cd-12 says 3")).kind == OTHER
    assert mine.decode(chat("someone says 3")).kind == OTHER
    # The token is taken out before the seq is read: its digits are never the seq.
    assert mine.decode(chat("uab12cd-1 says")).kind == OTHER
    fifo = TemplateCodec(TEMPLATE, "", ME)  # FIFO, but only own frames count as replies
    assert fifo.decode(chat("uab12cd-1 says 9")) == Reply(PONG, None)
    assert fifo.decode(chat("uab12cd-12 says 9")).kind == OTHER
    # No {user} in the template: the token plays no part.
    assert TemplateCodec('{"id": {seq}}', "id", ME).decode('{"id": 2}') == Reply(PONG, 2)


# -- credentials are never written ----------------------------------------------------------


def test_credentials_are_hidden_in_the_command_options_config_and_errors():
    argv = [
        "locust",
        "--cookie",
        COOKIE,
        f"--header=Authorization: {BEARER}",
        "--header",
        f"X-Api-Key: {BEARER}",
    ]
    argv += ["--header", "X-Tenant: acme", "--origin", ORIGIN]
    masked = " ".join(mask_argv(argv))
    assert "s3cret" not in masked and "X-Tenant: acme" in masked and ORIGIN in masked
    assert f"Authorization: {HIDDEN}" in masked and f"X-Api-Key: {HIDDEN}" in masked
    options = mask_options({"cookie": COOKIE, "header": [f"Authorization: {BEARER}", "X-Tenant: acme"]})
    assert options == {"cookie": HIDDEN, "header": [f"Authorization: {HIDDEN}", "X-Tenant: acme"]}
    handshake = handshake_from([f"Authorization: {BEARER}"], ORIGIN, COOKIE, "chat.v1, chat.v0")
    assert handshake.subprotocols == ("chat.v1", "chat.v0")
    config = LoadConfig(targets=("ws://127.0.0.1:9",), handshake=handshake)
    assert "s3cret" not in json.dumps(config.public(), default=str) + repr(config)
    for bad in (["Authorization Bearer t0ken-s3cret"], ["Cookie: a=b"], ["Host: x"]):
        with pytest.raises(ConfigError) as refused:
            handshake_from(bad, "", "", "")
        assert "s3cret" not in refused.value.as_option()
    with pytest.raises(ConfigError, match="--origin"):
        handshake_from(["Origin: https://x"], "", "", "")
    with pytest.raises(ConfigError, match="scheme and host"):
        handshake_from([], "chat.example", "", "")


# -- the chat app, for real -----------------------------------------------------------------


@pytest.fixture
def chat_stack(start_stack, monkeypatch):
    monkeypatch.setenv("ALLOWED_HOSTS", "chat.example")
    return start_stack(daphne_count=1, app=LayerOptions(layer="memory"))


def handshakes_seen(stack) -> list[dict]:
    lines = [line for log in sorted(stack.server_dir.glob("*.log")) for line in log.read_text().splitlines()]
    return [json.loads(line.split("chat handshake ", 1)[1]) for line in lines if "chat handshake " in line]


def template_args(results: Path, *extra: str) -> tuple[str, ...]:
    return (
        "--headless",
        "--results-dir",
        str(results),
        "--paths",
        ROOM,
        "--protocol",
        "template",
        "--ping-template",
        TEMPLATE,
        "--pong-field",
        "text",
        "--pong-timeout",
        "2",
        *extra,
    )


def test_without_origin_a_headless_run_stops_before_it_starts_and_names_the_origin(
    chat_stack, locust, tmp_path
):
    url = chat_stack.instances[0].ws_url("")
    run = locust(*template_args(tmp_path / "results", "--host", url, "-u", "1", "-t", "2s"))
    assert run.wait(60) == 2, run.output()[-3000:]
    assert "HTTP 403" in run.output() and "--origin" in run.output()
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())
    assert [seen["origin"] for seen in handshakes_seen(chat_stack)] == []  # refused before the consumer
    # A server that picks none of the subprotocols offered (the target app's ping consumer).
    run = locust(
        "--headless", "--host", url, "-u", "1", "-t", "2s", "--subprotocol", "chat.v1", name="subprotocol"
    )
    assert run.wait(60) == 2, run.output()[-3000:]
    assert "the server chose none of the subprotocols offered (--subprotocol chat.v1)" in run.output()


def test_without_origin_every_connect_of_a_run_is_refused_and_the_log_says_origin(
    locust, tmp_path, monkeypatch
):
    # --stack local skips the start check, as the web UI does: the run itself must say it.
    monkeypatch.setenv("ALLOWED_HOSTS", "chat.example")
    args = template_args(
        tmp_path / "results", "--stack", "local", "--stack-daphne", "1", "--stack-layer", "memory"
    )
    run = locust(*args, "-u", "2", "-r", "2", "-t", "3s", "--reconnect-min", "0.2", "--reconnect-max", "0.4")
    assert run.wait(60) == 1, run.output()[-3000:]  # Locust's failures
    summary = read_json(run_folder(tmp_path / "results") / "summary.json")["all"]
    assert summary["connects"] >= 4 and summary[HANDSHAKE_REJECTED] == summary["connects"], summary
    assert summary[PONGS] == 0
    hints = [
        line
        for line in run.output().splitlines()
        if "handshake_rejected HTTP 403" in line and "--origin" in line
    ]
    assert len(hints) == 1, run.output()[-3000:]  # once, not once per attempt


def test_a_shared_chat_room_with_origin_headers_cookie_and_user_tokens(chat_stack, locust, tmp_path):
    url = chat_stack.instances[0].ws_url("")
    # As a scenario file has them (headers a TOML list); the cookie on the command line.
    scenario = tmp_path / "chat.toml"
    scenario.write_text(
        "[tool.locust]\n"
        f'origin = "{ORIGIN}"\n'
        'subprotocol = "chat.v1"\n'
        f'header = ["X-Chat-User: staging-bot", "X-Tenant: acme", "Authorization: {BEARER}"]\n'
    )
    extra = ("--config", str(scenario), "--cookie", COOKIE)
    run = locust(
        *template_args(tmp_path / "results", "--host", url, *extra), "-u", "3", "-r", "3", "-t", "4s"
    )
    run.note_descendants()
    assert run.wait(60) == 0, run.output()[-3000:]

    seen = handshakes_seen(chat_stack)
    assert len(seen) >= 4  # the start check and three users
    digest = hashlib.sha256(COOKIE.encode()).hexdigest()[:16]
    for handshake in seen:
        assert handshake == {
            "origin": ORIGIN,
            "user": "staging-bot",
            "tenant": "acme",
            "cookie_sha256": digest,
            "subprotocols": ["chat.v1"],
        }

    folder = run_folder(tmp_path / "results")
    overall = read_json(folder / "summary.json")["all"]
    # Every user took only its own copy: every ping answered, none by another's message...
    assert overall[PONGS] >= 6 and overall["errors"] == 0, overall
    assert overall[PONGS] + overall["in_flight"] == overall["pings"]
    # ...and the other two members' copies of each message were counted, not taken.
    assert 1.5 * overall[PONGS] <= overall[UNMATCHED] <= 2 * (overall["pings"] + 3), overall
    rows = read_csv(folder / "timeseries.csv")
    assert sum(number(row[UNMATCHED]) for row in rows) == overall[UNMATCHED]

    for secret in ("c00kie-s3cret", "t0ken-s3cret"):
        assert secret not in run.output()
        for path in folder.rglob("*"):
            assert not path.is_file() or secret.encode() not in path.read_bytes(), path
    manifest = read_json(folder / "manifest.json")
    assert f"Authorization: {HIDDEN}" in manifest["options"]["header"]
    assert manifest["config"]["handshake"]["cookie"] == HIDDEN


def test_the_staging_example_scenario_names_only_known_options():
    table = tomllib.loads((REPO / "scenarios" / "staging_example.toml").read_text())["tool"]["locust"]
    assert table["header"] == ["X-Tenant: acme"] and "{user}" in table["ping-template"]
    assert [key for key in table if unknown_option(key)] == []
