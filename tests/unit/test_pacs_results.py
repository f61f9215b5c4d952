"""What the platform writes into a hospital's PACS and when: the per-image overlays as Secondary
Captures of the study, and a work list that waits for studies still arriving."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest

from pipelines.dicom.synth import radiograph, variants
from pipelines.pacs.client import StudySummary
from pipelines.pacs.inference import new_studies
from pipelines.pacs.report import overlay_captures, overlay_series_description, series_description

PATIENT = {"PatientName": "SYNTH^OVERLAY77", "PatientID": "MRN77007700", "PatientBirthDate": "19610203"}
STUDY = {"StudyInstanceUID": "1.2.826.0.1.3680043.10.1137.77", "AccessionNumber": "ACC77007700"}


def test_overlays_are_secondary_captures_of_the_same_study_with_stable_uids():
    """One RGB Secondary Capture per image, in the image's study and patient (it stays in the PACS),
    in the overlay series, its UIDs the same on every run (a second store changes nothing)."""
    images = [
        radiograph(
            np.full((40, 30), 100 + number, np.uint8), variants()[0], "WRIST", PATIENT, STUDY, "1.2.3", number
        )
        for number in (1, 2)
    ]
    rgb = np.zeros((20, 16, 3), np.uint8)
    rgb[..., 0] = 255
    captures = overlay_captures([(image, rgb) for image in images], "mura_binary", 3)
    again = overlay_captures([(image, rgb) for image in images], "mura_binary", 3)
    assert [str(c.SOPInstanceUID) for c in captures] == [str(c.SOPInstanceUID) for c in again]
    assert len({str(c.SOPInstanceUID) for c in captures}) == 2
    assert len({str(c.SeriesInstanceUID) for c in captures}) == 1
    other_version = overlay_captures([(images[0], rgb)], "mura_binary", 4)[0]
    assert str(other_version.SOPInstanceUID) != str(captures[0].SOPInstanceUID)
    for capture in captures:
        buffer = io.BytesIO()
        capture.save_as(buffer, enforce_file_format=True)
        stored = pydicom.dcmread(io.BytesIO(buffer.getvalue()))
        assert stored.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture Image Storage
        assert (
            stored.StudyInstanceUID == STUDY["StudyInstanceUID"] and stored.PatientID == PATIENT["PatientID"]
        )
        assert stored.SeriesDescription == overlay_series_description("mura_binary", 3)
        assert stored.PhotometricInterpretation == "RGB"
        assert np.array_equal(stored.pixel_array, rgb)
        assert "Research use only" in stored.ImageComments


class _Pacs:
    """The two questions the work list asks of a PACS: which studies (with their series), and is one
    still arriving."""

    def __init__(self, series: dict[str, tuple[str, ...]], arriving: set[str], says_stable: bool = True):
        self.series, self.arriving, self.says_stable = series, arriving, says_stable

    def studies(self):
        return [
            StudySummary(uid, "20260101", "DX", 2, "WRIST", series) for uid, series in self.series.items()
        ]

    def is_stable(self, uid: str):
        return (uid not in self.arriving) if self.says_stable else None


def test_the_work_list_waits_for_arriving_studies_and_asks_for_missing_overlays():
    report, overlays = series_description("mura_binary", 2), overlay_series_description("mura_binary", 2)
    pacs = _Pacs(
        {
            "1.1": ("CR",),  # new, complete
            "1.2": ("CR",),  # new, still arriving: answered on its first images, its report would be wrong
            "1.3": ("CR", report),  # reported, no overlays
            "1.4": ("CR", report, overlays),
            "1.5": ("CR",),  # refused by this version before
        },
        arriving={"1.2"},
    )
    assert new_studies(pacs, "mura_binary", 2, frozenset({"1.5"})) == ["1.1"]
    assert new_studies(pacs, "mura_binary", 2, frozenset({"1.5"}), overlays=True) == ["1.1", "1.3"]
    assert new_studies(pacs, "mura_binary", 3) == ["1.1", "1.3", "1.4", "1.5"]  # a new champion: all again
    pacs.says_stable = False  # a PACS that cannot say (not Orthanc): every study is taken as it is
    assert new_studies(pacs, "mura_binary", 2) == ["1.1", "1.2", "1.5"]


class _Qido:
    """dicomweb-client's search answers as Orthanc gives them: one crafted study among good ones."""

    def search_for_studies(self, **_):
        def study(uid: str) -> dict:
            return {"0020000D": {"Value": [uid]}, "00080020": {"Value": ["20261201"]}}

        return [study("1.2.3.4"), study("1.2.3.X-9981.Name^Sec"), study("1.2.3.5")]

    def search_for_series(self, study_instance_uid: str, **_):
        if not study_instance_uid.replace(".", "").isascii():
            raise AssertionError("a UID that is not one must not reach dicomweb-client")
        return [{"00180015": {"Value": ["HAND"]}}]


def test_one_crafted_study_uid_does_not_hide_the_pacs_other_studies(caplog):
    """A StudyInstanceUID like `1.2.3.X-9981.Name^Sec` made the whole listing (and so the DAG's work
    list and `mura pacs studies`) fail on a dicomweb-client ValueError; it is skipped, unnamed."""
    from pipelines.pacs.client import PacsClient

    client = PacsClient.__new__(PacsClient)  # the DICOMweb transport apart, the real client
    client.url, client._client = "http://pacs.invalid/dicom-web", _Qido()
    found = client.studies()
    assert [study.study_uid for study in found] == ["1.2.3.5", "1.2.3.4"]
    assert "skipped: ValueError" in caplog.text and "Name^Sec" not in caplog.text


def test_any_failure_of_one_study_is_that_study_s_alone(monkeypatch, tmp_path, caplog):
    """NumberOfFrames='X' (a bare ValueError) and deep nesting (RecursionError) stopped the batch."""
    import pipelines.dicom.pixels
    import pipelines.pacs.client
    import pipelines.pacs.inference
    import serving.client
    from pipelines.flows import pacs as flow

    def answer_study(pacs, serving, uid, model, **_):
        if uid == "1.1":
            raise RecursionError("maximum recursion depth exceeded while parsing SMITH^JANE")
        return {"status": "answered"}

    recorded = {}
    monkeypatch.setenv("MURA_HOME", str(tmp_path))
    monkeypatch.setattr(pipelines.pacs.inference, "answer_study", answer_study)
    monkeypatch.setattr(pipelines.pacs.inference, "served_version", lambda serving, model: 3)
    monkeypatch.setattr(pipelines.pacs.inference, "record_refusals", lambda *args: recorded.update(args[3]))
    monkeypatch.setattr(pipelines.pacs.client, "PacsClient", lambda settings: object())
    monkeypatch.setattr(serving.client, "ServingClient", _NoServing)
    monkeypatch.setattr(pipelines.dicom.pixels, "limit_decode_memory", lambda: 0)  # not this test process's
    outcome = flow.pacs_answer_studies(["1.1", "1.2", "1.3"])
    assert outcome == {"answered": 2, "already": 0, "refused": 1, "studies": 3}
    assert recorded == {"1.1": "RecursionError while reading the study"}  # remembered: not asked again
    assert "SMITH" not in caplog.text


class _NoServing:
    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return False


def test_an_instance_nested_deeper_than_the_limit_never_reaches_the_pacs():
    """Orthanc 1.10 crashed on a 19 KB STOW-RS body of 300 nested sequences."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    from pipelines.pacs.client import MAX_NESTING, PacsClient, PacsError, sequence_depth

    def nested(depth: int) -> Dataset:
        top = inner = Dataset()
        top.StudyInstanceUID = "1.2.3"
        for _ in range(depth):
            item = Dataset()
            inner.ContentSequence = Sequence([item])
            inner = item
        return top

    assert sequence_depth(nested(MAX_NESTING)) == MAX_NESTING
    sent = []
    client = PacsClient.__new__(PacsClient)
    client.url, client._client = "http://pacs.invalid/dicom-web", None
    client._call = lambda doing, call: sent.append(doing)
    with pytest.raises(PacsError, match="nests sequences more than 16 deep"):
        client.store([nested(MAX_NESTING), nested(300)])
    assert sent == []


def test_a_folder_pushed_stores_what_is_dicom_names_what_is_not_and_one_refused_study_stops_nothing(tmp_path):
    """`mura pacs push`: a file that is DICOM in name only is skipped and named, a study the PACS
    refuses is named with the reason, the other studies are stored; a PACS that cannot be reached
    stops the push with its error."""
    from pipelines.pacs.client import PacsError, PacsRefusal
    from pipelines.pacs.store import push_folder

    other = {**STUDY, "StudyInstanceUID": "1.2.826.0.1.3680043.10.1137.78"}
    (tmp_path / "in").mkdir()
    for number, study in ((1, STUDY), (2, STUDY), (3, other)):
        image = radiograph(
            np.full((40, 30), 90, np.uint8), variants()[0], "WRIST", PATIENT, study, "1.2.3", number
        )
        image.save_as(tmp_path / "in" / f"image{number}.dcm")
    (tmp_path / "in" / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10")
    (tmp_path / "in" / "notes.txt").write_text("not DICOM at all: not even looked at")

    class Pacs:
        def __init__(self, refuse: str = "", down: bool = False):
            self.stored, self.refuse, self.down = [], refuse, down

        def store(self, datasets):
            uid = str(datasets[0].StudyInstanceUID)
            if self.down:
                raise PacsError("the PACS at http://pacs.invalid is not reachable")
            if uid == self.refuse:
                raise PacsRefusal("the PACS refused 1 of 1 instances (STOW-RS)")
            self.stored.append(uid)
            return len(datasets)

    pacs = Pacs(refuse=other["StudyInstanceUID"])
    pushed = push_folder(pacs, tmp_path / "in")
    assert pacs.stored == [STUDY["StudyInstanceUID"]]
    assert pushed == {
        "studies": 1,
        "instances": 2,
        "skipped": ["broken.dcm"],
        "refused": {other["StudyInstanceUID"]: "the PACS refused 1 of 1 instances (STOW-RS)"},
    }
    with pytest.raises(PacsError, match="not reachable"):
        push_folder(Pacs(down=True), tmp_path / "in")
    from mura_core.errors import DataError

    with pytest.raises(DataError, match="does not exist"):
        push_folder(Pacs(), tmp_path / "missing")
