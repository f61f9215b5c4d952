"""DVC round trips through the local remote in a temporary clone of this repository."""

from __future__ import annotations

import hashlib
import shutil
import subprocess

import pytest

from mura_core.errors import DataError
from mura_core.settings import get_settings
from pipelines.data import dvc
from pipelines.data.synth import generate_synthetic

GIT_ENV = {
    "GIT_AUTHOR_NAME": "test",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "test",
    "GIT_COMMITTER_EMAIL": "t@example.com",
}


def _tree_digest(folder):
    files = sorted(path for path in folder.rglob("*") if path.is_file())
    return hashlib.sha256(
        b"".join(p.relative_to(folder).as_posix().encode() + p.read_bytes() for p in files)
    ).hexdigest()


@pytest.fixture
def clone(tmp_path, mura_home, monkeypatch):
    """A clone of this repository with its own MURA_HOME (so its own local DVC remote)."""
    target = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(get_settings().repo_root), str(target)], check=True)
    for key, value in GIT_ENV.items():
        monkeypatch.setenv(key, value)
    return target


def _commit(root, message):
    subprocess.run(["git", "add", "data.dvc", ".gitignore"], cwd=root, check=True)
    subprocess.run(["git", "commit", "--quiet", "-m", message], cwd=root, check=True)
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=root, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.mark.slow
def test_add_push_delete_pull_restores_identical_bytes_and_revisions(clone, mura_home):
    generate_synthetic(clone / "data", seed=1, train_patients=6, valid_patients=2)
    first_digest = _tree_digest(clone / "data")
    pushed = dvc.add_and_push(root=clone)
    assert pushed["dvc_md5"].endswith(".dir") and pushed["nfiles"] > 4
    assert any((mura_home / "dvc-remote").rglob("*")), "nothing reached the local remote"
    first_rev = _commit(clone, "data v1")

    generate_synthetic(clone / "data", seed=2, train_patients=6, valid_patients=2)
    second = dvc.add_and_push(root=clone)
    assert second["dvc_md5"] != pushed["dvc_md5"]
    _commit(clone, "data v2")

    pointer = (clone / "data.dvc").read_bytes()
    shutil.rmtree(clone / "data")
    shutil.rmtree(clone / ".dvc" / "cache", ignore_errors=True)
    restored = dvc.pull(rev=first_rev, root=clone)
    assert restored.dvc_md5 == pushed["dvc_md5"] and restored.data_rev == first_rev
    assert _tree_digest(clone / "data") == first_digest
    # Pulling an older revision reads its pointer with git: the work tree's data.dvc is untouched.
    assert (clone / "data.dvc").read_bytes() == pointer
    assert (
        subprocess.run(
            ["git", "status", "--porcelain", "data.dvc"], cwd=clone, capture_output=True, text=True
        ).stdout
        == ""
    )
    assert not dvc.status(root=clone)["workspace_clean"]  # data/ now differs from the current pointer
    latest = dvc.pull(root=clone)
    assert latest.dvc_md5 == second["dvc_md5"] and dvc.status(root=clone)["workspace_clean"]


def test_pull_of_a_rev_that_does_not_exist_says_so(clone):
    with pytest.raises(DataError, match="data rev 'no-such-rev' does not exist"):
        dvc.pull(rev="no-such-rev", root=clone)


def test_push_without_data_says_what_to_run(clone):
    with pytest.raises(DataError, match="mura data synth"):
        dvc.add_and_push(root=clone)


def test_data_version_reads_the_committed_pointer():
    version = dvc.data_version()
    assert version["dvc_md5"].endswith(".dir") and len(version["rev"]) == 40


def test_an_unreachable_s3_remote_is_named_with_endpoint_and_bucket(clone, monkeypatch):
    from mura_core.ports import free_ports

    (port,) = free_ports(1)
    monkeypatch.setenv("MURA_DVC_S3_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "wrong")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    generate_synthetic(clone / "data", seed=1, train_patients=3, valid_patients=1)
    with pytest.raises(DataError) as raised:
        dvc.add_and_push(root=clone, remote="s3")
    message = str(raised.value)
    assert (
        "s3://mura-dvc/store" in message and f"127.0.0.1:{port}" in message and "AWS_ACCESS_KEY_ID" in message
    )


def _run(root, *args):
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout.strip()


def test_folder_md5_is_the_hash_dvc_add_records(clone):
    from pipelines.data.versioning import folder_md5

    generate_synthetic(clone / "data", seed=3, train_patients=5, valid_patients=2)
    computed, files = folder_md5(clone / "data")
    added = dvc.add_and_push(root=clone)
    assert computed == added["dvc_md5"] and files == added["nfiles"]


def test_lineage_of_modified_unpushed_and_versioned_data(clone):
    from pipelines.data.versioning import data_lineage

    generate_synthetic(clone / "data", seed=3, train_patients=5, valid_patients=2)
    dvc.add_and_push(root=clone)
    _commit(clone, "data")
    versioned = data_lineage(clone / "data", clone)
    assert versioned["data.versioned"] == "true" and versioned["data.dvc_md5"] == versioned["data.md5"]
    assert versioned["data.rev"] == _run(clone, "rev-parse", "HEAD")
    image = next((clone / "data").rglob("*.png"))
    image.write_bytes(image.read_bytes() + b"\0")  # one changed byte: another data set
    modified = data_lineage(clone / "data", clone)
    assert modified["data.versioned"] == "false" and modified["data.dvc_md5"] == "unversioned"
    assert modified["data.md5"] != versioned["data.md5"]
    with dvc.open_repo(clone) as repo:  # versioned locally (dvc add) but never pushed
        repo.scm_context.quiet = True
        repo.add([str(clone / "data")])
    _commit(clone, "data, not pushed")
    assert data_lineage(clone / "data", clone)["data.versioned"] == "false"


def test_status_tells_the_truth_about_an_empty_remote(clone, capsys):

    status = dvc.status(root=clone)  # a fresh clone: committed data.dvc, no data, nothing in the remote
    assert not status["in_sync"] and not status["remote_in_sync"] and status["missing_count"] >= 1
    assert any("mura data pull" in line for line in status["advice"])
    generate_synthetic(clone / "data", seed=3, train_patients=5, valid_patients=2)
    dvc.add_and_push(root=clone)
    assert dvc.status(root=clone)["advice"] == [
        "data.dvc has uncommitted changes: commit it ('git add data.dvc && git commit')"
    ]
    _commit(clone, "data")
    assert dvc.status(root=clone)["in_sync"]
    shutil.rmtree(next(clone.parent.glob("mura_home")) / "dvc-remote")
    assert not dvc.status(root=clone)["remote_in_sync"]


def test_status_command_exits_non_zero_with_what_to_run(clone, monkeypatch, capsys):
    from pipelines.cli import main

    monkeypatch.setenv("MURA_REPO_ROOT", str(clone))
    assert main(["data", "status"]) == 1
    out = capsys.readouterr().out
    assert "lacks" in out and "mura data pull" in out


def test_pull_on_a_fresh_clone_explains_how_to_recreate_the_synthetic_sample(clone):
    with pytest.raises(DataError) as caught:
        dvc.pull(root=clone)
    message = str(caught.value)
    assert "does not hold" in message and "mura data synth" in message and "seed 7" in message


def _release(root, seed=3):
    generate_synthetic(root, seed=seed, train_patients=5, valid_patients=2)
    return root / "MURA-v1.1"


def test_import_refuses_empty_and_partial_releases(tmp_path):
    from pipelines.data.importer import import_release

    source = _release(tmp_path / "src")
    empty = tmp_path / "empty" / "MURA-v1.1"
    empty.mkdir(parents=True)
    for csv_file in source.glob("*.csv"):
        (empty / csv_file.name).write_text("")
    with pytest.raises(DataError, match="holds no images"):
        import_release(empty, tmp_path / "target")
    next(source.rglob("image1.png")).unlink()
    with pytest.raises(DataError, match="partial release: 1 of"):
        import_release(source, tmp_path / "target")
    assert not (tmp_path / "target" / "MURA-v1.1").exists()


def test_import_never_replaces_data_that_no_remote_holds(clone, tmp_path):
    from pipelines.data.importer import import_release
    from pipelines.data.versioning import folder_md5

    old_release = _release(clone / "data", seed=3)
    assert old_release.is_dir()
    old_md5 = folder_md5(clone / "data")[0]
    new_source = _release(tmp_path / "new", seed=4)
    with pytest.raises(DataError, match="no DVC remote holds"):
        import_release(new_source, clone / "data", repo_root=clone)
    assert folder_md5(clone / "data")[0] == old_md5  # untouched
    result = import_release(new_source, clone / "data", force=True, repo_root=clone)
    assert result["previous_pushed"] == old_md5
    assert folder_md5(clone / "data")[0] != old_md5
    first = _commit(clone, "the replaced data, as pushed by --force")
    shutil.rmtree(clone / "data")
    shutil.rmtree(clone / ".dvc" / "cache", ignore_errors=True)
    assert dvc.pull(rev=first, root=clone).dvc_md5 == old_md5  # the previous version is still pullable
    assert folder_md5(clone / "data")[0] == old_md5


def test_diff_reports_exactly_a_known_relabelling(clone):
    from pipelines.data.diff import diff_revisions

    release = _release(clone / "data", seed=3)
    dvc.add_and_push(root=clone)
    first = _commit(clone, "v1")
    studies_csv = release / "train_labeled_studies.csv"
    rows = [line.split(",") for line in studies_csv.read_text().splitlines()]
    flipped = {rows[index][0] for index in (0, 2)}
    for index in (0, 2):
        rows[index][1] = "1" if rows[index][1] == "0" else "0"
    studies_csv.write_text("\n".join(",".join(row) for row in rows) + "\n")
    images = sorted(release.rglob("*.png"))
    images[0].unlink()  # removed (the CSV still lists it: the diff is about bytes and labels)
    images[1].write_bytes(images[1].read_bytes() + b"\0")  # changed
    dvc.add_and_push(root=clone)
    second = _commit(clone, "v2: relabelled")
    shutil.rmtree(clone / ".dvc" / "cache")  # both versions read from the remote
    result = diff_revisions(first, second, root=clone)
    assert {item["study"] for item in result["label_flipped"]} == flipped
    assert result["removed"] == [images[0].relative_to(clone / "data").as_posix()]
    assert result["changed"] == [images[1].relative_to(clone / "data").as_posix()]
    assert result["added"] == [] and result["studies_added"] == result["studies_removed"] == []
    assert sum(counts.get("label_flipped", 0) for counts in result["counts"].values()) == 2
