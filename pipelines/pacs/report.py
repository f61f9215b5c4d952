"""The model's answer as a DICOM Structured Report in the study it is about, where radiologists look.

One Comprehensive SR per study and model version: the finding (normal/abnormal), the calibrated study
probability, the threshold, the model's name and version, and the research-use statement. Its UIDs
are derived from (study, model, version), so storing it again changes nothing in the PACS, and its
series is found again by its description (`MURA AI (research use) <model> v<version>`).
"""

from __future__ import annotations

from pipelines.contracts import DICOM_UID_ROOT

SERIES_PREFIX = "MURA AI (research use)"
SERIES_NUMBER = 9001  # far from the modality's own series numbers
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


def structured_report(evidence: list, answer: dict, model: str, version: int):
    """A highdicom ComprehensiveSR about the study of `evidence` (its image Datasets), from a study
    answer of the serving client (`abnormal_probability`, `label`, `threshold`)."""
    import highdicom as hd
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    for dataset in evidence:  # Type 2 attributes the SR copies: present, if empty, as DICOM allows
        for keyword in TYPE2_COPIED:
            if keyword not in dataset:
                setattr(dataset, keyword, "")
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
