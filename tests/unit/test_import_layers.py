"""The import graph has no back-edge: each layer imports only itself and the layers below it.

Read from the source with `ast` (imports inside functions count too), so it fails the moment a module
reaches upwards, e.g. serving importing pipelines.training, or data importing the registry.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from mura_core.settings import get_settings
from tests.unit.test_internal_imports import _top_level_names

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


def _room(module: str) -> str:
    """A module's room: a package of pipelines (its front door, its `__init__`), a flow module (the
    flows room's doors: one per DAG), `serving`, or the module itself (mura_core's modules, pipelines'
    own top-level modules, the DAG files)."""
    parts = module.split(".")
    if parts[0] == "serving":
        return "serving"
    if parts[0] == "pipelines" and len(parts) > 2:
        return ".".join(parts[:3]) if parts[1] == "flows" else ".".join(parts[:2])
    if parts[0] == "pipelines" and len(parts) == 2 and (ROOT / "pipelines" / parts[1]).is_dir():
        return module
    return module


def _exposed(door: str) -> set[str]:
    """The names a front door lists: the keys given to open_door, or a literal `__all__`."""
    path = ROOT / Path(*door.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "open_door":
            return {key.value for key in node.args[1].keys if isinstance(key, ast.Constant)}
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in node.targets):
            return {item.value for item in node.value.elts if isinstance(item, ast.Constant)}
    return set()


def test_other_rooms_come_in_by_the_front_door():
    """Other rooms reached 46 times into 17 registry modules, 51 into 11 data modules: an import from
    another room now names the room (or, for the flows, its flow module) and only what its door lists."""
    files = [*ROOT.glob("pipelines/**/*.py"), *ROOT.glob("serving/**/*.py"), *ROOT.glob("dags/*.py")]
    past, unlisted = [], []
    for path in files:
        mine = _room(module_name(path))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.ImportFrom) and node.module and node.level == 0):
                continue
            target = node.module
            if target.split(".")[0] not in ("pipelines", "serving") or not _exists(target):
                continue
            door = _room(target)
            if door == mine or door == target == _room(target) and not _exposed(door):
                continue  # its own room, or a room of one module (pipelines.retrain_form)
            if target != door:
                past.append(f"{module_name(path)}:{node.lineno} imports {target} (the door is {door})")
                continue
            names = {alias.name for alias in node.names} - _exposed(door)
            unlisted += [f"{module_name(path)}:{node.lineno} {door}.{name}" for name in sorted(names)]
    assert not past, "imports past a room's front door:\n" + "\n".join(past)
    assert not unlisted, "names a front door does not list:\n" + "\n".join(unlisted)


def test_no_package_imports_a_package_above_it():
    """serving used seven foundation modules of pipelines and eight rooms of pipelines used serving: the
    foundation is mura_core now, below both, and serving never imports pipelines."""
    edges = graph()
    upward = [
        (module, target)
        for module, imported in edges.items()
        for target in imported
        if (module.startswith("mura_core") and not target.startswith("mura_core"))
        or (module.startswith("serving") and target.startswith("pipelines"))
    ]
    assert upward == []


def test_each_front_door_gives_what_it_lists():
    """A door's list and its modules agree: each name it lists exists where it says (checked without
    importing heavy modules: by reading the module that defines it)."""
    inits = [*ROOT.glob("pipelines/*/__init__.py"), ROOT / "serving" / "__init__.py"]
    for door in sorted({_room(module_name(path)) for path in inits}):
        init = ROOT / Path(*door.split(".")) / "__init__.py"
        tree = ast.parse(init.read_text(encoding="utf-8"))
        calls = [
            node
            for node in ast.walk(tree)
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "open_door"
        ]
        for call in calls:
            for key, value in zip(call.args[1].keys, call.args[1].values, strict=True):
                source = value.value if isinstance(value, ast.Constant) else None
                module = f"{door}.{source or key.value}"
                assert _exists(module), f"{door}: {key.value} comes from {module}, which does not exist"
                if source is not None:
                    defined = ast.parse((ROOT / Path(*module.split("."))).with_suffix(".py").read_text())
                    names = _top_level_names(defined)
                    assert key.value in names, f"{door}: {module} defines no {key.value}"
                    assert not _exists(f"{door}.{key.value}"), f"{door}: {key.value} is also a module's name"


@pytest.mark.parametrize(
    ("module", "target"),
    [("serving.client", "pipelines.training.tasks"), ("pipelines.data.manifest", "pipelines.registry.gate")],
)
def test_a_back_edge_would_be_caught(module, target):
    assert layer_of(target) > layer_of(module)
