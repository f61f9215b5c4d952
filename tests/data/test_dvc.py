"""DVC round trips through the local remote in a temporary clone of this repository."""

from __future__ import annotations

import hashlib
import shutil
import subprocess

import pytest

from pipelines.data import dvc
from pipelines.data.synth import generate_synthetic
from pipelines.errors import DataError
from pipelines.settings import get_settings

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
    assert restored["dvc_md5"] == pushed["dvc_md5"] and restored["data_rev"] == first_rev
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
    assert latest["dvc_md5"] == second["dvc_md5"] and dvc.status(root=clone)["workspace_clean"]


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
    from pipelines.ports import free_ports

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
