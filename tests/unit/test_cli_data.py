"""`mura data` commands run as a user runs them and their --json output parses."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import pytest

from pipelines.cli import main


def _mura(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args], capture_output=True, text=True, cwd=cwd
    )


def test_synth_stats_and_manifest_json(tmp_path, mura_home, capsys):
    assert (
        main(
            [
                "data",
                "synth",
                "--out",
                str(tmp_path),
                "--train-patients",
                "8",
                "--valid-patients",
                "3",
                "--json",
            ]
        )
        == 0
    )
    synth = json.loads(capsys.readouterr().out)
    assert synth["images"] > 0 and synth["fault"] is None
    assert (
        main(["data", "stats", "--data", str(tmp_path), "--plot", str(tmp_path / "bar.png"), "--json"]) == 0
    )
    stats = json.loads(capsys.readouterr().out)
    assert sum(row["images"] for row in stats["table"]) == synth["images"]
    assert (tmp_path / "bar.png").stat().st_size > 1000
    assert (
        main(["data", "manifest", "--data", str(tmp_path), "--out", str(tmp_path / "m.parquet"), "--json"])
        == 0
    )
    manifest = json.loads(capsys.readouterr().out)
    assert manifest["rows"] == synth["images"] and manifest["problems"] == {}


def test_a_folder_that_is_not_mura_fails_with_one_line(tmp_path):
    result = _mura("data", "manifest", "--data", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "not a MURA tree" in result.stderr and str(tmp_path) in result.stderr


def test_import_folder_and_zip_and_refuse_a_broken_zip(tmp_path, synthetic_root, capsys):
    target = tmp_path / "data"
    assert main(["data", "import", str(synthetic_root / "MURA-v1.1"), "--data", str(target), "--json"]) == 0
    imported = json.loads(capsys.readouterr().out)
    listed = len((synthetic_root / "MURA-v1.1" / "train_image_paths.csv").read_text().splitlines())
    assert imported["files"] > listed
    archive = tmp_path / "MURA-v1.1.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for path in (synthetic_root / "MURA-v1.1").rglob("*"):
            handle.write(path, path.relative_to(synthetic_root).as_posix())
    zipped = tmp_path / "from_zip"
    assert main(["data", "import", str(archive), "--data", str(zipped)]) == 0
    assert (zipped / "MURA-v1.1" / "valid_labeled_studies.csv").is_file()
    broken = tmp_path / "broken.zip"
    broken.write_bytes(archive.read_bytes()[:200])
    untouched = tmp_path / "untouched"
    result = _mura("data", "import", str(broken), "--data", str(untouched))
    assert result.returncode == 1 and "not a readable zip" in result.stderr
    assert not untouched.exists() or not any(untouched.iterdir())


@pytest.mark.parametrize("args", [["data", "synth", "--fault", "nope"], ["data", "nope"]])
def test_bad_arguments_exit_non_zero(args):
    assert _mura(*args).returncode != 0
