"""The versions the target app runs with: the suite's own, or a pinned set in its own virtualenv.

A set is a requirements file, stacks/<name>.txt, pinned with every transitive dependency.
Its virtualenv is built on first use into .stacks/<name>-<hash of the file>/ (pip's output
in the .log beside it), so an edited file gets a new one; a lock file lets concurrent
builders (two pytest workers, two sweeps) wait for one build, and a marker file says it
is complete. Each start reads from inside it the target's versions, Daphne's flags and the
app's variables that do not apply there (these follow target_app/compat.py as it is now).
"""

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from load.config.settings import CURRENT_STACK, REPO_ROOT, stack_requirements
from load.runfolder.manifest import TARGET_PACKAGES
from load.supervise.redisserver import StackError

CACHE_DIR = REPO_ROOT / ".stacks"
BUILD_LOG_SUFFIX = ".log"  # pip's output, beside the virtualenv (not in a run folder)
COMPLETE = ".complete"  # written last: the virtualenv was built and loads the target app
BUILD_TIMEOUT = 900.0  # seconds; a first build here takes about 15 s
# Run inside the target's virtualenv (cwd: the checkout): what a run folder records of it.
_INFO_SCRIPT = """
import importlib.metadata, json, platform, sys
from daphne.cli import CommandLineInterface
from target_app.compat import NOT_APPLICABLE_ENV, UNSUPPORTED_LAYERS
def version(name):
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None
flags = sorted(f for a in CommandLineInterface().parser._actions for f in a.option_strings)
json.dump({"versions": {"python": platform.python_version(), **{n: version(n) for n in sys.argv[1:]}},
           "daphne_flags": flags, "not_applicable_env": NOT_APPLICABLE_ENV,
           "unsupported_layers": UNSUPPORTED_LAYERS}, sys.stdout)
"""


@dataclass(frozen=True)
class TargetStack:
    """How to run the target app with one set of versions."""

    name: str
    python: str  # runs migrate
    daphne: tuple[str, ...]  # the command that runs Daphne, before its flags
    # Read from the virtualenv; empty for current (the suite's own process knows its versions).
    versions: dict[str, str | None] = field(default_factory=dict)
    daphne_flags: frozenset[str] | None = None  # None: every flag the suite passes exists
    not_applicable_env: dict[str, str] = field(default_factory=dict)  # variable -> why
    unsupported_layers: dict[str, str] = field(default_factory=dict)  # CHANNEL_LAYER -> why
    build_s: float | None = None  # seconds spent building its virtualenv now; None: none built

    @property
    def current(self) -> bool:
        return self.name == CURRENT_STACK

    def daphne_argv(self, flags: list[str]) -> tuple[list[str], list[str]]:
        """Flags as ["--name", "value", ...] -> those this Daphne takes, and the names of the rest."""
        kept: list[str] = []
        dropped: list[str] = []
        for name, value in zip(flags[::2], flags[1::2], strict=True):
            if self.daphne_flags is None or name in self.daphne_flags:
                kept += [name, value]
            else:
                dropped.append(name)
        return kept, dropped


def venv_dir(name: str) -> Path:
    digest = hashlib.sha256(stack_requirements(name).read_bytes()).hexdigest()[:12]
    return CACHE_DIR / f"{name}-{digest}"


def target_stack(name: str) -> TargetStack:
    """The stack called name, its virtualenv built first if it is not yet; StackError if it cannot be."""
    if name == CURRENT_STACK:
        return TargetStack(name, sys.executable, (sys.executable, "-m", "daphne"))
    folder = venv_dir(name)
    built_s = None if (folder / COMPLETE).exists() else _build_locked(name, folder)
    python = str(folder / "bin" / "python")
    try:
        info = json.loads(_read_info(python).stdout)
    except (subprocess.SubprocessError, OSError, ValueError) as exc:
        raise StackError(
            f"the {name} stack's virtualenv {folder} does not load the target app: {exc}"
        ) from None
    return TargetStack(
        name,
        python,
        (python, str(folder / "bin" / "daphne")),  # Daphne 2 has no `python -m daphne`
        info["versions"],
        frozenset(info["daphne_flags"]),
        info["not_applicable_env"],
        info["unsupported_layers"],
        built_s,
    )


def _build_locked(name: str, folder: Path) -> float | None:
    """Build the virtualenv unless another process did while this one waited; seconds spent building."""
    CACHE_DIR.mkdir(exist_ok=True)
    with open(folder.with_suffix(".lock"), "w") as lock:
        deadline = time.monotonic() + BUILD_TIMEOUT
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise StackError(
                        f"the {name} stack's virtualenv is still being built by another process"
                    ) from None
                time.sleep(0.2)
        if (folder / COMPLETE).exists():
            return None
        began = time.monotonic()
        _build(name, folder)
        return round(time.monotonic() - began, 1)


def _build(name: str, folder: Path) -> None:
    log_path = folder.with_suffix(BUILD_LOG_SUFFIX)
    shutil.rmtree(folder, ignore_errors=True)  # a build that was cut short
    python = folder / "bin" / "python"
    steps = [
        [sys.executable, "-m", "venv", str(folder)],
        [str(python), "-m", "pip", "install", "--no-input", "-r", str(stack_requirements(name))],
    ]
    with open(log_path, "w") as log:
        for argv in steps:
            log.write(f"$ {' '.join(argv)}\n")
            log.flush()
            try:
                done = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, timeout=BUILD_TIMEOUT)
            except subprocess.TimeoutExpired:
                _failed(name, folder, f"{argv[2]} took over {BUILD_TIMEOUT:g} s", log_path)
            if done.returncode != 0:
                _failed(name, folder, f"{argv[2]} exited with code {done.returncode}", log_path)
    try:
        info = _read_info(str(python))
    except subprocess.CalledProcessError as exc:
        with open(log_path, "a") as log:
            log.write(exc.stderr)
        _failed(name, folder, "it was built but the target app's packages do not load in it", log_path)
    (folder / COMPLETE).write_text(info.stdout)


def _read_info(python: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [python, "-c", _INFO_SCRIPT, *TARGET_PACKAGES],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def _failed(name: str, folder: Path, what: str, log_path: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    raise StackError(
        f"cannot build the {name} stack's virtualenv ({what}: {_last_error(log_path)}); pip's output: {log_path}"
    )


def _last_error(log_path: Path) -> str:
    """pip's own reason: its last ERROR line, or its last line."""
    lines = [line.strip() for line in log_path.read_text(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR:")]
    return (errors or lines or ["no output"])[-1]
