"""`validate_site()`: a registered version on a site's release, what `mura external validate` and the
DAG `mura_external_validation` run. Logged as a run of MLflow experiment `mura-external` with a
self-contained HTML report; the version's model card then lists it."""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

from mura_core.config import load_config
from mura_core.contracts import DEFAULT_CHAMPION
from mura_core.errors import ConfigError, DataError

LOGGER = logging.getLogger(__name__)
IMPORT_COUNTS = ("studies", "images", "refused", "labelled_not_found", "method")  # of import_report.json


def _data_version(site) -> dict:
    from pipelines.data import folder_md5, pointer_file_out

    md5, files = folder_md5(site.root)
    pointer = site.pointer
    versioned = str(pointer_file_out(pointer).get("md5", "")) == md5
    return {"md5": md5, "files": files, "dvc_file": pointer.name if versioned else "", "versioned": versioned}


def _drift(client, run_id: str, model, rows, root: Path, params, scratch: Path) -> dict:
    """The drift tests of the site's images against the version's training images; a version without
    a stored reference gets none, said in the result (its other numbers stand without them)."""
    from pipelines.monitoring import drift_from_training

    try:
        # A site's DICOM becomes greyscale PNGs: colour mode would always differ from MURA's RGB images.
        tests, drifted = drift_from_training(
            client, run_id, model, rows, root, params, scratch, leave_out=("mode",)
        )
    except DataError as error:
        LOGGER.warning("no drift tests: %s", error)
        return {"detected": None, "tests": [], "skipped": str(error)}
    return {"detected": drifted, "tests": [test.to_dict() for test in tests]}


def gated_release(site) -> tuple[dict, dict]:
    """(the release's data version, the gate's verdict on it); DataError when the site has no release,
    DataValidationError when it failed the gate."""
    from pipelines.data import release_dir
    from pipelines.external.gate import require_gate

    try:
        release_dir(site.root)
    except DataError:
        raise DataError(
            f"site {site.name} has no release under {site.root}; import its studies first: "
            f"mura external import DICOM_DIR --labels labels.csv --site {site.name}"
        ) from None
    data = _data_version(site)
    return data, require_gate(site, data["md5"])


def _scored_site(run_id: str, root: Path, settings, scratch: Path):
    """(model, the release's rows, its images scored by the run's model, the run's operating point)."""
    from pipelines.data import build_manifest
    from pipelines.evaluation import OperatingPoint, download_model, score_images, split_rows
    from pipelines.training import load_model

    model_path, class_map, stored = download_model(run_id, scratch)
    point = OperatingPoint.from_dict(stored, settings.threshold)
    rows = split_rows(build_manifest(root).frame, class_map, "valid")
    model = load_model(model_path)
    images = score_images(model, rows, root, class_map, settings.batch_size)
    images["raw_probability"] = images["probability"]
    return model, rows, images, point


def _register_site_point(client, result: dict) -> dict:
    """The site's refitted operating point as a new version of the same weights (`--register`)."""
    from pipelines.external.register import register_recalibrated

    again = result["recalibration"]
    return register_recalibrated(
        client,
        result["model"],
        result["version"],
        result["site"],
        result["data"]["md5"],
        again["operating_point"],
        again["fit_studies"],
    )


def _site_release(site_name: str):
    """(the site, its release's data version, the gate's verdict on it, the release's import report)."""
    from pipelines.external.sites import IMPORT_REPORT
    from pipelines.external.sites import site as site_of

    site = site_of(site_name)
    data, gate = gated_release(site)
    imported = json.loads((site.root / IMPORT_REPORT).read_text(encoding="utf-8"))
    return site, data, gate, imported


def _measurements(client, config, site, run_id: str, recalibrate: bool, scratch: Path):
    """(the site's scored images, the measurements of the result: the site's metrics beside the
    version's on valid, drift, and the refitted operating point when `recalibrate`)."""
    from pipelines.cards import artifact, load_json
    from pipelines.evaluation import Uncertainty
    from pipelines.external.measure import measure, recalibration, side_by_side

    settings, external = config.evaluation, config.external
    uncertainty = Uncertainty(settings.bootstrap_replicates, settings.confidence, settings.bootstrap_seed)
    model, rows, images, point = _scored_site(run_id, site.root, settings, scratch)
    site_metrics = measure(images, point, settings.calibration_bins, uncertainty)
    # The version's own evaluation on MURA valid, when its run stored one.
    valid = load_json(artifact(client, run_id, "evaluation/metrics.json", scratch))
    drift = _drift(client, run_id, model, rows, site.root, config.monitor, scratch)
    fraction, bins = external.recalibration_fraction, settings.calibration_bins
    refitted = (
        recalibration(images, point, fraction, external.seed, bins, uncertainty) if recalibrate else None
    )
    return images, {
        "metrics": site_metrics,
        "valid": valid,
        "comparison": side_by_side(site_metrics, valid),
        "drift": drift,
        "recalibration": refitted,
    }


def validate_site(
    site_name: str,
    model_spec: str = DEFAULT_CHAMPION,
    recalibrate: bool = False,
    register: bool = False,
    client=None,
) -> dict:
    """Measure `model_spec` (MODEL, MODEL@alias or MODEL/VERSION) on the site's release; the result
    (what the report shows) with the MLflow run id and the report's URI. `register` (with
    `recalibrate`): the site's operating point also becomes a new version of the same weights."""
    import mlflow

    from pipelines.external.tracking import log_validation
    from pipelines.tracking import connect, tracking_errors
    from pipelines.views import resolve_spec

    if register and not recalibrate:
        raise ConfigError(
            "registering a site's operating point needs --recalibrate (it is what is registered)"
        )
    config = load_config()
    site, data, gate, imported = _site_release(site_name)
    client = client or connect()
    mlflow.set_tracking_uri(client.tracking_uri)  # the artifact downloads below use MLflow's global URI
    with (
        tracking_errors(client, f"validating {model_spec} on site {site.name}"),
        tempfile.TemporaryDirectory() as scratch,
    ):
        model_name, version = resolve_spec(client, model_spec)
        run_id = client.get_model_version(model_name, str(version)).run_id
        images, measured = _measurements(client, config, site, run_id, recalibrate, Path(scratch))
        result = {
            "site": site.name,
            "model": model_name,
            "version": int(version),
            "run_id": run_id,
            "data": data,
            "gate": gate,
            "imported": {key: imported.get(key) for key in IMPORT_COUNTS},
            **measured,
        }
        overall = result["comparison"][-1]
        result["drop_significant"] = any(overall[metric]["significant"] for metric in ("kappa", "auroc"))
        if register:
            result["registered"] = _register_site_point(client, result)
        result = log_validation(client, result, images, Path(scratch))
    LOGGER.info(
        "external validation of %s v%s on site %s: study kappa %.3f (valid %.3f), drift %s",
        model_name,
        version,
        site.name,
        overall["kappa"]["site"],
        overall["kappa"]["valid"],
        measured["drift"]["detected"],
    )
    return result


def validation_summary_lines(result: dict) -> list[str]:
    """The validation as a few lines: per study type, the site beside valid; drift; where the report is."""

    def span(values: list) -> str:
        low, high = values
        return "" if low is None or low != low else f" [{low:.2f}, {high:.2f}]"

    def num(value) -> str:
        return "  n/a" if value is None or value != value else f"{value:.3f}"

    lines = [
        f"{result['model']} v{result['version']} on site {result['site']} (data {result['data']['md5']}):",
        f"  {'study type':<10} {'studies':>7}  {'site kappa':>10} {'95% interval':>14}  {'valid kappa':>11}  drop",
    ]
    for row in result["comparison"]:
        kappa = row["kappa"]
        mark = "  beyond the site's interval" if kappa["significant"] else ""
        lines.append(
            f"  {row['type']:<10} {row['studies']:>7}  {num(kappa['site']):>10} {span(kappa['site_ci']):>14}  "
            f"{num(kappa['valid']):>11}  {num(kappa['drop'])}{mark}"
        )
    drifted = [test["feature"] for test in result["drift"]["tests"] if test["drifted"]]
    if result["drift"]["detected"] is None:
        lines.append(f"  drift against the training images: not measured ({result['drift']['skipped']})")
    else:
        lines.append(f"  drift against the training images: {', '.join(drifted) or 'none detected'}")
    again = result.get("recalibration")
    if again:
        lines.append(
            f"  site operating point (fitted on {again['fit_studies']} studies, measured on "
            f"{again['measured_studies']}): kappa {num(again['before']['study']['kappa'])} -> "
            f"{num(again['after']['study']['kappa'])}, ECE {num(again['before']['calibration']['study']['ece'])} "
            f"-> {num(again['after']['calibration']['study']['ece'])}"
        )
    if result.get("registered"):
        made = result["registered"]
        lines.append(
            f"  the site's operating point registered as {made['model']} v{made['version']} (no alias, "
            "not gated: promote it deliberately with mura promote --force --reason)"
        )
    lines.append(
        f"  report: {result['report']} (MLflow experiment mura-external); card: {result.get('card') or '-'}"
    )
    return lines
