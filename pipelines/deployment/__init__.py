"""Deployment: serving made equal to the registry's aliases (the reconciler), the SavedModel bytes a
signed verdict vouches for published atomically, TF Serving's model config and reloads, and the
webhook that reconciles when an alias moves."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mura_core.doors import open_door

if TYPE_CHECKING:
    from pipelines.deployment.publishing import DeployOptions as DeployOptions
    from pipelines.deployment.reconciler import reconcile as reconcile
    from pipelines.deployment.reconciler import registered_models as registered_models
    from pipelines.deployment.webhook import WebhookReceiver as WebhookReceiver

# The front door: what other rooms may use, by the module of the room that defines it (loaded on
# first use, so importing the room stays cheap).
__all__, __getattr__ = open_door(
    __name__,
    {
        "DeployOptions": "publishing",
        "WebhookReceiver": "webhook",
        "reconcile": "reconciler",
        "registered_models": "reconciler",
    },
)
