"""Helpers for tests that run the platform as a user does: a project copy, free ports, the stack's env."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from mura_core.ports import free_ports
from mura_core.settings import get_settings

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "mura-tests",
    "GIT_AUTHOR_EMAIL": "tests@mura.invalid",
    "GIT_COMMITTER_NAME": "mura-tests",
    "GIT_COMMITTER_EMAIL": "tests@mura.invalid",
}


def project_copy(target: Path) -> Path:
    """The checkout as it is now (tracked and new files, not ignored ones) as a fresh git repo at `target`."""
    source = get_settings().repo_root
    listed = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=source,
            check=True,
            capture_output=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for relative in filter(None, listed):
        origin = source / relative
        if origin.is_file():
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target / relative)
    git(target, "init", "--quiet", "--initial-branch=main")
    commit(target, "project copy", ".")
    return target


def git(root: Path, *args: str) -> str:
    """Run git in `root` with a test identity; its stdout."""
    env = {**os.environ, **GIT_IDENTITY}
    return subprocess.run(
        ["git", *args], cwd=root, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


def commit(root: Path, message: str, *paths: str) -> str:
    """Commit `paths` in `root`; the new commit sha."""
    git(root, "add", *paths)
    git(root, "commit", "--quiet", "--allow-empty", "-m", message)
    return git(root, "rev-parse", "HEAD")


def platform_env(project: Path, home: Path, **overrides: str) -> dict[str, str]:
    """Environment for `mura` commands on `project` with state in `home` and free ports for every service."""
    airflow, mlflow, grpc, rest, pacs, replica_grpc, replica_rest, gateway_grpc, gateway_rest, execution = (
        free_ports(10)
    )
    env = {
        **os.environ,
        "MURA_REPO_ROOT": str(project),
        "MURA_HOME": str(home),
        "MURA_DATA_DIR": str(project / "data"),
        "MURA_MODEL_BASE_PATH": str(home / "serving" / "models"),
        "AIRFLOW_URL": f"http://127.0.0.1:{airflow}",
        "MURA_AIRFLOW_EXECUTION_URL": f"http://127.0.0.1:{execution}",
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{mlflow}",
        "MURA_SERVING_GRPC": f"127.0.0.1:{grpc}",
        "MURA_SERVING_REST": f"127.0.0.1:{rest}",
        "MURA_SERVING_REPLICA_GRPC": f"127.0.0.1:{replica_grpc}",
        "MURA_SERVING_REPLICA_REST": f"127.0.0.1:{replica_rest}",
        "MURA_PACS_URL": f"http://127.0.0.1:{pacs}/dicom-web",
        "MURA_GATEWAY_GRPC": f"127.0.0.1:{gateway_grpc}",
        "MURA_GATEWAY_REST": f"127.0.0.1:{gateway_rest}",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "DVC_NO_ANALYTICS": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        **GIT_IDENTITY,
    }
    env.update(overrides)
    return env


def mura(
    env: dict[str, str], *args: str, timeout: float = 600, check: bool = True
) -> subprocess.CompletedProcess:
    """Run the `mura` command as a user would."""
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=env["MURA_REPO_ROOT"],
    )
    if check and result.returncode != 0:
        raise AssertionError(f"mura {' '.join(args)} exited {result.returncode}:\n{result.stderr[-3000:]}")
    return result


def versioned_synthetic_project(
    tmp: Path,
    train_patients: int,
    valid_patients: int,
    seed: int = 5,
    fault: str | None = None,
    no_quality_floors: bool = False,
) -> tuple[Path, Path]:
    """A project copy whose data/ is a synthetic sample pushed with DVC and committed; (project, home).
    `no_quality_floors`: the gate's floors at their lowest, so a test of the flow does not depend on
    how well a fresh tiny training came out (study AUROC 0.54 once stopped a run at the 0.55 floor)."""
    project, home = project_copy(tmp / "project"), tmp / "home"
    if no_quality_floors:
        params = project / "params.yaml"
        text = params.read_text()
        for line, lowest in (
            ("min_study_kappa: 0.05", "min_study_kappa: -1.0"),
            ("min_study_auroc: 0.55", "min_study_auroc: 0.0"),
        ):
            assert line in text, line
            text = text.replace(line, lowest)
        params.write_text(text)
        commit(project, "the gate's floors at their lowest (tests of the flow)", "params.yaml")
    env = platform_env(project, home)
    args = [
        "data",
        "synth",
        "--out",
        str(project / "data"),
        "--seed",
        str(seed),
        "--train-patients",
        str(train_patients),
        "--valid-patients",
        str(valid_patients),
    ]
    mura(env, *args, *(["--fault", fault] if fault else []))
    mura(env, "data", "push")
    commit(project, "data", "data.dvc")
    return project, home


def dicom_identifiers(*folders: Path) -> set[str]:
    """The made-up patient names, IDs, birth dates and accession numbers of the synthetic DICOM
    studies in `folders` (`<folder>/<StudyInstanceUID>/<n>.dcm`): what must never leave the PACS."""
    from pipelines.dicom.pixels import read_dicom

    found: set[str] = set()
    for path in (path for folder in folders for path in Path(folder).glob("*/*.dcm")):
        dataset = read_dicom(path)
        found |= {
            str(dataset.PatientName),
            dataset.PatientID,
            dataset.PatientBirthDate,
            dataset.AccessionNumber,
        }
    return found


def _live_processes():
    """(pid folder, fields of its stat after the name) of every live, non-zombie process."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            yield entry, fields


def process_group(pgid: int) -> list[int]:
    """The live processes of process group `pgid`."""
    return [int(entry.name) for entry, fields in _live_processes() if int(fields[2]) == pgid]


def outside_of(home: Path, ancestor: int) -> list[str]:
    """The processes of this MURA_HOME's stack (see processes_of) that `ancestor` did not start,
    directly or further down: for the supervisor's pid, what it would not stop or restart."""
    parents = {int(entry.name): int(fields[1]) for entry, fields in _live_processes()}

    def descends(pid: int) -> bool:
        while pid > 1:
            if pid == ancestor:
                return True
            pid = parents.get(pid, 0)
        return False

    return [entry for entry in processes_of(home) if not descends(int(entry.split()[0]))]


def processes_of(home: Path) -> list[str]:
    """Live processes whose environment names this MURA_HOME (what a stack of it left running), each
    as its pid and the start of its command line."""
    wanted = f"MURA_HOME={home}".encode()
    found = []
    for entry, _ in _live_processes():
        if int(entry.name) == os.getpid():
            continue
        try:
            if wanted in (entry / "environ").read_bytes().split(b"\0"):
                found.append(f"{entry.name} {(entry / 'cmdline').read_bytes()[:120]!r}")
        except OSError:
            continue
    return found
