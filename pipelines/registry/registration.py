"""Register a run's `tf_serving/` SavedModel as a new version of the model named for its task, then gate it."""

from __future__ import annotations

import dataclasses
import json
import logging
import tempfile
from pathlib import Path

from mura_core.config import GateParams, load_config
from mura_core.contracts import (
    CARD_TAG,
    CHALLENGER,
    CHAMPION,
    CLASS_MAP_ARTIFACT,
    GATE_CHAMPION_TAG,
    GATE_REASON_TAG,
    GATE_STATUS_TAG,
    INPUT_IMAGE_BYTES,
    SAVED_MODEL_ARTIFACT,
    SERVING_SIGNATURE,
    STUDY_AUROC,
    STUDY_KAPPA,
    VALIDATION_SUCCESS_TAG,
    Approval,
    check_model_name,
    model_name_for_task,
    parse_version,
)
from mura_core.errors import ConfigError, RegistryError
from mura_core.stages import GateVerdict, Registration
from pipelines.registry.gate import Judgement, evaluate_gate, lineage_failures
from pipelines.registry.hashing import HASH_TAG, saved_model_digest
from pipelines.registry.pairing import paired_holdout
from pipelines.registry.promotion import apply_promotion_rule, now_utc
from pipelines.registry.verdict import Verdict, record_verdict
from pipelines.tracking import connect, tracking_errors, version_metrics

LOGGER = logging.getLogger(__name__)
LINEAGE_TAGS = (
    "code.git_sha",
    "code.dirty",
    "data.md5",
    "data.versioned",
    "data.dvc_md5",
    "data.rev",
    "data.manifest_hash",
    "train.preset",
    "airflow.dag_run_id",
    VALIDATION_SUCCESS_TAG,
    "validation.docs",
    "train.arch",
    "train.task",
)
SIGNATURE_TAG = "serving.signature"


def describe_signature(saved_model_dir: Path, signature_name: str = SERVING_SIGNATURE) -> str:
    """`serving_default(image_bytes: string[-1]) -> abnormal_probability: float32[-1], ...` from saved_model.pb."""
    from google.protobuf.message import DecodeError
    from tensorflow.core.framework import types_pb2
    from tensorflow.core.protobuf import saved_model_pb2

    try:
        saved_model = saved_model_pb2.SavedModel.FromString(
            (Path(saved_model_dir) / "saved_model.pb").read_bytes()
        )
    except DecodeError as error:
        raise RegistryError(
            f"{saved_model_dir}/saved_model.pb is not a SavedModel protobuf ({error}); export it again"
        ) from error
    signatures = saved_model.meta_graphs[0].signature_def if saved_model.meta_graphs else {}
    if signature_name not in signatures:
        raise RegistryError(
            f"{saved_model_dir}: no {signature_name!r} signature (found {sorted(signatures)}); export with pipelines.export"
        )

    def spec(items) -> str:
        described = []
        for name, info in sorted(items):
            dims = [str(dim.size) for dim in info.tensor_shape.dim]
            dtype = types_pb2.DataType.Name(info.dtype).removeprefix("DT_").lower()
            dtype = {"float": "float32", "double": "float64"}.get(dtype, dtype)
            described.append(f"{name}: {dtype}[{','.join(dims)}]")
        return ", ".join(described)

    signature = signatures[signature_name]
    if INPUT_IMAGE_BYTES not in signature.inputs:
        raise RegistryError(
            f"{saved_model_dir}: {signature_name} does not take `image_bytes` (the signature contract)"
        )
    return f"{signature_name}({spec(signature.inputs.items())}) -> {spec(signature.outputs.items())}"


def _download_saved_model(client, run_id: str, folder: Path) -> Path:
    from mlflow.exceptions import MlflowException

    try:
        local = Path(client.download_artifacts(run_id, SAVED_MODEL_ARTIFACT, str(folder)))
    except (MlflowException, OSError) as error:
        raise RegistryError(
            f"run {run_id} has no {SAVED_MODEL_ARTIFACT}/ SavedModel ({str(error).splitlines()[0]}); "
            f"export it first: `mura export {run_id}`"
        ) from error
    if not (local / "saved_model.pb").is_file():
        raise RegistryError(
            f"run {run_id}: {SAVED_MODEL_ARTIFACT}/ holds no saved_model.pb; export it again: `mura export {run_id}`"
        )
    return local


def _model_name(client, run, folder: Path) -> tuple[str, str]:
    """(model name, task) from the run's class map, else from its `train.task` tag."""
    from mlflow.exceptions import MlflowException

    task = run.data.tags.get("train.task")
    try:
        class_map = json.loads(
            Path(client.download_artifacts(run.info.run_id, CLASS_MAP_ARTIFACT, str(folder))).read_text()
        )
        task = class_map.get("task", task)
        name = class_map.get("model_name") or model_name_for_task(task)
    except (MlflowException, OSError, ValueError):
        if not task:
            raise RegistryError(
                f"run {run.info.run_id} has neither model/class_map.json nor a train.task tag: is it a training run?"
            ) from None
        name = model_name_for_task(task)
    try:
        return check_model_name(name), task
    except ConfigError as error:
        raise RegistryError(f"run {run.info.run_id}: {error}") from None


def _ensure_registered_model(client, name: str, task: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(
            name,
            tags={"task": task},
            description=f"MURA {task} model served by TF Serving as {name!r}. Alias `champion` serves under "
            "label `stable`, `challenger` under `canary` (`mura deploy`).",
        )


def version_of_run(client, model: str, run_id: str):
    """The version of `model` that registers `run_id` (the oldest, should there be several), or None."""
    found = client.search_model_versions(f"name='{model}' and run_id='{run_id}'")
    return min(found, key=lambda entry: int(entry.version)) if found else None


def registered_version(run_id: str, model: str, client=None) -> int | None:
    """The version number under which `run_id` is registered as `model`, or None (a retry's first question)."""
    client = client or connect()
    with tracking_errors(client, f"looking up run {run_id} in {model}"):
        found = version_of_run(client, model, run_id)
    return int(found.version) if found is not None else None


def _reused(name: str, run_id: str, existing) -> Registration:
    """The registration of a run registered already: its existing version, `reused`."""
    LOGGER.info(
        "%s v%s already registers run %s: reused, not registered again",
        name,
        existing.version,
        run_id,
    )
    return Registration(
        model=name,
        version=int(existing.version),
        run_id=run_id,
        sha256=existing.tags.get(HASH_TAG, ""),
        signature=existing.tags.get(SIGNATURE_TAG, ""),
        reused=True,
    )


def _version_tags(
    run, run_id: str, task: str, digest: str, signature: str, metrics: dict[str, float]
) -> dict[str, str]:
    """A new version's tags: the run's lineage, the hash and signature of its SavedModel, its metrics."""
    tags = {key: str(run.data.tags.get(key, "unknown")) for key in LINEAGE_TAGS}
    tags.update(
        {
            "train.run_id": run_id,
            "train.task": task,
            HASH_TAG: digest,
            SIGNATURE_TAG: signature,
            "serving.artifact_path": SAVED_MODEL_ARTIFACT,
            GATE_STATUS_TAG: "pending",
        }
    )
    tags.update({key: repr(float(value)) for key, value in metrics.items()})
    return tags


def register_version(run_id: str, client=None) -> Registration:
    """Register the run's `tf_serving/` SavedModel as a new version with lineage, metric and hash tags.

    Idempotent per run: a run registered already (a retried task, `mura register` twice) gets its
    existing version back (`reused`), never a second one. The version holds no alias yet:
    `gate_version` decides what it becomes.
    """
    client = client or connect()
    with (
        tracking_errors(client, f"registering run {run_id}"),
        tempfile.TemporaryDirectory(prefix="mura-register-") as scratch,
    ):
        from mlflow.exceptions import MlflowException

        try:
            run = client.get_run(run_id)
        except MlflowException as error:
            raise RegistryError(
                f"run {run_id} not found on {client.tracking_uri}; check the run id (`mura train --json`)"
            ) from error
        name, task = _model_name(client, run, Path(scratch))
        existing = version_of_run(client, name, run_id)
        if existing is not None:
            return _reused(name, run_id, existing)
        saved_model = _download_saved_model(client, run_id, Path(scratch) / "download")
        digest = saved_model_digest(saved_model)
        signature = describe_signature(saved_model)
        metrics = {key: value for key, value in run.data.metrics.items() if key.startswith("eval.")}
        tags = _version_tags(run, run_id, task, digest, signature, metrics)
        _ensure_registered_model(client, name, task)
        created = client.create_model_version(
            name,
            f"runs:/{run_id}/{SAVED_MODEL_ARTIFACT}",
            run_id=run_id,
            tags=tags,
            description=_description(tags, metrics),
        )
    LOGGER.info("registered %s v%s from run %s", name, created.version, run_id)
    return Registration(
        model=name, version=int(created.version), run_id=run_id, sha256=digest, signature=signature
    )


def _publish_card(client, model: str, version: int, reuse_overlays: bool = False) -> str | None:
    """The version's model card, logged to its run; None (and the reason logged) when it could not be
    written: a card is documentation, so its failure must not undo a registration and gate."""
    from pipelines.cards import publish_card

    try:
        return publish_card(client, model, version, reuse_overlays)
    except Exception:  # any failure: the version stays registered and gated; `mura card` retries
        LOGGER.exception(
            "%s v%s: the model card could not be written; run `mura card %s/%s`",
            model,
            version,
            model,
            version,
        )
        return None


def republish_card(model: str, version: int, client=None) -> tuple[list[str], str | None]:
    """(the aliases `version` holds now, its model card written again): after a reviewer's decision or
    an external validation. Its Grad-CAM++ overlays are the logged card's (the model is not loaded)."""
    client = client or connect()
    with tracking_errors(client, f"reading the aliases of {model}"):
        aliases = client.get_registered_model(model).aliases
    held = [alias for alias in (CHAMPION, CHALLENGER) if aliases.get(alias) == str(version)]
    return held, _publish_card(client, model, int(version), reuse_overlays=True)


def _description(
    tags: dict[str, str], metrics: dict[str, float], gate_reason: str = "pending", card: str | None = None
) -> str:
    card_line = f"\n\nModel card: `{card}` (training run, Artifacts tab)" if card else ""
    return (
        f"{tags['train.arch']} for task {tags['train.task']}, run {tags['train.run_id']}; data rev "
        f"{tags['data.rev']} (dvc md5 {tags['data.dvc_md5']}); study kappa "
        f"{metrics.get(STUDY_KAPPA, float('nan')):.4f}, AUROC {metrics.get(STUDY_AUROC, float('nan')):.4f}; "
        f"signature {tags[SIGNATURE_TAG]}; gate {gate_reason}"
    )[: 4000 - len(card_line)] + card_line


GATE_APPLIED_TAG = "gate.applied_at"  # set once the verdict and its aliases are in place


def _aliases_of(client, model: str, version: int) -> list[str]:
    aliases = client.get_registered_model(model).aliases
    return sorted(alias for alias, held in aliases.items() if int(held) == int(version))


def _allowed_approval(model: str, version: int, approval: Approval | None, policy: GateParams) -> Approval:
    """The approval a gate asks for: the given one, else params.yaml's default; ConfigError for an auto
    approval that params.yaml does not allow."""
    if approval is None:
        approval = Approval.AUTO if policy.approval == Approval.AUTO else Approval.OFF
    if approval == Approval.AUTO and Approval.AUTO not in policy.approval_choices:
        raise ConfigError(
            f"{model} v{version}: approval auto (champion with no reviewer) is not allowed by params.yaml "
            "gate.allow_auto_approval (false): use approval required or off, or allow auto in params.yaml"
        )
    return approval


def _judge(client, model: str, version: int, candidate, metrics: dict, policy: GateParams) -> Judgement:
    """The gate's verdict on `candidate`: its floors and lineage, and the current champion (paired on
    the holdout studies where it can be; no champion when the candidate is the champion itself)."""
    champion_version = client.get_registered_model(model).aliases.get(CHAMPION)
    champion_metrics, paired = None, None
    if champion_version is not None and int(champion_version) != version:
        champion = client.get_model_version(model, champion_version)
        champion_metrics = version_metrics(champion)
        paired = paired_holdout(client, candidate.run_id, champion.run_id)
    else:
        champion_version = None
    return evaluate_gate(
        metrics,
        champion_metrics,
        policy,
        int(champion_version) if champion_version else None,
        lineage=lineage_failures(candidate.tags),
        paired=paired,
    )


def gate_version(
    model: str,
    version: int,
    approval: Approval | None = None,
    client=None,
    policy: GateParams | None = None,
) -> GateVerdict:
    """Judge a registered version against the floors and the current champion, record the verdict as
    tags and apply the promotion rule; the verdict with the aliases the version now holds.
    `approval` (default: auto where params.yaml gate.approval is auto, else off): who decides next;
    required: a reviewer (a passing version becomes challenger, even the first). The verdict carries it.

    Safe to run twice: a version gated already keeps its recorded verdict (`repeated`), and only a
    step the first attempt did not reach (its model card) is done now.
    """
    client = client or connect()
    policy = policy or load_config().gate
    approval = _allowed_approval(model, version, approval, policy)
    with tracking_errors(client, f"gating {model} v{version}"):
        candidate = client.get_model_version(model, str(version))
        if candidate.tags.get(GATE_APPLIED_TAG):
            return dataclasses.replace(
                _recorded_verdict(client, model, int(version), candidate), approval=approval
            )
        metrics = version_metrics(candidate)
        verdict = _judge(client, model, int(version), candidate, metrics, policy)
        record_verdict(
            client,
            Verdict(
                model,
                int(version),
                candidate.run_id,
                verdict.status,
                verdict.reason,
                verdict.champion_version,
                sha256=candidate.tags.get(HASH_TAG, ""),
            ),
        )
        aliases = apply_promotion_rule(client, model, int(version), verdict.passed, approval)
        client.set_model_version_tag(model, str(version), GATE_APPLIED_TAG, now_utc())
        card = _publish_card(client, model, int(version))
        client.update_model_version(
            model, str(version), description=_description(candidate.tags, metrics, verdict.reason, card)
        )
    LOGGER.info("%s v%s: gate %s (%s), aliases %s", model, version, verdict.status, verdict.reason, aliases)
    return GateVerdict(
        model=model,
        version=int(version),
        status=verdict.status,
        reason=verdict.reason,
        champion_version=verdict.champion_version,
        aliases=aliases,
        card=card,
        approval=approval,
    )


def _recorded_verdict(client, model: str, version: int, entry) -> GateVerdict:
    """The verdict a finished gate left on the version; its card written now if it is still missing."""
    tags = entry.tags
    card = tags.get(CARD_TAG) or _publish_card(client, model, version)
    if card and not tags.get(CARD_TAG):
        client.update_model_version(
            model,
            str(version),
            description=_description(tags, version_metrics(entry), tags.get(GATE_REASON_TAG, ""), card),
        )
    LOGGER.info(
        "%s v%s was gated already (%s): its verdict stands", model, version, tags.get(GATE_STATUS_TAG)
    )
    return GateVerdict(
        model=model,
        version=version,
        status=tags.get(GATE_STATUS_TAG, "unknown"),
        reason=tags.get(GATE_REASON_TAG, ""),
        champion_version=parse_version(tags.get(GATE_CHAMPION_TAG)),
        aliases=_aliases_of(client, model, version),
        card=card,
        repeated=True,
    )


def register_run(
    run_id: str, approval: Approval | None = None, client=None, policy: GateParams | None = None
) -> dict:
    """Register the run's SavedModel, then gate it and apply the promotion rule (`mura register`)."""
    client = client or connect()
    registered = register_version(run_id, client)
    verdict = gate_version(registered.model, registered.version, approval, client, policy)
    return {  # what `mura register --json` prints
        **{key: value for key, value in registered.to_xcom().items() if key != "candidates"},
        "gate": {
            "status": verdict.status,
            "reason": verdict.reason,
            "champion_version": verdict.champion_version,
            "repeated": verdict.repeated,
        },
        "aliases": verdict.aliases,
        "card": verdict.card,
    }
