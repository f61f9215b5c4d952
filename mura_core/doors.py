"""Front doors: what a room (a package of pipelines or serving) lets other rooms use.

A room's `__init__` lists each name others may import and the room's module that defines it; the
name is loaded on first use, so importing a room stays cheap (no TensorFlow, MLflow or pandas until a
name that needs them is used). `tests/unit/test_import_layers.py` refuses an import from another
room that goes past the door or names something the door does not list.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def open_door(package: str, exposed: Mapping[str, str | None]) -> tuple[list[str], Callable[[str], Any]]:
    """(`__all__`, `__getattr__`) for the room `package`: `exposed` maps each name to the room's module
    that defines it (`None`: the name is a module of the room, used as a namespace)."""

    def door(name: str) -> Any:
        if name not in exposed:
            raise AttributeError(
                f"module {package!r} has no attribute {name!r}: other rooms use only what its front door "
                f"lists ({package}.__all__)"
            )
        source = exposed[name]
        module = importlib.import_module(f"{package}.{source or name}")
        return module if source is None else getattr(module, name)

    return sorted(exposed), door
