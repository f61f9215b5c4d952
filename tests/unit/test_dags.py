"""DAG integrity: the DAG folder parses without heavy imports, with the shape the platform relies on."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pipelines.settings import get_settings

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
        "tasks": {task.task_id: {"queue": task.queue, "pool": task.pool, "retries": task.retries}
                  for task in dag.tasks},
    }
print(json.dumps({"errors": {k: str(v) for k, v in bag.import_errors.items()}, "heavy": heavy, "dags": dags}))
"""


@pytest.fixture(scope="module")
def parsed(tmp_path_factory):
    """The DAG folder as Airflow's DagBag sees it, parsed in a clean process."""
    home = tmp_path_factory.mktemp("airflow_home")
    env = {"AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "PATH": "/usr/bin:/bin"}
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
    assert set(parsed["dags"]) == {"mura_retrain", "mura_deploy"}


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
        "evaluate",
        "select_and_register",
        "gate",
        "deploy",
    ]
    assert tasks["train"]["queue"] == "gpu"
    assert all(task["queue"] != "gpu" for name, task in tasks.items() if name != "train")
    assert tasks["pull_data"]["pool"] == "mura_dvc"
    assert tasks["validate_data"]["retries"] == 0, "a data failure is not transient: no retry"
    assert all(task["retries"] >= 1 for name, task in tasks.items() if name != "validate_data")


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
        "data_rev",
        "auto_promote",
    }
    assert params["preset"] == "cpu_smoke" and params["auto_promote"] is False


def test_form_choices_match_the_zoo_tasks_and_presets():
    from pipelines.contracts import parse_task
    from pipelines.orchestration import ARCHITECTURE_CHOICES, PRESET_CHOICES, TASK_CHOICES
    from pipelines.settings import load_params
    from pipelines.training.zoo import ARCHITECTURES

    assert ARCHITECTURE_CHOICES == list(ARCHITECTURES)
    assert PRESET_CHOICES == sorted(load_params()["presets"])
    assert {parse_task(name).model_name for name in TASK_CHOICES} >= {
        "mura_binary",
        "mura_14cls",
        "mura_binary_elbow",
    }


def test_plan_candidates_resolves_overrides_and_refuses_bad_ones():
    from pipelines.errors import ConfigError
    from pipelines.orchestration import plan_candidates

    params = {
        "preset": "cpu_smoke",
        "architectures": ["baseline_cnn", "densenet121"],
        "image_size": 96,
        "epochs": None,
    }
    candidates = plan_candidates(params, {"manifest_path": "m"}, {"success": True})
    assert [c["overrides"]["architectures"] for c in candidates] == [["baseline_cnn"], ["densenet121"]]
    assert candidates[0]["overrides"]["image_size"] == [96, 96] and "epochs" not in candidates[0]["overrides"]
    with pytest.raises(ConfigError, match="unknown architecture"):
        plan_candidates({"preset": "cpu_smoke", "architectures": ["vgg99"]}, {}, {})


def test_best_candidate_is_the_highest_study_kappa_and_undefined_ranks_last():
    from pipelines.errors import ConfigError
    from pipelines.orchestration import best_candidate

    candidates = [
        {"arch": "a", "eval": {"eval.study_kappa": 0.4}},
        {"arch": "b", "eval": {"eval.study_kappa": 0.7}},
        {"arch": "c", "eval": {"eval.study_kappa": None}},
        {"arch": "d", "eval": {}},
        {"arch": "e", "eval": {"eval.study_kappa": float("nan")}},
    ]
    assert best_candidate(candidates)["arch"] == "b"
    assert best_candidate(candidates[2:] + candidates[:1])["arch"] == "a"
    with pytest.raises(ConfigError):
        best_candidate([])
