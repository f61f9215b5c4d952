"""`mura data import SRC`: bring a real MURA v1.1 release (folder or the official zip) into `data/`."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

from tqdm import tqdm

from pipelines.contracts import is_hidden
from pipelines.data.layout import RELEASE_DIR
from pipelines.data.release import release_dir
from pipelines.errors import DataError


def _copy_folder(source: Path, target: Path) -> int:
    files = [
        path for path in source.rglob("*") if path.is_file() and not any(is_hidden(p) for p in path.parts)
    ]
    for path in tqdm(files, desc="import", unit="file"):
        destination = target / path.relative_to(source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, destination)
    return len(files)


def _extract_zip(source: Path, target: Path) -> int:
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError) as error:
        raise DataError(
            f"{source}: not a readable zip ({error}); expected the official MURA-v1.1.zip"
        ) from error
    with archive:
        members = [
            info
            for info in archive.infolist()
            if not info.is_dir()
            and not any(is_hidden(part) for part in info.filename.split("/"))
            and "__MACOSX" not in info.filename
        ]
        if not any(info.filename.startswith(f"{RELEASE_DIR}/") for info in members):
            raise DataError(f"{source}: the zip has no {RELEASE_DIR}/ folder at its top level")
        try:
            for info in tqdm(members, desc="import", unit="file"):
                if info.filename.startswith(f"{RELEASE_DIR}/"):
                    archive.extract(info, target)
        except (zipfile.BadZipFile, OSError, EOFError) as error:
            raise DataError(f"{source}: damaged zip ({error}); download it again") from error
    return len(members)


def import_release(source: Path, data_dir: Path) -> dict:
    """Copy or extract a MURA-v1.1 release into `data_dir`; nothing is left half-written on failure."""
    source, data_dir = Path(source), Path(data_dir)
    if not source.exists():
        raise DataError(f"{source}: no such file or folder; pass a MURA-v1.1 folder or MURA-v1.1.zip")
    staging = data_dir.parent / f".{data_dir.name}.import"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        if source.is_dir():
            folder = source if source.name == RELEASE_DIR else source / RELEASE_DIR
            release_dir(folder.parent)  # raises a DataError naming what is missing
            count = _copy_folder(folder, staging / RELEASE_DIR)
        else:
            count = _extract_zip(source, staging)
        release_dir(staging)
        target = data_dir / RELEASE_DIR
        data_dir.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(target, ignore_errors=True)
        (staging / RELEASE_DIR).rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {"source": str(source), "files": count, "root": str(data_dir / RELEASE_DIR)}
