"""`mura data stats`: the seed's EDA as a table and the bar plot of images per body part and label."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def summary_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Images, studies, patients and abnormal-study ratio per split and body part."""
    frame = frame[frame["body_part"] != ""]
    studies = frame.drop_duplicates(["split", "study_id"])
    table = frame.groupby(["split", "body_part"]).agg(
        images=("image_path", "size"), patients=("patient_id", "nunique")
    )
    table["studies"] = studies.groupby(["split", "body_part"]).size()
    table["abnormal_ratio"] = studies.groupby(["split", "body_part"])["label"].mean().round(3)
    return table[["images", "studies", "patients", "abnormal_ratio"]].reset_index()


def barplot_per_bodypart(frame: pd.DataFrame, path: Path, split: str = "train") -> Path:
    """Bar plot of images per body part, normal vs abnormal (the seed's barplot_per_bodypart_train.png)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    subset = frame[frame["split"].isin([split, "holdout"] if split == "train" else [split])]
    counts = subset.groupby(["body_part", "label"]).size().unstack(fill_value=0)
    counts = counts.rename(columns={0: "normal", 1: "abnormal"})
    axes = counts.plot(kind="bar", figsize=(9, 5), color=["#4c72b0", "#dd8452"])
    axes.set_title(f"MURA {split}: images per body part and label")
    axes.set_xlabel("body part")
    axes.set_ylabel("images")
    plt.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    plt.savefig(path, dpi=100)
    plt.close("all")
    return path
