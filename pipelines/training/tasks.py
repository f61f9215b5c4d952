"""Training tasks: binary (all parts), binary:<XR_PART> (one part) and 14cls (part x abnormality)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipelines.data.layout import BODY_PARTS, part_index, part_slug
from pipelines.errors import ConfigError, DataError

BINARY_CLASSES = ("normal", "abnormal")


@dataclass(frozen=True)
class Task:
    """One prediction task: its name, the served model name and the output head it needs."""

    name: str
    body_part: str | None = None

    @property
    def is_multiclass(self) -> bool:
        """True for the 14-class task (softmax head)."""
        return self.name == "14cls"

    @property
    def model_name(self) -> str:
        """Registered/served model name: mura_binary, mura_binary_<part> or mura_14cls."""
        if self.is_multiclass:
            return "mura_14cls"
        if self.body_part:
            return f"mura_binary_{part_slug(self.body_part)}"
        return "mura_binary"

    @property
    def classes(self) -> tuple[str, ...]:
        """Class names in output order (14cls: index = 7 * abnormal + part index)."""
        if self.is_multiclass:
            return tuple(f"{part}/{state}" for state in BINARY_CLASSES for part in BODY_PARTS)
        return BINARY_CLASSES

    @property
    def units(self) -> int:
        """Width of the output layer."""
        return len(BODY_PARTS) * 2 if self.is_multiclass else 1

    @property
    def activation(self) -> str:
        """Activation of the output layer."""
        return "softmax" if self.is_multiclass else "sigmoid"


def parse_task(name: str) -> Task:
    """`binary`, `binary:XR_ELBOW` (or `binary:elbow`) or `14cls` -> Task; ConfigError otherwise."""
    text = str(name).strip()
    if text in ("binary", "14cls"):
        return Task(text)
    if text.startswith("binary:"):
        part = text.split(":", 1)[1].strip().upper()
        part = part if part.startswith("XR_") else f"XR_{part}"
        if part not in BODY_PARTS:
            raise ConfigError(f"unknown body part in task {name!r}; choose one of: {', '.join(BODY_PARTS)}")
        return Task(f"binary:{part}", part)
    raise ConfigError(f"unknown task {name!r}; use binary, binary:<XR_PART> (e.g. binary:XR_ELBOW) or 14cls")


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


def class_map(task: Task, arch: str, image_size: tuple[int, int]) -> dict:
    """The class map stored next to the model (model/class_map.json)."""
    return {
        "task": task.name,
        "model_name": task.model_name,
        "classes": list(task.classes),
        "image_size": [int(image_size[0]), int(image_size[1])],
        "arch": arch,
        "body_parts": list(BODY_PARTS),
        "body_part": task.body_part,
    }


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
