"""A run's write-once artifacts, downloaded once per process.

One evaluate task fetched the same `model.keras`, class map and manifest twice (the evaluation, then
the monitoring reference): each (run, file) now comes down once and later asks get the local copy. Only
files a run logs once and never rewrites belong here (the trained model and its class map, the
training manifest); anything rewritten later in a run's life (the operating point, the model card) is
read afresh by its caller. The copies live in one temporary folder, removed when the process exits.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import threading
from pathlib import Path

_lock = threading.Lock()
_folder: Path | None = None
_copies: dict[tuple[str, str], Path] = {}


def _root() -> Path:
    global _folder
    if _folder is None:
        _folder = Path(tempfile.mkdtemp(prefix="mura-artifacts-"))
        atexit.register(shutil.rmtree, _folder, True)
    return _folder


def fetch_once(run_id: str, artifact_path: str) -> Path:
    """The local copy of one write-once file of a run, downloaded on the first ask in this process
    (MLflow's errors pass through: a missing file is not remembered)."""
    import mlflow

    key = (run_id, artifact_path.strip("/"))
    with _lock:
        known = _copies.get(key)
        if known is not None and known.is_file():
            return known
        local = Path(
            mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=key[1], dst_path=str(_root() / run_id)
            )
        )
        _copies[key] = local
        return local


def forget() -> None:
    """Drop what this process remembers (the next ask downloads again), as a new process would."""
    with _lock:
        _copies.clear()
