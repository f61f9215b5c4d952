"""Two writers of one file never share a temporary name; a failed write leaves the old file and no litter."""

from __future__ import annotations

import pandas as pd
import pytest

from mura_core.atomic_files import replaced_atomically
from pipelines.data.manifest import read_manifest, write_manifest


def test_two_builders_of_the_same_manifest_at_once_both_finish(tmp_path, monkeypatch):
    """The retrain's build_manifest and the monitor's, started by one data Asset event, wrote the same
    `manifest.parquet.partial`: the second writer renamed the first one's file away and the first failed
    with FileNotFoundError. Here the second builder runs to its end while the first is mid-write."""
    path = tmp_path / "manifest.parquet"
    first, second = pd.DataFrame({"image_path": ["a.png"]}), pd.DataFrame({"image_path": ["b.png", "c.png"]})
    write_parquet = pd.DataFrame.to_parquet
    interleaved = []

    def to_parquet(frame, target, *args, **kwargs):
        write_parquet(frame, target, *args, **kwargs)
        if not interleaved:  # the other builder, between this one's write and its rename
            interleaved.append(target)
            write_manifest(second, path)

    monkeypatch.setattr(pd.DataFrame, "to_parquet", to_parquet)
    write_manifest(first, path)  # raised FileNotFoundError with a shared temporary name
    assert read_manifest(path).equals(first)  # the last rename wins, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.parquet"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "state.json"
    path.write_text("old")
    with pytest.raises(RuntimeError), replaced_atomically(path) as temporary:
        temporary.write_text("half")
        raise RuntimeError("killed mid-write")
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]
