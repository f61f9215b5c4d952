"""Training rows and targets per task (the task names themselves live in mura_core.contracts)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mura_core.contracts import BODY_PARTS, Task, part_index
from mura_core.errors import DataError


def select_rows(task: Task, frame: pd.DataFrame) -> pd.DataFrame:
    """The manifest rows the task trains and evaluates on (one body part for binary:<part>)."""
    if task.body_part is None:
        return frame
    return frame[frame["body_part"] == task.body_part]


def targets(task: Task, frame: pd.DataFrame) -> np.ndarray:
    """Training targets: float32 [N, 1] study labels, or int32 [N] class indices for 14cls."""
    labels = frame["label"].to_numpy(dtype=np.int64)
    if task.is_multiclass:
        parts = frame["body_part"].map(part_index).to_numpy(dtype=np.int64)
        return (len(BODY_PARTS) * labels + parts).astype(np.int32)
    return labels.astype(np.float32).reshape(-1, 1)


def check_task_rows(task: Task, frame: pd.DataFrame) -> None:
    """Raise DataError when the task has no rows to train, stop early or evaluate on."""
    where = f" for body part {task.body_part}" if task.body_part else ""
    rows = select_rows(task, frame)
    for split, use in (("train", "fitting"), ("holdout", "early stopping"), ("valid", "evaluation")):
        if not (rows["split"] == split).any():
            raise DataError(
                f"the manifest has no usable '{split}' rows{where} (needed for {use}); "
                "rebuild it with `mura data manifest` from a complete MURA-v1.1 tree"
            )
    train_labels = set(rows.loc[rows["split"] == "train", "label"].astype(int))
    if train_labels != {0, 1}:
        raise DataError(
            f"the train rows{where} hold only label(s) {sorted(train_labels)}; both classes are needed"
        )
