"""Study-level evaluation of trained models: metrics, plots, the MURA kappa table."""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "evaluate_run":
        from pipelines.evaluation.api import evaluate_run

        return evaluate_run
    raise AttributeError(f"module 'pipelines.evaluation' has no attribute {name!r}")


__all__ = ["evaluate_run"]
