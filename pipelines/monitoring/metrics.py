"""The monitor's Prometheus metrics: written as a text file under MURA_HOME (the embedded stack, or
a node exporter's textfile collector) and pushed to a Pushgateway when MURA_PUSHGATEWAY_URL is set
(compose's `monitoring` profile). Names start with `mura_`; labels are bounded (model, feature, role)."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from mura_core.stages import MonitorCheck

LOGGER = logging.getLogger(__name__)
JOB = "mura_monitor"
METRIC_NAMES = (
    "mura_monitor_drift_detected",
    "mura_monitor_drift_adjusted_p_value",
    "mura_monitor_drift_effect",
    "mura_monitor_live_study_kappa",
    "mura_monitor_live_study_kappa_ci_low",
    "mura_monitor_live_study_auroc",
    "mura_monitor_retrain_requested",
    "mura_monitor_last_check_timestamp_seconds",
)


def registry_of(check: MonitorCheck, now: float | None = None):
    """A CollectorRegistry holding the check's gauges."""
    from prometheus_client import CollectorRegistry, Gauge

    registry = CollectorRegistry()

    def gauge(name: str, text: str, labels: tuple[str, ...] = ("model",)):
        return Gauge(name, text, (*labels,), registry=registry)

    gauge(METRIC_NAMES[0], "1 when the last check found drift against the champion's training data").labels(
        check.model
    ).set(float(check.drift))
    p_values = gauge(METRIC_NAMES[1], "Holm-adjusted p-value of each drift test", ("model", "feature"))
    effects = gauge(
        METRIC_NAMES[2],
        "effect size of each drift test (KS distance, Cramer's V, MMD^2)",
        ("model", "feature"),
    )
    for test in check.tests:
        p_values.labels(check.model, test["feature"]).set(test["adjusted_p"])
        effects.labels(check.model, test["feature"]).set(test["effect"])
    versions = {"champion": check.champion_version, "challenger": check.challenger_version}
    kappa = gauge(
        METRIC_NAMES[3],
        "study kappa of the served model on the release's labelled studies",
        ("model", "role", "version"),
    )
    kappa_low = gauge(
        METRIC_NAMES[4], "lower end of that kappa's 95 % bootstrap interval", ("model", "role", "version")
    )
    auroc = gauge(
        METRIC_NAMES[5],
        "study AUROC of the served model on the release's labelled studies",
        ("model", "role", "version"),
    )
    for role, version in versions.items():
        study = (getattr(check.live, role) or {}).get("study")
        if study:
            labels = (check.model, role, str(version))
            kappa.labels(*labels).set(study["kappa"])
            kappa_low.labels(*labels).set(study.get("kappa_ci_low", float("nan")))
            auroc.labels(*labels).set(study["auroc"])
    gauge(METRIC_NAMES[6], "1 when the last check asked mura_retrain to run").labels(check.model).set(
        float(check.retrain_needed)
    )
    gauge(METRIC_NAMES[7], "when the last check finished (Unix time)").labels(check.model).set(
        now or time.time()
    )
    return registry


def publish(check: MonitorCheck, folder: Path) -> Path:
    """Write `<folder>/mura_monitor.prom` atomically; push to the Pushgateway when one is configured."""
    from prometheus_client import generate_latest, push_to_gateway

    from mura_core.atomic_files import replaced_atomically

    registry = registry_of(check)
    path = folder / "mura_monitor.prom"
    with replaced_atomically(path) as partial:  # a scraper never reads half a file
        partial.write_bytes(generate_latest(registry))
    gateway = os.environ.get("MURA_PUSHGATEWAY_URL")
    if gateway:
        try:
            push_to_gateway(
                gateway, job=JOB, grouping_key={"model": check.model}, registry=registry, timeout=10
            )
        except OSError as error:  # the check itself stands; say where the metrics did not go
            LOGGER.warning("could not push monitor metrics to %s: %s (they are in %s)", gateway, error, path)
    return path
