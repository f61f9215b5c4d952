"""Two serving processes behind the gateway: which settings name them, what runs, who reaches both."""

from __future__ import annotations

import pytest

from mura_core.settings import get_settings

OTHER = {"MURA_SERVING_GRPC": "tfserving:8500", "MURA_SERVING_REST": "tfserving:8501"}


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, (("127.0.0.1:8500", "127.0.0.1:8501"), ("127.0.0.1:8510", "127.0.0.1:8511"))),
        # Another server named (compose's TF Serving, a test's): no replica of the embedded stack.
        (OTHER, (("tfserving:8500", "tfserving:8501"),)),
        (
            {
                **OTHER,
                "MURA_SERVING_REPLICA_GRPC": "tfserving2:8500",
                "MURA_SERVING_REPLICA_REST": "tfserving2:8501",
            },
            (("tfserving:8500", "tfserving:8501"), ("tfserving2:8500", "tfserving2:8501")),
        ),
        (
            {"MURA_SERVING_REPLICA_GRPC": "", "MURA_SERVING_REPLICA_REST": ""},
            (("127.0.0.1:8500", "127.0.0.1:8501"),),
        ),
    ],
    ids=["embedded", "another-server", "named-replica", "replica-off"],
)
def test_the_replica_comes_with_the_default_server_only(tmp_path, environ, expected):
    settings = get_settings({"MURA_HOME": str(tmp_path), **environ})
    assert settings.serving_replicas == expected


def test_the_stack_runs_one_program_per_replica_and_the_gateway_spreads_over_both(tmp_path):
    from pipelines.stack.services import serving_services
    from serving.gateway import GatewayOptions, http_block

    settings = get_settings({"MURA_HOME": str(tmp_path)})
    programs = serving_services(settings)
    assert [program.name for program in programs] == ["serving", "serving-replica"]
    assert [program.ports for program in programs] == [
        (("127.0.0.1", 8500), ("127.0.0.1", 8501)),
        (("127.0.0.1", 8510), ("127.0.0.1", 8511)),
    ]
    assert "--port=8510" in programs[1].command and "--rest_api_port=8511" in programs[1].command
    options = GatewayOptions(
        grpc_listen="127.0.0.1:8443",
        rest_listen="127.0.0.1:8444",
        upstream_grpc=("127.0.0.1:8500", "127.0.0.1:8510"),
        upstream_rest=("127.0.0.1:8501", "127.0.0.1:8511"),
        certificate="gateway.crt",
        key="gateway.key",
    )
    config = http_block(options)
    for server in ("127.0.0.1:8500", "127.0.0.1:8510", "127.0.0.1:8501", "127.0.0.1:8511"):
        assert f"server {server} max_fails=0;" in config  # never marked down: see serving/gateway.py
    # A call a dead replica refused, or a hung one left unanswered past the bound, goes to the other
    # one, once: two tries at most, however many replicas.
    assert "grpc_next_upstream error timeout non_idempotent;" in config and "grpc_read_timeout 15s;" in config
    assert "grpc_next_upstream_tries 2;" in config and "proxy_next_upstream_tries 2;" in config


def test_deploy_drives_every_replica_unless_another_server_is_named(tmp_path, monkeypatch):
    from pipelines.deployment.publishing import DeployOptions

    monkeypatch.setenv("MURA_HOME", str(tmp_path))
    for name in (
        "MURA_SERVING_GRPC",
        "MURA_SERVING_REST",
        "MURA_SERVING_REPLICA_GRPC",
        "MURA_SERVING_REPLICA_REST",
    ):
        monkeypatch.delenv(name, raising=False)
    options = DeployOptions.from_settings()
    assert (options.grpc_target, options.replica_targets) == ("127.0.0.1:8500", ("127.0.0.1:8510",))
    # `mura deploy --target` names one server: the stack's replica is not that server's.
    assert DeployOptions.from_settings(grpc_target="elsewhere:8500").replica_targets == ()
