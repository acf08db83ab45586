"""The chaos plan from Locust's options: as given, filled in from a --chaos-plan TOML file,
and a bad file named in one line."""

from argparse import Namespace

import pytest

from load.config.options import DEFAULTS, PLAN_KEYS, plan_from_options
from load.config.settings import ChaosPlan, ConfigError


def options(**given) -> Namespace:
    """What argparse hands the plugin: every option at its default unless given."""
    values = dict(DEFAULTS)
    assert set(given) <= set(values), set(given) - set(values)
    return Namespace(**{**values, **given})


def plan_file(tmp_path, text: str) -> str:
    path = tmp_path / "plan.toml"
    path.write_text(text)
    return str(path)


def test_no_plan_options_give_an_inactive_plan():
    plan = plan_from_options(options())
    assert plan == ChaosPlan() and not plan.active


def test_every_plan_option_reaches_the_plan_parsed():
    plan = plan_from_options(
        options(
            restart_at="40, 20",
            restart_every=30.0,
            restart_mode="hard",
            restart_which="1",
            asgi_threads_steps="unset,4",
            step_seconds=10.0,
            redis_restart_at="5",
            redis_flush_at="7,3",
        )
    )
    assert plan == ChaosPlan(
        restart_at=(20.0, 40.0),
        restart_every=30.0,
        restart_mode="hard",
        restart_which="1",
        asgi_threads_steps=(None, 4),
        step_seconds=10.0,
        redis_restart_at=(5.0,),
        redis_flush_at=(3.0, 7.0),
    )


def test_the_plan_file_fills_only_the_options_left_at_their_defaults(tmp_path):
    path = plan_file(
        tmp_path,
        '[chaos]\nrestart_at = [20, 40]\nrestart_mode = "graceful"\nrestart_which = 1\n'
        'asgi_threads_steps = ["unset", 4]\nstep_seconds = 15\nredis_flush_at = [12.5]\n',
    )
    plan = plan_from_options(options(chaos_plan=path, restart_mode="hard", redis_flush_at="3"))
    # Given on the command line: hard and 3 win over the file; the rest comes from the file.
    assert plan == ChaosPlan(
        restart_at=(20.0, 40.0),
        restart_mode="hard",
        restart_which="1",
        asgi_threads_steps=(None, 4),
        step_seconds=15.0,
        redis_flush_at=(3.0,),
    )


def test_an_option_given_at_its_default_value_is_filled_from_the_file(tmp_path):
    # argparse cannot tell `--restart-mode graceful` from no option at all: the file's value wins.
    path = plan_file(tmp_path, '[chaos]\nrestart_at = [5]\nrestart_mode = "hard"\n')
    assert plan_from_options(options(chaos_plan=path, restart_mode="graceful")).restart_mode == "hard"


def test_a_plan_file_without_a_chaos_table_changes_nothing(tmp_path):
    path = plan_file(tmp_path, "[other]\nrestart_at = [5]\n")
    assert plan_from_options(options(chaos_plan=path, restart_at="7")) == ChaosPlan(restart_at=(7.0,))


@pytest.mark.parametrize(
    ("text", "fix"),
    [
        (
            "[chaos]\nrestart_att = [5]\nkill = 1\n",
            "unknown key(s) kill, restart_att in [chaos]; known: " + ", ".join(PLAN_KEYS),
        ),
        ("[chaos]\nrestart_at = [5\n", "not valid TOML: "),
    ],
)
def test_a_bad_plan_file_is_named_in_one_line(tmp_path, text, fix):
    path = plan_file(tmp_path, text)
    with pytest.raises(ConfigError) as raised:
        plan_from_options(options(chaos_plan=path))
    assert (raised.value.name, raised.value.value) == ("chaos_plan", path) and raised.value.fix.startswith(
        fix
    )
    message = raised.value.as_option()
    assert message.startswith(f"--chaos-plan {path!r}: ") and "\n" not in message


def test_a_plan_file_that_cannot_be_read_says_why(tmp_path):
    missing = str(tmp_path / "nowhere.toml")
    with pytest.raises(ConfigError) as raised:
        plan_from_options(options(chaos_plan=missing))
    assert raised.value.as_option() == f"--chaos-plan {missing!r}: cannot read it (No such file or directory)"


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ('[chaos]\nrestart_mode = "gentle"\nrestart_at = [5]\n', "restart_mode"),
        ("[chaos]\nrestart_at = [-5]\n", "restart_at"),
        ("[chaos]\nasgi_threads_steps = [0, 4]\nstep_seconds = 5\n", "asgi_threads_steps"),
    ],
)
def test_a_bad_value_in_the_plan_file_is_named_by_its_key(tmp_path, text, name):
    with pytest.raises(ConfigError) as raised:
        plan_from_options(options(chaos_plan=plan_file(tmp_path, text)))
    assert raised.value.name == name


def test_a_plan_file_value_of_the_wrong_type_is_named_by_its_key(tmp_path):
    with pytest.raises(ConfigError) as raised:
        plan_from_options(options(chaos_plan=plan_file(tmp_path, '[chaos]\nrestart_every = "soon"\n')))
    assert raised.value.name == "restart_every"
