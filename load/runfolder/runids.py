"""Names of run folders: `<prefix>-<UTC time>-<label>`, unique in their results folder."""

import time
from pathlib import Path


def new_run_id(results_dir: Path, prefix: str = "", label: str = "") -> str:
    """A run id no folder in results_dir has yet (a -2, -3, ... suffix when the second is taken)."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    run_id = "-".join(part for part in (prefix, stamp, label) if part)
    candidate, n = run_id, 1
    while (Path(results_dir) / candidate).exists():
        n += 1
        candidate = f"{run_id}-{n}"
    return candidate
