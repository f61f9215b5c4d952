"""The retrain DAG's form, once: the Airflow UI's trigger form and `mura retrain` are built from it.

Each field is a JSON schema (what Airflow's Param validates a run's conf against) plus its default;
the CLI validates with the same schema before it calls Airflow, so a bad value fails in the terminal
with the form's own rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mura_core.contracts import APPROVAL_MODES, TASK_CHOICES
from mura_core.errors import ConfigError
from pipelines.training import ARCHITECTURE_CHOICES


@dataclass(frozen=True)
class FormField:
    """One field of the retrain form: its default and JSON schema (title and description included)."""

    name: str
    default: Any
    schema: dict[str, Any] = field(default_factory=dict)

    @property
    def description(self) -> str:
        return str(self.schema.get("description") or self.schema.get("title") or self.name)


def retrain_form(
    default_preset: str,
    presets: list[str],
    approval: str = "required",
    approval_choices: tuple[str, ...] = APPROVAL_MODES,
) -> list[FormField]:
    """The fields of the mura_retrain form, in the order the UI shows them; `approval` is the default
    of its field (params.yaml gate.approval), `approval_choices` what it offers (auto only where
    params.yaml gate.allow_auto_approval allows it: Airflow refuses a run asking for another)."""
    return [
        FormField("preset", default_preset, {
            "type": "string", "enum": presets, "title": "Preset",
            "description": "Training recipe from params.yaml; the fields below override it.",
        }),
        FormField("task", None, {
            "type": ["null", "string"], "enum": [None, *TASK_CHOICES], "title": "Task",
            "description": "binary (all parts), binary:<XR_PART> (one study type) or 14cls.",
        }),
        FormField("architectures", None, {
            "type": ["null", "array"], "items": {"type": "string", "enum": list(ARCHITECTURE_CHOICES)},
            "title": "Architectures", "description": "One candidate is trained per architecture.",
        }),
        FormField("epochs", None, {
            "type": ["null", "integer"], "minimum": 1, "maximum": 500, "title": "Epochs",
        }),
        FormField("image_size", None, {
            "type": ["null", "integer"], "minimum": 32, "maximum": 1024, "title": "Image size",
            "description": "Square input size in pixels.",
        }),
        FormField("batch_size", None, {
            "type": ["null", "integer"], "minimum": 1, "maximum": 512, "title": "Batch size",
        }),
        FormField("learning_rate", None, {
            "type": ["null", "number"], "exclusiveMinimum": 0, "maximum": 1, "title": "Learning rate",
        }),
        FormField("fine_tune_layers", None, {
            "type": ["null", "integer"], "minimum": -1, "title": "Fine-tune layers",
            "description": "Top layers unfrozen in phase two (-1: all, 0: head only).",
        }),
        FormField("augment", None, {
            "type": ["null", "boolean"], "title": "Augment", "description": "Flips, rotations, zoom, contrast.",
        }),
        FormField("ensemble", None, {
            "type": ["null", "integer"], "minimum": 1, "maximum": 20, "title": "Ensemble members",
            "description": "Members per architecture (seeds seed, seed+1, ...), trained in parallel and "
            "averaged in one model.",
        }),
        FormField("data_rev", None, {
            "type": ["null", "string"], "title": "Data revision",
            "description": "Git revision of data.dvc to pull; empty for the current one.",
        }),
        FormField("approval", approval, {
            "type": "string", "enum": list(approval_choices), "title": "Approval",
            "description": "required: a version that passes the gate becomes challenger and a reviewer "
            "promotes it or keeps it (task approve); off: nobody asked (the first passing version becomes "
            "champion, later ones challenger); auto (where params.yaml gate.allow_auto_approval allows "
            "it): champion at once, and the version records who chose it.",
        }),
    ]  # fmt: skip


def check_conf(conf: dict[str, Any], fields: list[FormField]) -> dict[str, Any]:
    """`conf` checked against the form's schemas (as Airflow checks a triggered run); ConfigError names
    the field and the rule it breaks."""
    import jsonschema

    known = {item.name: item for item in fields}
    unknown = sorted(set(conf) - set(known))
    if unknown:
        raise ConfigError(f"the retrain form has no field {', '.join(unknown)}; it has {', '.join(known)}")
    for name, value in conf.items():
        try:
            jsonschema.validate(value, known[name].schema)
        except jsonschema.ValidationError as error:
            raise ConfigError(f"{name}={value!r}: {error.message}") from None
    return conf
