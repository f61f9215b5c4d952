"""DVC versioning of `data/`: pull a data revision, add-and-push, and the data version for lineage."""

from __future__ import annotations

import os
import subprocess
from contextlib import contextmanager
from pathlib import Path

import yaml

from mura_core.errors import DataError
from mura_core.settings import get_settings
from mura_core.stages import DataVersion

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


def pointer_out(text: str) -> dict:
    """The `outs` entry of a .dvc pointer's text (its md5, size, nfiles, path); {} when it has none."""
    return ((yaml.safe_load(text) or {}).get("outs") or [{}])[0] or {}


def pointer_file_out(path: Path) -> dict:
    """pointer_out of the .dvc file at `path`; {} when there is no such file."""
    return pointer_out(path.read_text()) if path.is_file() else {}


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
    out = pointer_out(content)
    if not str(out.get("md5", "")).endswith(".dir"):
        raise DataError(f"{DVC_FILE} at {sha[:12]} does not describe a folder (no md5 ending in .dir)")
    return sha, out


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


def _check_remote_holds(repo, dir_md5: str | None, remote: str | None, what: str) -> None:
    """DataError saying what to do when the remote does not hold the folder `dir_md5` at all."""
    from mura_core.config import load_config

    if not dir_md5 or remote_listing(repo, dir_md5, remote) is not None:
        return
    message = f"{what} names data {dir_md5}, which {_remote_description(repo, remote)} does not hold"
    synth = load_config().data.synth
    if dir_md5 == synth.md5:
        message += (
            f". It is the synthetic sample: recreate it byte for byte with 'mura data synth' (seed {synth.seed}, "
            f"{synth.train_patients} train + {synth.valid_patients} valid patients), which checks the hash "
            "against data.dvc; then 'mura data push' fills this remote"
        )
    else:
        message += ": push it from a machine that has it ('mura data push'), or point MURA_DVC_REMOTE at a remote that does"
    raise DataError(message)


def pull(rev: str | None = None, root: Path | None = None, remote: str | None = None) -> DataVersion:
    """Fetch `data/` from the DVC remote: as data.dvc describes it, or as data.dvc did at git revision
    `rev` (read with git; the work tree's data.dvc stays as it is)."""
    root = Path(root or get_settings().repo_root)
    if not (root / DVC_FILE).is_file():
        raise DataError(f"{root / DVC_FILE}: missing; version the data first with 'mura data push'")
    with open_repo(root) as repo:
        try:
            if not rev:
                _check_remote_holds(repo, pointer_md5(root), remote, "data.dvc")
                repo.pull(targets=[str(root / DVC_FILE)], remote=remote, force=True)
                return DataVersion.from_xcom(data_version(root))
            sha, out = pointer_at(root, rev)
            _check_remote_holds(repo, str(out["md5"]), remote, f"data.dvc at {rev}")
            repo.fetch(targets=[DVC_FILE], revs=[sha], workspace=False, remote=remote)
            files = _materialize(repo, str(out["md5"]), root / str(out.get("path", "data")))
        except DataError:
            raise
        except Exception as error:  # DVC raises many types; the message is what the user needs
            raise DataError(f"dvc pull from {_remote_description(repo, remote)} failed: {error}") from error
    return DataVersion.from_xcom(
        {**data_version(root), "dvc_md5": str(out["md5"]), "nfiles": files, "data_rev": sha}
    )


def add_and_push(root: Path | None = None, data_dir: str = "data", remote: str | None = None) -> dict:
    """`dvc add data/` (rewrites data.dvc) then push the new content to the remote."""
    root = Path(root or get_settings().repo_root)
    if not (root / data_dir).is_dir():
        raise DataError(
            f"{root / data_dir}: no data to version; run 'mura data synth' or 'mura data import' first"
        )
    version_folder(root, data_dir, remote)
    return data_version(root)


def version_folder(root: Path, folder: str, remote: str | None = None) -> dict:
    """`dvc add <folder>` (writes `<folder>.dvc` beside it) then push its content to the remote; the
    pointer's path and md5."""
    pointer = root / f"{folder}.dvc"
    with open_repo(root) as repo:
        try:
            repo.scm_context.quiet = True  # no "git add ….dvc" hint on stdout: it belongs to --json
            repo.add([str(root / folder)])
            repo.push(targets=[str(pointer)], remote=remote)
        except Exception as error:  # DVC raises many types; the message is what the user needs
            raise DataError(
                f"dvc add/push of {folder}/ to {_remote_description(repo, remote)} failed: {error}"
            ) from error
    return {
        "dvc_file": pointer.relative_to(root).as_posix(),
        "md5": str(pointer_file_out(pointer).get("md5", "")),
    }


def pointer_md5(root: Path | None = None) -> str | None:
    """The md5 that the work tree's data.dvc names (None without data.dvc)."""
    md5 = pointer_file_out(Path(root or get_settings().repo_root) / DVC_FILE).get("md5")
    return str(md5) if md5 else None


def remote_listing(repo, dir_md5: str, remote: str | None = None) -> list[dict] | None:
    """The folder listing of `dir_md5` as the remote holds it; None when the remote lacks it."""
    import json

    odb = repo.cloud.get_remote_odb(remote, hash_name="md5")
    if not odb.exists(dir_md5):
        return None
    return json.loads(odb.fs.cat_file(odb.oid_to_path(dir_md5)))


def missing_in_remote(
    root: Path | None = None, dir_md5: str | None = None, remote: str | None = None
) -> list[str]:
    """Paths (relative to data/) of `dir_md5` (default: data.dvc's) that the DVC remote does not hold.

    Asks the remote itself: DVC's own cloud status reports "in sync" when neither the cache nor the
    remote has the folder listing.
    """
    root = Path(root or get_settings().repo_root)
    dir_md5 = dir_md5 or pointer_md5(root)
    if not dir_md5:
        raise DataError(f"{root / DVC_FILE}: missing; version the data first with 'mura data push'")
    with open_repo(root) as repo:
        try:
            listing = remote_listing(repo, dir_md5, remote)
            if listing is None:
                return [f"(the whole folder {dir_md5})"]
            odb = repo.cloud.get_remote_odb(remote, hash_name="md5")
            present = set(odb.oids_exist([entry["md5"] for entry in listing]))
        except DataError:
            raise
        except Exception as error:  # DVC raises many types; the message is what the user needs
            raise DataError(f"cannot read {_remote_description(repo, remote)}: {error}") from error
    return [entry["relpath"] for entry in listing if entry["md5"] not in present]


def status(root: Path | None = None, remote: str | None = None) -> dict:
    """The truth about data/: does it match data.dvc, is data.dvc committed, does the remote hold it.

    `in_sync` is true only when all three hold; `advice` says what to run otherwise.
    """
    from pipelines.data.versioning import folder_md5

    root = Path(root or get_settings().repo_root)
    pointer = pointer_md5(root)
    if pointer is None:
        raise DataError(f"{root / DVC_FILE}: missing; version the data first with 'mura data push'")
    data_dir = root / "data"
    workspace_md5 = folder_md5(data_dir)[0] if data_dir.is_dir() else None
    missing = missing_in_remote(root, pointer, remote)
    committed = (
        subprocess.run(
            ["git", "diff", "--quiet", "HEAD", "--", DVC_FILE], cwd=root, capture_output=True, check=False
        ).returncode
        == 0
    )
    advice = []
    if workspace_md5 is None:
        advice.append("data/ is absent: run 'mura data pull'")
    elif workspace_md5 != pointer:
        advice.append(
            f"data/ ({workspace_md5}) differs from data.dvc: run 'mura data push' to version it, "
            "or 'mura data pull' to restore the committed version"
        )
    if missing:
        advice.append(f"the remote lacks {len(missing)} file(s) of {pointer}: run 'mura data push'")
    if not committed:
        advice.append("data.dvc has uncommitted changes: commit it ('git add data.dvc && git commit')")
    return {
        "in_sync": not advice,
        "workspace_clean": workspace_md5 == pointer,
        "workspace_md5": workspace_md5,
        "remote_in_sync": not missing,
        "missing_in_remote": missing[:20],
        "missing_count": len(missing),
        "pointer_committed": committed,
        "advice": advice,
        **data_version(root),
    }


def data_version(root: Path | None = None) -> dict:
    """The data's DVC md5 (from data.dvc) and git revisions, logged as lineage with every run."""
    root = Path(root or get_settings().repo_root)
    version = {"dvc_md5": "unknown", "nfiles": None, "rev": "unknown", "data_rev": "unknown"}
    dvc_file = root / DVC_FILE
    if dvc_file.is_file():
        out = pointer_file_out(dvc_file)
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
