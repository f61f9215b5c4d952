"""The holdout studies: where the operating point is fitted, candidates are selected and the gate
compares a challenger with the champion (`valid` is only reported)."""

from __future__ import annotations

import json
import logging
import math
import tempfile
import time
from pathlib import Path

import pandas as pd

from mura_core.config import EvaluationParams, load_config
from mura_core.errors import MuraError
from pipelines.evaluation.artifacts import OPERATING_POINT_FILE, download_model, split_rows
from pipelines.evaluation.calibration import OperatingPoint, fit_operating_point

HOLDOUT_STUDIES_FILE = "holdout_studies.csv"  # evaluation/: the gate's paired comparison reads it
HOLDOUT_STUDY_PREFIX = "holdout.study_"  # study metrics at the fitted operating point: selection uses them
READ_ATTEMPTS = 3  # reading a stored table: the first try and two retries, 1 s and 2 s apart
READ_WAIT_SECONDS = 1.0
LOGGER = logging.getLogger(__name__)


class HoldoutUnreadable(MuraError):
    """A run's stored holdout predictions exist but cannot be read: the gate fails rather than weaken."""


def operating_point_of(
    client,
    run_id: str,
    model,
    frame: pd.DataFrame,
    root: Path,
    class_map: dict,
    settings: EvaluationParams,
    stored: dict | None,
    store: bool = True,
) -> OperatingPoint:
    """The run's operating point: `stored` (model/operating_point.json), else fitted on holdout now and
    (with `store`) stored there with the holdout study metrics it reaches, so export and later
    evaluations reuse it."""
    fixed = settings.operating_point == "fixed"
    if stored is not None and stored.get("method") == settings.operating_point:
        return OperatingPoint.from_dict(stored, settings.threshold)
    if fixed and not store:
        return OperatingPoint(threshold=settings.threshold)
    from pipelines.evaluation.metrics import evaluate_predictions
    from pipelines.evaluation.predict import score_images

    holdout = score_images(
        model, split_rows(frame, class_map, "holdout"), root, class_map, settings.batch_size
    )
    # Fixed: no calibration, the configured threshold; the holdout predictions are stored all the same
    # (the gate pairs them with the champion's).
    point = (
        OperatingPoint(threshold=settings.threshold)
        if fixed
        else fit_operating_point(holdout, settings.bootstrap_seed)
    )
    holdout["raw_probability"] = holdout["probability"]
    holdout["probability"] = point.apply(holdout["raw_probability"])
    holdout["study_probability"] = point.study_probability(holdout)
    if not store:
        return point
    reached = evaluate_predictions(holdout, point.threshold, settings.calibration_bins)
    from mlflow.entities import Metric

    stamp = client.get_run(run_id).info.start_time or 0
    values = {
        "holdout.study_kappa": reached["study"]["kappa"],
        "holdout.study_auroc": reached["study"]["auroc"],
        "holdout.study_ece": reached["calibration"]["study"]["ece"],
        "holdout.study_ece_raw": reached["calibration"]["study_raw"]["ece"],
        "calibration.temperature": point.temperature,
        "calibration.shift": point.shift,
        "calibration.threshold": point.threshold,
    }
    client.log_batch(
        run_id, metrics=[Metric(k, float(v), stamp, 0) for k, v in values.items() if not math.isnan(v)]
    )
    client.log_dict(run_id, point.to_dict(), f"model/{OPERATING_POINT_FILE}")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / HOLDOUT_STUDIES_FILE
        study_table(holdout).to_csv(path, index=False)
        client.log_artifact(run_id, str(path), artifact_path="evaluation")
    return point


def study_table(images: pd.DataFrame) -> pd.DataFrame:
    """Study rows (study_id, body_part, label, probability, raw_probability): the study probability at
    the operating point and the mean raw probability of each study's scored images."""
    images = images.assign(probability=images["study_probability"])
    columns = ["study_id", "body_part", "label", "probability", "raw_probability"]
    return images[columns].groupby(["study_id", "body_part", "label"], as_index=False).mean()


def stored_holdout_studies(
    client, run_id: str, attempts: int = READ_ATTEMPTS, wait: float | None = None
) -> tuple[pd.DataFrame, float] | None:
    """(holdout study table, threshold) saved by the run's evaluation; None when the run has none (it
    was evaluated before operating points existed: the gate then compares single numbers and says so).

    A table that exists but cannot be read (MLflow or the artifact store failing, a half-written file)
    is tried `attempts` times and then raises HoldoutUnreadable: a transient error must never weaken
    the gate to single numbers."""
    from mlflow.exceptions import MlflowException

    wait = READ_WAIT_SECONDS if wait is None else wait
    failure = "no attempt made"
    for attempt in range(1, attempts + 1):
        try:
            return _read_stored_holdout(client, run_id)
        except (MlflowException, OSError, ValueError, KeyError) as error:
            failure = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
            LOGGER.warning(
                "reading the holdout predictions of run %s failed (try %d of %d): %s",
                run_id,
                attempt,
                attempts,
                failure,
            )
            if attempt < attempts:
                time.sleep(wait * 2 ** (attempt - 1))
    raise HoldoutUnreadable(
        f"the holdout predictions of run {run_id} (evaluation/{HOLDOUT_STUDIES_FILE}, "
        f"model/{OPERATING_POINT_FILE}) exist but could not be read in {attempts} tries ({failure}); the "
        "gate does not fall back to a weaker comparison: retry it once MLflow and its artifact store answer"
    )


def _read_stored_holdout(client, run_id: str) -> tuple[pd.DataFrame, float] | None:
    import mlflow

    listed = {artifact.path for artifact in client.list_artifacts(run_id, "evaluation")}
    if f"evaluation/{HOLDOUT_STUDIES_FILE}" not in listed:
        return None
    with tempfile.TemporaryDirectory() as folder:
        table = client.download_artifacts(run_id, f"evaluation/{HOLDOUT_STUDIES_FILE}", folder)
        stored = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=f"model/{OPERATING_POINT_FILE}", dst_path=folder
        )
        point = OperatingPoint.from_dict(
            json.loads(Path(stored).read_text(encoding="utf-8")), load_config().evaluation.threshold
        )
        return pd.read_csv(table), point.threshold


def scored_holdout_studies(
    run_id: str, frame: pd.DataFrame, root: Path, params: EvaluationParams | None = None
) -> tuple[pd.DataFrame, float]:
    """(study table, threshold) of the run's model, at its operating point, on the holdout rows of
    `frame` (another run's data: the gate pairs a champion with a challenger trained on new data)."""
    from mlflow.tracking import MlflowClient

    from pipelines.evaluation.predict import score_images
    from pipelines.training import configure_mlflow, load_model

    settings = params or load_config().evaluation
    configure_mlflow()
    client = MlflowClient()
    with tempfile.TemporaryDirectory() as download:
        model_path, class_map, stored = download_model(run_id, Path(download))
        model = load_model(model_path)
        point = operating_point_of(
            client, run_id, model, frame, root, class_map, settings, stored, store=False
        )
        images = score_images(
            model, split_rows(frame, class_map, "holdout"), root, class_map, settings.batch_size
        )
    images["raw_probability"] = images["probability"]
    images["probability"] = point.apply(images["raw_probability"])
    images["study_probability"] = point.study_probability(images)
    return study_table(images), point.threshold
