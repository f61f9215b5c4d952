"""Ensembles: N members of one architecture (seeds seed, seed+1, ...) averaged inside one model.

The MURA paper averages the probabilities of 5 DenseNet-169s. Each member is an ordinary training run
(the DAG trains them as mapped tasks on the gpu queue); `combine_runs` builds one Keras model whose
output is the mean of the members' outputs (optionally also on the mirrored image: flip test-time
augmentation) and logs it as a run of its own, so evaluation, export and registration treat an
ensemble like any other model: same signatures, one SavedModel.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

import keras

from mura_core.contracts import CLASS_MAP_FILE, MODEL_ARTIFACT_DIR, MODEL_FILE
from mura_core.errors import ConfigError
from pipelines.training import tracking
from pipelines.training.layers import HorizontalFlip, load_model

LOGGER = logging.getLogger(__name__)
MEMBERS_TAG = "ensemble.members"
# Tags of the first member copied to the ensemble's run: where the data and code came from.
INHERITED_TAG_PREFIXES = ("data.", "code.", "pkg.", "validation.", "airflow.", "train.", "model_name")


def average_model(members: list[keras.Model], flip_tta: bool = False, name: str = "ensemble") -> keras.Model:
    """One model: the mean of the members' outputs (and of their outputs on the mirrored input)."""
    if not members:
        raise ConfigError("an ensemble needs at least one member")
    inputs = keras.Input(shape=members[0].input_shape[1:], name="image", dtype="float32")
    mirrored = HorizontalFlip(name="flip")(inputs) if flip_tta else None
    outputs = []
    for index, member in enumerate(members):
        member.name = f"member_{index}"  # nested models need distinct names
        outputs.append(member(inputs))
        if mirrored is not None:
            outputs.append(member(mirrored))
    averaged = (
        outputs[0] if len(outputs) == 1 else keras.layers.Average(name="average", dtype="float32")(outputs)
    )
    return keras.Model(inputs, averaged, name=name)


def combine_runs(run_ids: list[str], flip_tta: bool = False) -> str:
    """A new MLflow run holding the averaged model of the member runs; returns its run id.

    The members must share task and input size (they are seeds of one config); the ensemble run
    inherits the first member's lineage tags and training rows and lists its members.
    """
    from mlflow.tracking import MlflowClient

    if len(run_ids) < 2:
        raise ConfigError(f"an ensemble combines at least 2 member runs, got {len(run_ids)}")
    experiment_id = tracking.configure_mlflow()
    client = MlflowClient()
    first = client.get_run(run_ids[0])
    with tempfile.TemporaryDirectory() as folder:
        members, class_maps = [], []
        for index, run_id in enumerate(run_ids):
            local = Path(client.download_artifacts(run_id, MODEL_ARTIFACT_DIR, f"{folder}/{index}"))
            class_maps.append(json.loads((local / CLASS_MAP_FILE).read_text(encoding="utf-8")))
            members.append(load_model(local / MODEL_FILE, compile=False))
        keys = {(m["task"], tuple(m["image_size"])) for m in class_maps}
        if len(keys) != 1:
            raise ConfigError(f"ensemble members differ in task or image size: {sorted(keys)}")
        model = average_model(members, flip_tta, name=f"{class_maps[0]['model_name']}_ensemble")
        tags = {k: v for k, v in first.data.tags.items() if k.startswith(INHERITED_TAG_PREFIXES)}
        tags[MEMBERS_TAG] = json.dumps(run_ids)
        tags["ensemble.flip_tta"] = str(flip_tta).lower()
        arch = class_maps[0].get("arch", "model")
        run = client.create_run(experiment_id, run_name=f"{arch}-ensemble{len(run_ids)}", tags=tags)
        ensemble_id = run.info.run_id
        try:
            client.log_param(ensemble_id, "ensemble", len(run_ids))
            client.log_param(ensemble_id, "flip_tta", flip_tta)
            tracking.log_model(ensemble_id, model, {**class_maps[0], "ensemble": len(run_ids)})
            manifest = client.download_artifacts(run_ids[0], "data/manifest.parquet", folder)
            client.log_artifact(ensemble_id, manifest, artifact_path="data")
        except BaseException:
            client.set_terminated(ensemble_id, status="FAILED")
            raise
    client.set_terminated(ensemble_id, status="FINISHED")
    LOGGER.info("ensemble run %s averages %d members: %s", ensemble_id, len(run_ids), ", ".join(run_ids))
    return ensemble_id
