"""`mura data synth`: a deterministic, MURA-shaped synthetic release with a learnable signal.

MURA is handed out only after a registration, so tests and the demo run on this generator. It
writes the exact MURA-v1.1 tree and the four official CSVs; `fault` injects one named data fault so
the validation gate can be shown to catch it.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mura_core.atomic_files import temporary_beside
from mura_core.contracts import BODY_PARTS
from mura_core.errors import ConfigError
from mura_core.parallel import map_in_chunks
from pipelines.data.layout import IMAGE_CSV, MURA_TRAIN_IMAGES, RELEASE_DIR, STUDY_CSV
from pipelines.data.synth_faults import FAULTS, apply_file_fault, apply_plan_fault
from pipelines.data.synth_images import render_radiograph
from pipelines.data.synth_shifts import SHIFTS, Shift, part_weights

__all__ = ["FAULTS", "SHIFTS", "generate_synthetic"]

ABNORMAL_RATE = 0.4  # MURA train: about 40 % of studies are abnormal
BOXES_FILE = f"{RELEASE_DIR}/synthetic_abnormality_boxes.csv"  # image_path,kind,x0,y0,x1,y1 (pixels)
SIGNAL_RATE = 0.85  # share of an abnormal study's images that show the abnormality
RGB_RATE = 0.1
PARALLEL_FROM = 400  # below this many images a process pool costs more than it saves


@dataclass
class StudyPlan:
    """One study to write: where it goes, its label and its images' render parameters."""

    split: str
    body_part: str
    patient: int
    number: int
    label: int
    images: list[dict] = field(default_factory=list)
    csv_label: int | None = None  # a fault may make the CSV disagree with the folder

    @property
    def folder(self) -> str:
        suffix = "positive" if self.label else "negative"
        return f"{RELEASE_DIR}/{self.split}/{self.body_part}/patient{self.patient:05d}/study{self.number}_{suffix}"


def _plan(seed: int, train_patients: int, valid_patients: int, shift: Shift | None = None) -> list[StudyPlan]:
    rng = np.random.default_rng(seed)
    train_images: dict[str, float] = dict(MURA_TRAIN_IMAGES)  # part_weights takes the counts as weights
    weights = np.array(part_weights(shift, train_images), dtype=float)
    weights /= weights.sum()
    abnormal_rate = shift.abnormal_rate if shift and shift.abnormal_rate is not None else ABNORMAL_RATE
    low, high = shift.size_range if shift else (100, 513)
    render = {"contrast": shift.contrast, "offset": shift.offset, "noise": shift.noise} if shift else {}
    studies: list[StudyPlan] = []
    image_seed = seed * 1_000_003
    for patient in range(1, train_patients + valid_patients + 1):
        split = "train" if patient <= train_patients else "valid"
        part = BODY_PARTS[int(rng.choice(len(BODY_PARTS), p=weights))]
        for number in range(1, int(rng.choice([1, 2, 3], p=[0.7, 0.2, 0.1])) + 1):
            study = StudyPlan(split, part, patient, number, int(rng.random() < abnormal_rate))
            kind = str(rng.choice(["metal", "fracture"]))
            for _ in range(int(rng.integers(1, 5))):
                image_seed += 1
                study.images.append(
                    {
                        "abnormal_kind": kind if study.label and rng.random() < SIGNAL_RATE else None,
                        "size": (int(rng.integers(low, high)), int(rng.integers(low, high))),
                        "rgb": bool(rng.random() < RGB_RATE),
                        "seed": image_seed,
                        **render,
                    }
                )
            studies.append(study)
    return studies


def _write_images(jobs: list[tuple[str, str, dict]]) -> list[tuple[int, int, int, int] | None]:
    boxes = []
    for path, body_part, params in jobs:
        image, box = render_radiograph(body_part, **params)
        Path(path).write_bytes(image)
        boxes.append(box)
    return boxes


def _write_tree(studies: list[StudyPlan], root: Path, workers: int | None) -> None:
    jobs, names = [], []
    for study in studies:
        (root / study.folder).mkdir(parents=True, exist_ok=True)
        for index, params in enumerate(study.images, start=1):
            jobs.append((str(root / study.folder / f"image{index}.png"), study.body_part, params))
            names.append(f"{study.folder}/image{index}.png")
    boxes = map_in_chunks(
        _write_images, jobs, workers, serial_below=PARALLEL_FROM, description="synth images"
    )
    # Where each abnormality was drawn, beside (not in) the MURA CSVs: ground truth for explanations.
    lines = [
        f"{name},{kind},{box[0]},{box[1]},{box[2]},{box[3]}"
        for name, (_, _, params), box in zip(names, jobs, boxes, strict=True)
        if box is not None
        for kind in [params["abnormal_kind"]]
    ]
    (root / BOXES_FILE).write_text("image_path,kind,x0,y0,x1,y1\n" + "".join(f"{line}\n" for line in lines))


def _write_csvs(studies: list[StudyPlan], root: Path) -> None:
    for split in ("train", "valid"):
        in_split = [study for study in studies if study.split == split]
        image_lines = [
            f"{study.folder}/image{i}.png" for study in in_split for i in range(1, len(study.images) + 1)
        ]
        study_lines = [
            f"{study.folder}/,{study.label if study.csv_label is None else study.csv_label}"
            for study in in_split
        ]
        (root / RELEASE_DIR / IMAGE_CSV[split]).write_text("\n".join(image_lines) + "\n")
        (root / RELEASE_DIR / STUDY_CSV[split]).write_text("\n".join(study_lines) + "\n")


def generate_synthetic(
    out_dir: Path,
    seed: int = 7,
    train_patients: int = 160,
    valid_patients: int = 40,
    fault: str | None = None,
    workers: int | None = None,
    shift: str | None = None,
) -> dict:
    """Write `<out_dir>/MURA-v1.1/` (tree + 4 CSVs), drawn with the named `shift` if any; return counts
    of what was written."""
    if fault is not None and fault not in FAULTS:
        raise ConfigError(f"unknown fault '{fault}'; choose one of: {', '.join(FAULTS)}")
    if shift is not None and shift not in SHIFTS:
        raise ConfigError(f"unknown shift '{shift}'; choose one of: {', '.join(SHIFTS)}")
    if train_patients < 2 or valid_patients < 1:
        raise ConfigError("need at least 2 train patients and 1 valid patient")
    out_dir = Path(out_dir)
    studies = _plan(seed, train_patients, valid_patients, SHIFTS[shift] if shift else None)
    if fault:
        apply_plan_fault(fault, studies)
    # Write next to the target and swap in at the end: a failed run leaves no half-written release.
    # (A folder of this writer's own: two runs writing the same release never share one.)
    staging = temporary_beside(out_dir / RELEASE_DIR)
    staging.mkdir(parents=True)
    try:
        _write_tree(studies, staging, workers)
        _write_csvs(studies, staging)
        if fault:
            apply_file_fault(fault, staging, studies)
        target = out_dir / RELEASE_DIR
        shutil.rmtree(target, ignore_errors=True)
        (staging / RELEASE_DIR).rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {**summarize_plan(studies, out_dir, seed, fault), "shift": shift}


def summarize_plan(studies: list[StudyPlan], out_dir: Path, seed: int, fault: str | None) -> dict:
    """Images and studies written per split and part (what the manifest should find)."""
    counts: dict[str, dict[str, dict[str, int]]] = {}
    for study in studies:
        per_part = counts.setdefault(study.split, {}).setdefault(study.body_part, {"images": 0, "studies": 0})
        per_part["images"] += len(study.images)
        per_part["studies"] += 1
    return {
        "root": str(Path(out_dir) / RELEASE_DIR),
        "seed": seed,
        "fault": fault,
        "images": sum(len(study.images) for study in studies),
        "studies": len(studies),
        "patients": len({(study.split, study.patient) for study in studies}),
        "counts": counts,
    }
