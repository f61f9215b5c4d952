"""Files that readers never see half-written and that two writers never share a temporary name for.

Each writer gets its own temporary path beside the target (process id and a random part in the name),
writes it, and renames it over the target. A shared name such as `manifest.parquet.partial` let two
runs building the same file at once (the retrain's `build_manifest` and the monitor's, started by the
same data Asset event) move each other's temporary away: the slower one failed on a missing file.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def temporary_beside(path: Path) -> Path:
    """A name beside `path` that no other writer uses (hidden, ends in .partial)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.partial")


@contextmanager
def replaced_atomically(path: Path) -> Iterator[Path]:
    """Yield this writer's own temporary path for a file; when the block ends it replaces `path` in one
    rename; on an error it is removed and `path` stays as it was. (Files only: a full folder cannot be
    replaced in one step.)"""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_beside(path)
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
