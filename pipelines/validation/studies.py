"""The studies frame: one row per study named by the labeled_studies CSVs or by the manifest's images.

A study listed in the CSVs without any image has no manifest row, so study rules (has images, one
label, listed once) are checked on this frame by a second suite.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd

from pipelines.data import IMAGE_PATH_PATTERN, SPLITS, STUDY_CSV, read_study_csv, release_dir


def csv_study_entries(data_root: Path) -> Counter:
    """How many times each study path appears in the two labeled_studies CSVs."""
    release = release_dir(Path(data_root))
    entries: Counter = Counter()
    for split in SPLITS:
        entries.update(study_path for study_path, _ in read_study_csv(release / STUDY_CSV[split]))
    return entries


def study_frame(manifest: pd.DataFrame, data_root: Path) -> pd.DataFrame:
    """Columns study_path, images (count), labels (distinct image labels; null without images), csv_entries."""
    paths = manifest["image_path"].astype(str)
    # Malformed image paths are reported by image_path_pattern; their "study" would only repeat that.
    wellformed = paths.map(lambda path: IMAGE_PATH_PATTERN.match(path) is not None).astype(bool)
    study_paths = paths[wellformed].str.rsplit("/", n=1).str[0] + "/"
    grouped = pd.DataFrame({"study_path": study_paths, "label": manifest.loc[wellformed, "label"]}).groupby(
        "study_path"
    )["label"]
    entries = csv_study_entries(data_root)
    all_studies = sorted(set(grouped.groups) | set(entries))
    frame = pd.DataFrame({"study_path": pd.Series(all_studies, dtype=object)})
    frame["images"] = grouped.size().reindex(all_studies, fill_value=0).to_numpy(dtype="int64")
    frame["labels"] = grouped.nunique().reindex(all_studies).to_numpy(dtype="float64")
    frame["csv_entries"] = [entries.get(study, 0) for study in all_studies]
    return frame
