"""The checks engineers expect, run by the test command (so CI runs them too): ruff's lint
and format, and mypy on the code we ship. Versions are pinned in requirements-test.txt;
the settings are in pyproject.toml."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "check",
    [
        ["ruff", "check", "load", "tests", "target_app"],
        ["ruff", "format", "--check", "load", "tests", "target_app"],
        ["mypy", "load", "target_app"],
    ],
    ids=["ruff-check", "ruff-format", "mypy"],
)
def test_code_check_is_clean(check: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", *check],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert result.returncode == 0, f"{' '.join(check)} failed:\n{result.stdout}{result.stderr}"


def test_a_load_process_does_not_import_what_only_the_end_or_the_master_needs() -> None:
    """matplotlib (the report, in its own process), Django and Channels (the target app) and
    redis (the probe, on the master only) stay out of the process that generates the load."""
    script = "import sys, locustfile; print(sorted(m for m in ('matplotlib', 'django', 'channels', 'redis') if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", script],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"
