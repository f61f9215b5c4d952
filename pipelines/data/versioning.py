"""What a run actually used: the DVC hash of the data it read, whether that data is versioned and
pushed, and whether the code that ran was committed.

The hash is computed the way DVC computes a folder's (`<md5 of the sorted [{md5, relpath}] JSON>.dir`),
so it equals `data.dvc`'s md5 exactly when the folder holds the same bytes; a test checks it against
`dvc add`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
from pathlib import Path

from mura_core.errors import DataError

LOGGER = logging.getLogger(__name__)
UNVERSIONED = "unversioned"
UNKNOWN = "unknown"
_CHUNK = 1 << 20


def file_md5(path: Path) -> str:
    """The md5 of a file's bytes (DVC 3's per-file hash)."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def folder_listing(root: Path) -> list[dict[str, str]]:
    """DVC's listing of a folder: every file's md5 and path relative to `root`, sorted by path."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such data folder")
    entries = [
        {"md5": file_md5(path), "relpath": path.relative_to(root).as_posix()}
        for path in root.rglob("*")
        if path.is_file()
    ]
    return sorted(entries, key=lambda entry: entry["relpath"])


def listing_md5(listing: list[dict[str, str]]) -> str:
    """The `.dir` hash DVC gives a folder with this listing."""
    body = json.dumps(listing, sort_keys=True).encode()
    return hashlib.md5(body, usedforsecurity=False).hexdigest() + ".dir"


def folder_md5(root: Path) -> tuple[str, int]:
    """(DVC `.dir` md5, number of files) of the folder as it is on disk now."""
    listing = folder_listing(root)
    return listing_md5(listing), len(listing)


def _git(root: Path, *args: str) -> tuple[int, str]:
    try:
        done = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return 1, ""
    return done.returncode, done.stdout.strip()


def code_state(repo_root: Path) -> dict[str, str]:
    """`code.git_sha` and `code.dirty` (tracked files changed and not committed: `true`/`false`)."""
    code, sha = _git(repo_root, "rev-parse", "HEAD")
    if code != 0 or not sha:
        return {"code.git_sha": UNKNOWN, "code.dirty": "true"}  # no commit names this code
    _, changes = _git(repo_root, "status", "--porcelain", "--untracked-files=no")
    return {"code.git_sha": sha, "code.dirty": "true" if changes else "false"}


def data_lineage(data_root: Path, repo_root: Path) -> dict[str, str]:
    """Lineage tags of the data under `data_root` as read now.

    `data.md5` is its hash; `data.versioned` is `true` only when it equals the committed `data.dvc` and
    the DVC remote holds every file of it; only then `data.dvc_md5` and `data.rev` name that pointer
    (else `unversioned`), so a run can never claim a data version it did not read.
    """
    from pipelines.data import dvc

    md5, files = folder_md5(data_root)
    tags = {
        "data.md5": md5,
        "data.nfiles": str(files),
        "data.versioned": "false",
        "data.dvc_md5": UNVERSIONED,
        "data.rev": UNVERSIONED,
    }
    pointer = dvc.pointer_md5(repo_root)
    if pointer != md5:
        LOGGER.warning(
            "data %s under %s is not the committed data.dvc (%s): unversioned", md5, data_root, pointer
        )
        return tags
    committed, _ = _git(repo_root, "diff", "--quiet", "HEAD", "--", dvc.DVC_FILE)
    if committed != 0:
        LOGGER.warning("data.dvc matches the data but is not committed: unversioned")
        return tags
    try:
        missing = dvc.missing_in_remote(repo_root)
    except DataError as error:
        LOGGER.warning("cannot check the DVC remote (%s): unversioned", error)
        return tags
    if missing:
        LOGGER.warning("the DVC remote lacks %d file(s) of %s: unversioned", len(missing), md5)
        return tags
    version = dvc.data_version(repo_root)
    return {**tags, "data.versioned": "true", "data.dvc_md5": md5, "data.rev": version["data_rev"]}
