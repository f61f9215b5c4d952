"""`mura backup` / `mura restore` on a made-up MURA_HOME: consistent databases, secrets kept private,
and an archive that cannot write outside the place it restores."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import stat
import tarfile
from pathlib import Path

import pytest

from mura_core.settings import get_settings
from pipelines.stack.backups import BackupError, backup, restore


def _settings(home: Path):
    return get_settings({"MURA_HOME": str(home), "MURA_REPO_ROOT": str(home.parent)})


def _fake_home(home: Path) -> sqlite3.Connection:
    (home / "serving" / "models" / "mura_binary" / "1").mkdir(parents=True)
    (home / "serving" / "models" / "mura_binary" / "1" / "saved_model.pb").write_bytes(b"\x08\x01model")
    (home / "secrets").mkdir()
    (home / "secrets" / "mlflow_accounts.json").write_text('{"reviewer": "made-up"}')
    (home / "secrets" / "mlflow_accounts.json").chmod(0o600)
    (home / "run").mkdir()
    (home / "run" / "mlflow.pid").write_text("12345")
    (home / "mlflow").mkdir()
    # A live store in WAL mode with committed rows not yet checkpointed: a plain file copy loses them.
    connection = sqlite3.connect(home / "mlflow" / "mlflow.db")
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA wal_autocheckpoint=0")
    connection.execute("CREATE TABLE model_versions (name TEXT, version INTEGER)")
    connection.executemany(
        "INSERT INTO model_versions VALUES (?, ?)", [("mura_binary", 1), ("mura_binary", 2)]
    )
    connection.commit()
    return connection


def test_a_backup_of_a_live_store_restores_every_committed_row_and_keeps_secrets_private(tmp_path):
    home = tmp_path / "home"
    live = _fake_home(home)
    settings = _settings(home)
    archive = tmp_path / "backups" / "b.tar.gz"
    result = backup(settings, archive)
    live.close()
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    assert result["databases"] == 1 and not list(archive.parent.glob("*.partial"))

    wiped = home.rename(tmp_path / "wiped")
    restored = restore(settings, archive, running=[])
    assert restored["moved_aside"] == []
    rows = sqlite3.connect(home / "mlflow" / "mlflow.db").execute("SELECT * FROM model_versions").fetchall()
    assert rows == [("mura_binary", 1), ("mura_binary", 2)]
    accounts = home / "secrets" / "mlflow_accounts.json"
    assert (
        accounts.read_text() == '{"reviewer": "made-up"}' and stat.S_IMODE(accounts.stat().st_mode) == 0o600
    )
    model = home / "serving" / "models" / "mura_binary" / "1" / "saved_model.pb"
    assert model.read_bytes() == (wiped / "serving/models/mura_binary/1/saved_model.pb").read_bytes()
    assert not (home / "run").exists(), "pid records of the old processes must not come back"


def test_restore_refuses_a_running_stack_occupied_state_and_another_home_and_changes_nothing(tmp_path):
    home = tmp_path / "home"
    _fake_home(home).close()
    settings = _settings(home)
    archive = tmp_path / "b.tar.gz"
    backup(settings, archive)
    (home / "newer.txt").write_text("made after the backup")

    with pytest.raises(BackupError, match="mura down.*mlflow, serving still running"):
        restore(settings, archive, running=["mlflow", "serving"])
    with pytest.raises(BackupError, match="already holds state.*--force"):
        restore(settings, archive, running=[])
    with pytest.raises(BackupError, match="must be restored there"):
        restore(_settings(tmp_path / "elsewhere"), archive, running=[])
    assert (home / "newer.txt").exists() and not (tmp_path / "elsewhere").exists()

    result = restore(settings, archive, running=[], force=True)
    (aside,) = result["moved_aside"]
    assert (Path(aside) / "newer.txt").exists() and not (home / "newer.txt").exists()


def _hostile_archive(path: Path, home: Path, member: str) -> None:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in (
            (
                "BACKUP.json",
                json.dumps({"format": 1, "created": "x", "roots": {"mura_home": str(home)}}).encode(),
            ),
            (member, b"overwritten"),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize("member", ["mura_home/../../outside.txt", "/tmp/absolute.txt"])
def test_an_archive_that_would_write_outside_its_place_is_refused(tmp_path, member):
    home = tmp_path / "deep" / "home"
    archive = tmp_path / "evil.tar.gz"
    _hostile_archive(archive, home, member)
    restored = False
    try:
        restore(_settings(home), archive, running=[])
        restored = True
    except BackupError as error:
        assert "nothing was changed" in str(error)
    assert not (tmp_path / "outside.txt").exists() and not Path("/tmp/absolute.txt").exists()
    if restored:  # an absolute name outside the archive's roots is simply not part of any root
        assert not any(home.iterdir())
    assert not list(home.parent.glob(".home.restoring-*"))


def test_a_file_that_is_not_a_backup_is_refused_by_name(tmp_path):
    bogus = tmp_path / "notes.tar.gz"
    bogus.write_text("not an archive")
    with pytest.raises(BackupError, match="notes.tar.gz is not a backup written by `mura backup`"):
        restore(_settings(tmp_path / "home"), bogus, running=[])


def test_asking_which_services_run_writes_nothing_into_mura_home(tmp_path):
    """`mura restore` asks first; building the services' environments used to generate new logins in
    the very MURA_HOME it was about to restore, which then counted as state in the way."""
    from pipelines.stack.control import running_services

    home = tmp_path / "home"
    assert running_services(_settings(home)) == [] and not home.exists()


def test_links_are_stored_as_the_files_they_name_and_an_archive_of_links_is_refused(tmp_path):
    """A hard link used to be archived as a link to a name the restore did not know (a KeyError and a
    half-made folder); an absolute symlink could not be restored at all."""
    home = tmp_path / "home"
    _fake_home(home).close()
    (home / "models.config").write_text("model_config_list {}")
    os.link(home / "models.config", home / "hard.config")
    (home / "soft.config").symlink_to(home / "models.config")
    archive = tmp_path / "b.tar.gz"
    backup(_settings(home), archive)
    with tarfile.open(archive) as opened:
        assert all(member.isreg() for member in opened.getmembers())
    home.rename(tmp_path / "old")
    restore(_settings(home), archive, running=[])
    assert (home / "hard.config").read_text() == (home / "soft.config").read_text() == "model_config_list {}"

    linked = tmp_path / "links.tar.gz"
    with tarfile.open(linked, "w:gz") as out:
        manifest = json.dumps(
            {"format": 1, "created": "x", "roots": {"mura_home": str(tmp_path / "h2")}}
        ).encode()
        info = tarfile.TarInfo("BACKUP.json")
        info.size = len(manifest)
        out.addfile(info, io.BytesIO(manifest))
        link = tarfile.TarInfo("mura_home/escape")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc"
        out.addfile(link)
    with pytest.raises(BackupError, match="is not a plain file inside the archive"):
        restore(_settings(tmp_path / "h2"), linked, running=[])
    assert not list(tmp_path.glob(".h2.restoring-*"))


def test_a_backup_written_into_the_state_it_backs_up_is_refused(tmp_path):
    home = tmp_path / "home"
    _fake_home(home).close()
    with pytest.raises(BackupError, match="outside the state it backs up"):
        backup(_settings(home), home / "backups" / "b.tar.gz")


def test_an_archive_larger_than_the_disk_s_free_space_is_refused_before_a_byte_is_written(
    tmp_path, monkeypatch
):
    """A 522 KB archive of zeros wrote 512 MiB: what it would write is counted first."""
    import shutil

    home = tmp_path / "home"
    archive = tmp_path / "zeros.tar.gz"
    with tarfile.open(archive, "w:gz") as writer:
        manifest = json.dumps({"format": 1, "created": "x", "roots": {"mura_home": str(home)}}).encode()
        for name, size, stream in (("BACKUP.json", len(manifest), io.BytesIO(manifest)),
                                   ("mura_home/zeros.bin", 64 * 2**20, io.BytesIO(bytes(64 * 2**20)))):  # fmt: skip
            info = tarfile.TarInfo(name)
            info.size = size
            writer.addfile(info, stream)
    assert archive.stat().st_size < 2**20
    free = shutil.disk_usage(tmp_path)._replace(free=512 * 2**20 + 32 * 2**20)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: free)
    with pytest.raises(BackupError, match="would write 64 MiB where 544 MiB are free"):
        restore(_settings(home), archive, running=[])
    assert not home.exists() or not any(home.iterdir())
    assert not list(tmp_path.glob(".home.restoring-*"))
