"""Write a registered version's model card (HTML that renders offline, and Markdown) and log it to its
training run under `model_card/v<N>/`, linked from the version's description."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path

import pandas as pd

from mura_core.config import load_config
from mura_core.contracts import CARD_TAG, CHALLENGER, CHAMPION, MODEL_ARTIFACT, VALIDATION_SUCCESS_TAG
from mura_core.errors import RegistryError
from pipelines.cards import facts as gather
from pipelines.cards import paper
from pipelines.data import BOXES_FILE

LOGGER = logging.getLogger(__name__)
OVERLAYS_INDEX = "overlays.json"  # beside the overlay pictures: what each one shows


def card_artifact_path(version: int) -> str:
    """Where a version's card lives among its training run's artifacts."""
    return f"model_card/v{int(version)}"


def collect(client, model: str, version: int, scratch: Path, out: Path, reuse_overlays: bool = False) -> dict:
    """Every fact of the card; figures and overlays are written under `out`. `reuse_overlays`: take the
    Grad-CAM++ overlays of the version's logged card when it has them (a card written again after a
    decision: the same model, predictions and threshold, so the same pictures, without loading the
    model again)."""
    entry = client.get_model_version(model, str(version))
    run = client.get_run(entry.run_id)
    aliases = [
        alias
        for alias, number in client.get_registered_model(model).aliases.items()
        if int(number) == int(version)
    ]
    subject = f"{model} v{version}, valid"
    metrics = gather.load_json(gather.artifact(client, run.info.run_id, "evaluation/metrics.json", scratch))
    config = gather.load_json(
        gather.artifact(client, run.info.run_id, "config/resolved_config.json", scratch)
    )
    manifest_path = gather.artifact(client, run.info.run_id, "data/manifest.parquet", scratch)
    predictions_path = gather.artifact(client, run.info.run_id, "evaluation/predictions.csv", scratch)
    data_root = Path(run.data.tags.get("data.root", "") or "/nonexistent")
    result: dict = {
        "model": model,
        "version": int(version),
        "aliases": aliases,
        "run_id": run.info.run_id,
        "tags": dict(entry.tags),
        "run_tags": {key: value for key, value in run.data.tags.items() if not key.startswith("mlflow.")},
        "config": config,
        "metrics": metrics,
        "paper": paper,
        "synthetic": (data_root / BOXES_FILE).is_file(),
        "counts": gather.data_counts(pd.read_parquet(manifest_path)) if manifest_path else None,
        "performance": gather.performance_rows(metrics) if metrics else None,
        "calibration": gather.calibration_summary(metrics) if metrics else None,
        "figures": [],
        "overlays": [],
        "gaps": [],
        "external": gather.external_validations(client, model, version),
    }
    if not metrics:
        result["gaps"].append(
            "The run holds no evaluation/metrics.json: evaluate it (`mura evaluate RUN_ID`)."
        )
    if metrics:
        _add_pictures(
            client, result, version, predictions_path, data_root, scratch, out, subject, reuse_overlays
        )
    result["limitations"] = gather.limitations(result)
    return result


def _add_pictures(
    client,
    result: dict,
    version: int,
    predictions_path: Path | None,
    data_root: Path,
    scratch: Path,
    out: Path,
    subject: str,
    reuse_overlays: bool,
) -> None:
    """The evaluated version's figures and Grad-CAM++ overlays into the card's facts, or the gap that
    kept them out."""
    from pipelines.evaluation import evaluation_figures, study_scores

    metrics, run_id = result["metrics"], result["run_id"]
    if not predictions_path:
        result["gaps"].append(
            "The run holds no evaluation/predictions.csv: no figures and no Grad-CAM++ examples."
        )
        return
    predictions = pd.read_csv(predictions_path)
    result["figures"] = evaluation_figures(study_scores(predictions), metrics, out / "figures", subject)
    model_path = gather.artifact(client, run_id, MODEL_ARTIFACT, scratch)
    if not data_root.is_dir():
        result["gaps"].append(
            f"Grad-CAM++ examples left out: the data root {data_root} is not on this machine."
        )
    elif model_path:
        logged = _logged_overlays(client, run_id, version, scratch, out) if reuse_overlays else None
        result["overlays"] = (
            logged
            if logged is not None
            else _overlays(model_path, predictions, data_root, metrics, out, subject)
        )


def _overlays(model_path, predictions, data_root, metrics, out, subject) -> list[dict]:
    from pipelines.cards.examples import overlays

    threshold = float(metrics.get("threshold", load_config().evaluation.threshold))
    made = overlays(model_path, predictions, data_root, threshold, out / "overlays", subject)
    if made:  # what a card written again reuses (`_logged_overlays`)
        listed = [{**item, "file": Path(item["file"]).name} for item in made]
        (out / "overlays" / OVERLAYS_INDEX).write_text(json.dumps(listed, indent=2), encoding="utf-8")
    return made


def _logged_overlays(client, run_id: str, version: int, scratch: Path, out: Path) -> list[dict] | None:
    """The overlays of the version's logged card, copied under `out`; None when it has none listed."""
    (scratch / "logged").mkdir(parents=True, exist_ok=True)
    folder = gather.artifact(client, run_id, f"{card_artifact_path(version)}/overlays", scratch / "logged")
    if folder is None:
        return None
    index = folder / OVERLAYS_INDEX
    if not index.is_file():
        return None
    listed = json.loads(index.read_text(encoding="utf-8"))
    if not all((folder / item["file"]).is_file() for item in listed):
        return None
    shutil.copytree(folder, out / "overlays", dirs_exist_ok=True)
    return [{**item, "file": out / "overlays" / item["file"]} for item in listed]


def validation_result(tag: str | None) -> str:
    """The Great Expectations verdict a reviewer reads, from the `validation.success` tag (written as
    Python's `True`/`False`; any spelling of true or false counts)."""
    if tag is None:
        return "unknown (no validation recorded)"
    verdict = {"true": "passed", "false": "failed"}.get(tag.strip().lower())
    return verdict or f"unknown (tag validation.success={tag!r})"


def render(card: dict, out: Path) -> tuple[Path, Path]:
    """card.html (images inline: one file, no request) and card.md (images beside it) in `out`."""
    from mura_core.templating import environment as make_environment

    environment = make_environment("pipelines.cards")
    environment.filters["relative"] = lambda path: Path(path).relative_to(out).as_posix()
    context = {
        **card,
        "CHAMPION": CHAMPION,
        "CHALLENGER": CHALLENGER,
        "validation": validation_result(card["tags"].get(VALIDATION_SUCCESS_TAG)),
    }
    html = out / "card.html"
    markdown = out / "card.md"
    html.write_text(environment.get_template("card.html.j2").render(context), encoding="utf-8")
    markdown.write_text(environment.get_template("card.md.j2").render(context), encoding="utf-8")
    return html, markdown


def write_card(client, model: str, version: int, out: Path, reuse_overlays: bool = False) -> Path:
    """Build the card of `model` v`version` into `out` (created); the HTML file's path."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mura-card-") as scratch:
        card = collect(client, model, version, Path(scratch), out, reuse_overlays)
    return render(card, out)[0]


def publish_card(client, model: str, version: int, reuse_overlays: bool = False) -> str:
    """Write the card, log it to the version's run and tag the version with where it is."""
    entry = client.get_model_version(model, str(version))
    with tempfile.TemporaryDirectory(prefix="mura-card-out-") as folder:
        write_card(client, model, version, Path(folder), reuse_overlays)
        client.log_artifacts(entry.run_id, folder, artifact_path=card_artifact_path(version))
    where = f"runs:/{entry.run_id}/{card_artifact_path(version)}/card.html"
    client.set_model_version_tag(model, str(version), CARD_TAG, where)
    LOGGER.info("%s v%s: model card at %s", model, version, where)
    return where


def fetch_card(client, model: str, version: int, out: Path, rebuild: bool = False) -> Path:
    """The version's logged card downloaded into `out` (built and logged first when it has none)."""
    entry = client.get_model_version(model, str(version))
    if rebuild or CARD_TAG not in entry.tags:
        publish_card(client, model, version)
    with tempfile.TemporaryDirectory(prefix="mura-card-get-") as scratch:
        path = gather.artifact(client, entry.run_id, card_artifact_path(version), Path(scratch))
        if path is None:
            raise RegistryError(
                f"{model} v{version}: no card under its run's {card_artifact_path(version)}/; "
                f"write it again: `mura card {model}/{version} --rebuild`"
            )
        shutil.copytree(path, out, dirs_exist_ok=True)
    return out / "card.html"
