"""`mura external import`: a site's labelled DICOM studies -> a de-identified MURA-layout release under
`external/<site>/`, checked by the data gate and versioned with DVC (`external/<site>.dvc`).

Every radiograph is de-identified (pipelines/external/deidentify.py) before its pixels go through the
one pixel path (pipelines/dicom/pixels.py) into a PNG, which holds pixels only. The release names a
study `patient00001/study1`; the key back to the site's identifiers is the pseudonym map, which stays
at the site. Refusals (unknown body part, unreadable pixels, burned-in annotation, missing label) are
listed in the release's import_report.json by pseudonym and reason, never by a value of the file.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mura_core.atomic_files import temporary_beside
from mura_core.errors import DataError
from pipelines.data import IMAGE_CSV, RELEASE_DIR, STUDY_CSV
from pipelines.dicom import DicomImageError
from pipelines.external.pseudonyms import Pseudonyms
from pipelines.external.sites import EXTERNAL_DIR, IMPORT_REPORT, Site
from pipelines.external.sources import Label

LOGGER = logging.getLogger(__name__)


@dataclass
class ImportResult:
    """What an import did: counts, refusals by pseudonym, the data version and the gate's verdict."""

    site: str
    source: str  # "pacs" or "folder"
    release: str = ""  # the folder holding its MURA-v1.1/
    studies: int = 0
    images: int = 0
    refused: list[dict] = field(default_factory=list)  # {"study": "refused-0001", "reason": ...}
    labelled_not_found: list[int] = field(default_factory=list)  # lines of the labels file
    unreadable_files: int = 0
    method: str = ""  # the de-identification, as written into every image's DeidentificationMethod
    data_md5: str = ""
    dvc_file: str = ""
    gate: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def _label_refusal(label: Label | None, found_type: str) -> str | None:
    if label is None:
        return "missing label: the study is not in the labels file"
    # The site's own values are never echoed: a shifted column could hold a name or an ID.
    if label.label not in ("0", "1"):
        return f"missing label: line {label.line} of the labels file has no label 0 or 1"
    if label.study_type and label.study_type != found_type:
        return (
            f"line {label.line} of the labels file names another study type than the images' "
            f"BodyPartExamined ({found_type})"
        )
    return None


def convert_study(datasets: list, label: Label | None, deidentify) -> tuple[str, list[bytes]]:
    """(study type, the images as the model's PNGs) of one study's instances; DicomImageError with
    the reason for a study the release cannot take (every image is judged: one bad image refuses it)."""
    from pipelines.dicom import group_studies
    from pipelines.pacs import is_radiograph

    radiographs = [dataset for dataset in datasets if is_radiograph(dataset)]
    if not radiographs:
        raise DicomImageError("no radiograph (CR or DX image) in the study")
    named = [
        (f"image {number}", deidentify(dataset, f"image {number}"))
        for number, dataset in enumerate(radiographs, 1)
    ]
    studies, refused = group_studies(named)
    if refused:
        raise DicomImageError(refused[0]["reason"])
    study = studies[0]
    reason = _label_refusal(label, study.study_type)
    if reason:
        raise DicomImageError(reason)
    return study.study_type, study.images


class ReleaseWriter:
    """Writes the release into a private staging folder; `publish` swaps it in for the old one."""

    def __init__(self, site: Site):
        self.site = site
        self.staging = temporary_beside(site.root)
        (self.staging / RELEASE_DIR / "valid").mkdir(parents=True)
        self.image_lines: list[str] = []
        self.study_lines: list[tuple[str, int]] = []

    def add(self, study_type: str, patient: int, number: int, label: int, images: list[bytes]) -> None:
        suffix = "positive" if label else "negative"
        folder = f"{RELEASE_DIR}/valid/{study_type}/patient{patient:05d}/study{number}_{suffix}"
        (self.staging / folder).mkdir(parents=True)
        for index, image in enumerate(images, start=1):
            (self.staging / folder / f"image{index}.png").write_bytes(image)
            self.image_lines.append(f"{folder}/image{index}.png")
        self.study_lines.append((f"{folder}/", label))

    def publish(self, report: dict) -> Path:
        """Write the CSVs (train ones empty: a site's release is all evaluation) and the report, then
        replace the site's folder (renames: a reader sees the old release or the new one)."""
        release = self.staging / RELEASE_DIR
        (release / IMAGE_CSV["valid"]).write_text("".join(f"{line}\n" for line in sorted(self.image_lines)))
        (release / STUDY_CSV["valid"]).write_text(
            "".join(f"{path},{label}\n" for path, label in sorted(self.study_lines))
        )
        (release / IMAGE_CSV["train"]).write_text("")
        (release / STUDY_CSV["train"]).write_text("")
        (self.staging / IMPORT_REPORT).write_text(json.dumps(report, indent=2), encoding="utf-8")
        old = temporary_beside(self.site.root)
        had_release = self.site.root.exists()
        if had_release:
            os.replace(self.site.root, old)
        try:
            os.replace(self.staging, self.site.root)
        except BaseException:
            if had_release:
                os.replace(old, self.site.root)  # the earlier release stays what readers see
            raise
        shutil.rmtree(old, ignore_errors=True)
        return self.site.root

    def discard(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)


def take_in(
    site: Site, studies, labels: dict[str, Label], source: str, unreadable_files: int = 0
) -> ImportResult:
    """Write the release of `studies` ((uid, Datasets or None when the source does not hold it)),
    keeping the pseudonym map; the result before gate and DVC."""
    from pipelines.external.deidentify import Deidentifier

    deidentify = Deidentifier()
    pseudonyms = Pseudonyms(site.pseudonyms)
    result = ImportResult(
        site.name, source, str(site.root), unreadable_files=unreadable_files, method=deidentify.method
    )
    writer = ReleaseWriter(site)
    try:
        seen = set()
        for uid, datasets in studies:
            seen.add(uid)
            if datasets is None:
                if uid in labels:
                    result.labelled_not_found.append(labels[uid].line)
                continue
            patient_id = str(datasets[0].get("PatientID", "") or "") if datasets else ""
            try:
                kind, images = convert_study(datasets, labels.get(uid), deidentify)
            except DicomImageError as error:
                result.refused.append({"study": pseudonyms.refusal(uid), "reason": str(error)})
                continue
            patient, number = pseudonyms.study(uid, patient_id)
            writer.add(kind, patient, number, int(labels[uid].label), images)
            result.studies += 1
            result.images += len(images)
        result.labelled_not_found += sorted(label.line for uid, label in labels.items() if uid not in seen)
        result.labelled_not_found = sorted(set(result.labelled_not_found))
        if not result.studies:
            raise DataError(
                f"site {site.name}: none of the studies could be imported ({len(result.refused)} refused, "
                f"{len(result.labelled_not_found)} labelled but not found); first reasons: "
                + "; ".join(item["reason"] for item in result.refused[:3])
            )
        pseudonyms.save()
        # Nothing machine-specific (the release's own path): the same studies, the same data version.
        report = {
            key: value
            for key, value in result.to_dict().items()
            if key not in ("data_md5", "dvc_file", "gate", "release")
        }
        writer.publish(report)
    except BaseException:
        writer.discard()
        raise
    LOGGER.info(
        "site %s: %d studies (%d images) imported, %d refused",
        site.name,
        result.studies,
        result.images,
        len(result.refused),
    )
    return result


def import_summary_lines(result: ImportResult) -> list[str]:
    """What an import says to the person who ran it."""
    lines = [
        f"site {result.site}: {result.studies} studies ({result.images} images) de-identified into "
        f"{result.release}/ ({result.method})"
    ]
    for item in result.refused:
        lines.append(f"  refused {item['study']}: {item['reason']}")
    if result.labelled_not_found:
        lines.append(
            f"  labelled but not found in the source: lines {', '.join(map(str, result.labelled_not_found))} "
            "of the labels file"
        )
    if result.unreadable_files:
        lines.append(f"  {result.unreadable_files} file(s) are not readable DICOM and were skipped")
    if result.dvc_file:
        lines.append(f"  versioned: {result.dvc_file} ({result.data_md5}); commit it with git")
    if result.gate:
        verdict = "passed" if result.gate.get("success") else "FAILED (the site cannot be validated)"
        lines.append(f"  data gate: {verdict}: {result.gate.get('summary', '')}")
    lines.append(
        f"  the key to the pseudonyms stays here: {Path('$MURA_HOME/secrets') / f'pseudonyms-{result.site}.json'}"
    )
    return lines


def import_site(
    site_name: str,
    labels_path: Path,
    *,
    folder: Path | None = None,
    pacs_query: str | None = None,
    push: bool = True,
) -> ImportResult:
    """Import a site's labelled studies from a DICOM folder or (`pacs_query`, '' for the labelled
    studies) the PACS; gate and version the release. The result names studies by pseudonym only."""
    from pipelines.external import sources
    from pipelines.external.sites import site as site_of

    site = site_of(site_name)
    labels = sources.read_labels(labels_path)
    with _site_lock(site):
        return _import(site, labels, folder, pacs_query, push)


@contextmanager
def _site_lock(site: Site):
    """One import of a site at a time: the pseudonym map is read, extended and saved, and the release
    numbered by it; two interleaved imports would leave a key that names other patients."""
    import fcntl

    path = site.mura_home / EXTERNAL_DIR / site.name / "import.lock"
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DataError(
                f"site {site.name} is being imported by another process; wait for it, then import again"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _import(site: Site, labels: dict[str, Label], folder, pacs_query, push: bool) -> ImportResult:
    from pipelines.data import folder_md5
    from pipelines.external import sources
    from pipelines.external.gate import run_gate

    if (folder is None) == (pacs_query is None):
        raise DataError("give the studies either as a folder of DICOM files or with --pacs, not both")
    if folder is not None:
        grouped, unreadable = sources.folder_studies(Path(folder))
        studies = ((uid, sources.read_folder_study(paths)) for uid, paths in sorted(grouped.items()))
        result = take_in(site, studies, labels, "folder", unreadable)
    else:
        from mura_core.settings import get_settings
        from pipelines.pacs import PacsClient

        client = PacsClient(get_settings())
        uids = sources.pacs_study_uids(client, sources.parse_query(pacs_query), labels)
        result = take_in(site, sources.pacs_studies(client, uids), labels, "pacs")
    result.data_md5 = folder_md5(site.root)[0]
    result.gate = run_gate(site, result.data_md5)
    if push:
        from pipelines.data import version_folder

        versioned = version_folder(site.repo_root, site.relative)
        result.dvc_file = versioned["dvc_file"]
    return result
