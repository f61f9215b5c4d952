"""The pointing game on synthetic releases: does the heatmap's hottest pixel fall where the
abnormality was drawn? (MURA has no boxes; the synthetic generator records them.)"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from pipelines.data.synth import BOXES_FILE
from pipelines.errors import DataError


def read_boxes(data_root: Path, split: str = "valid") -> list[dict]:
    """The drawn abnormalities of `split`: image_path, kind and the box (x0, y0, x1, y1) in pixels."""
    path = Path(data_root) / BOXES_FILE
    if not path.is_file():
        raise DataError(f"{path} is missing: the pointing game needs a synthetic release (`mura data synth`)")
    with path.open(newline="") as stream:
        rows = [row for row in csv.DictReader(stream) if f"/{split}/" in row["image_path"]]
    return [{**row, "box": tuple(int(row[key]) for key in ("x0", "y0", "x1", "y1"))} for row in rows]


def pointing_game(model, data_root: Path, split: str = "valid", batch: int = 32) -> dict:
    """Hit rate of the heatmap maximum inside the drawn box over the abnormal images of `split`, per
    kind, and what a uniformly random point would score (the mean share of the image the box covers)."""
    from pipelines.evaluation.explain import image_heatmaps

    rows = read_boxes(data_root, split)
    if not rows:
        raise DataError(f"no drawn abnormality in {split}: nothing to point at")
    images = [(Path(data_root) / row["image_path"]).read_bytes() for row in rows]
    hits, shares = [], []
    for row, on_image in zip(rows, image_heatmaps(model, images, batch), strict=True):
        y, x = np.unravel_index(int(np.argmax(on_image)), on_image.shape)
        x0, y0, x1, y1 = row["box"]
        hits.append(x0 <= x <= x1 and y0 <= y <= y1)
        shares.append((x1 - x0 + 1) * (y1 - y0 + 1) / on_image.size)
    kinds = [row["kind"] for row in rows]
    hits_array, kinds_array = np.array(hits), np.array(kinds)
    return {
        "images": len(hits),
        "hit_rate": float(hits_array.mean()),
        "random_point_rate": float(np.mean(shares)),
        "by_kind": {
            kind: {
                "images": int((kinds_array == kind).sum()),
                "hit_rate": float(hits_array[kinds_array == kind].mean()),
            }
            for kind in sorted(set(kinds))
        },
    }
