"""The TF Serving model base path: atomic publish, models.config with the real protos, labels, pruning."""

from __future__ import annotations

import pytest

from serving import repository
from serving.errors import RepositoryError


def fake_saved_model(folder, marker="v"):
    """A folder shaped like a SavedModel (the repository never parses it)."""
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(marker.encode())
    return folder


def test_publish_numbers_versions_and_leaves_no_staging(tmp_path):
    source = fake_saved_model(tmp_path / "export")
    base = tmp_path / "models"
    assert repository.publish_version(source, "mura_binary", base_path=base) == base / "mura_binary" / "1"
    assert repository.publish_version(source, "mura_binary", base_path=base).name == "2"
    assert repository.publish_version(source, "mura_binary", version=7, base_path=base).name == "7"
    assert repository.published_versions("mura_binary", base) == [1, 2, 7]
    assert sorted(p.name for p in (base / "mura_binary").iterdir()) == ["1", "2", "7"]
    with pytest.raises(RepositoryError, match="immutable"):
        repository.publish_version(source, "mura_binary", version=2, base_path=base)
    with pytest.raises(RepositoryError, match="no saved_model.pb"):
        repository.publish_version(tmp_path, "mura_binary", base_path=base)


def test_half_written_version_is_invisible(tmp_path):
    base = tmp_path / "models"
    staging = base / "mura_m" / f"{repository.STAGING_PREFIX}3-abc"
    fake_saved_model(staging)
    (base / "mura_m" / "4").mkdir()  # a version folder without saved_model.pb yet
    assert repository.published_versions("mura_m", base) == []


def test_models_config_round_trip_with_real_protos(tmp_path):
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    base, config = tmp_path / "models", tmp_path / "models" / "models.config"
    source = fake_saved_model(tmp_path / "export")
    for _ in range(2):
        repository.publish_version(source, "mura_binary", base_path=base)
    repository.set_served_versions("mura_binary", [1, 2], {"stable": 1, "canary": 2}, config, base, "/models")
    parsed = text_format.Parse(config.read_text(), model_server_config_pb2.ModelServerConfig())
    entry = parsed.model_config_list.config[0]
    assert (entry.name, entry.base_path, entry.model_platform) == (
        "mura_binary",
        "/models/mura_binary",
        "tensorflow",
    )
    assert list(entry.model_version_policy.specific.versions) == [1, 2]
    assert dict(entry.version_labels) == {"stable": 1, "canary": 2}
    assert repository.served_versions("mura_binary", config) == ([1, 2], {"stable": 1, "canary": 2})


def test_label_rule_and_unknown_versions(tmp_path):
    base, config = tmp_path / "models", tmp_path / "models.config"
    source = fake_saved_model(tmp_path / "export")
    repository.publish_version(source, "mura_m", base_path=base)
    repository.publish_version(source, "mura_m", base_path=base)
    repository.set_served_versions("mura_m", [1], {"stable": 1}, config, base)
    with pytest.raises(RepositoryError, match="not served"):
        repository.set_version_label("mura_m", "stable", 2, config, base)
    with pytest.raises(RepositoryError, match="not published"):
        repository.set_served_versions("mura_m", [1, 9], {}, config, base)
    with pytest.raises(RepositoryError, match="not served"):
        repository.set_served_versions("mura_m", [1], {"canary": 2}, config, base)
    repository.set_served_versions("mura_m", [1, 2], {"stable": 1}, config, base)
    repository.set_version_label("mura_m", "stable", 2, config, base)
    assert repository.served_versions("mura_m", config) == ([1, 2], {"stable": 2})


def test_prune_keeps_newest_and_served(tmp_path):
    base, config = tmp_path / "models", tmp_path / "models.config"
    source = fake_saved_model(tmp_path / "export")
    for _ in range(5):
        repository.publish_version(source, "mura_m", base_path=base)
    repository.set_served_versions("mura_m", [1], {"stable": 1}, config, base)
    assert repository.prune_versions("mura_m", keep=2, base_path=base, config_path=config) == [2, 3]
    assert repository.published_versions("mura_m", base) == [1, 4, 5]
    with pytest.raises(RepositoryError, match="keep at least one"):
        repository.prune_versions("mura_m", keep=0, base_path=base, config_path=config)


def test_broken_config_file_is_reported(tmp_path):
    config = tmp_path / "models.config"
    config.write_text("model_config_list { config { nme: 'x' } }")
    with pytest.raises(RepositoryError, match="not a ModelServerConfig"):
        repository.read_models_config(config)


@pytest.mark.parametrize(
    "name", ["../etc", "mura_a/../../x", "mura_binary/1", "MURA_BINARY", "", "mura_", "other"]
)
def test_model_names_outside_the_contract_are_refused_before_any_path(tmp_path, name):
    base = tmp_path / "models"
    source = tmp_path / "src"
    source.mkdir()
    (source / "saved_model.pb").write_bytes(b"pb")
    with pytest.raises(repository.RepositoryError, match=r"\^mura_\[a-z0-9_\]\+\$"):
        repository.publish_version(source, name, base_path=base)
    with pytest.raises(repository.RepositoryError):
        repository.published_versions(name, base)
    assert not base.exists()
