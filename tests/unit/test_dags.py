"""DAG integrity: the DAG folder parses without heavy imports, with the shape the platform relies on."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mura_core.contracts import DVC_POOL
from mura_core.settings import get_settings
from mura_core.stages import (
    Candidate,
    DataVersion,
    Deployment,
    Evaluation,
    GateVerdict,
    LiveCheck,
    Manifest,
    ModelServing,
    Reconciliation,
    ShadowComparison,
    TrainedRun,
    TrainResult,
    Validation,
)

PROBE = r"""
import json, sys, time
started = time.perf_counter()
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
heavy = sorted({name.split(".")[0] for name in sys.modules} & {"tensorflow", "keras", "mlflow", "great_expectations", "dvc"})
dags = {}
for dag_id, dag in bag.dags.items():
    dags[dag_id] = {
        "tags": sorted(dag.tags), "catchup": dag.catchup, "doc": bool(dag.doc_md),
        "params": {key: param.value for key, param in dag.params.items()},
        "timetable": type(dag.timetable).__name__,
        "assets": sorted(asset.uri for asset in dag.timetable.asset_condition.objects)
        if getattr(dag.timetable, "asset_condition", None) is not None else [],
        "outlets": {task.task_id: sorted(o.uri for o in task.outlets if hasattr(o, "uri")) for task in dag.tasks},
        "tasks": {task.task_id: {"queue": task.queue, "pool": task.pool, "retries": task.retries,
                                 "upstream": sorted(task.upstream_task_ids)}
                  for task in dag.tasks},
    }
print(json.dumps({"errors": {k: str(v) for k, v in bag.import_errors.items()}, "heavy": heavy, "dags": dags}))
"""


@pytest.fixture(scope="module")
def parsed(tmp_path_factory):
    """The DAG folder as Airflow's DagBag sees it, parsed in a clean process."""
    return _parse_dags(tmp_path_factory.mktemp("airflow_home"))


def _parse_dags(home, **environment: str) -> dict:
    env = {"AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "PATH": "/usr/bin:/bin"}
    env.update(environment)
    dags = get_settings().repo_root / "dags"
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(dags)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_dag_folder_parses_without_errors_or_heavy_imports(parsed):
    assert parsed["errors"] == {}
    assert parsed["heavy"] == [], "DAG files must import TensorFlow/MLflow/GX/DVC inside tasks only"
    assert set(parsed["dags"]) == {
        "mura_retrain",
        "mura_deploy",
        "mura_monitor",
        "mura_pacs_inference",
        "mura_external_validation",
    }


def test_external_validation_checks_the_gate_then_measures_and_its_form_refuses_a_path_as_site(parsed):
    import re

    from pipelines.external.sites import SITE_NAME

    dag = parsed["dags"]["mura_external_validation"]
    assert list(dag["tasks"]) == ["check_gate", "validate"] and dag["timetable"] == "NullTimetable"
    assert all(task["retries"] >= 1 for task in dag["tasks"].values())
    from pipelines.flows.external import SITE_PATTERN

    assert SITE_PATTERN == SITE_NAME.pattern  # the form and the CLI accept the same names
    assert re.match(SITE_PATTERN, "st-olav") and not re.match(SITE_PATTERN, "../data")


def test_pacs_inference_polls_finds_then_answers_and_retries(parsed):
    dag = parsed["dags"]["mura_pacs_inference"]
    assert set(dag["tasks"]) == {"find_new_studies", "answer_studies"} and "pacs" in dag["tags"]
    assert dag["timetable"] == "CronTriggerTimetable" and not dag["catchup"] and dag["doc"]
    assert all(task["retries"] >= 1 for task in dag["tasks"].values())


def test_the_monitor_runs_daily_and_on_new_data_and_asks_for_retrains_through_an_asset(parsed):
    from mura_core.contracts import DATA_ASSET_URI, RETRAIN_NEEDED_URI

    monitor, retrain = parsed["dags"]["mura_monitor"], parsed["dags"]["mura_retrain"]
    assert monitor["timetable"] == "AssetOrTimeSchedule" and monitor["assets"] == [DATA_ASSET_URI]
    assert list(monitor["tasks"]) == ["pull_data", "build_manifest", "check", "request_retrain"]
    assert monitor["outlets"]["request_retrain"] == [RETRAIN_NEEDED_URI]
    assert monitor["tasks"]["pull_data"]["pool"] == DVC_POOL
    assert all(task["retries"] >= 1 for task in monitor["tasks"].values())
    assert retrain["assets"] == [RETRAIN_NEEDED_URI] and retrain["outlets"]["pull_data"] == [DATA_ASSET_URI]


def test_retrain_shape_queue_pool_and_retries(parsed):
    retrain = parsed["dags"]["mura_retrain"]
    assert {"mura", "training"} <= set(retrain["tags"]) and retrain["catchup"] is False and retrain["doc"]
    tasks = retrain["tasks"]
    assert list(tasks) == [
        "pull_data",
        "build_manifest",
        "validate_data",
        "plan_candidates",
        "train",
        "combine_members",
        "evaluate",
        "select_and_register",
        "gate",
        "approve",
        "deploy",
    ]
    assert tasks["train"]["queue"] == "gpu"
    assert all(task["queue"] != "gpu" for name, task in tasks.items() if name != "train")
    assert tasks["pull_data"]["pool"] == DVC_POOL
    assert tasks["validate_data"]["retries"] == 0, "a data failure is not transient: no retry"
    assert all(task["retries"] >= 1 for name, task in tasks.items() if name != "validate_data")
    # The approve task gets the gate's verdict as a TaskFlow argument (its upstream by that alone).
    assert tasks["approve"]["upstream"] == ["gate"] and tasks["deploy"]["upstream"] == ["approve"]


def test_the_approval_travels_as_one_type_in_the_gate_s_verdict():
    """The approval had three spellings on its way down (a mode string, auto_promote, for_review), so
    an impossible pair could be written: one enum now, carried by the verdict through XCom."""
    from mura_core.contracts import Approval
    from pipelines.flows.retrain import approval_mode

    verdict = GateVerdict("mura_binary", 4, "passed", "ok", 3, ["challenger"], approval=Approval.REQUIRED)
    wire = json.loads(json.dumps(verdict.to_xcom()))
    assert wire["approval"] == "required" and GateVerdict.from_xcom(wire) == verdict
    assert GateVerdict.from_xcom(wire).approval is Approval.REQUIRED
    assert approval_mode({"approval": "off"}) is Approval.OFF
    with pytest.raises(ValueError):
        GateVerdict.from_xcom({**wire, "approval": "sometimes"})


def test_retrain_params_are_the_design_names(parsed):
    params = parsed["dags"]["mura_retrain"]["params"]
    assert set(params) == {
        "preset",
        "task",
        "architectures",
        "epochs",
        "image_size",
        "batch_size",
        "learning_rate",
        "fine_tune_layers",
        "augment",
        "ensemble",
        "data_rev",
        "approval",
    }
    assert params["preset"] == "cpu_smoke" and params["approval"] == "required"


def test_gate_approval_in_params_yaml_is_the_dag_form_s_default(tmp_path):
    """`gate.auto_promote: true` used to reach `mura register` but never a DAG run: the form's default
    was a hard-coded False, which the gate task always passed on. Its successor, gate.approval, is the
    form's default."""
    import yaml

    params = yaml.safe_load((get_settings().repo_root / "params.yaml").read_text())
    params["gate"]["approval"] = "auto"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    home = tmp_path / "airflow_home"
    home.mkdir()
    parsed = _parse_dags(home, MURA_PARAMS_FILE=str(tmp_path / "params.yaml"))
    assert parsed["dags"]["mura_retrain"]["params"]["approval"] == "auto"


def test_form_choices_match_the_zoo_tasks_and_presets():
    from mura_core.config import load_config
    from mura_core.contracts import parse_task
    from pipelines.flows.retrain import TASK_CHOICES, preset_choices

    assert preset_choices() == sorted(load_config().presets)
    assert {parse_task(name).model_name for name in TASK_CHOICES} >= {
        "mura_binary",
        "mura_14cls",
        "mura_binary_elbow",
    }


MANIFEST = Manifest(
    path="m.parquet",
    data_root="data",
    rows=10,
    problems={},
    data_version=DataVersion(dvc_md5="abc.dir", rev="r", data_rev="d", nfiles=10),
)
VALIDATION = Validation(
    success=True,
    summary="Data validation passed: 0 of 40 rules failed on 10 images in 4 studies.",
    rows=10,
    studies=4,
    rules_checked=40,
    rules_failed=0,
    failed_rules=[],
    failures=[],
    data_docs=None,
    data_version="dvc-abc",
)


def test_plan_candidates_resolves_overrides_and_refuses_bad_ones():
    from mura_core.errors import ConfigError
    from pipelines.flows.retrain import plan_candidates

    params = {
        "preset": "cpu_smoke",
        "architectures": ["baseline_cnn", "densenet121"],
        "image_size": 96,
        "epochs": None,
    }
    candidates = plan_candidates(params, MANIFEST, VALIDATION)
    assert [c.arch for c in candidates] == ["baseline_cnn", "densenet121"]
    assert [c.overrides["architectures"] for c in candidates] == [["baseline_cnn"], ["densenet121"]]
    assert candidates[0].overrides["image_size"] == [96, 96] and "epochs" not in candidates[0].overrides
    members = plan_candidates({"preset": "cpu_smoke", "ensemble": 3}, MANIFEST, VALIDATION)
    assert [(c.arch, c.member, c.ensemble, c.overrides["seed"]) for c in members] == [
        ("baseline_cnn", 0, 3, 42),
        ("baseline_cnn", 1, 3, 43),
        ("baseline_cnn", 2, 3, 44),
    ]
    assert all(c.overrides["ensemble"] == 1 for c in members)  # each member trains one model
    with pytest.raises(ConfigError, match="unknown architecture"):
        plan_candidates({"preset": "cpu_smoke", "architectures": ["vgg99"]}, MANIFEST, VALIDATION)


@pytest.mark.parametrize(
    ("run_type", "conf", "expected"),
    [
        ("asset_triggered", {}, "cpu_smoke"),  # the monitor asked: params.yaml monitor.retrain_preset
        ("asset_triggered", None, "cpu_smoke"),
        ("manual", {}, "mura_paper"),  # `mura retrain` without --preset: the form's default
        ("manual", {"preset": "mura_paper"}, "mura_paper"),  # the UI form sends its default in the conf
        ("asset_triggered", {"preset": "ci_tiny"}, "ci_tiny"),  # a named preset wins either way
        ("manual", {"preset": "ci_tiny"}, "ci_tiny"),
        (None, None, "mura_paper"),  # no run facts (an older DAG file): as before
    ],
)
def test_a_retrain_the_monitor_asked_for_trains_the_monitor_preset_not_the_form_default(
    run_type, conf, expected, monkeypatch, caplog
):
    """A run the monitor's Asset started, with no preset in its conf, trains monitor.retrain_preset.

    Any other run trains its conf's preset, else the form's. Compose's form default is mura_paper
    (five DenseNet-169 at 320 px): not what an automatic run should spend unasked."""
    from mura_core.config import load_config
    from pipelines.flows.retrain import plan_candidates

    monkeypatch.setenv("MURA_DEFAULT_PRESET", "mura_paper")
    assert load_config().monitor.retrain_preset == "cpu_smoke"
    params = {"preset": "mura_paper", "epochs": 2}  # Airflow fills params with the form's defaults
    caplog.set_level("INFO", logger="pipelines")
    candidates = plan_candidates(params, MANIFEST, VALIDATION, "run-1", run_type=run_type, conf=conf)
    assert {candidate.preset for candidate in candidates} == {expected}
    assert all(
        candidate.overrides["epochs"] == 2 for candidate in candidates
    )  # the form's fields still count
    asked = [
        record.getMessage() for record in caplog.records if "asked by the monitor" in record.getMessage()
    ]
    if run_type == "asset_triggered" and not conf:
        assert asked and "preset cpu_smoke (params.yaml monitor.retrain_preset)" in asked[0]
    else:
        assert asked == []


def test_the_dag_passes_its_run_type_and_conf_to_the_preset_decision():
    source = (get_settings().repo_root / "dags" / "mura_retrain.py").read_text()
    assert "run_type=dag_run.run_type" in source and "conf=dict(dag_run.conf or {})" in source


def test_the_run_type_may_be_airflows_enum_or_its_value():
    import enum

    from pipelines.flows.retrain import retrain_preset

    class DagRunType(str, enum.Enum):  # noqa: UP042 - airflow.sdk's, without importing Airflow
        ASSET_TRIGGERED = "asset_triggered"

    assert retrain_preset({"preset": "mura_paper"}, DagRunType.ASSET_TRIGGERED, {}) == "cpu_smoke"
    assert retrain_preset({"preset": "mura_paper"}, "asset_triggered", {}) == "cpu_smoke"
    assert retrain_preset({"preset": "mura_paper"}, "scheduled", {}) == "mura_paper"


def test_an_unknown_monitor_retrain_preset_fails_at_config_load_naming_the_key_and_the_presets(tmp_path):
    from mura_core.config import load_config
    from mura_core.errors import ConfigError

    source = (get_settings().repo_root / "params.yaml").read_text()
    assert "  retrain_preset: cpu_smoke" in source
    broken = tmp_path / "params.yaml"
    broken.write_text(source.replace("  retrain_preset: cpu_smoke", "  retrain_preset: gpu_paper"))
    with pytest.raises(ConfigError) as caught:
        load_config(broken)
    assert "monitor.retrain_preset='gpu_paper'" in str(caught.value)
    assert "ci_tiny, cpu_smoke, mura_paper" in str(caught.value)


def _evaluation(arch: str, metrics: dict) -> Evaluation:
    candidate = Candidate("cpu_smoke", arch, {"architectures": [arch]}, MANIFEST, VALIDATION)
    trained = TrainResult(candidate, TrainedRun(f"run-{arch}", arch, "binary", "mura_binary"))
    return Evaluation(trained, metrics)


def test_single_members_pass_through_combine_unchanged():
    from pipelines.flows.retrain import combine_members

    trained = [_evaluation(arch, {}).trained for arch in ("baseline_cnn", "densenet121")]
    assert combine_members(trained) == trained


def test_best_candidate_is_the_highest_holdout_kappa_not_valid():
    from pipelines.flows.retrain import best_candidate

    candidates = [
        _evaluation("valid_best", {"eval.study_kappa": 0.9, "holdout.study_kappa": 0.5}),
        _evaluation("holdout_best", {"eval.study_kappa": 0.6, "holdout.study_kappa": 0.7}),
    ]
    assert best_candidate(candidates).trained.candidate.arch == "holdout_best"


def test_best_candidate_is_the_highest_study_kappa_and_undefined_ranks_last():
    from mura_core.errors import ConfigError
    from pipelines.flows.retrain import best_candidate

    candidates = [
        _evaluation("a", {"eval.study_kappa": 0.4}),
        _evaluation("b", {"eval.study_kappa": 0.7}),
        _evaluation("c", {"eval.study_kappa": None}),
        _evaluation("d", {}),
        _evaluation("e", {"eval.study_kappa": float("nan")}),
    ]
    assert best_candidate(candidates).trained.candidate.arch == "b"
    assert best_candidate(candidates[2:] + candidates[:1]).trained.candidate.arch == "a"
    with pytest.raises(ConfigError):
        best_candidate([])


def test_stage_results_round_trip_through_xcom_json_and_refuse_unknown_keys():
    evaluation = _evaluation("b", {"eval.study_kappa": 0.7})
    wire = json.loads(json.dumps(evaluation.to_xcom()))
    assert Evaluation.from_xcom(wire) == evaluation
    assert Evaluation.from_xcom(wire).trained.candidate.manifest.data_version.dvc_md5 == "abc.dir"
    wire["trained"]["candidate"]["manifest"]["path_typo"] = "x"
    with pytest.raises(TypeError, match="path_typo"):
        Evaluation.from_xcom(wire)


def test_optional_and_listed_nested_stages_come_back_as_stages():
    """A stage inside `X | None` or `list[X]` was left a dict by from_xcom: `.changed` then failed."""
    served = ModelServing("mura_binary", True, labels={"stable": 4}, served={"mura_binary": {"stable": 4}})
    deployment = Deployment("mura_binary", 4, True, "gate passed", Reconciliation([served], changed=True))
    back = Deployment.from_xcom(json.loads(json.dumps(deployment.to_xcom())))
    assert back == deployment and back.reconciliation.models[0].changed is True
    live = LiveCheck(studies=3, comparison=ShadowComparison(3, 0.1, [-0.1, 0.3], 0.0, [-0.2, 0.2], False))
    wire = json.loads(json.dumps(live.to_xcom()))
    assert LiveCheck.from_xcom(wire).comparison.kappa_change_ci == [-0.1, 0.3]
    assert Deployment.from_xcom({**deployment.to_xcom(), "reconciliation": None}).reconciliation is None


def test_deploy_acts_on_the_verdict_it_receives(monkeypatch):
    from pipelines.flows import retrain as flow

    reconciled = []
    monkeypatch.setattr(
        flow,
        "reconcile_serving",
        lambda models=None: reconciled.append(models) or Reconciliation([], changed=False),
    )
    failed = GateVerdict("mura_binary", 3, "failed", "kappa below floor", None, [])
    assert flow.deploy(failed).deployed is False and reconciled == []
    passed = GateVerdict("mura_binary", 4, "passed", "ok", 3, ["challenger"])
    result = flow.deploy(passed)
    assert result.deployed is True and reconciled == [["mura_binary"]]
    assert Deployment.from_xcom(result.to_xcom()) == result


def test_the_compose_init_script_creates_the_contract_pool():
    script = (get_settings().repo_root / "infra" / "airflow" / "init.sh").read_text()
    assert f"airflow pools set {DVC_POOL} 1" in script


def test_a_retried_select_and_register_exports_only_a_run_not_registered_yet(monkeypatch):
    """Exporting a registered run again would change the bytes its version's hash was taken of."""
    from pipelines.flows import retrain as flow
    from pipelines.registry import registration

    registered: dict[str, int] = {}
    exported: list[str] = []

    def register(run_id):
        from mura_core.stages import Registration

        reused = run_id in registered
        version = registered.setdefault(run_id, len(registered) + 1)
        return Registration("mura_binary", version, run_id, "h", "s", reused=reused)

    monkeypatch.setattr(registration, "register_version", register)
    monkeypatch.setattr(registration, "registered_version", lambda run_id, model: registered.get(run_id))
    monkeypatch.setattr(flow, "export_candidate", lambda trained: exported.append(trained.run_id))
    candidates = [_evaluation("a", {"eval.study_kappa": 0.7})]
    first = flow.select_and_register(candidates)
    again = flow.select_and_register(candidates)
    assert exported == [first.run_id] and again.version == first.version == 1
    assert (first.reused, again.reused) == (False, True)


def test_the_form_offers_approval_auto_only_where_params_yaml_allows_it():
    """Any Airflow user who may trigger could skip the reviewer by choosing auto: the form (which
    Airflow checks a triggered run against) offers auto only where params.yaml allows it, and the run
    names who chose its approval."""
    from mura_core.errors import ConfigError
    from pipelines.flows.retrain import approval_choices, approval_chooser
    from pipelines.retrain_form import check_conf, retrain_form

    assert approval_choices() == ("required", "off")  # the shipped params.yaml
    form = retrain_form("cpu_smoke", ["cpu_smoke"], "required", approval_choices())
    with pytest.raises(ConfigError, match="approval='auto'"):
        check_conf({"approval": "auto"}, form)
    assert check_conf({"approval": "off"}, form) == {"approval": "off"}
    allowed = retrain_form("cpu_smoke", ["cpu_smoke"], "required", ("required", "auto", "off"))
    assert check_conf({"approval": "auto"}, allowed) == {"approval": "auto"}
    assert approval_chooser({"approval": "auto"}, "admin") == "admin (the run's approval field)"
    assert approval_chooser({}, "admin") == "params.yaml gate.approval"


def test_an_old_client_s_auto_promote_conf_still_decides_the_approval():
    """The form fills `approval` with its default in the run's params, so an older client's conf
    `auto_promote: true` was read as approval required (a 3-day wait); the conf decides now."""
    from pipelines.flows.retrain import approval_mode

    params = {"preset": "ci_tiny", "approval": "required"}  # what Airflow hands the task
    assert approval_mode(params, {"auto_promote": True}) == "auto"
    assert approval_mode(params, {"auto_promote": False}) == "off"
    assert approval_mode(params, {"auto_promote": True, "approval": "required"}) == "required"
    assert approval_mode({**params, "approval": "off"}, {"approval": "off"}) == "off"
