"""Export runs in float32 whatever the training precision.

A model trained under `mixed_float16` saves its layers' float16 compute policies into `model.keras`; a
SavedModel traced from it computes in float16, differs from any float32 reference by ~1e-3 and fails
the export's 1e-5 reload check about half the time. The weights themselves are float32 variables, so
the served model is the same architecture rebuilt with float32 policies and the same weights.
"""

from __future__ import annotations

import logging
from typing import Any

LOGGER = logging.getLogger(__name__)
_POLICY_CLASSES = ("DTypePolicy", "FloatDTypePolicy")


def _float32_config(node: Any) -> tuple[Any, int]:
    """A copy of a layer config tree with every mixed dtype policy replaced by float32; (copy, count)."""
    if isinstance(node, list):
        copied = [_float32_config(item) for item in node]
        return [item for item, _ in copied], sum(count for _, count in copied)
    if not isinstance(node, dict):
        return node, 0
    if node.get("class_name") in _POLICY_CLASSES and str(node.get("config", {}).get("name", "")).startswith(
        "mixed_"
    ):
        return {**node, "config": {**node["config"], "name": "float32"}}, 1
    result, total = {}, 0
    for key, value in node.items():
        result[key], count = _float32_config(value)
        total += count
    return result, total


def uses_mixed_precision(model) -> bool:
    """True when any layer computes in a lower precision than float32."""
    return any(layer.dtype_policy.compute_dtype != "float32" for layer in _all_layers(model))


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _all_layers(layer)


def float32_model(model):
    """`model` itself when it computes in float32; else the same graph rebuilt in float32, same weights."""
    if not uses_mixed_precision(model):
        return model
    config, replaced = _float32_config(model.get_config())
    rebuilt = model.__class__.from_config(config)
    rebuilt.set_weights(model.get_weights())
    LOGGER.info("export: rebuilt %s in float32 (%d mixed-precision layer policies)", model.name, replaced)
    return rebuilt
