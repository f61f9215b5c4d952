"""Grad-CAM++ overlays of a version's telling cases on valid: its surest true positives, false positives
and false negatives (image level, at the fitted threshold)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

KINDS = (
    ("true positive", "abnormal, called abnormal"),
    ("false positive", "normal, called abnormal"),
    ("false negative", "abnormal, called normal"),
)


def pick_cases(predictions: pd.DataFrame, threshold: float, per_kind: int = 2) -> list[tuple[str, pd.Series]]:
    """The images each kind is surest about: highest probability for TP and FP, lowest for FN."""
    called = predictions["probability"] >= threshold
    abnormal = predictions["label"] == 1
    chosen = []
    for kind, rows, ascending in (
        ("true positive", predictions[called & abnormal], False),
        ("false positive", predictions[called & ~abnormal], False),
        ("false negative", predictions[~called & abnormal], True),
    ):
        for _, row in rows.sort_values("probability", ascending=ascending).head(per_kind).iterrows():
            chosen.append((kind, row))
    return chosen


def overlays(
    model_path: Path, predictions: pd.DataFrame, data_root: Path, threshold: float, folder: Path, subject: str
) -> list[dict]:
    """PNG overlays of the picked cases under `folder`: [{kind, image_path, probability, file}]."""
    from pipelines.evaluation import image_heatmaps
    from pipelines.training import load_model
    from serving import overlay_png

    cases = [
        (kind, row)
        for kind, row in pick_cases(predictions, threshold)
        if (data_root / row["image_path"]).is_file()
    ]
    if not cases:
        return []
    model = load_model(model_path)
    images = [(data_root / row["image_path"]).read_bytes() for _, row in cases]
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for index, ((kind, row), image, heatmap) in enumerate(
        zip(cases, images, image_heatmaps(model, images), strict=True)
    ):
        title = f"{kind}: {row['image_path']}\nabnormal probability {row['probability']:.3f} ({subject})"
        path = folder / f"{index:02d}_{kind.replace(' ', '_')}.png"
        path.write_bytes(overlay_png(image, heatmap, title))
        made.append(
            {
                "kind": kind,
                "image_path": row["image_path"],
                "probability": float(row["probability"]),
                "file": path,
            }
        )
    return made
