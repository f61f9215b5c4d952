"""`mura external import` from a folder: a site's DICOM studies become a de-identified MURA-layout
release, each refusal named with its reason, the key to the pseudonyms kept private, and a release
that fails the data gate is never evaluated."""

from __future__ import annotations

import csv
import json
import re
import stat
from pathlib import Path

import pytest

from pipelines.dicom.pixels import read_dicom
from tests.support import dicom_identifiers


@pytest.fixture
def site_dicom(synthetic_root, tmp_path) -> Path:
    """Six valid studies and two of unknown body parts as a site's DICOM folder, labels beside them."""
    from pipelines.dicom.synth import write_studies

    out = tmp_path / "site-dicom"
    write_studies(synthetic_root, out, "valid", limit=6, seed=3)
    return out


@pytest.fixture
def site_env(mura_home, tmp_path, monkeypatch) -> Path:
    external = tmp_path / "external"
    monkeypatch.setenv("MURA_EXTERNAL_DIR", str(external))
    return external


def _labels(folder: Path) -> list[dict]:
    return list(csv.DictReader((folder / "labels.csv").open()))


def _study_files(folder: Path, uid: str) -> list[Path]:
    return sorted((folder / uid).glob("*.dcm"))


def test_a_folder_import_writes_a_deidentified_release_and_names_each_refusal(
    site_dicom, site_env, mura_home
):
    from pipelines.data.release import read_study_csv, release_dir
    from pipelines.external.importer import import_site
    from pipelines.external.sites import IMPORT_REPORT

    rows = [row for row in _labels(site_dicom) if row["label"] != ""]
    burned, unlabelled, broken = (
        rows[0]["StudyInstanceUID"],
        rows[1]["StudyInstanceUID"],
        rows[2]["StudyInstanceUID"],
    )
    first = _study_files(site_dicom, burned)[0]
    dataset = read_dicom(first)
    dataset.BurnedInAnnotation = "YES"
    dataset.save_as(first)
    broken_file = _study_files(site_dicom, broken)[-1]
    dataset = read_dicom(broken_file)
    dataset.PhotometricInterpretation = "RGB"  # pixels the pixel path cannot read as a radiograph
    dataset.save_as(broken_file)
    (site_dicom / "notes.dcm").write_bytes(b"not DICOM at all")
    labels = site_dicom / "labels-given.csv"
    with labels.open("w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=["StudyInstanceUID", "label", "study_type"])
        writer.writeheader()
        for row in _labels(site_dicom):
            if row["StudyInstanceUID"] != unlabelled:
                writer.writerow({key: row[key] for key in ("StudyInstanceUID", "label", "study_type")})
        writer.writerow({"StudyInstanceUID": "1.2.3.4.5.6.7.8.9", "label": "1", "study_type": ""})

    result = import_site("st-olav", labels, folder=site_dicom, push=False)

    reasons = sorted(item["reason"] for item in result.refused)
    assert len(reasons) == 5, reasons  # 2 unknown body parts, burned-in, no label, unreadable pixels
    assert sum("is not one of the study types the model knows" in reason for reason in reasons) == 2
    assert any(reason.startswith("image 1: BurnedInAnnotation YES") for reason in reasons)
    assert any(reason.startswith("missing label: the study is not in the labels file") for reason in reasons)
    assert any("PhotometricInterpretation is not MONOCHROME1 or MONOCHROME2" in reason for reason in reasons)
    assert all(re.fullmatch(r"refused-\d{4}", item["study"]) for item in result.refused)
    assert result.labelled_not_found == [9] and result.unreadable_files == 1  # the made-up UID's line
    assert result.studies == 3

    root = site_env / "st-olav"
    release_dir(root)  # the four CSVs and the tree: a MURA release
    studies = read_study_csv(root / "MURA-v1.1" / "valid_labeled_studies.csv")
    by_source = {row["StudyInstanceUID"]: row for row in _labels(site_dicom)}
    pseudonyms = json.loads((mura_home / "secrets" / "pseudonyms-st-olav.json").read_text())
    assert stat.S_IMODE((mura_home / "secrets" / "pseudonyms-st-olav.json").stat().st_mode) == 0o600
    for uid, (patient, number) in pseudonyms["studies"].items():
        source = by_source[uid]
        suffix = "positive" if source["label"] == "1" else "negative"
        path = f"MURA-v1.1/valid/{source['study_type']}/patient{patient:05d}/study{number}_{suffix}/"
        assert (path, int(source["label"])) in studies
        assert len(list((root / path).glob("image*.png"))) == int(source["images"])
    report = json.loads((root / IMPORT_REPORT).read_text())
    assert report["refused"] == result.refused and "PS3.15" in report["method"]

    # Nothing of a patient in the release: not in a file, not in a path.
    identifiers = dicom_identifiers(site_dicom)
    leaks = [
        str(path)
        for path in root.rglob("*")
        if any(value in str(path) for value in identifiers)
        or (path.is_file() and any(value.encode() in path.read_bytes() for value in identifiers))
    ]
    assert len(identifiers) >= 8 and not leaks, leaks

    # Imported again with one more study labelled: the earlier pseudonyms stay.
    with labels.open("a", newline="") as stream:
        row = by_source[unlabelled]
        stream.write(f"{unlabelled},{row['label']},{row['study_type']}\n")
    again = import_site("st-olav", labels, folder=site_dicom, push=False)
    kept = json.loads((mura_home / "secrets" / "pseudonyms-st-olav.json").read_text())
    assert again.studies == 4 and all(
        kept["studies"][uid] == spot for uid, spot in pseudonyms["studies"].items()
    )


def test_a_site_that_fails_the_data_gate_is_not_evaluated(site_dicom, site_env, mura_home):
    """Eight studies make fewer images than params.yaml external.min_images: the gate fails, the import
    says so, and validation refuses before any model is asked."""
    from mura_core.errors import DataValidationError
    from pipelines.external.importer import import_site
    from pipelines.external.sites import site
    from pipelines.external.validate import gated_release

    result = import_site("small", site_dicom / "labels.csv", folder=site_dicom, push=False)
    assert not result.gate["success"] and result.gate["failed_rules"] == ["row_count"]
    with pytest.raises(DataValidationError, match="failed the data gate, so it is not evaluated"):
        gated_release(site("small"))


def test_an_identifier_left_in_a_text_element_refuses_the_image(site_dicom):
    """dicognito keeps ImageComments: an ID typed there by a technician must not reach the release."""
    from pipelines.dicom.pixels import DicomImageError
    from pipelines.external.deidentify import Deidentifier

    dataset = read_dicom(next(site_dicom.glob("*/*.dcm")))
    dataset.ImageComments = f"prior study of {dataset.PatientID}"
    with pytest.raises(DicomImageError, match="still in ImageComments"):
        Deidentifier()(dataset, "image 1")
    clean = read_dicom(next(site_dicom.glob("*/*.dcm")))
    original = str(clean.PatientName)
    Deidentifier()(clean, "image 1")
    assert clean.PatientIdentityRemoved == "YES" and str(clean.PatientName) != original
    assert clean.DeidentificationMethodCodeSequence[0].CodeValue == "113100"


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom warns about the malformed date we write
def test_a_malformed_date_refuses_the_image_without_quoting_it(site_dicom):
    """dicognito parses every date; a birth date written 1980-05-12 made it raise with the value in the
    message, which reached the CLI's error line and log, and stopped the whole import."""
    from pipelines.dicom.pixels import DicomImageError
    from pipelines.external.deidentify import Deidentifier

    dataset = read_dicom(next(site_dicom.glob("*/*.dcm")))
    dataset.PatientBirthDate = "1980-05-12"
    with pytest.raises(DicomImageError) as raised:
        Deidentifier()(dataset, "image 1")
    assert "de-identification failed" in str(raised.value) and "1980" not in str(raised.value)


def test_a_study_the_pacs_does_not_hold_is_reported_and_any_other_pacs_error_stops_the_import():
    from pipelines.external.sources import pacs_studies
    from pipelines.pacs.client import PacsError, PacsNotFound

    class Pacs:
        def retrieve_study(self, uid):
            if uid == "missing":
                raise PacsNotFound("the PACS found nothing")
            if uid == "broken":
                raise PacsError("the PACS answered HTTP 500")
            return ["dataset"]

    assert list(pacs_studies(Pacs(), ["here", "missing"])) == [("here", ["dataset"]), ("missing", None)]
    with pytest.raises(PacsError, match="HTTP 500"):
        list(pacs_studies(Pacs(), ["here", "broken"]))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("StudyInstanceUID,diagnosis\n1.2.3,1\n", "no column label"),
        ("StudyInstanceUID,label\n1.2.3,1\n1.2.3,0\n", "two labels"),
        ("StudyInstanceUID,label\n", "no labelled study"),
    ],
)
def test_a_malformed_labels_file_is_refused_with_the_reason(tmp_path, text, message):
    from mura_core.errors import DataError
    from pipelines.external.sources import read_labels

    path = tmp_path / "labels.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        read_labels(path)


@pytest.mark.parametrize("name", ["../data", "St Olav", "", "a" * 49, "-x", "st-olav\n"])
def test_a_site_name_that_is_not_a_plain_slug_is_refused(name):
    from mura_core.errors import ConfigError
    from pipelines.external.sites import check_site

    with pytest.raises(ConfigError, match="lower-case letters"):
        check_site(name)
