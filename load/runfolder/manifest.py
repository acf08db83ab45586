"""manifest.json: what ran, so a run folder says how to reproduce it.

The caller hides secrets in the command line and options before they come here (it knows
which options are secrets: load.config.options.mask_argv and mask_options), and says
which checkout the code is in (for the git sha): this package imports nothing of the suite.
"""

import importlib.metadata
import os
import platform
import socket
import subprocess
import time
from pathlib import Path

from load.runfolder.names import (
    COMMAND,
    CONFIG,
    GIT_SHA,
    HOST,
    OPTIONS,
    RUN_DIR,
    RUN_ID,
    STACK,
    STARTED_AT,
    VERSIONS,
)

# What the target app runs on; with another stack's virtualenv (--stack-versions) these
# come from there, with the python that runs it.
TARGET_PACKAGES = (
    "django",
    "channels",
    "channels-redis",
    "daphne",
    "asgiref",
    "redis",
    "aioredis",
    "twisted",
)
PACKAGES = (*TARGET_PACKAGES, "locust", "websocket-client", "websockets", "gevent")


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def redis_server_version(redis_url: str) -> str | None:
    """The version the Redis at redis_url reports, or None if it cannot be asked."""
    if not redis_url:
        return None

    import redis  # imported where used: a Locust worker never loads redis (about 7 MB)

    try:
        return redis.Redis.from_url(redis_url, socket_timeout=2).info("server").get("redis_version")
    except (redis.RedisError, OSError):
        return None


def git_sha(repo_root: Path) -> str | None:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo_root, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if result.returncode != 0:
        return None
    dirty = subprocess.run(
        ["git", "status", "--porcelain"], cwd=repo_root, capture_output=True, text=True, timeout=5
    )
    return result.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def json_safe(value):
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    return str(value)


def build_manifest(
    run_id: str,
    run_dir: Path,
    command: list[str],
    options: dict,
    config: dict,
    stack: dict | None,
    redis_url: str,
    repo_root: Path,
    target_versions: dict | None = None,
) -> dict:
    """command and options with their secrets already hidden: run folders are meant to be shared.

    target_versions: the target app's python and packages when it runs in another virtualenv
    than this process (--stack-versions), with the name of its set under "stack_versions"."""
    versions = package_versions()
    versions.update(target_versions or {})
    versions["redis-server"] = redis_server_version(redis_url)
    return {
        RUN_ID: run_id,
        RUN_DIR: str(run_dir),
        STARTED_AT: time.time(),
        COMMAND: list(command),
        OPTIONS: json_safe(options),
        CONFIG: json_safe(config),
        STACK: json_safe(stack),
        VERSIONS: versions,
        GIT_SHA: git_sha(repo_root),
        HOST: {"hostname": socket.gethostname(), "platform": platform.platform(), "cpus": os.cpu_count()},
    }
