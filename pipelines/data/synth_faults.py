"""Named data faults the synthetic generator can inject, one kind at a time.

Plan faults change what is written (paths, CSV labels, CSV lines); file faults damage the written
files afterwards. Each picks its victim deterministically (the first train study that fits).
"""

from __future__ import annotations

from pathlib import Path

from pipelines.data.layout import IMAGE_CSV, RELEASE_DIR

FAULTS = (
    "corrupt_png",
    "zero_byte",
    "missing_file",
    "unlisted_file",
    "patient_in_both_splits",
    "label_mismatch",
    "unknown_body_part",
    "duplicate_csv_row",
)
UNKNOWN_PART = "XR_KNEE"


def apply_plan_fault(fault: str, studies: list) -> None:
    """Change the study plan before anything is written."""
    train = [study for study in studies if study.split == "train"]
    if fault == "patient_in_both_splits":
        # A valid patient gets the number (and part) of a train patient: the same person in two splits.
        victim = next(study for study in studies if study.split == "valid")
        for study in studies:
            if study.split == "valid" and study.patient == victim.patient:
                study.patient, study.body_part = train[0].patient, train[0].body_part
                study.number += 10  # keep the folder distinct from the train patient's own studies
    elif fault == "label_mismatch":
        train[0].csv_label = 1 - train[0].label
    elif fault == "unknown_body_part":
        for study in studies:
            if study.split == "train" and study.patient == train[-1].patient:
                study.body_part = UNKNOWN_PART


def apply_file_fault(fault: str, root: Path, studies: list) -> None:
    """Damage written files or CSV lines under the staging `root`."""
    first = next(study for study in studies if study.split == "train")
    image = root / first.folder / "image1.png"
    if fault == "corrupt_png":
        data = image.read_bytes()
        image.write_bytes(data[: max(64, len(data) // 2)])  # header intact, pixel data cut
    elif fault == "zero_byte":
        image.write_bytes(b"")
    elif fault == "missing_file":
        image.unlink()
    elif fault == "unlisted_file":
        extra = root / first.folder / f"image{len(first.images) + 1}.png"
        extra.write_bytes(image.read_bytes())
    elif fault == "duplicate_csv_row":
        csv_path = root / RELEASE_DIR / IMAGE_CSV["train"]
        lines = csv_path.read_text().splitlines()
        csv_path.write_text("\n".join([lines[0], *lines]) + "\n")
