"""The GX data gate on synthetic releases: clean data passes, every named fault fails with its rule."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from mura_core.errors import DataValidationError
from mura_core.settings import get_settings
from mura_core.stages import Validation
from pipelines.cli import main
from pipelines.data.manifest import build_manifest, write_manifest
from pipelines.data.synth import FAULTS, generate_synthetic
from pipelines.validation import validate, validate_manifest_file
from pipelines.validation.project import ensure_gate
from pipelines.validation.runner import gate_params

COMMITTED_PROJECT = get_settings().repo_root / "great_expectations"
# The rule each synthetic fault must trip.
FAULT_RULES = {
    "corrupt_png": "image_decodes",
    "zero_byte": "image_not_empty",
    "missing_file": "image_file_exists",
    "unlisted_file": "image_listed_in_csv",
    "patient_in_both_splits": "patient_in_one_split",
    "label_mismatch": "label_matches_folder",
    "unknown_body_part": "body_part_known",
    "duplicate_csv_row": "image_path_unique",
}


def _committed_files(root: Path) -> dict[str, str]:
    return {
        path.relative_to(root).as_posix(): hashlib.md5(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() and "uncommitted" not in path.relative_to(root).parts
    }


@pytest.fixture
def project(tmp_path) -> Path:
    """A copy of the committed GX project, so Data Docs never land in the repo."""
    target = tmp_path / "great_expectations"
    shutil.copytree(COMMITTED_PROJECT, target, ignore=shutil.ignore_patterns("uncommitted"))
    return target


def test_every_fault_kind_has_an_expected_rule():
    assert set(FAULT_RULES) == set(FAULTS)


def test_clean_data_passes_builds_docs_and_leaves_the_project_unchanged(
    synthetic_manifest, synthetic_root, project
):
    before = _committed_files(project)
    report = validate(synthetic_manifest, synthetic_root, project_dir=project, workers=2)
    assert report.success and report.failures == [] and report.rows == len(synthetic_manifest)
    assert report.rules_checked >= 40
    index = project / "uncommitted" / "data_docs" / "local_site" / "index.html"
    assert report.data_docs == index.as_uri() and index.is_file()
    assert Validation.from_xcom(json.loads(json.dumps(report.to_xcom()))) == report
    assert _committed_files(project) == before


def test_committed_project_is_what_setup_writes_from_params_yaml(project):
    before = _committed_files(project)
    ensure_gate(project, gate_params())
    assert _committed_files(project) == before


def test_setup_is_idempotent_on_a_fresh_folder(tmp_path):
    ensure_gate(tmp_path / "fresh", gate_params())
    first = _committed_files(tmp_path / "fresh")
    assert {
        "great_expectations.yml",
        "expectations/mura_manifest.json",
        "checkpoints/mura_data_gate.json",
        "validation_definitions/mura_manifest_gate.json",
    } <= set(first)
    ensure_gate(tmp_path / "fresh", gate_params())
    assert _committed_files(tmp_path / "fresh") == first


def test_thresholds_come_from_params(synthetic_manifest, synthetic_root, project):
    params = json.loads(json.dumps(gate_params()))
    params["row_count"]["min"] = len(synthetic_manifest) + 1
    params["image"]["allowed_modes"] = ["L"]
    with pytest.raises(DataValidationError) as caught:
        validate(synthetic_manifest, synthetic_root, project_dir=project, params=params)
    report = caught.value.report
    assert set(report["failed_rules"]) == {"row_count", "image_mode"}
    rgb = int((synthetic_manifest["mode"] == "RGB").sum())
    assert next(f for f in report["failures"] if f["rule"] == "image_mode")["unexpected_count"] == rgb
    assert f"observed {len(synthetic_manifest)}" in str(caught.value)


class FaultRoots(dict):
    """Small synthetic releases with one fault each, generated on first use."""

    def __init__(self, factory):
        super().__init__()
        self.factory = factory

    def __missing__(self, fault: str) -> Path:
        root = self[fault] = self.factory.mktemp(fault)
        generate_synthetic(root, seed=5, train_patients=40, valid_patients=10, fault=fault)
        return root


@pytest.fixture(scope="module")
def fault_roots(tmp_path_factory) -> FaultRoots:
    """fault name -> the folder holding its MURA-v1.1/."""
    return FaultRoots(tmp_path_factory)


@pytest.mark.slow
@pytest.mark.parametrize("fault", FAULTS)
def test_each_fault_fails_with_its_rule_count_and_example_paths(fault, fault_roots, project):
    root = fault_roots[fault]
    manifest = build_manifest(root).frame
    with pytest.raises(DataValidationError) as caught:
        validate(manifest, root, project_dir=project)
    report, rule = caught.value.report, FAULT_RULES[fault]
    assert report["success"] is False and report["failed_rules"] == [rule]
    failure = next(item for item in report["failures"] if item["rule"] == rule)
    assert failure["unexpected_count"] >= 1 and failure["examples"]
    assert all((root / path).parent.name.startswith("study") for path in failure["examples"])
    summary = str(caught.value)
    assert (
        f"{rule}: {failure['unexpected_count']} image(s) fail" in summary
        and failure["examples"][0] in summary
    )
    assert (project / "uncommitted" / "data_docs" / "local_site" / "index.html").is_file()


def test_study_rules_catch_a_labeled_study_without_images_and_a_repeated_study_line(
    synthetic_root, project, tmp_path
):
    shutil.copytree(synthetic_root / "MURA-v1.1", tmp_path / "MURA-v1.1")
    studies_csv = tmp_path / "MURA-v1.1" / "valid_labeled_studies.csv"
    lines = studies_csv.read_text().splitlines()
    empty = "MURA-v1.1/valid/XR_WRIST/patient99999/study1_negative/"
    studies_csv.write_text("\n".join([*lines, lines[0], f"{empty},0"]) + "\n")
    with pytest.raises(DataValidationError) as caught:
        validate(build_manifest(tmp_path).frame, tmp_path, project_dir=project)
    report = caught.value.report
    assert report["failed_rules"] == ["study_has_images", "study_listed_once_in_csv"]
    assert report["failures"][0]["examples"] == [empty]
    assert report["failures"][1]["examples"] == [lines[0].split(",")[0]]
    assert "study_has_images: 1 study(ies) fail" in str(caught.value)


def test_manifest_file_entry_point_for_airflow(
    fault_roots, synthetic_manifest, synthetic_root, project, tmp_path
):
    clean = write_manifest(synthetic_manifest, tmp_path / "clean.parquet")
    assert validate_manifest_file(clean, synthetic_root, project_dir=project).success
    root = fault_roots["corrupt_png"]
    broken = write_manifest(build_manifest(root).frame, tmp_path / "broken.parquet")
    with pytest.raises(DataValidationError, match="image_decodes"):
        validate_manifest_file(broken, root, project_dir=project)


def test_cli_exits_0_on_clean_data_and_1_on_a_fault(synthetic_root, fault_roots, project, capsys):
    assert main(["data", "validate", "--data", str(synthetic_root), "--project", str(project)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Data validation passed") and "Data Docs: file://" in out
    root = fault_roots["duplicate_csv_row"]
    assert main(["data", "validate", "--data", str(root), "--project", str(project), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["failed_rules"] == ["image_path_unique"] and report["failures"][0]["unexpected_count"] == 2


def test_runs_use_a_runtime_copy_under_mura_home_and_never_write_the_template(
    synthetic_manifest, synthetic_root, tmp_path, monkeypatch
):
    from pipelines.validation.project import TEMPLATE_MARKER, default_project_dir

    template = tmp_path / "template"
    shutil.copytree(COMMITTED_PROJECT, template, ignore=shutil.ignore_patterns("uncommitted"))
    monkeypatch.setenv("MURA_HOME", str(tmp_path / "home"))
    before = _committed_files(template)
    params = json.loads(json.dumps(gate_params()))
    params["image"]["max_width"] = 4000  # a changed threshold rewrites the runtime suite only
    runtime = default_project_dir(template)
    assert runtime == tmp_path / "home" / "gx" and (runtime / TEMPLATE_MARKER).is_file()
    report = validate(synthetic_manifest, synthetic_root, project_dir=runtime, params=params, workers=2)
    assert report.success and report.data_docs.startswith(runtime.as_uri())
    assert _committed_files(template) == before
    suite = "expectations/mura_manifest.json"
    assert _committed_files(runtime)[suite] != before[suite]  # the runtime suite took the threshold
    marker = (runtime / TEMPLATE_MARKER).read_text()
    assert default_project_dir(template) == runtime and _committed_files(runtime)[suite] != before[suite]
    (template / "great_expectations.yml").write_text((template / "great_expectations.yml").read_text() + "\n")
    assert (
        default_project_dir(template) / TEMPLATE_MARKER
    ).read_text() != marker  # template changed: new copy
    assert _committed_files(runtime)[suite] == before[suite]
