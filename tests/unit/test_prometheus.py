"""Operations: the alert rules pass promtool's own unit tests, the monitor's metrics are valid exposition
text, and every query of the alerts and the Grafana dashboard names a metric that exists."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import yaml

from mura_core.stages import LiveCheck, MonitorCheck
from pipelines.monitoring.metrics import METRIC_NAMES, registry_of

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS = REPO / "infra" / "prometheus"
PROMTOOL = shutil.which("promtool") or "promtool (Debian package prometheus; .ci/run installs it)"
# What TF Serving (and `mura serve`, serving/server/metrics.py) expose, and Prometheus' own `up`.
SERVING_METRICS = {
    ":tensorflow:serving:request_count",
    ":tensorflow:serving:request_latency_bucket",
    ":tensorflow:serving:request_latency_sum",
    ":tensorflow:serving:request_latency_count",
    "up",
}
PROMQL_WORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
}

CHECK = MonitorCheck(
    model="mura_binary",
    champion_version=3,
    challenger_version=4,
    data_md5="abc.dir",
    drift=True,
    drifted_features=["mean_intensity"],
    tests=[
        {"feature": "mean_intensity", "adjusted_p": 0.002, "effect": 0.4},
        {"feature": "label", "adjusted_p": 0.8, "effect": 0.02},
    ],
    live=LiveCheck(
        studies=40,
        champion={"study": {"kappa": 0.61, "kappa_ci_low": 0.5, "auroc": 0.9}},
        challenger={"study": {"kappa": 0.66, "kappa_ci_low": 0.55, "auroc": 0.92}},
    ),
    retrain_needed=True,
    reasons=["data drift in mean_intensity"],
    recommendation="",
    mlflow_run_id="r",
    report="runs:/r/report/drift_report.html",
)


def metric_names(expression: str) -> set[str]:
    """The metric names a PromQL expression reads (labels, functions, durations and numbers left out)."""
    text = re.sub(r'"[^"]*"', "", expression)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        following = text[match.end() :].lstrip()
        if not following.startswith("(") and match.group() not in PROMQL_WORDS:
            names.add(match.group())
    return names


def test_metric_names_are_read_from_promql():
    assert metric_names(
        'sum by (le, model) (rate(:tensorflow:serving:request_latency_bucket{a="b"}[5m]))'
    ) == {":tensorflow:serving:request_latency_bucket"}
    assert metric_names("time() - max by (model) (x_seconds) > 2 * 86400") == {"x_seconds"}


def test_every_alert_and_dashboard_query_names_an_existing_metric():
    known = set(METRIC_NAMES) | SERVING_METRICS
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    expressions = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    dashboard = json.loads((REPO / "infra" / "grafana" / "dashboards" / "mura.json").read_text())
    expressions += [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    used = set().union(*(metric_names(expression) for expression in expressions))
    assert used and used <= known, sorted(used - known)
    assert set(METRIC_NAMES) <= used, "a monitor metric no alert or panel shows"


def test_the_local_server_exposes_the_serving_metrics_the_queries_use():
    from serving.server.metrics import Metrics

    metrics = Metrics()
    metrics.record_request("mura_binary", "predict", "grpc", "OK", 1200.0)
    text = metrics.render()
    exposed = {
        line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")
    }
    assert SERVING_METRICS - {"up"} <= exposed


def test_monitor_metrics_are_valid_exposition_text_with_bounded_labels():
    from prometheus_client import generate_latest

    text = generate_latest(registry_of(CHECK, now=1_700_000_000.0)).decode()
    assert 'mura_monitor_live_study_kappa{model="mura_binary",role="champion",version="3"} 0.61' in text
    assert 'mura_monitor_drift_adjusted_p_value{feature="mean_intensity",model="mura_binary"} 0.002' in text
    names = {
        line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")
    }
    assert names == set(METRIC_NAMES)
    checked = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_alert_rules_pass_promtools_checks_and_unit_tests():
    for args in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts_test.yml"]):
        result = subprocess.run(
            [PROMTOOL, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_config_is_valid_and_loads_the_rules(tmp_path):
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    config["rule_files"] = [str(PROMETHEUS / "alerts.yml")]  # compose mounts it at /etc/prometheus
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [PROMTOOL, "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
