"""The pointing game on synthetic releases: does the heatmap's hottest pixel fall where the
abnormality was drawn? (MURA has no boxes; the synthetic generator records them.)

As in the original pointing game (Zhang et al. 2016: 15 pixels on images of about 500), a point within
a small tolerance of the box counts: here 3 % of the image's longer side. The drawn boxes are tight (a
fracture is a 9-pixel line on a 256-pixel canvas) while the heatmap has the resolution of the last
feature map, so near misses are common; the strict rate is reported beside it.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from mura_core.errors import DataError
from pipelines.data import BOXES_FILE

TOLERANCE = 0.03  # of the image's longer side


def read_boxes(data_root: Path, split: str = "valid") -> list[dict]:
    """The drawn abnormalities of `split`: image_path, kind and the box (x0, y0, x1, y1) in pixels."""
    path = Path(data_root) / BOXES_FILE
    if not path.is_file():
        raise DataError(f"{path} is missing: the pointing game needs a synthetic release (`mura data synth`)")
    with path.open(newline="") as stream:
        rows = [row for row in csv.DictReader(stream) if f"/{split}/" in row["image_path"]]
    return [{**row, "box": tuple(int(row[key]) for key in ("x0", "y0", "x1", "y1"))} for row in rows]


def _score(heatmap: np.ndarray, box: tuple[int, int, int, int], margin: float) -> tuple[bool, float]:
    """(the hottest pixel lies within `margin` pixels of the box, the share of the image that does)."""
    height, width = heatmap.shape
    y, x = np.unravel_index(int(np.argmax(heatmap)), heatmap.shape)
    x0, y0, x1, y1 = box
    hit = x0 - margin <= x <= x1 + margin and y0 - margin <= y <= y1 + margin
    covered = (min(x1 + margin, width - 1) - max(x0 - margin, 0) + 1) * (
        min(y1 + margin, height - 1) - max(y0 - margin, 0) + 1
    )
    return bool(hit), float(covered) / heatmap.size


def pointing_game(
    model, data_root: Path, split: str = "valid", batch: int = 32, tolerance: float = TOLERANCE
) -> dict:
    """Hit rate of the heatmap maximum within `tolerance` of the drawn box over the abnormal images of
    `split` (and strictly inside it), per kind, and what a uniformly random point would score."""
    from pipelines.evaluation.explain import image_heatmaps

    rows = read_boxes(data_root, split)
    if not rows:
        raise DataError(f"no drawn abnormality in {split}: nothing to point at")
    images = [(Path(data_root) / row["image_path"]).read_bytes() for row in rows]
    hits, strict, shares, strict_shares = [], [], [], []
    for row, heatmap in zip(rows, image_heatmaps(model, images, batch), strict=True):
        hit, share = _score(heatmap, row["box"], tolerance * max(heatmap.shape))
        inside, inside_share = _score(heatmap, row["box"], 0.0)
        hits.append(hit)
        shares.append(share)
        strict.append(inside)
        strict_shares.append(inside_share)
    kinds = np.array([row["kind"] for row in rows])
    hits_array = np.array(hits)
    return {
        "images": len(hits),
        "tolerance": tolerance,
        "hit_rate": float(hits_array.mean()),
        "random_point_rate": float(np.mean(shares)),
        "strict_hit_rate": float(np.mean(strict)),
        "strict_random_point_rate": float(np.mean(strict_shares)),
        "by_kind": {
            str(kind): {
                "images": int((kinds == kind).sum()),
                "hit_rate": float(hits_array[kinds == kind].mean()),
            }
            for kind in sorted(set(kinds))
        },
    }
