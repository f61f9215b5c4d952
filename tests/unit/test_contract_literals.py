"""Each name of the contract has one home: mura_core/contracts.py. A second spelling of an artifact
path, a metric or tag name, a signature or the default model drifts apart from the first (the run
layout and the metric names were once spelled in about ten files)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from mura_core import contracts

REPO = Path(__file__).resolve().parents[2]
# Names whose values are distinctive enough that any equal string literal is a second spelling.
WATCHED = (
    "MODEL_ARTIFACT",
    "MODEL_FILE",
    "CLASS_MAP_ARTIFACT",
    "CLASS_MAP_FILE",
    "SAVED_MODEL_ARTIFACT",
    "STUDY_KAPPA",
    "STUDY_AUROC",
    "VALIDATION_SUCCESS_TAG",
    "DEFAULT_MODEL",
    "DEFAULT_CHAMPION",
    "SERVING_SIGNATURE",
    "PIXELS_SIGNATURE",
    "INPUT_IMAGE_BYTES",
    "WARMUP_ASSET",
    "CLASS_MAP_ASSET",
    "STABLE",
    "CANARY",
    "GATE_STATUS_TAG",
    "GATE_REASON_TAG",
    "GATE_CHAMPION_TAG",
    "GATE_SIGNATURE_TAG",
    "CARD_TAG",
)
# The same spelling for another thing: the manifest's file-size column, numpy's sort kind, the folder
# a model is saved into inside a temporary directory under another name is not one.
OTHER_MEANINGS = {
    ("pipelines/validation", contracts.INPUT_IMAGE_BYTES),  # the manifest's column of file sizes
}


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            if isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def _keyword_values(tree: ast.AST) -> set[int]:
    """String arguments such as numpy's `kind="stable"`: not the serving label."""
    return {
        id(keyword.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        for keyword in node.keywords
        if keyword.arg == "kind"
    }


def second_spellings() -> list[str]:
    values = {getattr(contracts, name): name for name in WATCHED}
    found = []
    for folder in ("mura_core", "pipelines", "serving", "dags"):
        for path in sorted((REPO / folder).rglob("*.py")):
            relative = path.relative_to(REPO).as_posix()
            if relative == "mura_core/contracts.py":
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            skipped = _docstrings(tree) | _keyword_values(tree)
            for node in ast.walk(tree):
                if (
                    isinstance(node, ast.Constant)
                    and isinstance(node.value, str)
                    and node.value in values
                    and id(node) not in skipped
                    and not any(
                        relative.startswith(where) and node.value == value for where, value in OTHER_MEANINGS
                    )
                ):
                    found.append(
                        f"{relative}:{node.lineno}: {node.value!r} is contracts.{values[node.value]}"
                    )
    return found


def test_no_contract_name_is_spelled_a_second_time():
    assert second_spellings() == []


def test_the_scan_finds_a_second_spelling(tmp_path, monkeypatch):
    """The guard itself: a module that spells the model artifact again is named."""
    module = REPO / "pipelines" / "_second_spelling_probe.py"
    monkeypatch.setattr(
        Path, "rglob", lambda self, pattern: iter([module]) if self.name == "pipelines" else iter([])
    )
    monkeypatch.setattr(Path, "read_text", lambda self, encoding=None: 'PATH = "model/model.keras"\n')
    assert second_spellings() == [
        "pipelines/_second_spelling_probe.py:1: 'model/model.keras' is contracts.MODEL_ARTIFACT"
    ]


@pytest.mark.parametrize("name", WATCHED)
def test_each_watched_name_is_in_the_contract(name):
    assert isinstance(getattr(contracts, name), str)


def test_no_default_port_or_request_limit_is_spelled_outside_its_home():
    """The ports were written in five places and the 64 MiB limit in three: settings.py holds the
    ports, params.yaml serving.max_request_bytes the limit (the gateway and the client read it)."""
    from mura_core.config import load_config
    from mura_core.settings import MLFLOW_PORT, SERVING_GRPC_PORT, SERVING_REST_PORT

    numbers = {SERVING_GRPC_PORT, SERVING_REST_PORT, MLFLOW_PORT, load_config().serving.max_request_bytes}
    found = []
    for folder in ("mura_core", "pipelines", "serving", "dags"):
        for path in sorted((REPO / folder).rglob("*.py")):
            relative = path.relative_to(REPO).as_posix()
            if relative == "mura_core/settings.py":
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Constant) and type(node.value) is int and node.value in numbers:
                    found.append(f"{relative}:{node.lineno}: {node.value}")
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and "64m" == node.value:
                    found.append(f"{relative}:{node.lineno}: {node.value!r}")
    assert found == []


def test_no_function_of_the_logic_layers_or_dags_runs_past_60_lines():
    """The limit was 80 lines and skipped dags/; twenty functions of 61-87 lines (the retrain DAG, the
    demo, external validation, the gate, ...) were split where a reader wants names for the parts."""
    long = [
        f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for folder in ("mura_core", "pipelines", "serving", "dags")
        for path in sorted((REPO / folder).rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno + 1 > 60
    ]
    assert long == []
