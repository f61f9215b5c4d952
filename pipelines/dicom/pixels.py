"""The one pixel path: a DICOM radiograph -> exactly the encoded 8-bit image the served model expects.

Every entry point that reads DICOM (`mura predict` on .dcm files, the PACS commands and DAG) calls
`model_image_bytes`, so the conversion can be wrong in one place only. The order is DICOM's grayscale
pipeline (PS3.3 C.11): stored values -> Modality LUT (Rescale Slope/Intercept or a Modality LUT
Sequence) -> VOI LUT (a VOI LUT Sequence, else the first Window Center/Width, else the full range of
the image) -> MONOCHROME1 inverted (its 0 is white) -> 8 bits, encoded as PNG (the models decode PNG
or JPEG inside their graph).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from pipelines.contracts import BODY_PARTS
from pipelines.errors import DataError

GREYSCALE = ("MONOCHROME1", "MONOCHROME2")
# BodyPartExamined (upper case) -> MURA study type. Anything else is refused, never guessed.
STUDY_TYPES = {part.removeprefix("XR_"): part for part in BODY_PARTS}


class DicomImageError(DataError):
    """A DICOM file the model cannot be asked about: the message names the file and the reason."""


def read_dicom(source: Path | bytes, name: str | None = None):
    """A pydicom Dataset from a file or its bytes; DicomImageError for anything that is not DICOM."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    label = name or (str(source) if isinstance(source, Path) else "DICOM data")
    try:
        handle = io.BytesIO(source) if isinstance(source, bytes) else source
        return pydicom.dcmread(handle)
    except (InvalidDicomError, EOFError, OSError, ValueError, KeyError) as error:
        raise DicomImageError(
            f"{label}: not a readable DICOM file ({type(error).__name__}: {error})"
        ) from None


def study_type(dataset, name: str = "DICOM image") -> str:
    """The MURA study type of a radiograph, from BodyPartExamined; a one-line refusal otherwise."""
    value = str(dataset.get("BodyPartExamined", "") or "").strip().upper()
    if value not in STUDY_TYPES:
        known = ", ".join(STUDY_TYPES)
        shown = repr(value) if value else "missing"
        raise DicomImageError(
            f"{name}: BodyPartExamined {shown} is not a study type the model knows ({known})"
        )
    return STUDY_TYPES[value]


def linear_window(values: np.ndarray, center: float, width: float, function: str = "LINEAR") -> np.ndarray:
    """VOI windowing to 0..255 (PS3.3 C.11.2.1.2: LINEAR, LINEAR_EXACT, SIGMOID)."""
    if function == "SIGMOID":
        return 255.0 / (1.0 + np.exp(-4.0 * (values - center) / width))
    if function == "LINEAR_EXACT":
        if width <= 0:
            raise ValueError(f"Window Width {width} must be > 0")
        return np.clip((values - center) / width + 0.5, 0.0, 1.0) * 255.0
    if width < 1:
        raise ValueError(f"Window Width {width} must be >= 1")
    scaled = ((values - (center - 0.5)) / (width - 1) + 0.5) * 255.0
    return np.clip(scaled, 0.0, 255.0)


def _first(value) -> float:
    """A multi-valued DS (several windows) counts by its first value."""
    from pydicom.multival import MultiValue

    return float(value[0]) if isinstance(value, MultiValue) else float(value)


def voi_lut(values: np.ndarray, item, little_endian: bool = True) -> np.ndarray:
    """A VOI LUT Sequence item applied to modality values, as 0..255 (PS3.3 C.11.2.1.1). Written here,
    not with pydicom's apply_voi: in pydicom 3.0 an 8-bit LUT of more than 256 entries indexes itself
    with uint8 and returns the wrong entries (4080 becomes 240)."""
    entries, first, bits = (int(value) for value in item.LUTDescriptor)
    entries = entries or 65536
    if bits not in (8, *range(10, 17)):
        raise ValueError(f"a VOI LUT of {bits} bits per entry")
    raw = item.LUTData
    if isinstance(raw, bytes):  # OW: 16-bit words, or (some writers) one byte per 8-bit entry
        width = "u1" if bits == 8 and len(raw) == entries else ("<u2" if little_endian else ">u2")
        table = np.frombuffer(raw, dtype=width)[:entries].astype(np.int64)
    else:
        table = np.asarray(raw, dtype=np.int64).reshape(-1)[:entries]
    if len(table) < entries:
        raise ValueError(f"the VOI LUT holds {len(table)} of its {entries} entries")
    index = np.clip(np.rint(values).astype(np.int64) - first, 0, entries - 1)
    return table[index].astype(np.float64) * (255.0 / (2**bits - 1))


def _voi(values: np.ndarray, dataset) -> np.ndarray:
    if "VOILUTSequence" in dataset and len(dataset.VOILUTSequence) > 0:
        meta = getattr(dataset, "file_meta", None)
        syntax = meta.get("TransferSyntaxUID") if meta is not None else None
        little = syntax is None or syntax != "1.2.840.10008.1.2.2"  # only Explicit VR Big Endian is big
        return voi_lut(values, dataset.VOILUTSequence[0], little)
    if dataset.get("WindowCenter") not in (None, "") and dataset.get("WindowWidth") not in (None, ""):
        function = str(dataset.get("VOILUTFunction", "LINEAR") or "LINEAR").upper()
        return linear_window(values, _first(dataset.WindowCenter), _first(dataset.WindowWidth), function)
    low, high = float(values.min()), float(values.max())
    if high == low:
        return np.zeros_like(values)
    return (values - low) / (high - low) * 255.0


def grey_pixels(dataset, name: str = "DICOM image") -> np.ndarray:
    """The radiograph as displayed: uint8 [H, W], 0 black, 255 white."""
    from pydicom.pixels import apply_modality_lut

    photometric = str(dataset.get("PhotometricInterpretation", "") or "")
    if photometric not in GREYSCALE:
        raise DicomImageError(
            f"{name}: PhotometricInterpretation {photometric or 'missing (a truncated file?)'}: only "
            "greyscale radiographs (MONOCHROME1, MONOCHROME2) are read"
        )
    if "PixelData" not in dataset:
        raise DicomImageError(f"{name}: no pixel data (a report, or a file truncated before its pixels)")
    if int(dataset.get("NumberOfFrames", 1) or 1) > 1:
        raise DicomImageError(f"{name}: {dataset.NumberOfFrames} frames; a radiograph has one")
    meta = getattr(dataset, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID", "unknown") if meta is not None else "unknown"
    try:
        stored = dataset.pixel_array
        values = apply_modality_lut(stored, dataset).astype(np.float64)
        shown = _voi(values, dataset)
    except (ValueError, RuntimeError, NotImplementedError, AttributeError, KeyError, TypeError) as error:
        syntax_name = getattr(syntax, "name", syntax)
        raise DicomImageError(f"{name}: pixel data cannot be read ({syntax_name}): {error}") from None
    if photometric == "MONOCHROME1":
        shown = 255.0 - shown
    return np.clip(np.rint(shown), 0, 255).astype(np.uint8)


def model_image_bytes(dataset, name: str = "DICOM image") -> bytes:
    """The encoded image (PNG, 8-bit grey) that the served model's `image_bytes` input expects."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(grey_pixels(dataset, name), mode="L").save(buffer, format="PNG")
    return buffer.getvalue()
