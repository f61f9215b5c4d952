"""The deploy flow (DAG mura_deploy, `mura deploy`, the retrain's deploy step): serving made equal
to the registry's aliases."""

from __future__ import annotations

from mura_core.contracts import DEPLOY_DAG
from mura_core.logs import configure_logging
from mura_core.stages import Reconciliation

__all__ = ["DEPLOY_DAG", "reconcile_serving"]


def reconcile_serving(models: list[str] | None = None) -> Reconciliation:
    """Make TF Serving equal to the registry aliases (champion -> stable, challenger -> canary)."""
    from pipelines.deployment import reconcile

    configure_logging()
    return reconcile(models=models)
