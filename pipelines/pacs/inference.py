"""A PACS study in, the champion's answer back into the same study, once per study and model version.

Used by `mura predict --pacs` and the DAG `mura_pacs_inference`. Nothing of the patient leaves this
module: results name the StudyInstanceUID only. The report (pipelines/pacs/report.py) is one DICOM
instance stored in one STOW-RS request, so a failure leaves nothing half-written in the PACS.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from mura_core.contracts import DEFAULT_MODEL
from pipelines.dicom import group_studies
from pipelines.pacs.report import (
    SERIES_PREFIX,
    overlay_captures,
    overlay_series_description,
    series_description,
    structured_report,
)

LOGGER = logging.getLogger(__name__)


def served_version(serving, model: str) -> int:
    """The version answering under `model` (its champion: the only one served under that name)."""
    available = [entry["version"] for entry in serving.model_status(model) if entry["state"] == "AVAILABLE"]
    if not available:
        from serving import ServingClientError

        raise ServingClientError(f"{model} has no AVAILABLE version: deploy a champion first", "UNAVAILABLE")
    return max(available)


# Computed and digital radiography (DX for presentation/processing, intra-oral too): what MURA holds.
RADIOGRAPH_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.1",
    "1.2.840.10008.5.1.4.1.1.1.1",
    "1.2.840.10008.5.1.4.1.1.1.1.1",
    "1.2.840.10008.5.1.4.1.1.1.3",
    "1.2.840.10008.5.1.4.1.1.1.3.1",
}


def is_radiograph(dataset) -> bool:
    """A radiograph of the study: not a report, a presentation state, a key object selection, a
    secondary capture, or one of the platform's own results."""
    return str(dataset.get("SOPClassUID", "")) in RADIOGRAPH_CLASSES and not str(
        dataset.get("SeriesDescription", "")
    ).startswith(SERIES_PREFIX)


def answer_study(
    pacs,
    serving,
    study_uid: str,
    model: str = DEFAULT_MODEL,
    write_back: bool = True,
    skip_reported: bool = False,
    overlays: bool = False,
) -> dict:
    """Retrieve the study, ask the served model, and (unless told not to, or done already for this
    model version) store the answer in the study as a DICOM SR, with `overlays` also one Grad-CAM++
    Secondary Capture per image. `status`: answered, already, refused. `skip_reported` (the DAG): a
    study holding what was asked for is not even retrieved."""
    present: list[str] = []
    if write_back:
        version = served_version(serving, model)
        present = pacs.series_descriptions(study_uid)
        if not _missing(present, model, version, overlays) and skip_reported:
            LOGGER.info("study %s: the report of %s v%s is there already", study_uid, model, version)
            return {"study": study_uid, "status": "already", "model": model, "version": version}
    datasets = [dataset for dataset in pacs.retrieve_study(study_uid) if is_radiograph(dataset)]
    studies, refused = group_studies([(f"{study_uid}/{d.SOPInstanceUID}", d) for d in datasets])
    if refused or not studies:
        reason = refused[0]["reason"] if refused else "no radiograph (CR or DX) in the study"
        LOGGER.info("study %s refused: %s", study_uid, reason)
        return {"study": study_uid, "status": "refused", "reason": reason}
    study = studies[0]
    answer = serving.predict_encoded_study(
        study.images, study.names, study.study_uid, study.study_type, model
    )
    version = int(answer["version"] if answer["version"] is not None else served_version(serving, model))
    result = {
        "study": study_uid,
        "status": "answered",
        "model": model,
        "version": version,
        "body_part": answer["body_part"],
        "label": answer["label"],
        "abnormal_probability": answer["abnormal_probability"],
        "threshold": answer["threshold"],
        "images": len(study.images),
    }
    if not write_back:
        return result
    missing = _missing(present, model, version, overlays)  # of the version that answered (a deploy may
    if not missing:  # have come between); asked again by a person: the answer, never a second report
        return {**result, "status": "already"}
    stored = _store_results(pacs, serving, study_uid, study, datasets, answer, model, version, missing)
    return {**result, **stored}


def _store_results(
    pacs,
    serving,
    study_uid: str,
    study,
    datasets: list,
    answer: dict,
    model: str,
    version: int,
    missing: list[str],
) -> dict[str, int | str]:
    """Store the `missing` result series of the answer in the study: how many instances were stored,
    and the report's SOPInstanceUID when one was."""
    results = []
    if series_description(model, version) in missing:
        results.append(structured_report(datasets, answer, model, version))
    if overlay_series_description(model, version) in missing:
        by_uid = {str(dataset.SOPInstanceUID): dataset for dataset in datasets}
        images = [by_uid[name.rsplit("/", 1)[1]] for name in study.names]
        results += overlay_captures(
            overlay_pixels(serving, study.images, images, answer, model, version), model, version
        )
    pacs.store(results)  # one STOW-RS request: all of it is stored, or none
    LOGGER.info(
        "study %s: %s (%.3f) by %s v%s, %d result instance(s) stored",
        study_uid,
        answer["label"],
        answer["abnormal_probability"],
        model,
        version,
        len(results),
    )
    stored: dict[str, int | str] = {"stored": len(results)}
    if series_description(model, version) in missing:
        stored["report"] = str(results[0].SOPInstanceUID)
    return stored


def _missing(present: list[str], model: str, version: int, overlays: bool) -> list[str]:
    """The result series of `model` v`version` the study lacks (the report; the overlays if asked)."""
    wanted = [series_description(model, version)]
    wanted += [overlay_series_description(model, version)] if overlays else []
    return [description for description in wanted if description not in present]


def overlay_pixels(
    serving, encoded: list[bytes], datasets: list, answer: dict, model: str, version: int
) -> list:
    """(image Dataset, RGB overlay) per image: Grad-CAM++ from the served model's explain signature,
    drawn as `mura predict --explain` draws it, with the study's answer in the title."""
    import io

    import numpy as np
    from PIL import Image

    from serving import overlay_png

    explained = serving.explain_images(encoded, model)
    pairs = []
    for number, (image, dataset, explanation) in enumerate(zip(encoded, datasets, explained, strict=True), 1):
        title = (
            f"image {number} of {len(encoded)}: study {answer['label']} (probability "
            f"{answer['abnormal_probability']:.3f}; this image {explanation['abnormal_probability']:.3f})\n"
            f"{model} version {version}; research use only, not for diagnosis"
        )
        png = overlay_png(image, explanation["heatmap"], title)
        pairs.append((dataset, np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))))
    return pairs


def new_studies(
    pacs, model: str, version: int, skip: frozenset[str] = frozenset(), overlays: bool = False
) -> list[str]:
    """The PACS' complete studies without a report of `model` v`version` (the DAG's work list), every
    page of them; `skip`: studies this version refused already (asked once, not every poll). A study
    the PACS does not yet hold as stable waits for the next poll."""
    waiting = [
        study.study_uid
        for study in pacs.studies()
        if study.study_uid not in skip and _missing(list(study.series), model, version, overlays)
    ]
    arriving = [uid for uid in waiting if pacs.is_stable(uid) is False]
    if arriving:  # answered on their first images, they would get a report about part of the study
        LOGGER.info(
            "%d studies are still arriving; the next poll takes them: %s", len(arriving), ", ".join(arriving)
        )
    return [uid for uid in waiting if uid not in arriving]


def refusals_file(home: Path, model: str, version: int) -> Path:
    """Studies a model version refused (UIDs and reasons; nothing of the patient), kept under MURA_HOME."""
    return Path(home) / "pacs_inference" / f"refused-{model}-v{version}.json"


def read_refusals(home: Path, model: str, version: int) -> dict[str, str]:
    path = refusals_file(home, model, version)
    return json.loads(path.read_text()) if path.is_file() else {}


def record_refusals(home: Path, model: str, version: int, refused: dict[str, str]) -> None:
    """Add refusals (written to a unique temporary file, then renamed: two runs never share one)."""
    from mura_core.atomic_files import replaced_atomically

    path = refusals_file(home, model, version)
    merged = {**read_refusals(home, model, version), **refused}
    with replaced_atomically(path) as partial:
        partial.write_text(json.dumps(merged, indent=1, sort_keys=True))
