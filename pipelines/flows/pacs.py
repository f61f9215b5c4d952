"""The PACS flow (DAG mura_pacs_inference): find the studies without a report of the served champion,
answer each and store its report back."""

from __future__ import annotations

import logging

from mura_core.contracts import DEFAULT_MODEL, PACS_DAG
from mura_core.errors import MuraError
from mura_core.logs import configure_logging
from mura_core.settings import get_settings

LOGGER = logging.getLogger(__name__)
__all__ = ["PACS_DAG", "pacs_answer_studies", "pacs_new_studies"]


def pacs_new_studies(model: str = DEFAULT_MODEL) -> list[str]:
    """StudyInstanceUIDs of the PACS without a report of the served champion ([] before any champion)."""
    from mura_core.config import load_config
    from pipelines.pacs import PacsClient, new_studies, read_refusals, served_version
    from serving import ServingClient, ServingClientError

    configure_logging()
    settings = get_settings()
    with ServingClient() as serving:
        try:
            version = served_version(serving, model)
            refused = read_refusals(settings.mura_home, model, version)
            overlays = load_config().pacs.overlays
            return new_studies(PacsClient(settings), model, version, frozenset(refused), overlays)
        except ServingClientError as error:
            if error.code not in ("NOT_FOUND", "UNAVAILABLE"):
                raise
            LOGGER.info("no champion of %s serves yet (%s): nothing to answer", model, error)
            return []


def pacs_answer_studies(study_uids: list[str], model: str = DEFAULT_MODEL) -> dict:
    """Each study answered and its report stored (once per model version). A study that fails is
    logged with its UID and the others go on; the task then fails naming them (a retry redoes only
    those: the others hold their report)."""
    from mura_core.config import load_config
    from pipelines.dicom import limit_decode_memory
    from pipelines.pacs import PacsClient, answer_study
    from serving import ServingClient

    configure_logging()
    limit_decode_memory()  # a file that makes a decoder allocate gigabytes is refused, not the batch killed
    settings = get_settings()
    pacs, outcome, failed = PacsClient(settings), {"answered": 0, "already": 0, "refused": 0}, []
    overlays = load_config().pacs.overlays
    refused: dict[str, str] = {}
    with ServingClient() as serving:
        for uid in study_uids:
            try:
                result = answer_study(pacs, serving, uid, model, skip_reported=True, overlays=overlays)
            except MuraError as error:  # ServingClientError and PacsError among them: tried again
                LOGGER.error("study %s failed: %s", uid, error)
                failed.append(uid)
                continue
            except (Exception, RecursionError) as error:  # noqa: BLE001 - the study's content: its own
                # Named by kind only: the message of an error met inside a file may quote its values.
                LOGGER.error("study %s refused: %s while reading it", uid, type(error).__name__)
                result = {"status": "refused", "reason": f"{type(error).__name__} while reading the study"}
            outcome[result["status"]] += 1
            if result["status"] == "refused":
                refused[uid] = result["reason"]
        if refused:
            from pipelines.pacs import record_refusals, served_version

            record_refusals(settings.mura_home, model, served_version(serving, model), refused)
    if failed:
        raise MuraError(
            f"{len(failed)} of {len(study_uids)} studies failed (their UIDs are in the log above): {', '.join(failed)}"
        )
    return {**outcome, "studies": len(study_uids)}
