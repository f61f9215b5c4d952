"""The monitor flow (DAG mura_monitor): pull the release, build its manifest, check drift and live
performance, and ask for a retrain when they say so."""

from __future__ import annotations

from pathlib import Path

from mura_core.contracts import DATA_ASSET_URI, DVC_POOL, MONITOR_DAG, RETRAIN_NEEDED_URI
from mura_core.errors import NothingToMonitor
from mura_core.logs import configure_logging
from mura_core.stages import DataVersion, Manifest, MonitorCheck
from pipelines.flows.data import build_manifest, pull_data

__all__ = [
    "DATA_ASSET_URI",
    "DVC_POOL",
    "MONITOR_DAG",
    "RETRAIN_NEEDED_URI",
    "DataVersion",
    "Manifest",
    "NothingToMonitor",
    "build_manifest",
    "monitor",
    "pull_data",
]


def monitor(manifest: Manifest) -> MonitorCheck:
    """The monitor's checks on the pulled release (drift, live and shadow scoring, the retrain ask)."""
    import pandas as pd

    from pipelines.monitoring import run_monitor

    configure_logging()
    return run_monitor(
        Path(manifest.data_root), pd.read_parquet(manifest.path), data_md5=manifest.data_version.dvc_md5
    )
