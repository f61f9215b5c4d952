"""
### mura_retrain

Retrain MURA abnormality models end to end: pull the DVC-versioned data, build the manifest,
validate it with Great Expectations (a failure stops the run and nothing is registered), train
one candidate per requested architecture on the `gpu` queue (an ensemble: one mapped task per
member, then one model averaging them), fit each one's operating point on the holdout studies and
evaluate it on valid at study level the way the MURA paper does (kappa and AUROC with bootstrap
intervals), register the best by holdout study kappa in MLflow, gate it against the current
champion (paired bootstrap on the same holdout studies), ask a reviewer whether a passing challenger
becomes champion (task **approve**, with the form's *Approval* `required`: the question, with the
paired comparison, the parts that moved and links to the evidence, waits under *Required actions* for
the Airflow user `reviewer`; `auto` promotes at once, `off` asks nobody), and reconcile TF Serving with
the registry. A version that fails the gate ends the run before any question is asked; a kept or
timed-out question leaves the version challenger and the run green.

It also runs when `mura_monitor` finds drift or a live performance drop on a new data version
(Asset `mura://monitor/retrain-needed`), with the form's defaults except the preset: such a run
trains `params.yaml` `monitor.retrain_preset` (a cheap one unless the site sets its own), and
its `plan_candidates` log says so.

Trigger it from the UI with the form (**Trigger** on this page) or over the REST API with a `conf`
of the same names. Every override is optional: the preset in `params.yaml` fills the rest.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Asset, AssetAlias, Param, dag, task

from pipelines.flows.retrain import (
    APPROVE_TASK,
    DATA_ASSET_URI,
    DVC_POOL,
    GPU_QUEUE,
    RETRAIN_DAG,
    RETRAIN_NEEDED_URI,
    approval_choices,
    approval_default,
    default_preset,
    preset_choices,
    retrain_form,
)
from pipelines.flows.retrain_approval import ReviewerApproval

DATA_ASSET = Asset(DATA_ASSET_URI)
MODELS_ALIAS = AssetAlias("mura-registered-models")

# The trigger form; `mura retrain` is built from the same fields and checks them the same way.
PARAMS = {
    field.name: Param(field.default, **field.schema)
    for field in retrain_form(default_preset(), preset_choices(), approval_default(), approval_choices())
}


# Each task: typed stages in pipelines.flows.retrain, dicts only here at the XCom boundary. The tasks
# are defined here and called inside the DAG below, which gives them their order and dependencies.
@task(pool=DVC_POOL, outlets=[DATA_ASSET])
def pull_data(params=None) -> dict:
    from pipelines.flows import retrain as flow

    return flow.pull_data(params.get("data_rev")).to_xcom()


@task
def build_manifest(data_version: dict) -> dict:
    from pipelines.flows import retrain as flow

    return flow.build_manifest(flow.DataVersion.from_xcom(data_version)).to_xcom()


@task(retries=0)
def validate_data(manifest: dict) -> dict:
    from pipelines.flows import retrain as flow

    return flow.validate_data(flow.Manifest.from_xcom(manifest)).to_xcom()


@task
def plan_candidates(manifest: dict, validation: dict, params=None, run_id=None, dag_run=None) -> list[dict]:
    from pipelines.flows import retrain as flow

    planned = flow.plan_candidates(
        dict(params),
        flow.Manifest.from_xcom(manifest),
        flow.Validation.from_xcom(validation),
        dag_run_id=run_id,
        run_type=dag_run.run_type,  # the monitor's Asset: asset_triggered (the preset may differ)
        conf=dict(dag_run.conf or {}),
    )
    return [candidate.to_xcom() for candidate in planned]


@task(queue=GPU_QUEUE)
def train(candidate: dict) -> dict:
    from pipelines.flows import retrain as flow

    return flow.train_candidate(flow.Candidate.from_xcom(candidate)).to_xcom()


@task
def combine_members(trained: list[dict]) -> list[dict]:
    from pipelines.flows import retrain as flow

    results = [flow.TrainResult.from_xcom(one) for one in trained]
    return [result.to_xcom() for result in flow.combine_members(results)]


@task
def evaluate(trained: dict) -> dict:
    from pipelines.flows import retrain as flow

    return flow.evaluate_candidate(flow.TrainResult.from_xcom(trained)).to_xcom()


@task(outlets=[MODELS_ALIAS])
def select_and_register(evaluated: list[dict], outlet_events=None) -> dict:
    from pipelines.flows import retrain as flow

    registered = flow.select_and_register([flow.Evaluation.from_xcom(one) for one in evaluated])
    outlet_events[MODELS_ALIAS].add(Asset(f"mura://models/{registered.model}"))
    return registered.to_xcom()


@task
def gate(registered: dict, params=None, dag_run=None) -> dict:
    from pipelines.flows import retrain as flow

    conf = dict(dag_run.conf or {})
    approval = flow.approval_mode(dict(params), conf)
    chooser = flow.approval_chooser(conf, getattr(dag_run, "triggering_user_name", None))
    registration = flow.Registration.from_xcom(registered)
    verdict = flow.gate(registration, approval, dag_run.run_id, chooser)
    return verdict.to_xcom()


@task
def deploy(verdict: dict) -> dict:
    from pipelines.flows import retrain as flow

    return flow.deploy(flow.GateVerdict.from_xcom(verdict)).to_xcom()


@dag(
    dag_id=RETRAIN_DAG,
    schedule=[Asset(RETRAIN_NEEDED_URI)],  # the monitor asks (mura_monitor); people trigger it by hand
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["mura", "training"],
    params=PARAMS,
    doc_md=__doc__,
    default_args={"retries": 1, "retry_delay": pendulum.duration(seconds=30)},
)
def mura_retrain():
    manifest = build_manifest(pull_data())
    candidates = plan_candidates(manifest, validate_data(manifest))
    trained = combine_members(train.expand(candidate=candidates))
    evaluated = evaluate.expand(trained=trained)
    verdict = gate(select_and_register(evaluated))
    approve = ReviewerApproval(task_id=APPROVE_TASK, verdict=verdict)
    deploy(approve.output)


mura_retrain()
