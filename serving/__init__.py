"""TF Serving export, model repository, local TF-Serving-compatible server and clients."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mura_core.doors import open_door

if TYPE_CHECKING:
    from serving.client import ServingClient as ServingClient
    from serving.client import body_part_from_path as body_part_from_path
    from serving.client import study_folders as study_folders
    from serving.client import study_images as study_images
    from serving.errors import ServingClientError as ServingClientError
    from serving.gateway import GatewayCertificate as GatewayCertificate
    from serving.gateway import GatewayOptions as GatewayOptions
    from serving.gateway import command as command
    from serving.gateway import ensure_certificate as ensure_certificate
    from serving.gateway import write_standalone as write_standalone
    from serving.overlay import heatmap_on_image as heatmap_on_image
    from serving.overlay import overlay_png as overlay_png
    from serving.protos import MODEL_SERVICE as MODEL_SERVICE
    from serving.protos import make_ndarray as make_ndarray
    from serving.protos import message as message
    from serving.repository import prune_versions as prune_versions
    from serving.repository import publish_version as publish_version
    from serving.repository import read_models_config as read_models_config
    from serving.repository import remove_model as remove_model
    from serving.repository import served_versions as served_versions
    from serving.repository import set_served_versions as set_served_versions
    from serving.repository import write_models_config as write_models_config
    from serving.samples import sample_png as sample_png

# The front door: what other rooms may use, by the module of the room that defines it (loaded on
# first use, so importing the room stays cheap).
__all__, __getattr__ = open_door(
    __name__,
    {
        "GatewayCertificate": "gateway",
        "GatewayOptions": "gateway",
        "MODEL_SERVICE": "protos",
        "ServingClient": "client",
        "ServingClientError": "errors",
        "body_part_from_path": "client",
        "command": "gateway",
        "ensure_certificate": "gateway",
        "heatmap_on_image": "overlay",
        "make_ndarray": "protos",
        "message": "protos",
        "overlay_png": "overlay",
        "prune_versions": "repository",
        "publish_version": "repository",
        "read_models_config": "repository",
        "remove_model": "repository",
        "sample_png": "samples",
        "served_versions": "repository",
        "set_served_versions": "repository",
        "study_folders": "client",
        "study_images": "client",
        "write_models_config": "repository",
        "write_standalone": "gateway",
    },
)
