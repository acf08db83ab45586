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
