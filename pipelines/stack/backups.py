"""Back up and restore the embedded stack's state (MURA_HOME) as one archive.

Everything the embedded stack knows lives in MURA_HOME: the MLflow store (SQLite + artifacts), the
Airflow metadata database (DAG history), the serving model base, the local DVC remote, the GX project
and Data Docs, the generated secrets. A backup may be taken while the stack runs: SQLite files are
copied with SQLite's online backup (a consistent snapshot even mid-write), every other file as it is.
A restore needs the stack stopped and puts the state back at the same path, because MLflow's
artifact locations and `models.config` hold absolute paths.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sqlite3
import stat
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from mura_core.errors import MuraError
from mura_core.settings import Settings

MANIFEST = "BACKUP.json"
FORMAT = 1
FREE_MARGIN = 512 * 2**20  # what a restore leaves free on the disk at least
SQLITE_MAGIC = b"SQLite format 3\x00"
# Pid records describe processes of the machine that took the backup; SQLite's side files are folded
# into the database copy by the online backup.
SKIPPED_DIRS = {"run"}
SKIPPED_SUFFIXES = ("-wal", "-shm", "-journal", ".pid", ".sock")


class BackupError(MuraError):
    """A backup could not be written or an archive could not be restored; nothing was changed."""


@dataclass(frozen=True)
class Root:
    """A folder of state and its name inside the archive."""

    name: str
    path: Path


def roots(settings: Settings) -> list[Root]:
    """MURA_HOME, plus the model base path when MURA_MODEL_BASE_PATH puts it elsewhere."""
    home = settings.mura_home.resolve()
    found = [Root("mura_home", home)]
    base = settings.model_base_path.resolve()
    if not base.is_relative_to(home):
        found.append(Root("model_base", base))
    return found


def _is_sqlite(path: Path) -> bool:
    with path.open("rb") as stream:
        return stream.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC


def _sqlite_snapshot(path: Path, scratch: Path) -> Path:
    """A consistent copy of a live SQLite database (other processes may be writing it)."""
    copy = scratch / f"{len(list(scratch.iterdir()))}.db"
    source = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    target = sqlite3.connect(copy)
    try:
        source.backup(target)
    finally:
        target.close()
        source.close()
    return copy


def _files(root: Path):
    """Regular files under `root`, links followed to the file they name (an archive holds no link:
    a restore then writes plain files only); sockets, pipes and dangling links skipped."""
    for folder, dirnames, filenames in os.walk(root):
        here = Path(folder)
        dirnames[:] = sorted(d for d in dirnames if not (here == root and d in SKIPPED_DIRS))
        for name in sorted(filenames):
            path = here / name
            if name.endswith(SKIPPED_SUFFIXES):
                continue
            try:
                if stat.S_ISREG(path.stat().st_mode):
                    yield path
            except OSError:  # a dangling link, or a file the running stack just removed
                continue


def backup(settings: Settings, out: Path) -> dict:
    """Write every file of the stack's state into the gzipped tar `out` (mode 0600: it holds the
    stack's secrets), atomically; return what was written."""
    out = Path(out).resolve()
    sources = roots(settings)
    if not sources[0].path.is_dir():
        raise BackupError(f"nothing to back up: MURA_HOME {sources[0].path} does not exist")
    inside = [root.path for root in sources if out.is_relative_to(root.path)]
    if inside:
        raise BackupError(
            f"write the backup outside the state it backs up ({inside[0]}): pass --out elsewhere"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    descriptor, partial = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent)
    os.fchmod(descriptor, 0o600)
    counts = {"files": 0, "databases": 0, "bytes": 0}
    root_paths = {root.name: str(root.path) for root in sources}
    try:
        with os.fdopen(descriptor, "wb") as stream, tarfile.open(fileobj=stream, mode="w:gz") as archive:
            manifest = {
                "format": FORMAT,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "roots": root_paths,
            }
            _add_bytes(archive, MANIFEST, json.dumps(manifest, indent=2).encode())
            with tempfile.TemporaryDirectory(prefix="mura-backup-") as scratch:
                for root in sources:
                    for path in _files(root.path):
                        name = f"{root.name}/{path.relative_to(root.path).as_posix()}"
                        try:
                            source = path
                            if _is_sqlite(path):
                                source = _sqlite_snapshot(path, Path(scratch))
                                counts["databases"] += 1
                            info = _regular(source, name, stat.S_IMODE(path.stat().st_mode))
                            with source.open("rb") as handle:
                                archive.addfile(info, handle)
                        except FileNotFoundError:  # removed by the running stack meanwhile
                            continue
                        except sqlite3.Error as error:
                            raise BackupError(
                                f"the database {path} could not be copied ({error}); the process that "
                                "holds it locked must stop for the backup (mura backup pauses the PACS)"
                            ) from None
                        counts["bytes"] += info.size
                        counts["files"] += 1
        os.replace(partial, out)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    return {"archive": str(out), **root_paths, **counts}


def _regular(source: Path, name: str, mode: int) -> tarfile.TarInfo:
    """A regular-file member (never a hard or symbolic link) of `source`'s current size."""
    info = tarfile.TarInfo(name)
    details = source.stat()
    info.size, info.mtime, info.mode = details.st_size, int(details.st_mtime), mode
    return info


def _add_bytes(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o600, int(time.time())
    archive.addfile(info, io.BytesIO(data))


def read_manifest(archive_path: Path) -> dict:
    """The archive's own description; a clear error for anything that is not a MURA backup."""
    try:
        with tarfile.open(archive_path, mode="r:gz") as archive:
            member = archive.extractfile(MANIFEST)
            manifest = json.loads(member.read()) if member else None
    except (OSError, tarfile.TarError, KeyError, ValueError) as error:
        raise BackupError(f"{archive_path} is not a backup written by `mura backup`: {error}") from error
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{archive_path}: unknown backup format {manifest!r:.80}")
    return manifest


def restore(settings: Settings, archive_path: Path, running: list[str], force: bool = False) -> dict:
    """Put a backup's state back in place. `running` names the stack's services still running: a
    restore under a live stack would be overwritten by it, so it is refused. State already in the
    way is refused too, or with `force` moved aside (never deleted)."""
    archive_path = Path(archive_path).resolve()
    if running:
        raise BackupError(f"stop the stack first ('mura down'): {', '.join(running)} still running")
    manifest = read_manifest(archive_path)
    targets = {root.name: root.path for root in roots(settings)}
    recorded = {name: Path(path) for name, path in manifest["roots"].items()}
    if recorded != targets:
        raise BackupError(
            f"this backup was taken of {_describe(recorded)} and must be restored there (MLflow's artifact "
            f"locations and models.config hold absolute paths); this shell's settings point at "
            f"{_describe(targets)}: set MURA_HOME (and MURA_MODEL_BASE_PATH) to match"
        )
    occupied = [path for path in targets.values() if path.exists() and any(path.iterdir())]
    if occupied and not force:
        raise BackupError(
            f"{', '.join(map(str, occupied))} already holds state; restore into an empty place, or pass "
            "--force to move it aside first (it is kept, not deleted)"
        )
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    staged: dict[str, Path] = {}
    try:
        for name, path in targets.items():
            staged[name] = _stage(archive_path, name, path)
    except BackupError:
        for folder in staged.values():
            shutil.rmtree(folder, ignore_errors=True)
        raise
    moved_aside = []
    for name, path in targets.items():
        if path.exists():
            aside = path.with_name(f"{path.name}.before-restore-{stamp}")
            path.rename(aside)
            moved_aside.append(str(aside))
        staged[name].rename(path)
    return {
        "archive": str(archive_path),
        "created": manifest["created"],
        "restored": [str(path) for path in targets.values()],
        "moved_aside": moved_aside,
    }


def _describe(paths: dict[str, Path]) -> str:
    return ", ".join(f"{name} {path}" for name, path in sorted(paths.items()))


def _check_room(archive_path: Path, declared: int, staging: Path) -> None:
    """Refuse, before writing a byte, an archive whose files would not fit on the disk with
    FREE_MARGIN to spare: a 522 KB archive of zeros once wrote 512 MiB (a backup compresses well, so
    the archive's own size says nothing)."""
    free = shutil.disk_usage(staging).free
    if declared > free - FREE_MARGIN:
        raise BackupError(
            f"{archive_path} would write {declared / 2**20:.0f} MiB where {free / 2**20:.0f} MiB are free "
            f"(keeping {FREE_MARGIN // 2**20} MiB spare); free some space or restore elsewhere"
        )


def _stage(archive_path: Path, name: str, target: Path) -> Path:
    """Extract one root beside its target (same filesystem: the final rename is atomic). Tar's `data`
    filter refuses absolute names, `..`, links out of the tree and device files."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.restoring-", dir=target.parent))
    prefix = f"{name}/"
    try:
        with tarfile.open(archive_path, mode="r:gz") as archive:
            members = []
            for member in archive.getmembers():
                if not member.name.startswith(prefix):
                    continue
                member.name = member.name[len(prefix) :]
                # Our archives hold regular files and folders only, named inside their root; anything
                # else was not written by `mura backup` (and older Pythons' "data" filter has holes).
                parts = Path(member.name).parts
                if not (member.isreg() or member.isdir()) or member.name.startswith("/") or ".." in parts:
                    raise tarfile.TarError(
                        f"member {prefix}{member.name!r} is not a plain file inside the archive"
                    )
                members.append(member)
            _check_room(archive_path, sum(member.size for member in members), staging)
            archive.extractall(staging, members=members, filter="data")
    except BackupError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    except (OSError, tarfile.TarError, KeyError) as error:
        shutil.rmtree(staging, ignore_errors=True)
        raise BackupError(f"{archive_path} could not be restored, nothing was changed: {error}") from error
    return staging
