"""`mura runs` and `mura models`: what was trained, what is registered, and what serves, in one table."""

from __future__ import annotations

from datetime import UTC, datetime

from mura_core.contracts import EXPERIMENT, GATE_STATUS_TAG, STUDY_KAPPA, interval_names
from pipelines.deployment import registered_models
from pipelines.registry import trusted_status, verify_key
from pipelines.tracking import connect, tracking_errors


def _kappa(metrics: dict[str, float]) -> str:
    kappa = metrics.get(STUDY_KAPPA)
    if kappa is None:
        return "-"
    low, high = (metrics.get(name) for name in interval_names(STUDY_KAPPA))
    return f"{kappa:.3f}" + (f" [{low:.2f}, {high:.2f}]" if low is not None and high is not None else "")


def _when(millis: int | None) -> str:
    return datetime.fromtimestamp(millis / 1000, UTC).isoformat(timespec="seconds") if millis else "-"


def training_runs(limit: int = 20, client=None) -> list[dict]:
    """The newest training runs of the `mura` experiment: arch, task, preset, study kappa, DAG run."""
    client = client or connect()
    with tracking_errors(client, "listing training runs"):
        experiment = client.get_experiment_by_name(EXPERIMENT)
        if experiment is None:
            return []
        runs = client.search_runs(
            [experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=limit
        )
    return [
        {
            "run_id": run.info.run_id,
            "start": _when(run.info.start_time),
            "status": run.info.status,
            "arch": run.data.tags.get("train.arch", "-"),
            "task": run.data.tags.get("train.task", "-"),
            "preset": run.data.tags.get("train.preset", "-"),
            "study_kappa": _kappa(run.data.metrics),
            "dag_run_id": run.data.tags.get("airflow.dag_run_id"),
        }
        for run in runs
    ]


def model_versions(client=None) -> list[dict]:
    """Every version of every platform model: aliases, gate verdict, study kappa, labels it serves as."""
    from mura_core.settings import get_settings
    from serving import served_versions

    client = client or connect()
    settings = get_settings()
    key = verify_key()  # read once: every version's verdict is checked with it
    rows = []
    with tracking_errors(client, "listing registered models"):
        for registered in registered_models(client):
            _, labels = served_versions(registered.name, settings.models_config_path)
            aliases: dict[int, list[str]] = {int(version): [] for version in registered.aliases.values()}
            for alias, version in registered.aliases.items():
                aliases[int(version)].append(alias)
            versions = client.search_model_versions(f"name='{registered.name}'", max_results=1000)
            for version in sorted(versions, key=lambda item: -int(item.version)):
                number = int(version.version)
                metrics = client.get_run(version.run_id).data.metrics if version.run_id else {}
                rows.append(
                    {
                        "model": registered.name,
                        "version": number,
                        "aliases": sorted(aliases.get(number, [])),
                        "labels": sorted(label for label, served in labels.items() if served == number),
                        "gate": trusted_status(registered.name, version, key)[0]
                        if GATE_STATUS_TAG in version.tags
                        else "-",
                        "study_kappa": _kappa(metrics),
                        "run_id": version.run_id,
                        "created": _when(version.creation_timestamp),
                    }
                )
    return rows
