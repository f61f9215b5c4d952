"""The model's answer as a DICOM Structured Report in the study it is about, where radiologists look.

One Comprehensive SR per study and model version: the finding (normal/abnormal), the calibrated study
probability, the threshold, the model's name and version, and the research-use statement. Its UIDs
are derived from (study, model, version), so storing it again changes nothing in the PACS, and its
series is found again by its description (`MURA AI (research use) <model> v<version>`). With overlays
asked for, one Secondary Capture per image (the Grad-CAM++ heatmap over the X-ray, with the answer in
its title) in a series of its own (`... v<version> Grad-CAM++`), UIDs derived the same way.
"""

from __future__ import annotations

from mura_core.contracts import DICOM_UID_ROOT

SERIES_PREFIX = "MURA AI (research use)"
SERIES_NUMBER = 9001  # far from the modality's own series numbers
OVERLAY_SERIES_NUMBER = 9002
OVERLAY_SUFFIX = "Grad-CAM++"
RESEARCH_USE = (
    "Research use only: produced by a research model, not a medical device; not for diagnosis or "
    "treatment decisions."
)
LOCAL_SCHEME = "99MURA"  # the coding scheme of concepts no public one has
TYPE2_COPIED = (
    "StudyDate",
    "StudyTime",
    "StudyID",
    "AccessionNumber",
    "ReferringPhysicianName",
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
)


def series_description(model: str, version: int) -> str:
    """What the report's series is called in the PACS (and how a second run finds it)."""
    return f"{SERIES_PREFIX} {model} v{version}"


def overlay_series_description(model: str, version: int) -> str:
    """The series of the per-image overlays (Secondary Capture) of that report."""
    return f"{series_description(model, version)} {OVERLAY_SUFFIX}"


def _fill_type2(datasets: list) -> None:
    """Type 2 attributes a result copies from its images: present, if empty, as DICOM allows."""
    for dataset in datasets:
        for keyword in TYPE2_COPIED:
            if keyword not in dataset:
                setattr(dataset, keyword, "")


def overlay_captures(overlays: list[tuple], model: str, version: int) -> list:
    """Secondary Capture images, one per (image Dataset, RGB overlay array height x width x 3, uint8),
    in the image's study; the overlay PNGs of `mura predict --explain` as DICOM."""
    import highdicom as hd
    import numpy as np
    from pydicom.uid import generate_uid

    _fill_type2([dataset for dataset, _ in overlays])
    captures = []
    for number, (dataset, rgb) in enumerate(overlays, start=1):
        seed = [str(dataset.StudyInstanceUID), model, str(version), OVERLAY_SUFFIX]
        capture = hd.sc.SCImage.from_ref_dataset(
            ref_dataset=dataset,
            pixel_array=np.ascontiguousarray(rgb, dtype=np.uint8),
            photometric_interpretation="RGB",
            bits_allocated=8,
            coordinate_system="PATIENT",
            series_instance_uid=generate_uid(DICOM_UID_ROOT, entropy_srcs=[*seed, "series"]),
            series_number=OVERLAY_SERIES_NUMBER,
            sop_instance_uid=generate_uid(DICOM_UID_ROOT, entropy_srcs=[*seed, str(dataset.SOPInstanceUID)]),
            instance_number=number,
            manufacturer="MURA MLOps platform",
            patient_orientation=("L", "F"),  # as displayed; a capture carries no geometry of its own
            series_description=overlay_series_description(model, version),
        )
        capture.ImageComments = RESEARCH_USE
        capture.BurnedInAnnotation = "YES"  # the title names the answer and the model in the pixels
        captures.append(capture)
    return captures


def structured_report(evidence: list, answer: dict, model: str, version: int):
    """A highdicom ComprehensiveSR about the study of `evidence` (its image Datasets), from a study
    answer of the serving client (`abnormal_probability`, `label`, `threshold`)."""
    import highdicom as hd
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    _fill_type2(evidence)
    study_uid = str(evidence[0].StudyInstanceUID)
    seed = [study_uid, model, str(version)]
    concept = hd.sr.CodedConcept
    finding = (
        concept("263654008", "SCT", "Abnormal")
        if answer["label"] == "abnormal"
        else concept("17621005", "SCT", "Normal")
    )
    no_units = concept("1", "UCUM", "no units")
    items = [
        hd.sr.CodeContentItem(codes.DCM.Finding, finding, relationship_type="CONTAINS"),
        hd.sr.NumContentItem(
            concept("abnormal-probability", LOCAL_SCHEME, "Calibrated probability of an abnormal study"),
            round(float(answer["abnormal_probability"]), 4),
            no_units,
            relationship_type="CONTAINS",
        ),
        hd.sr.NumContentItem(
            concept("decision-threshold", LOCAL_SCHEME, "Decision threshold"),
            round(float(answer["threshold"]), 4),
            no_units,
            relationship_type="CONTAINS",
        ),
        hd.sr.TextContentItem(
            concept("111001", "DCM", "Algorithm Name"), model, relationship_type="CONTAINS"
        ),
        hd.sr.TextContentItem(
            concept("111003", "DCM", "Algorithm Version"), str(version), relationship_type="CONTAINS"
        ),
        hd.sr.TextContentItem(
            concept("121106", "DCM", "Comment"), RESEARCH_USE, relationship_type="CONTAINS"
        ),
    ]
    root = hd.sr.ContainerContentItem(concept("126000", "DCM", "Imaging Measurement Report"))
    root.ContentSequence = hd.sr.ContentSequence(items)
    report = hd.sr.ComprehensiveSR(
        evidence=evidence,
        content=root,
        series_instance_uid=generate_uid(DICOM_UID_ROOT, entropy_srcs=[*seed, "series"]),
        series_number=SERIES_NUMBER,
        sop_instance_uid=generate_uid(DICOM_UID_ROOT, entropy_srcs=[*seed, "report"]),
        instance_number=1,
        manufacturer="MURA MLOps platform",
        is_complete=True,
        series_description=series_description(model, version),
    )
    return report
