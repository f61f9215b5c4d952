"""Gather the paired holdout predictions of a challenger run and the champion's run for the gate."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from mura_core.errors import MuraError
from pipelines.registry.paired import PairedStudies

LOGGER = logging.getLogger(__name__)
MIN_SHARED = 0.5  # below this share of the challenger's holdout studies, score the champion anew


@dataclass(frozen=True)
class Unpaired:
    """Why the gate compares single numbers instead of paired predictions: its verdict says so, and
    with it the model card a reviewer reads."""

    reason: str


def paired_holdout(client, challenger_run: str, champion_run: str) -> PairedStudies | Unpaired:
    """Both runs' calibrated study predictions on the challenger's holdout studies, or why there are
    none (a run evaluated before operating points existed; a champion that cannot be scored on the new
    holdout). A holdout table that exists but cannot be read raises (HoldoutUnreadable)."""
    from pipelines.evaluation import stored_holdout_studies

    challenger = stored_holdout_studies(client, challenger_run)
    if challenger is None:
        return _unpaired(
            f"run {challenger_run} has no holdout study predictions (evaluated without an operating point)"
        )
    champion = stored_holdout_studies(client, champion_run)
    shared = 0 if champion is None else champion[0]["study_id"].isin(challenger[0]["study_id"]).sum()
    if shared < MIN_SHARED * len(challenger[0]):
        try:
            champion = _score_champion(client, challenger_run, champion_run)
        except MuraError as error:
            return _unpaired(
                f"the champion's run {champion_run} could not be scored on the new holdout: {error}"
            )
    assert champion is not None
    return PairedStudies.join(challenger[0], champion[0], (challenger[1], champion[1]))


def _unpaired(reason: str) -> Unpaired:
    LOGGER.warning("the gate compares single numbers: %s", reason)
    return Unpaired(reason)


def _score_champion(client, challenger_run: str, champion_run: str):
    """The champion's model scored on the challenger's holdout rows (the data changed between them)."""
    from pipelines.evaluation import run_manifest, scored_holdout_studies

    root = Path(client.get_run(challenger_run).data.tags.get("data.root", ""))
    frame = run_manifest(challenger_run)
    LOGGER.info("scoring champion run %s on the holdout of run %s", champion_run, challenger_run)
    return scored_holdout_studies(champion_run, frame, root)
