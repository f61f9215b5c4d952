"""The one pixel path: every way a radiograph can be stored gives back the PNG it was made from, and
every DICOM file the model cannot be asked about is refused with the reason."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from PIL import Image

from pipelines.dicom.pixels import DicomImageError, grey_pixels, model_image_bytes, read_dicom, study_type
from pipelines.dicom.synth import LABELS_FILE, radiograph, variants, write_studies

PATIENT = {"PatientName": "SYNTH^EDDA1234", "PatientID": "MRN12345678", "PatientBirthDate": "19700101"}
STUDY = {"StudyInstanceUID": "1.2.826.0.1.3680043.10.1137.1", "AccessionNumber": "ACC12345678"}


def _pixels() -> np.ndarray:
    pixels = np.random.default_rng(0).integers(0, 256, (64, 48)).astype(np.uint8)
    pixels[0, :2] = (0, 255)  # both ends of the range
    return pixels


def _round_trip(dataset):
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return read_dicom(buffer.getvalue())


@pytest.mark.parametrize(
    "variant", variants(), ids=lambda v: f"{v.photometric}-{v.syntax}-{v.voi}-{v.slope}x{v.intercept:+d}"
)
def test_every_stored_variant_gives_back_the_png_pixels_exactly(variant):
    """Rescale, window or VOI LUT, MONOCHROME1 inversion and each lossless syntax: not one grey level off
    (a prediction on the DICOM then equals the prediction on the PNG)."""
    pixels = _pixels()
    dataset = _round_trip(radiograph(pixels, variant, "WRIST", PATIENT, STUDY, "1.2.3", 1))
    assert dataset.file_meta.TransferSyntaxUID == variant.syntax
    assert np.array_equal(grey_pixels(dataset), pixels)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(model_image_bytes(dataset)))), pixels)


def test_synthetic_studies_keep_labels_beside_them_and_identifiers_inside(tmp_path):
    from pipelines.data.synth import generate_synthetic

    generate_synthetic(tmp_path / "data", seed=3, train_patients=2, valid_patients=3, workers=1)
    written = write_studies(tmp_path / "data", tmp_path / "dicom", limit=4)
    rows = list(csv.DictReader((tmp_path / "dicom" / LABELS_FILE).open()))
    assert written["studies"] == len(rows) == 6 and written["unknown_body_part"] == 2
    files = sorted((tmp_path / "dicom").glob("*/*.dcm"))
    assert sum(int(row["images"]) for row in rows) == len(files) == written["images"]
    labels_text = (tmp_path / "dicom" / LABELS_FILE).read_text()
    first = read_dicom(files[0])
    assert (
        first.PatientName and first.PatientID not in labels_text and str(first.PatientName) not in labels_text
    )
    refused = 0
    for row in rows:
        dataset = read_dicom(next((tmp_path / "dicom" / row["StudyInstanceUID"]).glob("*.dcm")))
        if row["study_type"]:
            assert study_type(dataset) == row["study_type"] and row["label"] in ("0", "1")
        else:
            with pytest.raises(DicomImageError, match="BodyPartExamined is not one of the study types"):
                study_type(dataset)
            refused += 1
    assert refused == 2


def test_what_the_model_cannot_be_asked_about_is_refused_with_the_reason(tmp_path):
    variant = variants()[0]
    good = radiograph(_pixels(), variant, "HAND", PATIENT, STUDY, "1.2.3", 1)
    buffer = io.BytesIO()
    good.save_as(buffer, enforce_file_format=True)
    half = tmp_path / "half.dcm"  # a half-written file: its pixels end early
    half.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(DicomImageError, match="half.dcm: the pixel data cannot be read .*truncated"):
        grey_pixels(read_dicom(half), "half.dcm")
    with pytest.raises(DicomImageError, match="missing \\(a truncated file\\?\\)"):
        grey_pixels(read_dicom(buffer.getvalue()[:200]))
    with pytest.raises(DicomImageError, match="not readable DICOM"):
        read_dicom(b"\x89PNG\r\n\x1a\n" + b"\0" * 200)

    colour = _round_trip(good)
    colour.PhotometricInterpretation = "RGB"
    with pytest.raises(DicomImageError, match="PhotometricInterpretation is not MONOCHROME1 or MONOCHROME2"):
        grey_pixels(colour)
    report = _round_trip(good)
    del report.PixelData
    with pytest.raises(DicomImageError, match="no pixel data"):
        grey_pixels(report)
    flat = _round_trip(good)
    flat.WindowWidth = "0"
    with pytest.raises(DicomImageError, match="Window Width must be >= 1"):
        grey_pixels(flat)
    unknown = _round_trip(good)
    del unknown.BodyPartExamined
    with pytest.raises(DicomImageError, match="BodyPartExamined is missing"):
        study_type(unknown)


MADE_UP_VALUE = "SMITH^JANE^NOT-A-PART"  # a value no message may quote


@pytest.mark.parametrize(
    ("changes", "rule"),
    [
        ({"BodyPartExamined": MADE_UP_VALUE * 1000}, "BodyPartExamined is not one of the study types"),
        ({"PhotometricInterpretation": MADE_UP_VALUE}, "PhotometricInterpretation is not MONOCHROME1"),
        ({"NumberOfFrames": "X" + MADE_UP_VALUE}, "NumberOfFrames cannot be read"),
        ({"WindowCenter": "NaN"}, "Window Center and Width must be finite"),
        ({"WindowWidth": "inf"}, "Window Center and Width must be finite"),
        ({"WindowWidth": "0", "VOILUTFunction": "SIGMOID"}, "Window Width must be > 0 for a SIGMOID"),
        (
            {"RescaleSlope": "1e308", "RescaleIntercept": "1e308"},
            "Rescale Slope and Intercept give values out of range",
        ),
    ],
)
def test_a_hostile_value_is_refused_by_its_rule_and_never_quoted(changes, rule, caplog, recwarn):
    """Absurd transforms were answered ("normal 0.009"); NumberOfFrames='X' raised a bare ValueError that
    stopped a whole batch; refusals quoted BodyPartExamined (1 MB in full) and PhotometricInterpretation."""
    from pydicom.datadict import dictionary_VR, tag_for_keyword
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import Tag

    dataset = _round_trip(radiograph(_pixels(), variants()[0], "HAND", PATIENT, STUDY, "1.2.3", 1))
    for keyword, value in changes.items():  # as a file holds them: raw bytes, converted when read
        tag = Tag(tag_for_keyword(keyword))
        raw = value.encode() + b" " * (len(value) % 2)
        dataset[tag] = RawDataElement(tag, dictionary_VR(tag), len(raw), raw, 0, True, True)
    with pytest.raises(DicomImageError, match=rule) as refused:
        study_type(dataset)
        grey_pixels(dataset)
    quoted = [str(refused.value), caplog.text, *(str(warning.message) for warning in recwarn)]
    assert not any("SMITH" in text for text in quoted)


def test_a_declared_size_over_the_limit_is_refused_before_decoding():
    """A 70 KB deflated 6000 x 6000 file took 1.4 GB to decode: the header is enough to refuse it."""
    dataset = _round_trip(radiograph(_pixels(), variants()[0], "HAND", PATIENT, STUDY, "1.2.3", 1))
    dataset.Rows = dataset.Columns = 6000  # the pixel data stays small: nothing may try to decode it
    with pytest.raises(DicomImageError, match="declare more than 25000000 pixels"):
        grey_pixels(dataset)
    with pytest.raises(DicomImageError, match="the pixel data cannot be read"):  # without the limit:
        grey_pixels(dataset, max_pixels=10**8)  # it tries to decode (and finds too few bytes here)


def test_an_empty_window_counts_as_none_and_files_without_a_study_uid_are_never_merged(tmp_path):
    """An empty Window Center (legal for CR) was refused as unreadable; two files without a
    StudyInstanceUID in different folders were one study when they had the same file name."""
    from pipelines.dicom.studies import load_studies

    variant = variants()[0]
    pixels = _pixels()
    dataset = _round_trip(radiograph(pixels, variant, "HAND", PATIENT, STUDY, "1.2.3", 1))
    dataset.WindowCenter, dataset.WindowWidth = "", ""
    shown = grey_pixels(dataset)  # the full range of the image instead
    assert shown.min() == 0 and shown.max() == 255
    for folder in ("a", "b"):
        anonymous = _round_trip(radiograph(pixels, variant, "HAND", PATIENT, STUDY, "1.2.3", 1))
        del anonymous.StudyInstanceUID
        (tmp_path / folder).mkdir()
        anonymous.save_as(tmp_path / folder / "1.dcm", enforce_file_format=True)
    studies, refused = load_studies(sorted(tmp_path.glob("*/1.dcm")))
    assert len(studies) == 2 and not refused


DECODE_UNDER_A_CAP = """
import sys
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import DeflatedExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid
from pipelines.dicom.pixels import DicomImageError, grey_pixels, limit_decode_memory, read_dicom

side = 12000  # 288 MB of zeros, a few hundred KB deflated; decoding it takes over 1 GiB
meta = FileMetaDataset()
meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = SecondaryCaptureImageStorage, generate_uid()
meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
bomb = Dataset()
bomb.file_meta = meta
bomb.SOPClassUID, bomb.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
bomb.Rows = bomb.Columns = side
bomb.SamplesPerPixel, bomb.PhotometricInterpretation = 1, "MONOCHROME2"
bomb.BitsAllocated, bomb.BitsStored, bomb.HighBit, bomb.PixelRepresentation = 16, 12, 11, 0
bomb.PixelData = np.zeros((side, side), np.uint16).tobytes()
bomb.save_as(sys.argv[1], enforce_file_format=True)
del bomb
limit_decode_memory(int(sys.argv[2]))
try:
    grey_pixels(read_dicom(__import__("pathlib").Path(sys.argv[1])), "bomb.dcm", max_pixels=10**9)
    print("decoded")
except DicomImageError as error:
    print(error)
"""


def test_a_decoder_past_the_memory_cap_refuses_the_file_and_the_process_lives(tmp_path):
    """Past the pixel limit's reach (here raised), the process's address-space cap turns a decode of
    gigabytes into the file's refusal (MemoryError), not the OOM killer ending the batch."""
    import subprocess
    import sys

    from mura_core.settings import REPO_ROOT

    done = subprocess.run(
        [sys.executable, "-c", DECODE_UNDER_A_CAP, str(tmp_path / "bomb.dcm"), str(2**30 + 2**29)],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "bomb.dcm: the pixel data cannot be read (MemoryError)"


def test_an_8_bit_image_without_a_window_is_shown_as_stored_and_a_stretch_is_said(caplog):
    """An 8-bit radiograph without a window was stretched from its darkest to its brightest pixel and
    got 0.94 where its PNG got 0.68: its stored values are the grey levels, as a PNG's are. A deeper
    image without a window is still stretched (there is nothing else to go by), and the log says so."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    pixels = np.linspace(60, 180, 64 * 48).reshape(64, 48).astype(np.uint8)
    dataset = Dataset()
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset.Rows, dataset.Columns, dataset.SamplesPerPixel = 64, 48, 1
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit, dataset.PixelRepresentation = 8, 8, 7, 0
    dataset.PixelData = pixels.tobytes()
    with caplog.at_level("WARNING"):
        assert np.array_equal(grey_pixels(dataset, "eight.dcm"), pixels)
    assert "stretched" not in caplog.text
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit = 16, 12, 11
    dataset.PixelData = (pixels.astype(np.uint16) * 16).tobytes()
    with caplog.at_level("WARNING"):
        shown = grey_pixels(dataset, "twelve.dcm")
    assert shown.min() == 0 and shown.max() == 255 and "twelve.dcm: no window" in caplog.text
