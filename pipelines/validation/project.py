"""The GX 1.x file project of the gate: idempotent get-or-add of datasource, suite, definition, checkpoint.

The committed `great_expectations/` folder is the template: what this module writes with the
default params. Runs never touch it: they work in a copy under `$MURA_HOME/gx/`, made from the
template (and made again when the template changes), where changed thresholds rewrite the suites
and Data Docs land.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from mura_core.settings import get_settings
from pipelines.validation.suite import STUDY_SUITE_NAME, SUITE_NAME, build_expectations, study_rule_specs

DATASOURCE_NAME = "mura"
DOCS_SITE = "local_site"


@dataclass(frozen=True)
class Gate:
    """One frame checked by one suite: its asset, batch definition, validation definition and checkpoint."""

    asset: str
    suite: str
    definition: str
    checkpoint: str
    key_column: str  # the column GX reports for each failing row (the example paths)

    @property
    def result_format(self) -> dict:
        # GX keeps 20 examples per failed rule; the report trims them to params.validation.examples.
        return {
            "result_format": "SUMMARY",
            "unexpected_index_column_names": [self.key_column],
            "partial_unexpected_count": 20,
        }


GATES = {
    "images": Gate("manifest", SUITE_NAME, "mura_manifest_gate", "mura_data_gate", "image_path"),
    "studies": Gate("studies", STUDY_SUITE_NAME, "mura_studies_gate", "mura_studies_gate", "study_path"),
}
BATCH_DEFINITION_NAME = "whole_frame"


TEMPLATE_MARKER = ".template-sha256"


def template_project_dir() -> Path:
    """`<repo>/great_expectations`: the committed template (passed explicitly: a task's cwd is not the repo)."""
    return get_settings().repo_root / "great_expectations"


def _template_digest(template: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(template.rglob("*")):
        relative = path.relative_to(template)
        if path.is_file() and relative.parts[0] != "uncommitted":
            digest.update(str(relative).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def default_project_dir(template: Path | None = None, home: Path | None = None) -> Path:
    """The runtime GX project `$MURA_HOME/gx`, copied from the template when absent or out of date.

    The copy is made beside it and renamed into place, so a concurrent task sees the old project or
    the new one, never half of one.
    """
    template = Path(template or template_project_dir())
    runtime = Path(home or get_settings().mura_home) / "gx"
    wanted = _template_digest(template)
    marker = runtime / TEMPLATE_MARKER
    if marker.is_file() and marker.read_text() == wanted:
        return runtime
    runtime.parent.mkdir(parents=True, exist_ok=True)
    staging = runtime.parent / f".gx-{uuid.uuid4().hex[:8]}"
    shutil.copytree(template, staging, ignore=shutil.ignore_patterns("uncommitted"))
    (staging / TEMPLATE_MARKER).write_text(wanted)
    if runtime.exists():
        retired = runtime.parent / f".gx-old-{uuid.uuid4().hex[:8]}"
        os.rename(runtime, retired)
        shutil.rmtree(retired, ignore_errors=True)
    try:
        os.rename(staging, runtime)
    except OSError:  # another task put its copy in place first: use that one
        shutil.rmtree(staging, ignore_errors=True)
    return runtime


def open_context(project_dir: Path):
    """The GX file context rooted at `project_dir` (created there on first use)."""
    import great_expectations as gx

    project_dir = Path(project_dir)
    project_dir.mkdir(parents=True, exist_ok=True)
    context = gx.get_context(mode="file", context_root_dir=str(project_dir))
    from great_expectations.data_context.types.base import ProgressBarsConfig

    variables = context.variables
    progress = variables.progress_bars  # a ProgressBarsConfig when set in-process, a dict when read from yml
    bars_on = progress is None or (
        progress.get("globally") if isinstance(progress, dict) else progress.globally
    )
    if variables.analytics_enabled is not False or bars_on:
        # Offline workers: no usage statistics calls. No progress bars: the CLI output is the summary.
        variables.analytics_enabled = False
        variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        variables.save()
    return context


def _batch_definition(context, gate: Gate):
    datasource = next(
        (source for source in context.data_sources.all().values() if source.name == DATASOURCE_NAME), None
    )
    if datasource is None:
        datasource = context.data_sources.add_pandas(DATASOURCE_NAME)
    asset = next((asset for asset in datasource.assets if asset.name == gate.asset), None)
    if asset is None:
        asset = datasource.add_dataframe_asset(gate.asset)
    existing = next((batch for batch in asset.batch_definitions if batch.name == BATCH_DEFINITION_NAME), None)
    return existing or asset.add_batch_definition_whole_dataframe(BATCH_DEFINITION_NAME)


def _comparable(expectation) -> str:
    """An expectation's configuration without its id, for change detection."""
    config = expectation.configuration.to_json_dict()
    config.pop("id", None)
    return json.dumps(config, sort_keys=True, default=str)


def _suite(context, name: str, wanted: list):
    import great_expectations as gx

    names = [suite.name for suite in context.suites.all()]
    if name not in names:
        return context.suites.add(gx.ExpectationSuite(name=name, expectations=wanted))
    suite = context.suites.get(name)
    if [_comparable(item) for item in suite.expectations] == [_comparable(item) for item in wanted]:
        return suite
    # Thresholds changed in params.yaml: replace the expectations (the suite file changes, as it should).
    for expectation in list(suite.expectations):
        suite.delete_expectation(expectation)
    for expectation in wanted:
        suite.add_expectation(expectation)
    suite.save()
    return suite


def _validation_definition(context, name: str, batch_definition, suite):
    import great_expectations as gx

    names = [definition.name for definition in context.validation_definitions.all()]
    if name in names:
        return context.validation_definitions.get(name)
    definition = gx.ValidationDefinition(name=name, data=batch_definition, suite=suite)
    return context.validation_definitions.add(definition)


def _checkpoint(context, gate: Gate, definition):
    from great_expectations.checkpoint import UpdateDataDocsAction

    import great_expectations as gx

    names = [checkpoint.name for checkpoint in context.checkpoints.all()]
    if gate.checkpoint in names:
        return context.checkpoints.get(gate.checkpoint)
    checkpoint = gx.Checkpoint(
        name=gate.checkpoint,
        validation_definitions=[definition],
        result_format=gate.result_format,
        actions=[UpdateDataDocsAction(name="update_data_docs", site_names=[DOCS_SITE])],
    )
    return context.checkpoints.add(checkpoint)


def ensure_gate(project_dir: Path, params: dict):
    """(context, {"images": checkpoint, "studies": checkpoint}) in `project_dir`, adding what is missing."""
    context = open_context(project_dir)
    wanted = {"images": build_expectations(params), "studies": build_expectations(params, study_rule_specs())}
    checkpoints = {}
    for kind, gate in GATES.items():
        suite = _suite(context, gate.suite, wanted[kind])
        definition = _validation_definition(context, gate.definition, _batch_definition(context, gate), suite)
        checkpoints[kind] = _checkpoint(context, gate, definition)
    return context, checkpoints


def docs_index(context) -> str | None:
    """The file:// URL of the local Data Docs index page."""
    sites = context.get_docs_sites_urls(site_names=[DOCS_SITE])
    return sites[0]["site_url"] if sites else None
