"""Every name the platform imports from its own modules exists there, also where the import sits inside
a function that no test calls: `make demo` once imported `api_server_log` from a module that never
defined it (the demo's own code runs in no test), and would have failed at its first step."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("mura_core", "pipelines", "serving", "dags")


def _module(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _top_level_names(tree: ast.Module) -> set[str]:
    """Names a module defines at its top level (in top-level if/try blocks too)."""
    names: set[str] = set()
    body = list(tree.body)
    while body:
        node = body.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {target.id for target in node.targets if isinstance(target, ast.Name)}
            if any(isinstance(target, ast.Name) and target.id == "__all__" for target in node.targets):
                # A package that loads its names on first use (module __getattr__) lists them here.
                names |= {
                    element.value
                    for element in getattr(node.value, "elts", [])
                    if isinstance(element, ast.Constant)
                }
            names |= {
                element.id
                for target in node.targets
                if isinstance(target, ast.Tuple)
                for element in target.elts
                if isinstance(element, ast.Name)
            }
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
        elif isinstance(node, ast.If | ast.Try):
            body += node.body + node.orelse + getattr(node, "finalbody", [])
            for handler in getattr(node, "handlers", []):
                body += handler.body
    return names


def test_every_name_imported_from_the_platform_exists():
    files = [path for package in PACKAGES for path in (REPO / package).rglob("*.py")]
    trees = {path: ast.parse(path.read_text(encoding="utf-8")) for path in files}
    defined = {_module(path): _top_level_names(tree) for path, tree in trees.items()}
    missing = []
    for path, tree in trees.items():
        for node in ast.walk(tree):
            if not (isinstance(node, ast.ImportFrom) and node.level == 0 and node.module):
                continue
            if node.module.split(".")[0] not in PACKAGES[:2]:
                continue
            if node.module not in defined:
                missing.append(f"{path.relative_to(REPO)}:{node.lineno}: no module {node.module}")
                continue
            for alias in node.names:
                if alias.name not in defined[node.module] and f"{node.module}.{alias.name}" not in defined:
                    missing.append(
                        f"{path.relative_to(REPO)}:{node.lineno}: {node.module} has no {alias.name}"
                    )
    assert not missing, "\n".join(missing)
