"""
### mura_retrain

Retrain MURA abnormality models end to end: pull the DVC-versioned data, build the manifest,
validate it with Great Expectations (a failure stops the run and nothing is registered), train
one candidate per requested architecture on the `gpu` queue, evaluate each at study level the way
the MURA paper does, register the best by study-level Cohen's kappa in MLflow, gate it against the
current champion, and reconcile TF Serving with the registry.

Trigger it from the UI with the form (**Trigger** on this page) or over the REST API with a `conf`
of the same names. Every override is optional: the preset in `params.yaml` fills the rest.
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import Asset, AssetAlias, Param, dag, task

from pipelines.orchestration import ARCHITECTURE_CHOICES, PRESET_CHOICES, TASK_CHOICES

DATA_ASSET = Asset("mura://data/MURA-v1.1")
MODELS_ALIAS = AssetAlias("mura-registered-models")
DVC_POOL = "mura_dvc"  # one slot: DVC's repository lock gives up after a few seconds
GPU_QUEUE = "gpu"

PARAMS = {
    "preset": Param(
        os.environ.get("MURA_DEFAULT_PRESET", "cpu_smoke"),
        type="string",
        enum=PRESET_CHOICES,
        title="Preset",
        description="Training recipe from params.yaml; the fields below override it.",
    ),
    "task": Param(
        None,
        type=["null", "string"],
        enum=[None, *TASK_CHOICES],
        title="Task",
        description="binary (all parts), binary:<XR_PART> (one study type) or 14cls.",
    ),
    "architectures": Param(
        None,
        type=["null", "array"],
        items={"type": "string", "enum": ARCHITECTURE_CHOICES},
        title="Architectures",
        description="One candidate is trained per architecture.",
    ),
    "epochs": Param(None, type=["null", "integer"], minimum=1, maximum=500, title="Epochs"),
    "image_size": Param(
        None,
        type=["null", "integer"],
        minimum=32,
        maximum=1024,
        title="Image size",
        description="Square input size in pixels.",
    ),
    "batch_size": Param(None, type=["null", "integer"], minimum=1, maximum=512, title="Batch size"),
    "learning_rate": Param(
        None, type=["null", "number"], exclusiveMinimum=0, maximum=1, title="Learning rate"
    ),
    "fine_tune_layers": Param(
        None,
        type=["null", "integer"],
        minimum=-1,
        title="Fine-tune layers",
        description="Top layers unfrozen in phase two (-1: all, 0: head only).",
    ),
    "augment": Param(
        None, type=["null", "boolean"], title="Augment", description="Flips, rotations, zoom, contrast."
    ),
    "data_rev": Param(
        None,
        type=["null", "string"],
        title="Data revision",
        description="Git revision of data.dvc to pull; empty for the current one.",
    ),
    "auto_promote": Param(
        False,
        type="boolean",
        title="Auto-promote",
        description="Make a version that passes the gate champion at once.",
    ),
}


@dag(
    dag_id="mura_retrain",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["mura", "training"],
    params=PARAMS,
    doc_md=__doc__,
    default_args={"retries": 1, "retry_delay": pendulum.duration(seconds=30)},
)
def mura_retrain():
    @task(pool=DVC_POOL, outlets=[DATA_ASSET])
    def pull_data(params=None) -> dict:
        from pipelines import orchestration

        return orchestration.pull_data(params.get("data_rev"))

    @task
    def build_manifest(data_version: dict) -> dict:
        from pipelines import orchestration

        return orchestration.build_manifest(data_version)

    @task(retries=0)
    def validate_data(manifest: dict) -> dict:
        from pipelines import orchestration

        return orchestration.validate_data(manifest)

    @task
    def plan_candidates(manifest: dict, validation: dict, params=None) -> list[dict]:
        from pipelines import orchestration

        return orchestration.plan_candidates(dict(params), manifest, validation)

    @task(queue=GPU_QUEUE)
    def train(candidate: dict) -> dict:
        from pipelines import orchestration

        return orchestration.train_candidate(candidate)

    @task
    def evaluate(trained: dict) -> dict:
        from pipelines import orchestration

        return orchestration.evaluate_candidate(trained)

    @task(outlets=[MODELS_ALIAS])
    def select_and_register(evaluated: list[dict], params=None, outlet_events=None) -> dict:
        from pipelines import orchestration

        registered = orchestration.select_and_register(list(evaluated), bool(params.get("auto_promote")))
        outlet_events[MODELS_ALIAS].add(Asset(f"mura://models/{registered['model_name']}"))
        return registered

    @task
    def gate(registered: dict) -> dict:
        from pipelines import orchestration

        return orchestration.gate(registered)

    @task
    def deploy(verdict: dict) -> dict:
        from pipelines import orchestration

        return orchestration.deploy(verdict)

    manifest = build_manifest(pull_data())
    candidates = plan_candidates(manifest, validate_data(manifest))
    evaluated = evaluate.expand(trained=train.expand(candidate=candidates))
    deploy(gate(select_and_register(evaluated)))


mura_retrain()
