"""The embedded stack (`mura up|down|status`): MLflow, the serving process and Airflow on one machine."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mura_core.doors import open_door

if TYPE_CHECKING:
    from pipelines.stack.airflow_api import AirflowClient as AirflowClient
    from pipelines.stack.airflow_api import announce_data_version as announce_data_version
    from pipelines.stack.airflow_api import api_server_log as api_server_log
    from pipelines.stack.airflow_api import client_from_settings as client_from_settings
    from pipelines.stack.airflow_api import trigger_dag_action as trigger_dag_action
    from pipelines.stack.backups import backup as backup
    from pipelines.stack.backups import restore as restore
    from pipelines.stack.control import down as down
    from pipelines.stack.control import paused as paused
    from pipelines.stack.control import running_services as running_services
    from pipelines.stack.control import status as status
    from pipelines.stack.control import up as up

# The front door: what other rooms may use, by the module of the room that defines it (loaded on
# first use, so importing the room stays cheap).
__all__, __getattr__ = open_door(
    __name__,
    {
        "AirflowClient": "airflow_api",
        "announce_data_version": "airflow_api",
        "api_server_log": "airflow_api",
        "backup": "backups",
        "client_from_settings": "airflow_api",
        "down": "control",
        "paused": "control",
        "restore": "backups",
        "running_services": "control",
        "status": "control",
        "trigger_dag_action": "airflow_api",
        "up": "control",
    },
)
