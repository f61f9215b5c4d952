"""The shape of the code, measured: what a newcomer meets before reading a line of it.

For a checkout (default: this one), over pipelines/, serving/ and dags/: the largest module, the
functions over 60 lines, the rooms (packages) without a front door (an `__init__` with `__all__`),
the imports that reach past another room's front door, the cycles between rooms, and the modules
mypy checks. With `--check` it also times `make lint typecheck test-unit` (the checks CI runs first).
Run it on the checkout before a change and after it to compare:

    python benchmarks/bench_house.py --out benchmarks/results [--root OTHER_CHECKOUT] [--check]
"""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("mura_core", "pipelines", "serving", "dags")
FOUNDATIONS = ("pipelines", "mura_core")  # pipelines' top-level modules, or the package they became
LONG = 60  # lines: the fitness limit of tests/unit/test_fitness.py


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def room_of(module: str, packages: set[str]) -> str:
    """A module's room: the package right under pipelines (pipelines.registry), `serving`, a DAG file,
    `mura_core`, or `pipelines` itself for its top-level modules (the foundation before mura_core)."""
    parts = module.split(".")
    if parts[0] == "pipelines" and len(parts) > 1 and f"pipelines.{parts[1]}" in packages:
        return f"pipelines.{parts[1]}"
    return parts[0] if parts[0] != "dags" else module


def imported_modules(tree: ast.AST, known: set[str]) -> set[str]:
    """Project modules a file imports anywhere (inside functions too)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            submodules = {f"{node.module}.{alias.name}" for alias in node.names} & known
            found.update(submodules or {node.module})
    return {name for name in found if name in known}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one room (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in edges.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def mypy_files(root: Path) -> list[Path]:
    settings = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["mypy"]
    paths: list[Path] = []
    for entry in settings.get("files", []):
        target = root / entry
        paths.extend(sorted(target.rglob("*.py")) if target.is_dir() else [target])
    return paths


def measure(root: Path) -> dict:
    files = [path for folder in FOLDERS for path in sorted((root / folder).rglob("*.py"))]
    known = {module_name(root, path) for path in files}
    packages = {module_name(root, path) for path in files if path.name == "__init__.py"}
    trees = {module_name(root, path): ast.parse(path.read_text(encoding="utf-8")) for path in files}
    lines = {module_name(root, path): len(path.read_text(encoding="utf-8").splitlines()) for path in files}
    long_functions = sorted(
        (node.end_lineno - node.lineno + 1, f"{module}.{node.name}")
        for module, tree in trees.items()
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > LONG
    )
    rooms = sorted({room_of(module, packages) for module in known if not module.startswith("dags.")})
    doorless = [
        room
        for room in rooms
        if room in packages and "__all__" not in ast.unparse(trees[room]) and room != "pipelines"
    ]
    past_doors: set[tuple[str, str]] = set()
    room_edges: dict[str, set[str]] = {}
    for module, tree in trees.items():
        mine = room_of(module, packages)
        for target in imported_modules(tree, known):
            theirs = room_of(target, packages)
            if theirs == mine or theirs in FOUNDATIONS:  # the foundation's small modules are all public
                continue
            room_edges.setdefault(mine, set()).add(theirs)
            if target != theirs:  # reached a module inside another room, not its front door
                past_doors.add((module, target))
    # Package level: `pipelines` and `serving` as two nodes (serving used seven foundation modules).
    top_edges: dict[str, set[str]] = {}
    for module, tree in trees.items():
        for target in imported_modules(tree, known):
            if module.split(".")[0] != target.split(".")[0]:
                top_edges.setdefault(module.split(".")[0], set()).add(target.split(".")[0])
    checked = {module_name(root, path) for path in mypy_files(root) if path.exists()}
    largest = max(((count, module) for module, count in lines.items()), default=(0, ""))
    return {
        "modules": len(known),
        "pipelines_lines": sum(count for module, count in lines.items() if module.startswith("pipelines")),
        "largest_module": {"module": largest[1], "lines": largest[0]},
        "functions_over_60_lines": len(long_functions),
        "longest_functions": [
            {"function": name, "lines": count} for count, name in long_functions[::-1][:25]
        ],
        "rooms": len(rooms),
        "rooms_without_front_door": doorless,
        "imports_past_a_front_door": len(past_doors),
        "room_cycles": cycles(room_edges),
        "package_cycles": cycles(top_edges),
        "mypy_modules": len(checked & known),
        "mypy_coverage": round(len(checked & known) / len(known), 3),
    }


def timed_check(root: Path) -> float:
    started = time.perf_counter()
    subprocess.run(["make", "lint", "typecheck", "test-unit"], cwd=root, check=True, capture_output=True)
    return round(time.perf_counter() - started, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout to measure")
    parser.add_argument("--out", type=Path, default=None, help="folder for house.json")
    parser.add_argument("--check", action="store_true", help="also time make lint typecheck test-unit")
    args = parser.parse_args()
    result = {"root": str(args.root.resolve()), **measure(args.root)}
    if args.check:
        result["check_seconds"] = timed_check(args.root)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "house.json").write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
