"""The import graph has no back-edge: each layer imports only itself and the layers below it.

Read from the source with `ast` (imports inside functions count too), so it fails the moment a module
reaches upwards, e.g. serving importing pipelines.training, or data importing the registry.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from mura_core.settings import get_settings

ROOT = get_settings().repo_root
# Lowest first. The foundation (mura_core) lies below both packages; `serving` (client, repository,
# server) needs only it, so the registry and runners above may use it; export is the last training step.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", ("mura_core",)),
    ("serving", ("serving",)),
    ("data", ("pipelines.data", "pipelines.dicom", "pipelines.pacs")),
    ("validation", ("pipelines.validation",)),
    ("training", ("pipelines.training",)),
    ("evaluation", ("pipelines.evaluation",)),
    ("export", ("pipelines.export",)),
    ("tracking", ("pipelines.tracking",)),
    ("cards", ("pipelines.cards",)),
    ("registry", ("pipelines.registry",)),
    ("deployment", ("pipelines.deployment",)),
    ("views", ("pipelines.views",)),
    ("monitoring", ("pipelines.monitoring",)),
    ("external", ("pipelines.external",)),
    ("flows", ("pipelines.flows", "pipelines.retrain_form", "pipelines.stack")),
    ("runners", ("pipelines.cli", "pipelines.demo")),
]
OWN_PACKAGES = ("mura_core", "pipelines", "serving")


def layer_of(module: str) -> int:
    """Index in LAYERS of the longest matching prefix; ValueError for a module no layer claims."""
    best, found = -1, None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, found = len(prefix), index
    if found is None:
        raise ValueError(f"{module} belongs to no layer: add it to LAYERS")
    return found


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Every project module imported anywhere in the file (absolute imports; the code uses no others)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            submodules = {f"{node.module}.{alias.name}" for alias in node.names} & _all_modules()
            found.update(submodules or {node.module})
    return {name for name in found if name.split(".")[0] in OWN_PACKAGES and _exists(name)}


def _all_modules() -> set[str]:
    return {
        module_name(path)
        for folder in ("mura_core", "pipelines", "serving")
        for path in ROOT.glob(f"{folder}/**/*.py")
    }


def _exists(module: str) -> bool:
    relative = Path(*module.split("."))
    return (ROOT / relative).with_suffix(".py").is_file() or (ROOT / relative / "__init__.py").is_file()


def graph() -> dict[str, set[str]]:
    """module -> project modules it imports, for pipelines/, serving/ and dags/."""
    files = [
        *ROOT.glob("mura_core/*.py"),
        *ROOT.glob("pipelines/**/*.py"),
        *ROOT.glob("serving/**/*.py"),
        *ROOT.glob("dags/*.py"),
    ]
    return {module_name(path): imports_of(path) for path in files}


def test_no_module_imports_a_higher_layer():
    back_edges = []
    for module, imported in graph().items():
        if module.startswith("dags."):
            continue
        for target in imported:
            if layer_of(target) > layer_of(module):
                back_edges.append(
                    f"{module} ({LAYERS[layer_of(module)][0]}) -> {target} ({LAYERS[layer_of(target)][0]})"
                )
    assert not back_edges, "imports against the layer order:\n" + "\n".join(sorted(back_edges))


def test_serving_needs_only_the_foundation_and_nothing_in_pipelines_imports_the_server():
    edges = graph()
    for module, imported in edges.items():
        if module.startswith("serving"):
            assert all(layer_of(target) <= layer_of("serving") for target in imported), (module, imported)
        if module.startswith("pipelines"):
            assert not [target for target in imported if target.startswith("serving.server")], module


# Each DAG file and the one flow it may import (pipelines/flows/<flow>*.py).
DAG_FLOWS = {
    "dags.mura_retrain": "retrain",
    "dags.mura_deploy": "deploy",
    "dags.mura_monitor": "monitor",
    "dags.mura_pacs_inference": "pacs",
    "dags.mura_external_validation": "external",
}


def test_each_dag_imports_only_its_flow():
    """mura_retrain imported the approval step beside the switchboard every DAG shared: each DAG file
    now imports its own flow (pipelines.flows.<flow>, its approval step included) and nothing else."""
    dags = {module: imported for module, imported in graph().items() if module.startswith("dags.")}
    assert set(dags) == set(DAG_FLOWS), "a DAG file without its flow in DAG_FLOWS"
    for module, imported in dags.items():
        flow = f"pipelines.flows.{DAG_FLOWS[module]}"
        assert imported and all(name.startswith(flow) for name in imported), (module, imported)


def test_architecture_md_s_layer_table_is_the_one_this_test_enforces():
    """ARCHITECTURE.md's table went stale (no `external`, no approval step, one module named that no
    longer existed): its rows are LAYERS, in order, each naming every module prefix of its layer."""
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    table = text[text.index("| layer | modules | may import |") :].split("\n\n")[0].splitlines()[2:]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in table]
    assert [row[0] for row in rows] == [name for name, _ in LAYERS]
    for (name, prefixes), row in zip(LAYERS, rows, strict=True):
        for prefix in prefixes:
            short = prefix.rsplit(".", 1)[-1]
            assert f"`{prefix}`" in row[1] or f"`{short}`" in row[1], (
                f"{name}: {prefix} missing from the table"
            )


@pytest.mark.parametrize(
    ("module", "target"),
    [("serving.client", "pipelines.training.tasks"), ("pipelines.data.manifest", "pipelines.registry.gate")],
)
def test_a_back_edge_would_be_caught(module, target):
    assert layer_of(target) > layer_of(module)
