"""The names every part of the platform agrees on, in one place (docs/ARCHITECTURE.md, "Contracts").

Tasks and the model-name rule, class maps, SavedModel signature and tensor names, registry aliases
and serving labels, Airflow pool and queue names. Pure Python: importing it costs nothing, so DAG
files, the CLI's argument checks, the serving client and the server all use it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from mura_core.errors import ConfigError

# --- MURA study types -------------------------------------------------------------------------
# The order is the part index used by the 14-class task.
BODY_PARTS = ("XR_ELBOW", "XR_FINGER", "XR_FOREARM", "XR_HAND", "XR_HUMERUS", "XR_SHOULDER", "XR_WRIST")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
HIDDEN_PREFIXES = ("._", ".")


def is_hidden(name: str) -> bool:
    """macOS resource forks (`._x`) and dot files such as `.DS_Store` are not images."""
    return name.startswith(HIDDEN_PREFIXES)


def part_index(body_part: str) -> int:
    """Index of a body part in BODY_PARTS (the 14-class map uses it)."""
    return BODY_PARTS.index(body_part)


def part_slug(body_part: str) -> str:
    """`XR_ELBOW` -> `elbow`, as used in model names like `mura_binary_elbow`."""
    return body_part.removeprefix("XR_").lower()


def study_type(body_part: str) -> str:
    """The one spelling of a study type that people read (tables, plots, cards): `XR_ELBOW` -> `Elbow`."""
    return body_part.removeprefix("XR_").capitalize()


# --- Tasks and model names ----------------------------------------------------------------------
BINARY_CLASSES = ("normal", "abnormal")
TASK_CHOICES = ("binary", "14cls", *(f"binary:{part}" for part in BODY_PARTS))
MODEL_NAME_PATTERN = re.compile(r"^mura_[a-z0-9_]+$")
MODEL_PREFIX = "mura_"


@dataclass(frozen=True)
class Task:
    """One prediction task: its name, the served model name and the output head it needs."""

    name: str
    body_part: str | None = None

    @property
    def is_multiclass(self) -> bool:
        """True for the 14-class task (softmax head)."""
        return self.name == "14cls"

    @property
    def model_name(self) -> str:
        """Registered/served model name: mura_binary, mura_binary_<part> or mura_14cls."""
        if self.is_multiclass:
            return "mura_14cls"
        if self.body_part:
            return f"mura_binary_{part_slug(self.body_part)}"
        return "mura_binary"

    @property
    def classes(self) -> tuple[str, ...]:
        """Class names in output order (14cls: `XR_ELBOW/normal` ..., index = 7 * abnormal + part)."""
        if self.is_multiclass:
            return tuple(f"{part}/{state}" for state in BINARY_CLASSES for part in BODY_PARTS)
        return BINARY_CLASSES

    @property
    def units(self) -> int:
        """Width of the output layer."""
        return len(BODY_PARTS) * 2 if self.is_multiclass else 1

    @property
    def activation(self) -> str:
        """Activation of the output layer."""
        return "softmax" if self.is_multiclass else "sigmoid"

    @property
    def kind(self) -> str:
        """`binary` or `14cls`: the shape of the model's head and of its serving outputs."""
        return "14cls" if self.is_multiclass else "binary"


def parse_task(name: str) -> Task:
    """`binary`, `binary:XR_ELBOW` (or `binary:elbow`) or `14cls` -> Task; ConfigError otherwise."""
    text = str(name).strip()
    if text in ("binary", "14cls"):
        return Task(text)
    if text.startswith("binary:"):
        part = text.split(":", 1)[1].strip().upper()
        part = part if part.startswith("XR_") else f"XR_{part}"
        if part not in BODY_PARTS:
            raise ConfigError(f"unknown body part in task {name!r}; choose one of: {', '.join(BODY_PARTS)}")
        return Task(f"binary:{part}", part)
    raise ConfigError(f"unknown task {name!r}; use binary, binary:<XR_PART> (e.g. binary:XR_ELBOW) or 14cls")


def model_name_for_task(task: str) -> str:
    """`binary` -> mura_binary, `binary:XR_ELBOW` -> mura_binary_elbow, `14cls` -> mura_14cls."""
    return parse_task(task).model_name


VERSION_NUMBER = re.compile(r"[0-9]{1,18}")  # ASCII digits: '²'.isdigit() is True, int('²') fails


def parse_version(text: object) -> int | None:
    """A version number as the platform writes it (a tag value, a folder name), else None."""
    return int(text) if isinstance(text, str) and VERSION_NUMBER.fullmatch(text) else None


def check_model_name(name: str) -> str:
    """Refuse any model name outside `^mura_[a-z0-9_]+$` before it becomes a path or a query."""
    if not isinstance(name, str) or not MODEL_NAME_PATTERN.fullmatch(name):
        raise ConfigError(
            f"model name {name!r} is not allowed: model names match ^mura_[a-z0-9_]+$ "
            "(e.g. mura_binary, mura_binary_elbow, mura_14cls)"
        )
    return name


def class_map(task: Task | str, arch: str, image_size: tuple[int, int] | list[int], **extra) -> dict:
    """The class map stored next to a model and inside its SavedModel (`assets.extra/`)."""
    task = parse_task(task) if isinstance(task, str) else task
    return {
        "task": task.name,
        "model_name": task.model_name,
        "classes": list(task.classes),
        "image_size": [int(image_size[0]), int(image_size[1])],
        "arch": arch,
        "body_parts": list(BODY_PARTS),
        "body_part": task.body_part,
        **extra,
    }


# --- A training run's artifacts in MLflow (the layout every step reads) ---------------------------
MODEL_ARTIFACT_DIR = "model"  # the Keras model and its class map
MODEL_FILE = "model.keras"
CLASS_MAP_FILE = "class_map.json"
MODEL_ARTIFACT = f"{MODEL_ARTIFACT_DIR}/{MODEL_FILE}"
CLASS_MAP_ARTIFACT = f"{MODEL_ARTIFACT_DIR}/{CLASS_MAP_FILE}"
SAVED_MODEL_ARTIFACT = "tf_serving"  # the exported SavedModel that is registered and served
# Metric and tag names the gate, the cards and the listings read.
STUDY_KAPPA = "eval.study_kappa"
STUDY_AUROC = "eval.study_auroc"
VALIDATION_SUCCESS_TAG = "validation.success"  # the data gate's verdict on the run's data
DEFAULT_MODEL = Task("binary").model_name  # what `mura predict`, the PACS DAG and the demo ask for
DEFAULT_CHAMPION = f"{DEFAULT_MODEL}@champion"  # the version external validation measures by default


def interval_names(metric: str) -> tuple[str, str]:
    """The names of a metric's interval bounds: `eval.study_kappa` -> `eval.study_kappa_ci_low`, `_ci_high`."""
    return f"{metric}_ci_low", f"{metric}_ci_high"


# --- SavedModel signatures --------------------------------------------------------------------
SERVING_SIGNATURE = "serving_default"
PIXELS_SIGNATURE = "predict_pixels"
EXPLAIN_SIGNATURE = "explain"  # image_bytes -> heatmap (Grad-CAM++), where the image sits in it, its size
INPUT_IMAGE_BYTES = "image_bytes"
INPUT_PIXELS = "pixels"
OUTPUT_PROBABILITY = "abnormal_probability"  # calibrated when the model has a fitted operating point
OUTPUT_RAW_PROBABILITY = "raw_probability"  # the network's own output, before calibration
OUTPUT_THRESHOLD = (
    "threshold"  # the model's decision threshold, per item (a study's probability is cut there)
)
# float32 [N, 2] (temperature, shift), only in models calibrated at study level: a study's probability
# is sigmoid((logit(mean raw_probability) - shift) / temperature); without it, the mean of its images'.
OUTPUT_STUDY_CALIBRATION = "study_calibration"
CALIBRATION_EPSILON = 1e-6  # probabilities are clipped to [eps, 1 - eps] before the logit (float32 safe)


def logit(probabilities, ops=None):
    """log(p / (1 - p)) of probabilities clipped to [eps, 1 - eps]. `ops`: the array functions (clip,
    log, log1p, exp; numpy by default, TensorFlow's inside the exported graph)."""
    if ops is None:
        import numpy as ops
    clipped = ops.clip(probabilities, CALIBRATION_EPSILON, 1.0 - CALIBRATION_EPSILON)
    return ops.log(clipped) - ops.log1p(-clipped)


def calibrated_from_logits(logits, temperature: float, shift: float, ops=None):
    """sigmoid((logit - shift) / temperature): the one calibration formula (fitted by evaluation,
    served by the SavedModel, applied to a study's mean by the client)."""
    if ops is None:
        import numpy as ops
    return 1.0 / (1.0 + ops.exp(-(logits - shift) / temperature))


def calibrated(probabilities, temperature: float, shift: float, ops=None):
    """The calibrated probability of raw probabilities (see calibrated_from_logits)."""
    return calibrated_from_logits(logit(probabilities, ops), temperature, shift, ops)


OUTPUT_LABEL = "label"
OUTPUT_BODY_PART = "body_part"
OUTPUT_CLASS_PROBABILITIES = "class_probabilities"
OUTPUT_HEATMAP = "heatmap"  # float32 [N, H, W] in 0..1 over the model's input frame (explain)
OUTPUT_HEATMAP_BOX = "heatmap_box"  # int32 [N, 4]: top, left, height, width of the image in that frame
OUTPUT_IMAGE_SIZE = "image_size"  # int32 [N, 2]: the encoded image's own height and width
CLASS_MAP_ASSET = "mura_class_map.json"
WARMUP_ASSET = "tf_serving_warmup_requests"

# --- Registry aliases and serving labels --------------------------------------------------------
EXPERIMENT = "mura"
CHAMPION = "champion"
CHALLENGER = "challenger"
STABLE = "stable"
CANARY = "canary"
LABEL_OF_ALIAS = {CHAMPION: STABLE, CHALLENGER: CANARY}
SERVING_LABELS = (STABLE, CANARY)
# TF Serving answers a request that names no version with the highest loaded one, and the challenger is
# nearly always the newest: so a registered model's own served name holds only its champion, and the
# challenger serves under a name of its own (from the same version folders).
CHALLENGER_SUFFIX = "_challenger"


def challenger_model_name(model: str) -> str:
    """The TF Serving model name the challenger of `model` serves under (`mura_binary_challenger`)."""
    return model if model.endswith(CHALLENGER_SUFFIX) else model + CHALLENGER_SUFFIX


def served_model_name(model: str, label: str | None) -> str:
    """The TF Serving model that answers `label` of `model`: `canary` is the challenger's own name."""
    return challenger_model_name(model) if label == CANARY else model


# Version tags of the gate's verdict (pipelines/registry/verdict.py signs the first three).
GATE_STATUS_TAG = "gate.status"
PASSED, FAILED = "passed", "failed"  # its values once gated
GATE_REASON_TAG = "gate.reason"
GATE_CHAMPION_TAG = "gate.champion_version"
GATE_SIGNATURE_TAG = "gate.signature"
CARD_TAG = "card.path"  # version tag: where the version's model card lies among its run's artifacts


# --- A reviewer's approval (mura_retrain's task approve) ---------------------------------------
class Approval(StrEnum):
    """Who decides on a version that passed the gate: one value from the retrain form (or params.yaml
    gate.approval) through the gate's verdict to the promotion rule and the approval step."""

    REQUIRED = "required"  # challenger; a reviewer decides in the retrain (task approve)
    AUTO = "auto"  # champion at once, no reviewer (only where params.yaml allows it)
    OFF = "off"  # challenger without a question (the first passing version becomes champion)


APPROVAL_MODES = tuple(mode.value for mode in Approval)
APPROVE_TASK = "approve"
REVIEWER_ROLE = "reviewer"  # the Airflow user who may answer (the step then moves aliases as `pipeline`)
PROMOTE_OPTION = "Promote to champion"
KEEP_OPTION = "Keep as challenger"
# Version tags of the decision: approval.decision is promote, keep or timeout.
APPROVAL_DECISION_TAG = "approval.decision"
APPROVAL_BY_TAG = "approval.by"
APPROVAL_RUN_TAG = "approval.dag_run_id"
APPROVAL_AT_TAG = "approval.at"
APPROVAL_NOTE_TAG = "approval.note"
APPROVAL_SIGNATURE_TAG = "approval.signature"  # the pipeline's signature over the five above

# --- External validation (pipelines/external) ---------------------------------------------------
EXTERNAL_EXPERIMENT = "mura-external"  # one run per validation of a version on a site's release
EXTERNAL_SITE_TAG = "external.site"
EXTERNAL_DATA_TAG = "external.data_md5"  # the DVC hash of the site's release it was measured on
MODEL_NAME_TAG = "model.name"
MODEL_VERSION_TAG = "model.version"
EXTERNAL_REPORT = "report/external_validation.html"  # among the run's artifacts

# --- Airflow ----------------------------------------------------------------------------------
DVC_POOL = "mura_dvc"  # one slot: DVC's repository lock gives up after a few seconds
DVC_POOL_DESCRIPTION = "DVC tasks one at a time: the repository lock gives up after a few seconds"
GPU_QUEUE = "gpu"
RETRAIN_DAG = "mura_retrain"
DEPLOY_DAG = "mura_deploy"
MONITOR_DAG = "mura_monitor"
PACS_DAG = "mura_pacs_inference"  # the champion's answers into the PACS' new studies
EXTERNAL_DAG = "mura_external_validation"  # a registered version on a site's own studies
# UIDs the platform makes (its reports in a hospital's PACS, synthetic studies): pydicom's root, the
# rest derived from what they are about, so a second write of the same thing has the same UIDs.
DICOM_UID_ROOT = "1.2.826.0.1.3680043.8.498."
DATA_ASSET_URI = "mura://data/MURA-v1.1"  # a new data version (mura_retrain's pull_data emits it)
RETRAIN_NEEDED_URI = "mura://monitor/retrain-needed"  # the monitor asks mura_retrain to run
