"""Image properties for the validation gate: each image is fully decoded once, in parallel processes.

The suite never opens files itself; it checks the columns added here. Each check is staged (exists ->
non-empty -> decodes -> size/mode/contrast) and a later stage is null when an earlier one failed, so
one broken file is reported by exactly one rule.
"""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from mura_core.parallel import map_in_chunks

# Column names added to the manifest, in the order of the tuple check_image returns.
IMAGE_COLUMNS = (
    "image_exists",
    "image_bytes",
    "image_decodes",
    "image_width",
    "image_height",
    "image_mode",
    "image_pixel_range",
    "image_error",
)
CHUNKS_PER_WORKER = 8  # enough chunks to balance uneven image sizes, few enough to keep IPC cheap

ImageFacts = tuple[bool, int | None, bool | None, int | None, int | None, str | None, float | None, str]


def _pixel_range(extrema) -> float:
    """Largest (max - min) over the bands; 0 means every pixel has the same value."""
    if extrema and isinstance(extrema[0], tuple):
        return float(max(high - low for low, high in extrema))
    low, high = extrema
    return float(high - low)


def check_image(path: str) -> ImageFacts:
    """Facts about one image file, in IMAGE_COLUMNS order; never raises for a bad file."""
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        return False, None, None, None, None, None, None, "file not found"
    except OSError as error:
        return False, None, None, None, None, None, None, f"cannot read: {error}"
    if size == 0:
        return True, 0, None, None, None, None, None, "empty file (0 bytes)"
    try:
        with Image.open(path) as image:
            image.load()  # decodes every pixel: a truncated PNG raises here, not at open()
            facts = image.width, image.height, image.mode, _pixel_range(image.getextrema())
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        return True, size, False, None, None, None, None, f"does not decode: {error}"
    width, height, mode, pixel_range = facts
    return True, size, True, width, height, mode, pixel_range, ""


def _check_chunk(paths: list[str]) -> list[ImageFacts]:
    return [check_image(path) for path in paths]


def check_images(paths: list[str], workers: int | None = None) -> list[ImageFacts]:
    """check_image for every path, in input order, spread over `workers` processes (all cores by default)."""
    return map_in_chunks(
        _check_chunk, paths, workers, chunks_per_worker=CHUNKS_PER_WORKER, description="check images"
    )


def image_columns(data_root: Path, relative_paths: list[str], workers: int | None = None) -> dict[str, list]:
    """The IMAGE_COLUMNS values (column name -> list) for release-relative paths under `data_root`."""
    paths = [str(Path(data_root) / relative) for relative in relative_paths]
    facts = check_images(paths, workers)
    columns = list(zip(*facts, strict=True)) if facts else [()] * len(IMAGE_COLUMNS)
    return {name: list(values) for name, values in zip(IMAGE_COLUMNS, columns, strict=True)}
