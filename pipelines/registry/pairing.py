"""Gather the paired holdout predictions of a challenger run and the champion's run for the gate."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from pipelines.errors import MuraError
from pipelines.registry.paired import PairedStudies

LOGGER = logging.getLogger(__name__)
MIN_SHARED = 0.5  # below this share of the challenger's holdout studies, score the champion anew


def paired_holdout(client, challenger_run: str, champion_run: str) -> PairedStudies | None:
    """Both runs' calibrated study predictions on the challenger's holdout studies; None when the
    challenger has none (it was not evaluated with a fitted operating point)."""
    from pipelines.evaluation.holdout import stored_holdout_studies

    challenger = stored_holdout_studies(client, challenger_run)
    if challenger is None:
        LOGGER.warning(
            "run %s has no holdout study predictions: the gate compares single numbers", challenger_run
        )
        return None
    champion = stored_holdout_studies(client, champion_run)
    shared = 0 if champion is None else champion[0]["study_id"].isin(challenger[0]["study_id"]).sum()
    if shared < MIN_SHARED * len(challenger[0]):
        try:
            champion = _score_champion(client, challenger_run, champion_run)
        except MuraError as error:
            LOGGER.warning("cannot score the champion's run %s on the new holdout (%s)", champion_run, error)
            return None
    assert champion is not None
    return PairedStudies.join(challenger[0], champion[0], (challenger[1], champion[1]))


def _score_champion(client, challenger_run: str, champion_run: str):
    """The champion's model scored on the challenger's holdout rows (the data changed between them)."""
    from pipelines.evaluation.artifacts import run_manifest
    from pipelines.evaluation.holdout import scored_holdout_studies

    root = Path(client.get_run(challenger_run).data.tags.get("data.root", ""))
    with tempfile.TemporaryDirectory() as folder:
        frame = run_manifest(challenger_run, None, Path(folder))
    LOGGER.info("scoring champion run %s on the holdout of run %s", champion_run, challenger_run)
    return scored_holdout_studies(champion_run, frame, root)
