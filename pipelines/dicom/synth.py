"""Synthetic DICOM studies made from a MURA-layout release: what a hospital's PACS would hold.

Each study of the release becomes a DICOM study (CR or DX radiographs, 12-bit stored pixels with a
rescale, a window or a VOI LUT, some MONOCHROME1, uncompressed, RLE, JPEG 2000 or JPEG-LS lossless),
with BodyPartExamined instead of a folder name and made-up patient names, IDs, birth dates and
accession numbers (so tests can search for them where they must never appear). The encoding is
exact: `pixels.grey_pixels` gives back the PNG's own 8-bit values, for every variant. The labels stay
in a side CSV keyed by StudyInstanceUID, as a site's study list would.
"""

from __future__ import annotations

import csv
import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mura_core.contracts import BODY_PARTS, DICOM_UID_ROOT

LABELS_FILE = "labels.csv"
LABEL_COLUMNS = ("StudyInstanceUID", "label", "study_type", "images", "source")
CR_STORAGE = "1.2.840.10008.5.1.4.1.1.1"
DX_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation
OTHER_BODY_PARTS = ("CHEST", "KNEE")  # studies the model must refuse, not guess
FIRST_NAMES = ("ALMA", "BORIS", "CLEO", "DARIO", "EDDA", "FINN", "GRETA", "HUGO")


@dataclass(frozen=True)
class Variant:
    """How one radiograph is stored: the parts of the pixel path it exercises."""

    photometric: str  # MONOCHROME1 (0 is white) or MONOCHROME2
    syntax: str  # transfer syntax UID
    voi: str  # "window" (Window Center/Width) or "lut" (a VOI LUT Sequence)
    slope: int  # Rescale Slope: 1 or 2
    intercept: int  # Rescale Intercept


def variants() -> list[Variant]:
    """Every combination the synthetic studies cycle through."""
    from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless, JPEGLSLossless, RLELossless

    syntaxes = (ExplicitVRLittleEndian, RLELossless, JPEG2000Lossless, JPEGLSLossless)
    # A VOI LUT's first mapped value is unsigned here (PixelRepresentation 0): its rescales stay >= 0.
    rescales = {"window": ((1, 0), (2, -1024)), "lut": ((1, 0), (2, 100))}
    return [
        Variant(photometric, str(syntax), voi, slope, intercept)
        for photometric, syntax, voi in itertools.product(("MONOCHROME2", "MONOCHROME1"), syntaxes, rescales)
        for slope, intercept in rescales[voi]
    ]


def stored_values(pixels: np.ndarray, variant: Variant, offset: int = 5) -> np.ndarray:
    """12-bit stored values whose modality LUT and VOI give back `pixels` exactly: each grey level q
    (255 - q for MONOCHROME1) spans 16 modality values, q = (x - intercept - offset') // 16."""
    levels = pixels.astype(np.int64)
    if variant.photometric == "MONOCHROME1":
        levels = 255 - levels
    step = 16 // variant.slope
    return (levels * step + offset).astype(np.uint16)


def _voi_tags(dataset, variant: Variant, offset: int) -> None:
    from pydicom.dataset import Dataset

    base = variant.intercept + variant.slope * offset  # modality value of grey level 0
    if variant.voi == "window":
        dataset.WindowCenter = f"{base + 2040.5:.1f}"  # (x - (c - 0.5)) / (w - 1) maps 16 q + base to q
        dataset.WindowWidth = "4081"
        dataset.VOILUTFunction = "LINEAR"
        return
    entries = 4096
    item = Dataset()
    item.LUTDescriptor = [entries, base, 8]
    item.add_new("LUTData", "US", [min(255, index // 16) for index in range(entries)])  # US: unambiguous
    item.LUTExplanation = "MURA synthetic"
    dataset.VOILUTSequence = [item]


def radiograph(
    pixels: np.ndarray,
    variant: Variant,
    body_part: str,
    patient: dict[str, str],
    study: dict[str, str],
    series_uid: str,
    instance: int,
):
    """One DICOM radiograph (a pydicom FileDataset, encoded in the variant's transfer syntax)."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

    offset = 5 if variant.slope == 1 else 3
    stored = stored_values(pixels, variant, offset)
    sop_class = UID(DX_STORAGE if instance % 2 else CR_STORAGE)
    sop_uid = generate_uid(
        DICOM_UID_ROOT, entropy_srcs=[study["StudyInstanceUID"], series_uid, str(instance)]
    )
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    # pydicom takes None (a dataset made in memory, read from no file) though its annotation omits it
    dataset = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)  # type: ignore[arg-type]
    dataset.SOPClassUID, dataset.SOPInstanceUID = sop_class, sop_uid
    dataset.Modality = "DX" if sop_class == DX_STORAGE else "CR"
    for key, value in {**patient, **study}.items():
        setattr(dataset, key, value)
    dataset.SeriesInstanceUID, dataset.SeriesNumber, dataset.InstanceNumber = series_uid, 1, instance
    dataset.BodyPartExamined = body_part
    dataset.ImageType = ["ORIGINAL", "PRIMARY"]
    dataset.SamplesPerPixel, dataset.PhotometricInterpretation = 1, variant.photometric
    dataset.Rows, dataset.Columns = stored.shape
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit, dataset.PixelRepresentation = 16, 12, 11, 0
    dataset.RescaleSlope, dataset.RescaleIntercept, dataset.RescaleType = (
        variant.slope,
        variant.intercept,
        "US",
    )
    _voi_tags(dataset, variant, offset)
    dataset.PixelData = stored.tobytes()
    if variant.syntax != ExplicitVRLittleEndian:
        dataset.compress(variant.syntax, generate_instance_uid=False)  # lossless: the same instance
    return dataset


def _identity(rng: np.random.Generator, number: int) -> dict[str, str]:
    year, month, day = rng.integers(1935, 2012), rng.integers(1, 13), rng.integers(1, 29)
    return {
        "PatientName": f"SYNTH^{FIRST_NAMES[number % len(FIRST_NAMES)]}{rng.integers(1000, 10000)}",
        "PatientID": f"MRN{rng.integers(10_000_000, 100_000_000)}",
        "PatientBirthDate": f"{year}{month:02d}{day:02d}",
        "PatientSex": "FM"[int(rng.integers(0, 2))],
    }


def _study(rng: np.random.Generator, source: str, seed: int) -> dict[str, str]:
    from pydicom.uid import generate_uid

    return {
        "StudyInstanceUID": generate_uid(DICOM_UID_ROOT, entropy_srcs=[source, str(seed)]),
        "AccessionNumber": f"ACC{rng.integers(10_000_000, 100_000_000)}",
        "StudyDate": f"2026{rng.integers(1, 13):02d}{rng.integers(1, 29):02d}",
        "StudyTime": f"{rng.integers(7, 19):02d}{rng.integers(0, 60):02d}00",
        "StudyDescription": "XR MUSCULOSKELETAL",
        "StudyID": str(rng.integers(1, 100_000)),
        "ReferringPhysicianName": "",
    }


def study_folders(data_root: Path, split: str) -> list[Path]:
    """The release's study folders of `split`, in a stable order."""
    release = Path(data_root) / "MURA-v1.1" / split
    return sorted(path for path in release.glob("XR_*/patient*/study*") if path.is_dir())


def write_studies(
    data_root: Path, out: Path, split: str = "valid", limit: int | None = None, seed: int = 7
) -> dict:
    """DICOM files `out/<StudyInstanceUID>/<n>.dcm` for the release's studies (plus a few of body parts
    the model does not know) and `out/labels.csv`; what was written."""
    from PIL import Image
    from pydicom.uid import generate_uid

    rng = np.random.default_rng(seed)
    folders = study_folders(data_root, split)[:limit]
    if not folders:
        raise FileNotFoundError(f"no studies under {Path(data_root) / 'MURA-v1.1' / split}")
    out.mkdir(parents=True, exist_ok=True)
    cycle = itertools.cycle(variants())
    patients: dict[str, dict[str, str]] = {}
    rows, written = [], 0
    others = [
        (folder, OTHER_BODY_PARTS[index % len(OTHER_BODY_PARTS)]) for index, folder in enumerate(folders[:2])
    ]
    for folder, body_part in [
        (folder, folder.parent.parent.name.removeprefix("XR_")) for folder in folders
    ] + others:
        patient_key = f"{folder.parent}:{body_part in OTHER_BODY_PARTS}"
        patient = patients.setdefault(patient_key, _identity(rng, len(patients)))
        study = _study(rng, f"{folder}:{body_part}", seed)
        series_uid = generate_uid(DICOM_UID_ROOT, entropy_srcs=[study["StudyInstanceUID"], "series"])
        images = sorted(path for path in folder.glob("*.png") if not path.name.startswith("."))
        target = out / study["StudyInstanceUID"]
        target.mkdir(exist_ok=True)
        for number, image in enumerate(images, start=1):
            pixels = np.asarray(Image.open(image).convert("L"))
            dataset = radiograph(pixels, next(cycle), body_part, patient, study, series_uid, number)
            dataset.save_as(target / f"{number}.dcm", enforce_file_format=True)
            written += 1
        known = f"XR_{body_part}" in BODY_PARTS
        rows.append(
            {
                "StudyInstanceUID": study["StudyInstanceUID"],
                "label": int(folder.name.endswith("_positive")) if known else "",
                "study_type": f"XR_{body_part}" if known else "",
                "images": len(images),
                "source": folder.relative_to(data_root).as_posix(),  # the synthetic study it was made from
            }
        )
    with (out / LABELS_FILE).open("w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=LABEL_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return {"studies": len(rows), "images": written, "unknown_body_part": len(others), "out": str(out)}
