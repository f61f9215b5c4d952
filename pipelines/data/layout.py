"""Names and path rules of the MURA v1.1 release on disk (docs/ARCHITECTURE.md, "Data on disk")."""

from __future__ import annotations

import re
from dataclasses import dataclass

RELEASE_DIR = "MURA-v1.1"
SPLITS = ("train", "valid")
# Images per part in the MURA v1.1 train split: the generator copies these proportions.
MURA_TRAIN_IMAGES = {
    "XR_ELBOW": 4931,
    "XR_FINGER": 5106,
    "XR_FOREARM": 1825,
    "XR_HAND": 5543,
    "XR_HUMERUS": 1272,
    "XR_SHOULDER": 8379,
    "XR_WRIST": 9752,
}
IMAGE_CSV = {"train": "train_image_paths.csv", "valid": "valid_image_paths.csv"}
STUDY_CSV = {"train": "train_labeled_studies.csv", "valid": "valid_labeled_studies.csv"}
MANIFEST_COLUMNS = (
    "image_path",
    "split",
    "body_part",
    "patient_id",
    "study_id",
    "label",
    "image_index",
    "width",
    "height",
    "mode",
    "file_bytes",
)

IMAGE_PATH_PATTERN = re.compile(
    r"^MURA-v1\.1/(?P<split>train|valid)/(?P<part>XR_[A-Z]+)/patient(?P<patient>\d{5})/"
    r"study(?P<study>\d+)_(?P<suffix>positive|negative)/image(?P<index>\d+)\.(?:png|jpe?g)$"
)
STUDY_PATH_PATTERN = re.compile(
    r"^MURA-v1\.1/(?P<split>train|valid)/(?P<part>XR_[A-Z]+)/patient(?P<patient>\d{5})/"
    r"study(?P<study>\d+)_(?P<suffix>positive|negative)/$"
)


@dataclass(frozen=True)
class ImagePath:
    """The parts of one image path such as `MURA-v1.1/train/XR_HAND/patient00001/study1_positive/image1.png`."""

    path: str
    split: str
    body_part: str
    patient_id: str
    study_number: int
    folder_label: int
    image_index: int

    @property
    def study_id(self) -> str:
        return f"{self.body_part}/patient{self.patient_id}/study{self.study_number}"

    @property
    def study_path(self) -> str:
        return self.path.rsplit("/", 1)[0] + "/"


def parse_image_path(path: str) -> ImagePath | None:
    """Split a release-relative image path into its parts; None when it does not follow the pattern."""
    match = IMAGE_PATH_PATTERN.match(path)
    if match is None:
        return None
    return ImagePath(
        path=path,
        split=match["split"],
        body_part=match["part"],
        patient_id=match["patient"],
        study_number=int(match["study"]),
        folder_label=1 if match["suffix"] == "positive" else 0,
        image_index=int(match["index"]),
    )
