"""DVC versioning of `data/`: pull a data revision, add-and-push, and the data version for lineage."""

from __future__ import annotations

import os
import subprocess
from contextlib import contextmanager
from pathlib import Path

import yaml

from pipelines.errors import DataError
from pipelines.settings import get_settings

DVC_FILE = "data.dvc"


@contextmanager
def open_repo(root: Path | None = None, remote_url: str | None = None):
    """A DVC Repo at `root` whose `local` remote points at MURA_HOME's folder (or `remote_url`)."""
    from dvc.repo import Repo

    settings = get_settings()
    root = Path(root or settings.repo_root)
    if not (root / ".dvc").is_dir():
        raise DataError(f"{root}: not a DVC project (no .dvc/ folder); run 'dvc init' there")
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    url = remote_url or str(settings.dvc_local_remote)
    if "://" not in url:
        Path(url).mkdir(parents=True, exist_ok=True)  # DVC does not create a local remote's folder
    overrides: dict = {"remote": {"local": {"url": url}}}
    if settings.dvc_s3_endpoint:
        overrides["remote"]["s3"] = {"endpointurl": settings.dvc_s3_endpoint}
    if settings.dvc_remote:
        overrides["core"] = {"remote": settings.dvc_remote}
    with Repo(str(root), config=overrides) as repo:
        yield repo


def _remote_description(repo, remote: str | None) -> str:
    """`'s3' (s3://bucket/path at http://endpoint)`: what a failed transfer talked to."""
    name = remote or repo.config["core"].get("remote", "")
    section = repo.config["remote"].get(name, {})
    where = section.get("url", "?") + (f" at {section['endpointurl']}" if section.get("endpointurl") else "")
    hint = ""
    if str(section.get("url", "")).startswith("s3://"):
        hint = "; check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (or .dvc/config.local) and that the bucket exists"
    return f"remote '{name}' ({where}){hint}"


def _git(root: Path, *args: str) -> str:
    result = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise DataError(
            f"git {' '.join(args)} failed in {root}: {result.stderr.strip() or result.stdout.strip()}"
        )
    return result.stdout.strip()


def pointer_at(root: Path, rev: str) -> tuple[str, dict]:
    """(full commit sha, the `outs` entry of data.dvc) as committed at git revision `rev`; the work
    tree's data.dvc is not touched."""
    try:
        sha = _git(root, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    except DataError:
        raise DataError(
            f"data rev '{rev}' does not exist in {root} (use a commit, tag or branch of the repo)"
        ) from None
    try:
        content = _git(root, "show", f"{sha}:{DVC_FILE}")
    except DataError:
        raise DataError(
            f"data rev '{rev}' has no {DVC_FILE}: data was not versioned at that commit"
        ) from None
    outs = (yaml.safe_load(content) or {}).get("outs") or [{}]
    if not str(outs[0].get("md5", "")).endswith(".dir"):
        raise DataError(f"{DVC_FILE} at {sha[:12]} does not describe a folder (no md5 ending in .dir)")
    return sha, outs[0]


def _materialize(repo, dir_md5: str, target: Path) -> int:
    """Write the folder `dir_md5` from the DVC cache to `target` (staged, then renamed into place)."""
    import json
    import shutil
    import uuid

    cache = repo.cache.local
    listing = json.loads(Path(cache.oid_to_path(dir_md5)).read_text())
    staging = target.parent / f".{target.name}-pull-{uuid.uuid4().hex[:8]}"
    try:
        for entry in listing:
            destination = staging / entry["relpath"]
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(cache.oid_to_path(entry["md5"]), destination)
        if target.exists():
            retired = target.parent / f".{target.name}-old-{uuid.uuid4().hex[:8]}"
            os.rename(target, retired)
            shutil.rmtree(retired, ignore_errors=True)
        os.rename(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return len(listing)


def pull(rev: str | None = None, root: Path | None = None, remote: str | None = None) -> dict:
    """Fetch `data/` from the DVC remote: as data.dvc describes it, or as data.dvc did at git revision
    `rev` (read with git; the work tree's data.dvc stays as it is)."""
    root = Path(root or get_settings().repo_root)
    if not (root / DVC_FILE).is_file():
        raise DataError(f"{root / DVC_FILE}: missing; version the data first with 'mura data push'")
    with open_repo(root) as repo:
        try:
            if not rev:
                repo.pull(targets=[str(root / DVC_FILE)], remote=remote, force=True)
                return data_version(root)
            sha, out = pointer_at(root, rev)
            repo.fetch(targets=[DVC_FILE], revs=[sha], workspace=False, remote=remote)
            files = _materialize(repo, str(out["md5"]), root / str(out.get("path", "data")))
        except DataError:
            raise
        except Exception as error:  # DVC raises many types; the message is what the user needs
            raise DataError(f"dvc pull from {_remote_description(repo, remote)} failed: {error}") from error
    return {**data_version(root), "dvc_md5": str(out["md5"]), "nfiles": files, "data_rev": sha}


def add_and_push(root: Path | None = None, data_dir: str = "data", remote: str | None = None) -> dict:
    """`dvc add data/` (rewrites data.dvc) then push the new content to the remote."""
    root = Path(root or get_settings().repo_root)
    if not (root / data_dir).is_dir():
        raise DataError(
            f"{root / data_dir}: no data to version; run 'mura data synth' or 'mura data import' first"
        )
    with open_repo(root) as repo:
        try:
            repo.scm_context.quiet = True  # no "git add data.dvc" hint on stdout: it belongs to --json
            repo.add([str(root / data_dir)])
            repo.push(targets=[str(root / DVC_FILE)], remote=remote)
        except Exception as error:  # DVC raises many types; the message is what the user needs
            raise DataError(
                f"dvc add/push of {data_dir}/ to {_remote_description(repo, remote)} failed: {error}"
            ) from error
    return data_version(root)


def status(root: Path | None = None) -> dict:
    """Whether `data/` matches data.dvc and whether the remote holds it."""
    root = Path(root or get_settings().repo_root)
    with open_repo(root) as repo:
        local = repo.status(targets=[str(root / DVC_FILE)])
        remote = repo.status(targets=[str(root / DVC_FILE)], cloud=True)
    return {
        "workspace_clean": not local,
        "workspace": local,
        "remote_in_sync": not remote,
        "remote": remote,
        **data_version(root),
    }


def data_version(root: Path | None = None) -> dict:
    """The data's DVC md5 (from data.dvc) and git revisions, logged as lineage with every run."""
    root = Path(root or get_settings().repo_root)
    version = {"dvc_md5": "unknown", "nfiles": None, "rev": "unknown", "data_rev": "unknown"}
    dvc_file = root / DVC_FILE
    if dvc_file.is_file():
        out = (yaml.safe_load(dvc_file.read_text()) or {}).get("outs", [{}])[0]
        version.update(dvc_md5=str(out.get("md5", "unknown")), nfiles=out.get("nfiles"))
    for key, args in (
        ("rev", ("rev-parse", "HEAD")),
        ("data_rev", ("log", "-1", "--format=%H", "--", DVC_FILE)),
    ):
        try:
            version[key] = _git(root, *args) or "unknown"
        except (DataError, OSError):
            pass
    return version
