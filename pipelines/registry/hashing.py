"""Content hash of a SavedModel folder, recorded at registration and checked before every publish."""

from __future__ import annotations

import hashlib
from pathlib import Path

from mura_core.errors import IntegrityError

HASH_TAG = "serving.sha256"
_CHUNK = 1 << 20


def saved_model_digest(folder: Path) -> str:
    """SHA-256 over every file's relative path and bytes, in sorted path order (hidden files too)."""
    folder = Path(folder)
    if not (folder / "saved_model.pb").is_file():
        raise IntegrityError(f"{folder} has no saved_model.pb: not a SavedModel folder")
    digest = hashlib.sha256()
    files = sorted(path for path in folder.rglob("*") if path.is_file())
    for path in files:
        # The path is part of the hash so renaming or moving a file is a change too.
        relative = path.relative_to(folder).as_posix().encode()
        digest.update(len(relative).to_bytes(4, "big") + relative)
        digest.update(path.stat().st_size.to_bytes(8, "big"))
        with open(path, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def verify_digest(folder: Path, expected: str | None, what: str) -> str:
    """Check `folder` hashes to `expected`; IntegrityError naming `what` (e.g. `mura_binary v2`) otherwise."""
    if not expected:
        raise IntegrityError(
            f"{what} has no {HASH_TAG} tag: it was not registered by `mura register`; register the run again"
        )
    actual = saved_model_digest(folder)
    if actual != expected:
        raise IntegrityError(
            f"{what}: SavedModel content hash {actual[:12]}... does not match the registered {expected[:12]}... "
            f"({folder}); it was changed or corrupted after registration"
        )
    return actual
