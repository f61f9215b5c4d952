"""A PACS over DICOMweb (QIDO-RS search, WADO-RS retrieve, STOW-RS store), with errors that say what
to do. Searches ask only for the attributes the platform needs: patient names, IDs, birth dates and
accession numbers are never requested, printed or logged (a filter by accession number is sent, not
echoed)."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from mura_core.errors import MuraError
from mura_core.settings import Settings

LOGGER = logging.getLogger(__name__)
PAGE = 100  # studies per QIDO-RS request
# Radiographs nest a few sequences, the platform's reports (TID 1500) about six: 16 is far from both,
# and far below the 300 that crashed Orthanc 1.10 (its parser recurses).
MAX_NESTING = 16
UID_PATTERN = re.compile(r"[0-9]+(\.[0-9]+)*")  # PS3.5 9.1: digits and dots (64 characters at most)
STUDY_FIELDS = ("StudyInstanceUID", "StudyDate", "ModalitiesInStudy", "NumberOfStudyRelatedInstances")
TAG_NAMES = {
    "0020000D": "StudyInstanceUID",
    "00080020": "StudyDate",
    "00080061": "ModalitiesInStudy",
    "00201208": "NumberOfStudyRelatedInstances",
    "00180015": "BodyPartExamined",
    "0008103E": "SeriesDescription",
    "00080060": "Modality",
}


def sequence_depth(dataset) -> int:
    """How deeply `dataset` nests sequences (0: none), walked without recursion."""
    deepest, stack = 0, [(dataset, 0)]
    while stack:
        current, depth = stack.pop()
        deepest = max(deepest, depth)
        for element in current:
            if element.VR == "SQ":
                stack.extend((item, depth + 1) for item in element.value)
    return deepest


class PacsError(MuraError):
    """The PACS could not be reached or refused a request: the message names it and what to do."""


class PacsRefusal(PacsError):
    """The PACS (or the platform, before sending) refused a study's instances: that study alone."""


class PacsNotFound(PacsError):
    """The PACS holds nothing of what was asked for (HTTP 404, or an empty answer)."""


@dataclass(frozen=True)
class StudySummary:
    """What `mura pacs studies` shows of a study: nothing that identifies its patient."""

    study_uid: str
    date: str
    modalities: str
    images: int
    body_parts: str
    series: tuple[str, ...] = ()  # the SeriesDescription of each series (the platform's reports among them)

    def to_dict(self) -> dict:
        return {**self.__dict__, "series": list(self.series)}


def _value(item: dict, keyword: str) -> str:
    tag = next(tag for tag, name in TAG_NAMES.items() if name == keyword)
    values = item.get(tag, {}).get("Value", [])
    return "\\".join(str(value) for value in values)


class PacsClient:
    """DICOMweb calls to `settings.pacs_url` with the PACS login."""

    def __init__(self, settings: Settings, timeout: float = 30.0):
        import requests
        from dicomweb_client.api import DICOMwebClient

        from pipelines.pacs.orthanc import credentials

        self.url = settings.pacs_url
        from requests.adapters import HTTPAdapter
        from urllib3.util.retry import Retry

        session = requests.Session()
        session.auth = credentials(settings)
        # Orthanc closes an idle keep-alive connection after about a second: a request sent on it at
        # that moment fails as "connection aborted". Retried (every call is idempotent: STOW-RS stores
        # instances by their UIDs), never on an HTTP status.
        retries = Retry(
            total=3, connect=3, read=3, status=0, other=0, allowed_methods=None, backoff_factor=0.2
        )
        session.mount("http://", HTTPAdapter(max_retries=retries))
        session.mount("https://", HTTPAdapter(max_retries=retries))
        self._session, self._timeout = session, timeout
        self._client = DICOMwebClient(self.url, session=session, timeout=timeout)

    def _call(self, doing: str, call):
        import requests

        try:
            return call()
        except requests.Timeout:
            raise PacsError(f"the PACS at {self.url} did not answer in time while {doing}") from None
        except requests.ConnectionError:
            raise PacsError(
                f"the PACS at {self.url} is not reachable while {doing}: start it (`mura up`, with "
                "`apt-get install orthanc orthanc-dicomweb`) or set MURA_PACS_URL"
            ) from None
        except requests.HTTPError as error:
            status = error.response.status_code if error.response is not None else "?"
            if status in (401, 403):
                raise PacsError(
                    f"the PACS at {self.url} refused the login while {doing} (HTTP {status}): check "
                    "MURA_PACS_USER / MURA_PACS_PASSWORD or $MURA_HOME/secrets/pacs.json"
                ) from None
            if status == 404:
                raise PacsNotFound(
                    f"the PACS at {self.url} found nothing while {doing}: list its studies with `mura pacs studies`"
                ) from None
            raise PacsError(f"the PACS at {self.url} answered HTTP {status} while {doing}") from None
        except requests.RequestException as error:
            raise PacsError(f"the PACS at {self.url} failed while {doing}: {error}") from None

    def studies(
        self,
        date: str | None = None,
        body_part: str | None = None,
        accession: str | None = None,
        limit: int | None = None,
    ) -> list[StudySummary]:
        """Studies matching the filters (QIDO-RS; every page, or the first `limit` matches the PACS
        returns), newest first; body parts from their series."""
        filters = {
            key: value for key, value in {"StudyDate": date, "AccessionNumber": accession}.items() if value
        }
        found: list[dict] = []
        while limit is None or len(found) < limit:  # a PACS caps each answer: page until a short one
            size, offset = (PAGE if limit is None else min(PAGE, limit - len(found))), len(found)
            page = self._call(
                "searching studies",
                lambda size=size, offset=offset: self._client.search_for_studies(
                    search_filters=filters, fields=list(STUDY_FIELDS), limit=size, offset=offset
                ),
            )
            found += page
            if len(page) < size:
                break
        summaries, skipped = [], 0
        for item in found:
            try:
                summary = self._summary(item)
            except (PacsError, ValueError, TypeError, KeyError) as error:
                # One crafted study must not hide the others: skipped, named by the kind of fault only
                # (its UID may itself be what is wrong, and carry anything).
                LOGGER.warning("a study of the PACS listing skipped: %s", type(error).__name__)
                skipped += 1
                continue
            if body_part and body_part.upper() not in {
                part.upper() for part in summary.body_parts.split(",")
            }:
                continue
            summaries.append(summary)
        return sorted(summaries, key=lambda summary: (summary.date, summary.study_uid), reverse=True)

    def _summary(self, item: dict) -> StudySummary:
        """One QIDO study record with its series; ValueError for a UID that is not digits and dots."""
        uid = _value(item, "StudyInstanceUID")
        if len(uid) > 64 or not UID_PATTERN.fullmatch(uid):
            raise ValueError("a StudyInstanceUID that is not a DICOM UID")
        series = self._series(uid)
        parts = sorted({_value(entry, "BodyPartExamined") for entry in series} - {""})
        return StudySummary(
            study_uid=uid,
            date=_value(item, "StudyDate"),
            modalities=_value(item, "ModalitiesInStudy"),
            images=int(_value(item, "NumberOfStudyRelatedInstances") or 0),
            body_parts=",".join(parts),
            series=tuple(_value(entry, "SeriesDescription") for entry in series),
        )

    def _series(self, study_uid: str) -> list[dict]:
        """The series of a study (QIDO-RS) with their body part and description."""
        return self._call(
            f"searching the series of study {study_uid}",
            lambda: self._client.search_for_series(
                study_instance_uid=study_uid, fields=["BodyPartExamined", "SeriesDescription"]
            ),
        )

    def series_descriptions(self, study_uid: str) -> list[str]:
        """The SeriesDescription of each series of a study (how the platform's reports are found)."""
        return [_value(entry, "SeriesDescription") for entry in self._series(study_uid)]

    def is_stable(self, study_uid: str) -> bool | None:
        """Whether the PACS holds the study as complete (no instance arrived for Orthanc's StableAge);
        None where the PACS cannot say: DICOMweb has no such notion, Orthanc's own REST API does."""
        root = self.url.rstrip("/")
        if not root.endswith("/dicom-web"):
            return None
        root = root.removesuffix("/dicom-web")

        def ask():
            found = self._session.post(f"{root}/tools/lookup", data=study_uid, timeout=self._timeout)
            ids = [item["ID"] for item in found.json() if item.get("Type") == "Study"] if found.ok else []
            if not ids:
                return None
            study = self._session.get(f"{root}/studies/{ids[0]}", timeout=self._timeout)
            return bool(study.json().get("IsStable", True)) if study.ok else None  # patient tags dropped

        try:
            return self._call(f"asking whether study {study_uid} is complete", ask)
        except (PacsError, ValueError, KeyError, TypeError, AttributeError) as error:  # not Orthanc's answer
            LOGGER.warning(
                "the PACS at %s cannot say whether studies are complete (%s): taken as found", root, error
            )
            return None

    def wait_until_stable(self, study_uids: list[str], timeout: float = 60.0) -> None:
        """Return once the PACS holds every study as complete (or cannot say); PacsError after `timeout`
        s: just stored studies become stable after Orthanc's StableAge."""
        import time

        deadline = time.monotonic() + timeout
        while any(self.is_stable(uid) is False for uid in study_uids):
            if time.monotonic() > deadline:
                raise PacsError(
                    f"the PACS at {self.url} still holds studies as arriving after {timeout:.0f} s"
                )
            time.sleep(1)

    def retrieve_study(self, study_uid: str) -> list:
        """The study's instances as pydicom Datasets (WADO-RS); PacsError when the PACS has none."""
        # As stored (transfer-syntax=*): no transcoding, which Orthanc cannot do for every lossless syntax.
        datasets = self._call(
            f"retrieving study {study_uid}",
            lambda: self._client.retrieve_study(study_uid, media_types=(("application/dicom", "*"),)),
        )
        if not datasets:
            raise PacsNotFound(
                f"the PACS at {self.url} holds no study {study_uid}: list them with `mura pacs studies`"
            )
        return datasets

    def store(self, datasets: list) -> int:
        """Store instances (STOW-RS); how many the PACS accepted. An instance nested deeper than
        MAX_NESTING sequences is refused here, before Orthanc parses it."""
        if not datasets:
            return 0
        for dataset in datasets:
            if sequence_depth(dataset) > MAX_NESTING:
                raise PacsRefusal(
                    f"an instance of study {dataset.get('StudyInstanceUID', '?')} nests sequences more than "
                    f"{MAX_NESTING} deep: not sent to the PACS (Orthanc 1.10 crashed on 300)"
                )
        reply = self._call("storing instances", lambda: self._client.store_instances(datasets))
        failed = len(reply.get("FailedSOPSequence", []) or []) if reply is not None else 0
        if failed:
            raise PacsRefusal(
                f"the PACS at {self.url} refused {failed} of {len(datasets)} instances (STOW-RS)"
            )
        return len(datasets)
