"""`run_monitor()`: one check of a release against the served champion, logged to MLflow experiment
`mura-monitoring`; what `mura monitor` and the DAG `mura_monitor` run."""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from mura_core.config import MonitorParams, load_config
from mura_core.contracts import CANARY, CHALLENGER, CHAMPION, MODEL_ARTIFACT, STABLE
from mura_core.errors import ConfigError, NothingToMonitor, RegistryError
from mura_core.stages import LiveCheck, MonitorCheck
from pipelines.monitoring.tracking import EXPERIMENT

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

LOGGER = logging.getLogger(__name__)
RECOMMENDATION_TAG = "monitor.recommendation"


def _aliases(client, model: str) -> tuple[ModelVersion, ModelVersion | None]:
    from pipelines.tracking import get_registered

    try:
        aliases = get_registered(client, model).aliases
    except RegistryError as error:
        raise NothingToMonitor(f"nothing to monitor yet: {error}") from None
    if CHAMPION not in aliases:
        raise NothingToMonitor(
            f"{model} has no champion to monitor yet; register and promote a version first"
        )
    champion = client.get_model_version(model, aliases[CHAMPION])
    challenger = client.get_model_version(model, aliases[CHALLENGER]) if CHALLENGER in aliases else None
    return champion, challenger


def _drift(client, champion, manifest: pd.DataFrame, data_root: Path, params: MonitorParams, scratch: Path):
    from pipelines.training import load_model

    model = load_model(client.download_artifacts(champion.run_id, MODEL_ARTIFACT, str(scratch)))
    return drift_from_training(client, champion.run_id, model, manifest, data_root, params, scratch)


def drift_from_training(
    client,
    run_id: str,
    model,
    manifest: pd.DataFrame,
    data_root: Path,
    params: MonitorParams,
    scratch: Path,
    leave_out: tuple[str, ...] = (),
):
    """(each drift test, drifted at all) of the release's images against the reference that run
    `run_id` stored of its training images, in features of its own `model` too; the features in
    `leave_out` are not tested (nor counted in the Holm family)."""
    from pipelines.monitoring.drift import drift_tests, verdict
    from pipelines.monitoring.reference import load_reference, profile_with_embeddings

    reference, reference_embeddings = load_reference(client, run_id, scratch)
    current, embeddings = profile_with_embeddings(
        model, manifest, data_root, params.current_images, params.seed
    )
    tests = drift_tests(
        reference, current, reference_embeddings, embeddings, params.permutations, params.seed
    )
    tests = [test for test in tests if test.feature not in leave_out]
    if len(tests) / (params.permutations + 1) >= params.alpha:
        # Holm multiplies the smallest p-value, 1 / (permutations + 1), by the number of tests.
        raise ConfigError(
            f"params.yaml monitor.permutations={params.permutations} is too few: with {len(tests)} tests "
            f"no drift could ever reach alpha {params.alpha}; use at least {int(len(tests) / params.alpha)}"
        )
    return verdict(tests, params.alpha, params.min_effect)


def _live(model: str, challenger, manifest: pd.DataFrame, data_root: Path, params, evaluation) -> LiveCheck:
    from mura_core.settings import get_settings
    from pipelines.evaluation import Uncertainty
    from pipelines.monitoring.live import performance, score_served, shadow_comparison
    from pipelines.monitoring.profile import sample_rows
    from serving import ServingClient, ServingClientError

    labelled = manifest[manifest["split"] == "valid"]
    if params.live_studies <= 0 or labelled.empty:
        return LiveCheck(
            skipped="no labelled studies in the release" if labelled.empty else "live_studies is 0"
        )
    counts = labelled.groupby("study_id").size()
    rows = sample_rows(labelled, int(counts.mean() * params.live_studies) + 1, params.seed)
    uncertainty = Uncertainty(
        evaluation.bootstrap_replicates, evaluation.confidence, evaluation.bootstrap_seed
    )
    try:
        with ServingClient() as client:
            champion = score_served(rows, data_root, model, STABLE, client)
            result = LiveCheck(
                studies=int(rows["study_id"].nunique()),
                champion=performance(champion, uncertainty, evaluation.calibration_bins),
            )
            if challenger is not None:
                shadow = score_served(rows, data_root, model, CANARY, client)
                result = dataclasses.replace(
                    result,
                    challenger=performance(shadow, uncertainty, evaluation.calibration_bins),
                    comparison=shadow_comparison(champion, shadow, uncertainty),
                )
    except ServingClientError as error:
        # Without live numbers the live-kappa retrain trigger cannot fire: say so where people look
        # (the task log, the MLflow run's monitor.live tag, `mura monitor`).
        message = f"the served models did not answer at {get_settings().serving_grpc}: {error}"
        LOGGER.error(
            "live check of %s failed, so the live-kappa retrain trigger could not be evaluated: %s",
            model,
            message,
        )
        return LiveCheck(error=message)
    return result


def _retrain_reasons(drifted: list[str], live: LiveCheck, params: MonitorParams) -> list[str]:
    reasons = [f"data drift in {', '.join(drifted)}"] if drifted else []
    kappa = live.champion_kappa
    if kappa is not None and kappa < params.min_live_kappa:
        reasons.append(f"champion's live study kappa {kappa:.3f} < {params.min_live_kappa}")
    return reasons


def _already_requested(client, model: str, data_md5: str) -> str | None:
    """The monitor run that already asked for a retrain on this data, if any (asking once is enough:
    a retrain whose model fails the gate would otherwise be asked for again on every check)."""
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        return None
    found = client.search_runs(
        [experiment.experiment_id],
        f"tags.`monitor.model` = '{model}' and tags.`monitor.data_md5` = '{data_md5}' "
        "and tags.`monitor.retrain_requested` = 'true'",
        max_results=1,
    )
    return found[0].info.run_id if found else None


def _retrain_decision(
    client, champion, data_md5: str, drifted: list[str], live: LiveCheck, params: MonitorParams
) -> tuple[list[str], bool]:
    """(the reasons for a retrain, with why it is not asked for where it is not; whether it is needed):
    never for the data the champion was trained on, and once per data version."""
    reasons = _retrain_reasons(drifted, live, params)
    trained_on = champion.tags.get("data.md5")
    if reasons and trained_on == data_md5:
        reasons.append("not asked: the champion was trained on this very data")
    earlier = _already_requested(client, params.model, data_md5) if reasons else None
    if earlier:
        reasons.append(f"already asked for this data by monitor run {earlier}")
    return reasons, bool(reasons) and trained_on != data_md5 and earlier is None


def _recommendation(champion, challenger, live: LiveCheck) -> str:
    """`promote vN: ...` when the live comparison finds the challenger better than the champion, else ""."""
    change = live.comparison
    if challenger is not None and change is not None and change.challenger_better:
        low, high = change.kappa_change_ci
        return (
            f"promote v{challenger.version}: live study kappa {change.kappa_change:+.3f} "
            f"[{low:+.3f}, {high:+.3f}] over champion v{champion.version} on {change.studies} studies"
        )
    return ""


def run_monitor(
    data_root: Path,
    manifest: pd.DataFrame | None = None,
    data_md5: str | None = None,
    params: MonitorParams | None = None,
    client=None,
) -> MonitorCheck:
    """Check the release under `data_root` against the served model's champion (and challenger)."""
    from mura_core.settings import get_settings
    from pipelines.data import build_manifest, folder_md5
    from pipelines.monitoring.metrics import publish
    from pipelines.monitoring.tracking import log_check
    from pipelines.tracking import connect, tracking_errors

    config = load_config()
    params = params or config.monitor
    client = client or connect()
    data_root = Path(data_root)
    manifest = build_manifest(data_root).frame if manifest is None else manifest
    manifest = manifest[manifest["image_path"].notna()]
    data_md5 = data_md5 or folder_md5(data_root)[0]
    with tracking_errors(client, f"monitoring {params.model}"), tempfile.TemporaryDirectory() as scratch:
        champion, challenger = _aliases(client, params.model)
        tests, drift = _drift(client, champion, manifest, data_root, params, Path(scratch))
        live = _live(params.model, challenger, manifest, data_root, params, config.evaluation)
        drifted = [test.feature for test in tests if test.drifted]
        reasons, needed = _retrain_decision(client, champion, data_md5, drifted, live, params)
        recommendation = _recommendation(champion, challenger, live)
        check = MonitorCheck(
            model=params.model,
            champion_version=int(champion.version),
            challenger_version=int(challenger.version) if challenger is not None else None,
            data_md5=data_md5,
            drift=drift,
            drifted_features=drifted,
            tests=[test.to_dict() for test in tests],
            live=live,
            retrain_needed=needed,
            reasons=reasons,
            recommendation=recommendation,
            mlflow_run_id="",
            report="",
        )
        check = log_check(client, check)
        publish(check, get_settings().mura_home / "monitoring")
        if recommendation and challenger is not None:  # a recommendation names the challenger
            client.set_model_version_tag(
                params.model,
                str(challenger.version),
                RECOMMENDATION_TAG,
                f"{recommendation} (monitor run {check.mlflow_run_id})",
            )
    LOGGER.info("monitor %s: drift %s, retrain %s %s", params.model, drift, needed, reasons)
    return check
