"""Helpers of the registry world (the `world` fixture in conftest.py: a real `mlflow server`, the local
TF Serving on a models.config): training-like runs to register, the CLI in-process, what serves."""

from __future__ import annotations

import json

# MLflow caches the webhooks of each event for this long: a webhook created within the TTL of an
# earlier event of the same kind is not seen until the cache entry expires.
WEBHOOK_CACHE_TTL_S = 1


VERSIONED = {
    "data.md5": "abc123.dir",
    "data.versioned": "true",
    "data.dvc_md5": "abc123.dir",
    "data.rev": "v1",
    "code.git_sha": "0123456789abcdef",
    "code.dirty": "false",
}


def make_run(
    world,
    part: str | None,
    metrics: dict,
    seed: int,
    model=None,
    lineage: dict | None = None,
    holdout=None,
    task: str | None = None,
) -> str:
    """A finished training-like run: metrics, lineage tags, model/ artifacts and an exported tf_serving/
    (with `holdout`, a study table: the holdout predictions and operating point an evaluation stores)."""
    from mura_core.contracts import class_map
    from pipelines.export import export_run
    from serving.samples import sample_png, tiny_keras_model

    client = world["client"]
    task = task or (f"binary:XR_{part.upper()}" if part else "binary")
    run_id = client.create_run(
        world["experiment"],
        tags={"train.arch": "tiny", "train.task": task, **VERSIONED, **(lineage or {})},
    ).info.run_id
    for key, value in metrics.items():
        client.log_metric(run_id, key, value)
    folder = world["home"] / f"run-{run_id}" / "model"
    folder.mkdir(parents=True)
    (model or tiny_keras_model(task, (16, 16), seed=seed)).save(folder / "model.keras")
    (folder / "class_map.json").write_text(json.dumps(class_map(task, "tiny", (16, 16))))
    if holdout is not None:
        (folder / "operating_point.json").write_text(
            json.dumps(
                {"temperature": 1.0, "shift": 0.0, "threshold": 0.5, "method": "fitted", "studies": 120}
            )
        )
        holdout.to_csv(world["home"] / f"run-{run_id}" / "holdout_studies.csv", index=False)
        client.log_artifact(
            run_id, str(world["home"] / f"run-{run_id}" / "holdout_studies.csv"), "evaluation"
        )
    client.log_artifacts(run_id, str(folder), "model")
    export_run(run_id, sample_images=[sample_png(24, 24, seed=seed)])
    client.set_terminated(run_id)
    return run_id


def stable_version(world, model: str, label: str = "stable", server: str = "serving") -> int:
    """The version that answers a prediction through `label` on the serving process (or its replica)."""
    from serving.client import ServingClient
    from serving.samples import sample_png

    with ServingClient(world[server].grpc_target) as client:
        return client.predict_images([sample_png(30, 30)], model=model, label=label)[0]["version"]


def unlabelled_version(world, model: str) -> int:
    """The version answering a Predict that names no version nor label, sent with the official stubs."""
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    from serving.samples import sample_png

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.inputs["image_bytes"].CopyFrom(tf.make_tensor_proto([sample_png(30, 30)]))
    with grpc.insecure_channel(world["serving"].grpc_target) as channel:
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)
    return response.model_spec.version.value


def run_cli(argv: list[str], capsys) -> tuple[int, dict | str]:
    """Run `mura ...` in-process; (exit code, parsed --json output or stderr)."""
    from pipelines.cli import main

    capsys.readouterr()  # drop what earlier steps printed (MLflow prints run links)
    code = main(argv)
    captured = capsys.readouterr()
    return code, json.loads(captured.out) if code == 0 and "--json" in argv else (
        captured.out if code == 0 else captured.err
    )


def run_cli_alone(argv: list[str]) -> tuple[int, dict | str, set[str]]:
    """Run `mura ...` in a fresh process with the test's environment; (exit code, parsed --json output
    or stderr, the heavy packages it imported among tensorflow and keras)."""
    import subprocess
    import sys

    script = (
        "import json, sys\n"
        "from pipelines.cli import main\n"
        f"code = main({argv!r})\n"
        "print(json.dumps(sorted({'tensorflow', 'keras'} & set(sys.modules))), file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    *stderr, imported = done.stderr.strip().splitlines() or [""]
    heavy = set(json.loads(imported)) if imported.startswith("[") else {"(the process died)"}
    output = json.loads(done.stdout) if done.returncode == 0 and "--json" in argv else "\n".join(stderr)
    return done.returncode, output, heavy


def holdout_table(seed: int, missed: float = 0.0):
    """120 holdout wrist studies of a good model; `missed`: share of abnormal ones now called normal."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    labels = np.arange(120) % 2
    probability = np.clip(0.15 + 0.7 * labels + rng.normal(0, 0.12, 120), 0.01, 0.99)
    abnormal = np.flatnonzero(labels == 1)
    probability[abnormal[: int(missed * len(abnormal))]] = 0.05
    return pd.DataFrame(
        {
            "study_id": [f"XR_WRIST/patient{i:05d}/study1" for i in range(120)],
            "body_part": "XR_WRIST",
            "label": labels,
            "probability": probability,
            "raw_probability": probability,
        }
    )
