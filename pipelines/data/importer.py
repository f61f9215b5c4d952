"""`mura data import SRC`: bring a real MURA v1.1 release (folder or the official zip) into `data/`."""

from __future__ import annotations

import logging
import shutil
import zipfile
from pathlib import Path

from mura_core.contracts import is_hidden
from mura_core.errors import DataError
from mura_core.progress import bar
from pipelines.data.layout import IMAGE_CSV, RELEASE_DIR
from pipelines.data.release import read_image_csv, release_dir, scan_images

LOGGER = logging.getLogger(__name__)


def _copy_folder(source: Path, target: Path) -> int:
    files = [
        path for path in source.rglob("*") if path.is_file() and not any(is_hidden(p) for p in path.parts)
    ]
    with bar(len(files), "import") as progress:
        for path in files:
            destination = target / path.relative_to(source)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, destination)
            progress.update()
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
            with bar(len(members), "import") as progress:
                for info in members:
                    if info.filename.startswith(f"{RELEASE_DIR}/"):
                        archive.extract(info, target)
                    progress.update()
        except (zipfile.BadZipFile, OSError, EOFError) as error:
            raise DataError(f"{source}: damaged zip ({error}); download it again") from error
    return len(members)


def check_complete(staged_root: Path) -> int:
    """Refuse an empty or partial release: every image the CSVs list must be there; the count of them."""
    release = release_dir(staged_root)
    listed = [path for name in IMAGE_CSV.values() for path in read_image_csv(release / name)]
    if not listed or not scan_images(staged_root):
        raise DataError(f"the release holds no images (its CSVs list {len(listed)}): nothing to import")
    on_disk = set(scan_images(staged_root))
    missing = [path for path in listed if path not in on_disk]
    if missing:
        raise DataError(
            f"partial release: {len(missing)} of {len(listed)} listed images are missing, e.g. {missing[0]}; "
            "import the complete MURA-v1.1 folder or zip"
        )
    return len(listed)


def _protect_existing(data_dir: Path, repo_root: Path | None, force: bool) -> dict | None:
    """Refuse to replace data that no DVC remote holds; with `force`, push it first so it stays pullable."""
    if not (data_dir / RELEASE_DIR).exists():
        return None
    from pipelines.data import dvc
    from pipelines.data.versioning import folder_md5

    md5 = folder_md5(data_dir)[0]
    root = Path(repo_root) if repo_root else data_dir.parent
    versioned = (root / dvc.DVC_FILE).is_file() and data_dir.resolve() == (root / "data").resolve()
    if versioned and dvc.pointer_md5(root) == md5 and not dvc.missing_in_remote(root, md5):
        return None  # the remote holds it: `mura data pull` brings it back
    if not force:
        raise DataError(
            f"{data_dir} already holds data {md5} that no DVC remote holds; 'mura data push' it first, "
            "or pass --force (it is pushed before being replaced)"
        )
    if not versioned:
        raise DataError(
            f"--force keeps the old data by pushing it, but {data_dir} is not the project's data/"
        )
    pushed = dvc.add_and_push(root)
    LOGGER.warning(
        "pushed the previous data as %s before replacing it (pull it with that data.dvc)", pushed["dvc_md5"]
    )
    return pushed


def import_release(source: Path, data_dir: Path, force: bool = False, repo_root: Path | None = None) -> dict:
    """Copy or extract a complete MURA-v1.1 release into `data_dir`; nothing is left half-written on
    failure, and data that no remote holds is not replaced (`force` pushes it first)."""
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
        images = check_complete(staging)
        previous = _protect_existing(data_dir, repo_root, force)
        target = data_dir / RELEASE_DIR
        data_dir.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(target, ignore_errors=True)
        (staging / RELEASE_DIR).rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {
        "source": str(source),
        "files": count,
        "images": images,
        "root": str(data_dir / RELEASE_DIR),
        "previous_pushed": previous["dvc_md5"] if previous else None,
    }
