"""`mura data diff REV_A REV_B`: what changed in the data between two versions of data.dvc.

Images added, removed and changed (same path, other bytes), studies whose label flipped in the
labeled-studies CSVs, and counts per split and study type: the audit of a relabelling. Both versions
are read from the DVC cache or remote, so neither needs to be checked out.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path
from typing import Any

from mura_core.contracts import IMAGE_SUFFIXES
from mura_core.errors import DataError
from mura_core.settings import get_settings
from pipelines.data.dvc import open_repo, pointer_at
from pipelines.data.layout import RELEASE_DIR, STUDY_CSV


def _object(repo, md5: str, remote: str | None) -> bytes:
    """One object's bytes from the local cache, else from the remote."""
    cached = Path(repo.cache.local.oid_to_path(md5))
    if cached.is_file():
        return cached.read_bytes()
    odb = repo.cloud.get_remote_odb(remote, hash_name="md5")
    if not odb.exists(md5):
        raise DataError(
            f"object {md5} is neither in the DVC cache nor in the remote: push that version first"
        )
    return odb.fs.cat_file(odb.oid_to_path(md5))


def _listing(repo, dir_md5: str, remote: str | None) -> dict[str, str]:
    import json

    return {entry["relpath"]: entry["md5"] for entry in json.loads(_object(repo, dir_md5, remote))}


def _labels(repo, listing: dict[str, str], remote: str | None) -> dict[str, int]:
    """study path -> label from both labeled-studies CSVs of one version."""
    labels = {}
    for name in STUDY_CSV.values():
        md5 = listing.get(f"{RELEASE_DIR}/{name}")
        if md5 is None:
            continue
        for row in csv.reader(io.StringIO(_object(repo, md5, remote).decode("utf-8"))):
            if len(row) == 2 and row[1].strip() in ("0", "1"):
                labels[row[0].strip().rstrip("/") + "/"] = int(row[1])
    return labels


def _group(path: str) -> str:
    """`train/XR_ELBOW` for `MURA-v1.1/train/XR_ELBOW/...`."""
    parts = path.split("/")
    return "/".join(parts[1:3]) if len(parts) > 3 else "other"


def diff_revisions(rev_a: str, rev_b: str, root: Path | None = None, remote: str | None = None) -> dict:
    """The difference between the data that data.dvc named at git revisions `rev_a` and `rev_b`."""
    root = Path(root or get_settings().repo_root)
    sha_a, out_a = pointer_at(root, rev_a)
    sha_b, out_b = pointer_at(root, rev_b)
    with open_repo(root) as repo:
        old, new = _listing(repo, str(out_a["md5"]), remote), _listing(repo, str(out_b["md5"]), remote)
        labels_old, labels_new = _labels(repo, old, remote), _labels(repo, new, remote)

    def images(listing: dict[str, str]) -> set[str]:
        return {path for path in listing if path.lower().endswith(IMAGE_SUFFIXES)}

    added = sorted(images(new) - images(old))
    removed = sorted(images(old) - images(new))
    changed = sorted(path for path in images(old) & images(new) if old[path] != new[path])
    flipped: list[dict[str, Any]] = [
        {"study": study, "from": labels_old[study], "to": labels_new[study]}
        for study in sorted(labels_old.keys() & labels_new.keys())
        if labels_old[study] != labels_new[study]
    ]
    counts: dict[str, Counter] = {}
    for kind, paths in (("added", added), ("removed", removed), ("changed", changed)):
        for path in paths:
            counts.setdefault(_group(path), Counter())[kind] += 1
    for item in flipped:
        counts.setdefault(_group(item["study"]), Counter())["label_flipped"] += 1
    return {
        "a": {"rev": sha_a, "md5": out_a["md5"]},
        "b": {"rev": sha_b, "md5": out_b["md5"]},
        "added": added,
        "removed": removed,
        "changed": changed,
        "label_flipped": flipped,
        "studies_added": sorted(labels_new.keys() - labels_old.keys()),
        "studies_removed": sorted(labels_old.keys() - labels_new.keys()),
        "counts": {group: dict(counter) for group, counter in sorted(counts.items())},
    }
