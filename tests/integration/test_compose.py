"""docker-compose.yml, checked without a Docker engine: it validates, refuses missing secrets, names its services.

`docker-compose config` (Debian's docker-compose package; no engine needed) resolves the file with
throw-away secrets. Where that tool is missing the file is resolved here (PyYAML anchors + `${VAR}`
interpolation) and only the tests that need the tool skip.
"""

from __future__ import annotations

import re

import pytest
import yaml

from tests.integration.compose_file import (
    COMPOSE,
    COMPOSE_TOOL,
    FAKE_ENV,
    NO_TOOL,
    REPO,
    REQUIRED,
    SECRET_NAME,
    SECRETS,
    SERVICES,
    compose_tool,
    write_env,
)


@pytest.mark.skipif(COMPOSE_TOOL is None, reason=NO_TOOL)
def test_compose_file_validates_with_secrets_set(tmp_path):
    result = compose_tool(write_env(tmp_path / ".env", FAKE_ENV), "config", "--quiet")
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(COMPOSE_TOOL is None, reason=NO_TOOL)
@pytest.mark.parametrize("missing", REQUIRED)
def test_compose_refuses_to_start_without_each_secret_and_names_it(tmp_path, missing):
    env = {name: value for name, value in FAKE_ENV.items() if name != missing}
    result = compose_tool(write_env(tmp_path / ".env", env), "config", "--quiet")
    assert result.returncode != 0
    assert f"{missing} is not set" in result.stderr


def test_env_example_leaves_every_secret_empty_and_the_compose_file_gives_none_a_default():
    example = dict(
        line.split("=", 1)
        for line in (REPO / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    for name in SECRETS:
        assert example.get(name) == "", f".env.example must list {name} with no value"
    text = COMPOSE.read_text()
    for name, operator in re.findall(r"\$\{(\w+)(:?[-?]?)", text):
        if SECRET_NAME.search(name):
            assert operator == ":?", f"${{{name}}} in docker-compose.yml must fail when unset (use :?)"
    for name in REQUIRED:
        assert f"${{{name}:?" in text


def test_every_service_of_the_issue_and_the_docs_exists(resolved):
    services = set(resolved["services"])
    assert set(SERVICES) <= services, sorted(set(SERVICES) - services)
    docs = "\n".join(
        (REPO / page).read_text() for page in ("docs/PRODUCTION.md", "docs/OPERATIONS.md", "infra/README.md")
    )
    named = set(re.findall(r"^\|\s*`([a-z][a-z0-9-]*)`\s*\|", docs, flags=re.MULTILINE))
    for command in re.findall(r"docker compose ((?:[a-z-]+ ?)+)", docs):
        verb, *rest = command.split()
        words = [word for word in rest if not word.startswith("-")]
        if verb in {"exec", "run"}:  # `exec SERVICE COMMAND...`: only the first word is a service
            named.update(words[:1])
        elif verb in {"up", "logs", "restart", "stop", "ps", "build", "pull"}:
            named.update(words)
    assert named, "the docs name no service (a table of `service` rows or `docker compose up NAME`)"
    assert named <= services, f"docs name services that do not exist: {sorted(named - services)}"


def test_long_running_services_have_healthchecks_and_dependencies_wait_for_them(resolved):
    services = resolved["services"]
    one_shot = {"minio-init", "airflow-init", "mlflow-accounts"}
    for name, service in services.items():
        if name not in one_shot:
            assert "healthcheck" in service, f"{name} has no healthcheck"
        for dependency, rule in (service.get("depends_on") or {}).items():
            expected = "service_completed_successfully" if dependency in one_shot else "service_healthy"
            assert rule["condition"] == expected, f"{name} -> {dependency}: {rule}"
    assert services["prometheus"].get("profiles") == ["monitoring"]
    assert set(resolved["volumes"]) >= {"postgres-data", "minio-data", "serving-models", "airflow-logs"}


def test_files_the_compose_file_mounts_and_builds_exist():
    raw = yaml.safe_load(COMPOSE.read_text())
    for service in raw["services"].values():
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            if source.startswith("./"):
                assert (REPO / source).exists(), source
        build = service.get("build")
        if build:
            context = REPO / build["context"]
            assert (context / build.get("dockerfile", "Dockerfile")).is_file(), build
