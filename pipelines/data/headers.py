"""Image properties read from file headers (no full decode), in parallel across cores."""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from mura_core.parallel import map_in_chunks

PARALLEL_FROM = 2000  # below this, starting worker processes costs more than reading serially


def read_header(path: str) -> tuple[int, int, str, int, bool]:
    """(width, height, mode, file_bytes, intact) of one image; -1/""/-1 where missing or unreadable.

    `intact` comes from PIL's verify(): it walks the file's chunks and checksums without decoding
    pixels, so a truncated PNG is caught here at a fraction of a full decode's cost.
    """
    try:
        size = os.path.getsize(path)
    except OSError:
        return -1, -1, "", -1, False
    try:
        with Image.open(path) as image:
            width, height, mode = image.width, image.height, image.mode
            try:
                image.verify()
            except (OSError, SyntaxError, ValueError):
                return width, height, mode, size, False
            return width, height, mode, size, True
    except (UnidentifiedImageError, OSError, ValueError):
        return -1, -1, "", size, False


def _read_chunk(paths: list[str]) -> list[tuple[int, int, str, int, bool]]:
    return [read_header(path) for path in paths]


def read_headers(
    root: Path, relative_paths: list[str], workers: int | None = None
) -> list[tuple[int, int, str, int, bool]]:
    """Headers of many images under `root`, in input order, using all cores for large sets."""
    paths = [str(Path(root) / relative) for relative in relative_paths]
    return map_in_chunks(_read_chunk, paths, workers, serial_below=PARALLEL_FROM, description="read headers")
