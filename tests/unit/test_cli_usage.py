"""`mura` as a person at a terminal meets it: usage errors before any heavy import, one-line failures
with the log's path, --version, completion, the retrain form's checks, progress bars only when asked."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from mura_core.errors import ConfigError
from pipelines import cli
from tests.unit.conftest import HEAVY

# Runs `main` in a fresh interpreter and reports the exit code, stderr and the heavy modules loaded.
PROBE = """
import contextlib, io, json, sys
from pipelines.cli import main
err = io.StringIO()
with contextlib.redirect_stderr(err):
    try:
        code = main(sys.argv[1:])
    except SystemExit as exit:
        code = exit.code
heavy = sorted({name.split(".")[0] for name in sys.modules} & set(sys.argv[0].split(",")))
print(json.dumps({"code": code, "stderr": err.getvalue(), "heavy": heavy}))
"""


def probe(*argv: str, env: dict | None = None) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.replace("sys.argv[0]", repr(",".join(HEAVY))), *argv],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **(env or {})},
    )
    return json.loads(done.stdout)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["train", "--preset", "nosuch"],
            "unknown preset 'nosuch'; choose from ci_tiny, cpu_smoke, mura_paper",
        ),
        (
            ["train", "--architectures", "densenet169,resnet9000"],
            "unknown architecture resnet9000; choose from",
        ),
        (["train", "--task", "multi"], "invalid choice: 'multi'"),
        (["train", "--epochs", "0"], "0 is below 1"),
        (["tune", "--max-trials", "x"], "'x' is not a whole number"),
        (["retrain", "--ensemble", "50"], "ensemble=50: 50 is greater than the maximum of 20"),
        (["retrain", "--architectures", "resnet9000"], "'resnet9000' is not one of"),
        (["retrain", "--image-size", "8"], "image_size=8: 8 is less than the minimum of 32"),
        (["predict"], "give an image, a study folder or DICOM files, or --pacs STUDY_UID"),
    ],
)
def test_usage_errors_name_the_fault_before_any_heavy_import(argv, message):
    result = probe(*argv)
    assert result["code"] in (1, 2) and message in result["stderr"], result
    assert result["heavy"] == []


def test_version_and_help_list_choices_and_defaults(capsys):
    with pytest.raises(SystemExit) as exit:
        cli.main(["--version"])
    assert exit.value.code == 0 and capsys.readouterr().out.startswith("mura 0.")
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "ci_tiny, cpu_smoke, mura_paper (default: cpu_smoke" in text and "densenet169" in text
    with pytest.raises(SystemExit):
        cli.main(["runs", "--help"])
    assert "(default: 20)" in " ".join(capsys.readouterr().out.split())


def test_an_unexpected_error_is_one_line_with_the_log_path(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MURA_HOME", str(tmp_path))
    assert cli.main(["data", "synth", "--out", "/proc/nope/data", "--train-patients", "2"]) == 1
    err = capsys.readouterr().err
    log = tmp_path / "logs" / "cli.log"
    assert len(err.strip().splitlines()) == 1 and f"traceback in {log}" in err, err
    assert "/proc/nope" in err and "Traceback (most recent call last)" in log.read_text()
    assert oct(log.stat().st_mode & 0o777) == "0o600"  # it was 0644: a traceback quotes arguments
    assert cli.main(["--debug", "data", "synth", "--out", "/proc/nope/data", "--train-patients", "2"]) == 1
    assert "Traceback (most recent call last)" in capsys.readouterr().err


def test_completion_script_and_completions_of_presets(tmp_path):
    script = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "completion", "bash"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "complete" in script and "mura" in script
    line = "mura train --preset "
    answer = tmp_path / "completions"
    subprocess.run(
        [sys.executable, "-m", "pipelines.cli"],
        env={**os.environ, "_ARGCOMPLETE": "1", "_ARGCOMPLETE_IFS": " ", "COMP_LINE": line,
             "COMP_POINT": str(len(line)), "_ARGCOMPLETE_STDOUT_FILENAME": str(answer)},
        capture_output=True,
        check=False,
    )  # fmt: skip
    assert answer.read_text().split() == ["ci_tiny", "cpu_smoke", "mura_paper"]


def test_the_retrain_form_checks_a_conf_as_airflow_does():
    from pipelines.retrain_form import check_conf, retrain_form

    form = retrain_form("cpu_smoke", ["cpu_smoke", "mura_paper"])
    assert check_conf({"epochs": 3, "architectures": ["baseline_cnn"], "augment": False}, form)
    for conf, fault in (
        ({"epochs": 0}, "epochs=0"),
        ({"preset": "nosuch"}, "'nosuch' is not one of"),
        ({"learning_rate": 0}, "learning_rate=0"),
        ({"task": "multi"}, "task='multi'"),
        ({"colour": "red"}, "no field colour"),
    ):
        with pytest.raises(ConfigError, match=fault):
            check_conf(conf, form)


def test_progress_bars_only_when_asked(monkeypatch, capsys):
    from mura_core.parallel import map_in_chunks

    def double(chunk):
        return [item * 2 for item in chunk]

    monkeypatch.setenv("MURA_PROGRESS", "1")
    assert map_in_chunks(double, list(range(40)), workers=1, description="doubling") == [
        i * 2 for i in range(40)
    ]
    assert "doubling" in (err := capsys.readouterr().err) and "40/40" in err
    monkeypatch.setenv("MURA_PROGRESS", "0")
    assert map_in_chunks(double, list(range(40)), workers=1, description="doubling") == [
        i * 2 for i in range(40)
    ]
    assert capsys.readouterr().err == ""


def test_json_and_mura_progress_0_also_turn_off_mlflow_s_download_bars(monkeypatch, capsys):
    """`mura monitor --json` and `mura card` with MURA_PROGRESS=0 still drew MLflow's "Downloading
    artifacts" bars on stderr."""
    from mura_core.progress import MLFLOW_BARS
    from pipelines.cli import main

    for flags, setting in ((["--json"], None), ([], "0")):
        monkeypatch.delenv(MLFLOW_BARS, raising=False)
        monkeypatch.delenv("MURA_PROGRESS", raising=False)
        if setting is not None:
            monkeypatch.setenv("MURA_PROGRESS", setting)
        assert main(["gate-key", *flags]) == 0
        capsys.readouterr()
        assert os.environ.get(MLFLOW_BARS) == "false", flags
    monkeypatch.delenv(MLFLOW_BARS, raising=False)
    monkeypatch.setenv("MURA_PROGRESS", "1")  # asked for: MLflow's own bars are left alone
    assert main(["gate-key"]) == 0
    assert MLFLOW_BARS not in os.environ


def test_study_folders_under_a_patient_or_study_type_folder(tmp_path):
    from serving.client import study_folders

    part = tmp_path / "XR_HAND"
    for study in (
        "patient00001/study1_positive",
        "patient00001/study2_negative",
        "patient00002/study1_negative",
    ):
        (part / study).mkdir(parents=True)
        (part / study / "image1.png").write_bytes(b"png")
    (part / ".hidden" / "study1").mkdir(parents=True)
    (part / ".hidden" / "study1" / "image1.png").write_bytes(b"png")
    assert [path.relative_to(part).as_posix() for path in study_folders(part)] == [
        "patient00001/study1_positive",
        "patient00001/study2_negative",
        "patient00002/study1_negative",
    ]
    assert study_folders(part / "patient00002" / "study1_negative") == [
        part / "patient00002" / "study1_negative"
    ]
    (tmp_path / "empty").mkdir()
    with pytest.raises(Exception, match="holds no PNG or JPEG image"):
        study_folders(tmp_path / "empty")


def test_every_option_has_help_and_docs_cli_md_is_current():
    import argparse

    from mura_core.settings import get_settings
    from pipelines.cli.reference import _sections, _subcommands, reference

    def undocumented(parser, name):
        missing = [
            f"{name} {action.dest}"
            for action in parser._actions
            if not action.help and not isinstance(action, argparse._SubParsersAction)
        ]
        for child_name, child in _subcommands(parser).items():
            missing += undocumented(child, f"{name} {child_name}")
        return missing

    assert undocumented(cli.build_parser(), "mura") == []
    assert len(_sections(cli.build_parser(), "mura")) > 25
    current = (get_settings().repo_root / "docs" / "CLI.md").read_text()
    assert current == reference(), "docs/CLI.md is stale: run `make docs`"


def test_the_guide_names_every_environment_variable_the_code_reads():
    import re

    from mura_core.settings import get_settings

    root = get_settings().repo_root
    code = "\n".join(
        path.read_text()
        for folder in ("mura_core", "pipelines", "serving", "dags")
        for path in (root / folder).rglob("*.py")
    )
    read = set(
        re.findall(r"(?:environ(?:\.get)?\(|getenv\(|env\.get\(|environ\[)\s*\"([A-Z][A-Z0-9_]+)\"", code)
    )
    guide = (root / "docs" / "GUIDE.md").read_text()  # its Settings table
    ours = {name for name in read if name.startswith(("MURA_", "MLFLOW_", "AIRFLOW_", "KERAS_"))}
    assert ours and not sorted(name for name in ours if f"`{name}`" not in guide)


def test_retrain_json_prints_one_json_document_and_nothing_else(monkeypatch, capsys):
    """A script reading `mura retrain --json` (stdout and stderr together) gets the document alone."""

    class Airflow:
        base_url = "http://airflow.invalid"

        def unpause(self, dag_id):
            pass

        def trigger(self, dag_id, conf):
            return "manual__1"

    monkeypatch.setattr("pipelines.stack.airflow_api.client_from_settings", Airflow)
    assert cli.main(["retrain", "--preset", "cpu_smoke", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["dag_run_id"] == "manual__1" and captured.err == ""
    assert cli.main(["retrain", "--preset", "cpu_smoke"]) == 0
    assert "triggered mura_retrain run manual__1" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["train", "tune", "retrain"])
def test_old_flag_spellings_parse_as_the_new_ones_and_each_prints_one_deprecation_line(command, capsys):
    parser = cli.build_parser()
    for new, old, warning in (
        (["--architectures", "baseline_cnn"], ["--arch", "baseline_cnn"], "--arch is deprecated; use --architectures"),
        (["--augment"], ["--augment", "true"], "--augment true is deprecated; use --augment"),
        (["--augment"], ["--augment=true"], "--augment true is deprecated; use --augment"),
        (["--no-augment"], ["--augment", "false"], "--augment false is deprecated; use --no-augment"),
    ):  # fmt: skip
        expected = parser.parse_args([command, *new])
        assert capsys.readouterr().err == ""
        assert vars(parser.parse_args([command, *old])) == vars(expected)
        assert capsys.readouterr().err.splitlines() == [f"mura: {warning}"]
    unset = parser.parse_args([command])
    assert unset.architectures is None and unset.augment is None  # the preset's (or the form's) value
    assert parser.parse_args([command, "--no-augment"]).augment is False


def test_old_flag_spellings_are_hidden_from_help_and_still_checked(capsys):
    for command in ("train", "tune", "retrain"):
        with pytest.raises(SystemExit):
            cli.main([command, "--help"])
        text = capsys.readouterr().out
        assert "--architectures" in text and "--augment | --no-augment" in text
        assert "--arch " not in text and "true" not in text.replace("(default", "")
    with pytest.raises(SystemExit) as usage:
        cli.main(["train", "--arch", "resnet9000"])
    assert usage.value.code == 2 and "unknown architecture resnet9000" in capsys.readouterr().err


def test_options_sharing_a_dest_share_their_long_option_across_commands():
    """Options with one dest have one long option on every command, and one long option one dest.

    One name per concept: `train --arch` beside `retrain --architectures` failed here. Old spellings,
    hidden from help, do not count."""
    import argparse
    from collections import defaultdict

    from pipelines.cli.reference import _subcommands

    flags: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    dests: dict[str, set[str]] = defaultdict(set)

    def walk(parser, name):
        for action in parser._actions:
            if not action.option_strings or action.help is argparse.SUPPRESS:
                continue
            canonical = next((flag for flag in action.option_strings if flag.startswith("--")), None)
            canonical = canonical or action.option_strings[0]
            flags[action.dest][canonical].append(name)
            dests[canonical].add(action.dest)
        for child_name, child in _subcommands(parser).items():
            walk(child, f"{name} {child_name}")

    walk(cli.build_parser(), "mura")
    assert len(flags["architectures"]["--architectures"]) == 3  # train, tune, retrain
    differing = {dest: dict(spellings) for dest, spellings in flags.items() if len(spellings) > 1}
    assert differing == {}, f"one concept, several flag names: {differing}"
    shared = {flag: sorted(names) for flag, names in dests.items() if len(names) > 1}
    assert shared == {}, f"one flag name, several concepts: {shared}"


def test_a_file_name_with_escape_sequences_is_printed_escaped(capsys):
    """`mura predict` printed names raw: `\x1b[2J` in a file name cleared the screen of whoever ran it."""
    from pipelines.cli.common import emit, fail

    emit({}, False, "x-ray\x1b[2J\x1b]0;owned\x07.png: normal\nnext line\tok")
    fail("no such file: a\u202egnp.dcm")  # a right-to-left override hides the true ending
    out, err = capsys.readouterr()
    assert out == "x-ray\\x1b[2J\\x1b]0;owned\\x07.png: normal\nnext line\tok\n"
    assert "\u202e" not in err and "\\u202e" in err
