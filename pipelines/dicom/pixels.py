"""The one pixel path: a DICOM radiograph -> exactly the encoded 8-bit image the served model expects.

Every entry point that reads DICOM (`mura predict` on .dcm files, the PACS commands and DAG) calls
`model_image_bytes`, so the conversion can be wrong in one place only. The order is DICOM's grayscale
pipeline (PS3.3 C.11): stored values -> Modality LUT (Rescale Slope/Intercept or a Modality LUT
Sequence) -> VOI LUT (a VOI LUT Sequence, else the first Window Center/Width, else the full range of
the image) -> MONOCHROME1 inverted (its 0 is white) -> 8 bits, encoded as PNG (the models decode PNG
or JPEG inside their graph).

A file is hostile until read: its declared size is checked against a pixel limit before anything is
decoded, a transform that cannot give a picture (a NaN or infinite window, a sigmoid of width 0, a
rescale that overflows) is refused, and no message, log line or stored refusal carries a value from the
file: each names the element and the rule it broke (pydicom's own warnings, which quote values, are
silenced while reading).
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from mura_core.contracts import BODY_PARTS
from mura_core.errors import DataError

LOGGER = logging.getLogger(__name__)
GREYSCALE = ("MONOCHROME1", "MONOCHROME2")
# BodyPartExamined (upper case) -> MURA study type. Anything else is refused, never guessed.
STUDY_TYPES = {part.removeprefix("XR_"): part for part in BODY_PARTS}


class DicomImageError(DataError):
    """A DICOM file the model cannot be asked about: the message names the file, the element and the
    rule, never a value read from the file."""


class TransformError(ValueError):
    """A pixel transform this module refuses; its message names the rule and no value."""


@contextlib.contextmanager
def reading(name: str, what: str) -> Iterator[None]:
    """Read part of a file: pydicom's warnings (they quote values) silenced, and any failure, whatever
    its kind (a malformed value, nesting too deep, a decoder's error), a DicomImageError naming the
    kind only."""
    quiet = logging.getLogger("pydicom")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    except DicomImageError:
        raise
    except TransformError as error:
        raise DicomImageError(f"{name}: {error}") from None
    except (Exception, RecursionError) as error:  # noqa: BLE001 - the file's failure is the file's alone
        kind = type(error).__name__
        hint = ": a truncated or malformed file?" if isinstance(error, (ValueError, EOFError)) else ""
        raise DicomImageError(f"{name}: {what} cannot be read ({kind}{hint})") from None
    finally:
        quiet.setLevel(level)


def read_dicom(source: Path | bytes, name: str | None = None):
    """A pydicom Dataset from a file or its bytes; DicomImageError for anything that is not DICOM."""
    import pydicom

    label = name or (str(source) if isinstance(source, Path) else "DICOM data")
    with reading(label, "the file is not readable DICOM"):
        handle = io.BytesIO(source) if isinstance(source, bytes) else source
        return pydicom.dcmread(handle)


def study_type(dataset, name: str = "DICOM image") -> str:
    """The MURA study type of a radiograph, from BodyPartExamined; a one-line refusal otherwise."""
    with reading(name, "BodyPartExamined"):
        value = str(dataset.get("BodyPartExamined", "") or "").strip().upper()
    if value not in STUDY_TYPES:
        known = ", ".join(STUDY_TYPES)
        raise DicomImageError(
            f"{name}: BodyPartExamined is {'not' if value else 'missing, not'} one of the study types "
            f"the model knows ({known})"
        )
    return STUDY_TYPES[value]


def linear_window(values: np.ndarray, center: float, width: float, function: str = "LINEAR") -> np.ndarray:
    """VOI windowing to 0..255 (PS3.3 C.11.2.1.2: LINEAR, LINEAR_EXACT, SIGMOID)."""
    if not (np.isfinite(center) and np.isfinite(width)):
        raise TransformError("Window Center and Width must be finite numbers")
    if function == "SIGMOID":
        if width <= 0:
            raise TransformError("Window Width must be > 0 for a SIGMOID VOI LUT function")
        with np.errstate(over="ignore"):  # exp overflowing to inf is 0 of the sigmoid: the right limit
            return 255.0 / (1.0 + np.exp(-4.0 * (values - center) / width))
    if function == "LINEAR_EXACT":
        if width <= 0:
            raise TransformError("Window Width must be > 0 for LINEAR_EXACT")
        return np.clip((values - center) / width + 0.5, 0.0, 1.0) * 255.0
    if width < 1:
        raise TransformError("Window Width must be >= 1 for LINEAR")
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
        raise TransformError("a VOI LUT's bits per entry must be 8 or 10 to 16")
    raw = item.LUTData
    if isinstance(raw, bytes):  # OW: 16-bit words, or (some writers) one byte per 8-bit entry
        width = "u1" if bits == 8 and len(raw) == entries else ("<u2" if little_endian else ">u2")
        table = np.frombuffer(raw, dtype=width)[:entries].astype(np.int64)
    else:
        table = np.asarray(raw, dtype=np.int64).reshape(-1)[:entries]
    if len(table) < entries:
        raise TransformError("the VOI LUT holds fewer entries than its descriptor declares")
    index = np.clip(np.rint(values).astype(np.int64) - first, 0, entries - 1)
    return table[index].astype(np.float64) * (255.0 / (2**bits - 1))


def _voi(values: np.ndarray, dataset, name: str = "DICOM image") -> np.ndarray:
    if "VOILUTSequence" in dataset and len(dataset.VOILUTSequence) > 0:
        meta = getattr(dataset, "file_meta", None)
        syntax = meta.get("TransferSyntaxUID") if meta is not None else None
        little = syntax is None or syntax != "1.2.840.10008.1.2.2"  # only Explicit VR Big Endian is big
        return voi_lut(values, dataset.VOILUTSequence[0], little)
    if dataset.get("WindowCenter") not in (None, "") and dataset.get("WindowWidth") not in (None, ""):
        function = str(dataset.get("VOILUTFunction", "LINEAR") or "LINEAR").upper()
        return linear_window(values, _first(dataset.WindowCenter), _first(dataset.WindowWidth), function)
    low, high = float(values.min()), float(values.max())
    with reading(name, "BitsStored"):
        bits = int(dataset.get("BitsStored", 16) or 16)
    if bits <= 8 and low >= 0 and high <= 255:
        # No window on an 8-bit image: its values are the grey levels shown, as a PNG's are. Stretching
        # them from darkest to brightest changed the answer (0.94 where the image's PNG got 0.68).
        return values
    LOGGER.warning(
        "%s: no window or VOI LUT in the header: shown stretched from its darkest to its brightest pixel, "
        "which may not be how the site displays it",
        name,
    )
    if high == low:
        return np.zeros_like(values)
    return (values - low) / (high - low) * 255.0


def declared_pixels(dataset, name: str = "DICOM image") -> int:
    """Rows x Columns x frames x samples as the header declares them (what a decoder would allocate)."""
    sizes = []
    for keyword, default in (("Rows", 0), ("Columns", 0), ("NumberOfFrames", 1), ("SamplesPerPixel", 1)):
        with reading(name, keyword):
            sizes.append(int(dataset.get(keyword, default) or default))
    if min(sizes) < 1:
        raise DicomImageError(f"{name}: Rows, Columns, NumberOfFrames and SamplesPerPixel must be >= 1")
    return int(np.prod(sizes, dtype=np.int64))


def grey_pixels(dataset, name: str = "DICOM image", max_pixels: int | None = None) -> np.ndarray:
    """The radiograph as displayed: uint8 [H, W], 0 black, 255 white. `max_pixels` (default params.yaml
    pacs.max_image_pixels): a larger declared image is refused before anything is decoded."""
    from pydicom.pixels import apply_modality_lut

    with reading(name, "PhotometricInterpretation"):
        photometric = str(dataset.get("PhotometricInterpretation", "") or "")
        has_pixels = "PixelData" in dataset
    if photometric not in GREYSCALE:
        raise DicomImageError(
            f"{name}: PhotometricInterpretation is {'not' if photometric else 'missing (a truncated file?), not'} "
            "MONOCHROME1 or MONOCHROME2: only greyscale radiographs are read"
        )
    if not has_pixels:
        raise DicomImageError(f"{name}: no pixel data (a report, or a file truncated before its pixels)")
    declared = declared_pixels(dataset, name)
    with reading(name, "NumberOfFrames"):
        frames = int(dataset.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise DicomImageError(f"{name}: NumberOfFrames is above 1; a radiograph has one frame")
    limit = max_pixels if max_pixels is not None else _max_pixels()
    if declared > limit:
        raise DicomImageError(
            f"{name}: Rows x Columns declare more than {limit} pixels (params.yaml pacs.max_image_pixels); "
            "not decoded"
        )
    with reading(name, "the pixel data"):
        stored = dataset.pixel_array
        with np.errstate(over="ignore", invalid="ignore"):  # checked below: a refusal, not a warning
            values = apply_modality_lut(stored, dataset).astype(np.float64)
        if not np.isfinite(values).all():
            raise DicomImageError(f"{name}: Rescale Slope and Intercept give values out of range")
        shown = _voi(values, dataset, name)
        if not np.isfinite(shown).all():
            raise DicomImageError(f"{name}: the VOI transform gives values out of range")
    if photometric == "MONOCHROME1":
        shown = 255.0 - shown
    return np.clip(np.rint(shown), 0, 255).astype(np.uint8)


def limit_decode_memory(limit_bytes: int | None = None) -> int:
    """Cap this process's address space (RLIMIT_AS) at params.yaml pacs.max_decode_memory_bytes, or
    lower where a cap is set already; the cap in force. Past it an allocation raises MemoryError, which
    the one pixel path turns into the file's refusal, where the OOM killer would have ended the whole
    batch. The pixel limit refuses what a header declares; this bounds a decoder that believes the
    compressed stream instead. For processes that decode and ask the served model (the PACS tasks,
    `mura predict` on DICOM), never one that loads a model itself."""
    import resource

    if limit_bytes is None:
        from mura_core.config import load_config

        limit_bytes = load_config().pacs.max_decode_memory_bytes
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit_bytes = min(limit_bytes, hard)
    if soft == resource.RLIM_INFINITY or soft > limit_bytes:
        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, hard))
        return limit_bytes
    return soft


def _max_pixels() -> int:
    from mura_core.config import load_config

    return load_config().pacs.max_image_pixels


def model_image_bytes(dataset, name: str = "DICOM image") -> bytes:
    """The encoded image (PNG, 8-bit grey) that the served model's `image_bytes` input expects."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(grey_pixels(dataset, name), mode="L").save(buffer, format="PNG")
    return buffer.getvalue()
