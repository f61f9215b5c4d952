"""Image properties read from file headers (no full decode), in parallel across cores."""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from PIL import Image, UnidentifiedImageError

PARALLEL_FROM = 2000   # below this, starting worker processes costs more than reading serially


def read_header(path: str) -> tuple[int, int, str, int]:
    """(width, height, mode, file_bytes) of one image; -1/""/-1 where the file is missing or unreadable."""
    try:
        size = os.path.getsize(path)
    except OSError:
        return -1, -1, "", -1
    try:
        with Image.open(path) as image:
            return image.width, image.height, image.mode, size
    except (UnidentifiedImageError, OSError, ValueError):
        return -1, -1, "", size


def _read_chunk(paths: list[str]) -> list[tuple[int, int, str, int]]:
    return [read_header(path) for path in paths]


def read_headers(root: Path, relative_paths: list[str], workers: int | None = None) -> list[tuple[int, int, str, int]]:
    """Headers of many images under `root`, in input order, using all cores for large sets."""
    paths = [str(Path(root) / relative) for relative in relative_paths]
    workers = workers or os.cpu_count() or 1
    if len(paths) < PARALLEL_FROM or workers == 1:
        return _read_chunk(paths)
    chunk = max(256, len(paths) // (workers * 8))
    chunks = [paths[start : start + chunk] for start in range(0, len(paths), chunk)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return [header for part in pool.map(_read_chunk, chunks) for header in part]
