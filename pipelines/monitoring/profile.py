"""What a release looks like, image by image and study by study: the features drift is tested on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from mura_core.parallel import map_in_chunks

# Numeric, per image. `noise`: the mean absolute difference of horizontally neighbouring pixels, which
# rises with detector noise while the anatomy barely moves it.
IMAGE_FEATURES = ("width", "height", "aspect", "mean_intensity", "contrast", "noise")
IMAGE_CATEGORIES = ("mode",)  # categorical, per image
STUDY_CATEGORIES = ("body_part", "label")  # categorical, per study: study-type mix and label balance


def _measure(path: str) -> tuple:
    """(width, height, aspect, mean intensity, contrast, noise, mode) of one image, in grey levels."""
    with Image.open(path) as image:
        mode = image.mode
        grey = np.asarray(image.convert("L"), dtype=np.float32)
    height, width = grey.shape
    noise = float(np.abs(np.diff(grey, axis=1)).mean()) if width > 1 else 0.0
    return width, height, width / height, float(grey.mean()), float(grey.std()), noise, mode


def _measure_chunk(paths: list[str]) -> list[tuple]:
    return [_measure(path) for path in paths]


def sample_rows(manifest: pd.DataFrame, limit: int, seed: int) -> pd.DataFrame:
    """At most `limit` image rows, whole studies kept together, drawn reproducibly."""
    studies = manifest["study_id"].drop_duplicates()
    order = studies.sample(frac=1.0, random_state=seed).tolist()
    counts = manifest.groupby("study_id").size()
    chosen: list[str] = []
    total = 0
    for study in order:
        if total + counts[study] > limit and chosen:
            break
        chosen.append(study)
        total += int(counts[study])
    return manifest[manifest["study_id"].isin(chosen)].reset_index(drop=True)


def image_profile(rows: pd.DataFrame, data_root: Path, workers: int | None = None) -> pd.DataFrame:
    """`rows` (manifest rows) with the image features added; every image is decoded once."""
    paths = [str(Path(data_root) / path) for path in rows["image_path"]]
    measured = map_in_chunks(_measure_chunk, paths, workers, serial_below=200, description="profile images")
    features = pd.DataFrame(measured, columns=[*IMAGE_FEATURES, *IMAGE_CATEGORIES])
    keep = ["image_path", "patient_id", "study_id", "body_part", "label", "split"]
    return pd.concat([rows[keep].reset_index(drop=True), features], axis=1)
