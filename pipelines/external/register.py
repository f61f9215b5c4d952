"""A site's operating point registered as a new version of the same weights: a training-like run in
experiment `mura` that holds the version's model with the site's operating point baked into a new
SavedModel, registered and tagged with the site. It never replaces the original: it gets no alias, and
its gate status says it was not gated, so only a deliberate `mura promote --force --reason` serves it."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from mura_core.contracts import EXTERNAL_DATA_TAG, EXTERNAL_SITE_TAG, GATE_REASON_TAG, GATE_STATUS_TAG
from pipelines.evaluation import OPERATING_POINT_FILE

NOT_GATED = "not_gated"
FROM_VERSION_TAG = "recalibration.from_version"


def _registered_before(client, model: str, version: int, site: str, data_md5: str):
    """The version an earlier try registered for the same site data and source version (a retried
    task must not register a second one)."""
    for candidate in client.search_model_versions(f"name='{model}'"):
        tags = candidate.tags or {}
        if (
            tags.get(EXTERNAL_SITE_TAG) == site
            and tags.get(FROM_VERSION_TAG) == str(version)
            and tags.get(EXTERNAL_DATA_TAG) == data_md5
        ):
            return candidate
    return None


def register_recalibrated(
    client, model: str, version: int, site: str, data_md5: str, point: dict, studies: int
) -> dict:
    """The new version (model, version, run id, reused) of `model` v`version`'s weights at `point`,
    fitted on the site's release `data_md5`; the one registered before for the same, if any."""
    from pipelines.export import export_run
    from pipelines.registry import register_version
    from pipelines.training import configure_mlflow

    earlier = _registered_before(client, model, version, site, data_md5)
    if earlier is not None:
        return {"model": model, "version": int(earlier.version), "run_id": earlier.run_id, "reused": True}
    original = client.get_model_version(model, str(version))
    source = client.get_run(original.run_id)
    tags = {key: value for key, value in source.data.tags.items() if not key.startswith("mlflow.")}
    tags.update(
        {
            EXTERNAL_SITE_TAG: site,
            EXTERNAL_DATA_TAG: data_md5,
            FROM_VERSION_TAG: str(version),
            "recalibration.from_run": original.run_id,
            "recalibration.studies": str(studies),
        }
    )
    run = client.create_run(configure_mlflow(), run_name=f"{model}-v{version}-recalibrated-{site}", tags=tags)
    with tempfile.TemporaryDirectory(prefix="mura-recalibrate-") as scratch:
        folder = Path(client.download_artifacts(original.run_id, "model", scratch))
        (folder / OPERATING_POINT_FILE).write_text(json.dumps(point, indent=2), encoding="utf-8")
        client.log_artifacts(run.info.run_id, str(folder), artifact_path="model")
        # The same weights saw the same training images: their reference lets drift be measured
        # (and the monitor watch this version) without evaluating it again on MURA, which would
        # refit its operating point on MURA's holdout.
        reference = Path(client.download_artifacts(original.run_id, "monitoring", scratch))
        client.log_artifacts(run.info.run_id, str(reference), artifact_path="monitoring")
    export_run(run.info.run_id)
    client.set_terminated(run.info.run_id)
    registered = register_version(run.info.run_id, client)
    reason = (
        f"the operating point of v{version} refitted on {studies} studies of site {site}; not compared with "
        "the champion on MURA's holdout: promote it deliberately (mura promote --force --reason)"
    )
    for key, value in {
        GATE_STATUS_TAG: NOT_GATED,
        GATE_REASON_TAG: reason,
        EXTERNAL_DATA_TAG: data_md5,
        FROM_VERSION_TAG: str(version),
        EXTERNAL_SITE_TAG: site,  # last: what _registered_before looks for only once the rest is there
    }.items():
        client.set_model_version_tag(model, str(registered.version), key, value)
    return {"model": model, "version": registered.version, "run_id": run.info.run_id, "reused": False}
