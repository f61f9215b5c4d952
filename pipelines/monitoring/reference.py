"""The reference a release is compared with: a sample of the training images a model was fitted on,
profiled and embedded by that model, stored with its run when it is evaluated (the data folder holds
the next release by the time anyone monitors)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from mura_core.errors import DataError

PROFILE_ARTIFACT = "monitoring/reference_profile.parquet"
EMBEDDINGS_ARTIFACT = "monitoring/reference_embeddings.npy"


def profile_with_embeddings(model, rows: pd.DataFrame, data_root: Path, limit: int, seed: int):
    """(image profile, embeddings) of at most `limit` images of `rows`, whole studies together."""
    from pipelines.monitoring.embeddings import image_embeddings
    from pipelines.monitoring.profile import image_profile, sample_rows

    sample = sample_rows(rows, limit, seed)
    profile = image_profile(sample, data_root)
    return profile, image_embeddings(model, data_root, list(sample["image_path"]))


def store_reference(
    client, run_id: str, model, manifest: pd.DataFrame, data_root: Path, limit: int, seed: int
) -> int:
    """Profile and embed the run's training images and log both to the run; how many images."""
    rows = manifest[manifest["split"] == "train"]
    if rows.empty:
        return 0
    profile, embeddings = profile_with_embeddings(model, rows, data_root, limit, seed)
    with tempfile.TemporaryDirectory() as folder:
        profile.to_parquet(Path(folder) / "reference_profile.parquet", index=False)
        np.save(Path(folder) / "reference_embeddings.npy", embeddings)
        client.log_artifacts(run_id, folder, artifact_path="monitoring")
    return len(profile)


def load_reference(client, run_id: str, folder: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """The stored reference of a run; DataError saying how to make one when it has none."""
    from mlflow.exceptions import MlflowException

    try:
        profile = client.download_artifacts(run_id, PROFILE_ARTIFACT, str(folder))
        embeddings = client.download_artifacts(run_id, EMBEDDINGS_ARTIFACT, str(folder))
    except (MlflowException, OSError):
        raise DataError(
            f"run {run_id} holds no {PROFILE_ARTIFACT}: it was evaluated before monitoring existed; "
            f"evaluate it again (`mura evaluate {run_id}`) to store the reference"
        ) from None
    return pd.read_parquet(profile), np.load(embeddings)


def record_reference(run_id: str, data_root: Path | str | None = None, manifest=None) -> int:
    """Store the reference of a trained run (its model, its training rows; `data_root` default: the
    run's `data.root` tag); how many images. Runs right after evaluation, while the data is there."""
    from mlflow.tracking import MlflowClient

    from mura_core.config import load_config
    from pipelines.evaluation import download_model, run_manifest
    from pipelines.training import load_model

    client = MlflowClient()
    params = load_config().monitor
    root = Path(data_root or client.get_run(run_id).data.tags.get("data.root", ""))
    if not root.is_dir():
        raise DataError(f"data root {root} not found; pass the folder holding MURA-v1.1/")
    with tempfile.TemporaryDirectory() as folder:
        model_path, _, _ = download_model(run_id, Path(folder))
        frame = run_manifest(run_id, manifest)
        model = load_model(model_path)
        return store_reference(client, run_id, model, frame, root, params.reference_images, params.seed)
