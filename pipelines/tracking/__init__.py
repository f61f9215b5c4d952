"""The MLflow tracking server and who may use it: the client the platform connects with (its login,
errors that name the server), the embedded server's process, the accounts and their permissions, and
the guard in front of MLflow's basic-auth app.

Kept free of imports: the MLflow image installs this package without its dependencies for the guard.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mura_core.doors import open_door

if TYPE_CHECKING:
    from pipelines.tracking.accounts import DEPLOYER as DEPLOYER
    from pipelines.tracking.accounts import GRANTS as GRANTS
    from pipelines.tracking.accounts import PIPELINE as PIPELINE
    from pipelines.tracking.accounts import REVIEWER as REVIEWER
    from pipelines.tracking.accounts import ROLES as ROLES
    from pipelines.tracking.accounts import VIEWER as VIEWER
    from pipelines.tracking.accounts import account as account
    from pipelines.tracking.accounts import accounts_file as accounts_file
    from pipelines.tracking.accounts import ensure_embedded_accounts as ensure_embedded_accounts
    from pipelines.tracking.accounts import password_variable as password_variable
    from pipelines.tracking.accounts import provision as provision
    from pipelines.tracking.accounts import server_environment as server_environment
    from pipelines.tracking.accounts import use_account as use_account
    from pipelines.tracking.client import check_alias_name as check_alias_name
    from pipelines.tracking.client import connect as connect
    from pipelines.tracking.client import experiment_id as experiment_id
    from pipelines.tracking.client import get_registered as get_registered
    from pipelines.tracking.client import get_version as get_version
    from pipelines.tracking.client import tracking_errors as tracking_errors
    from pipelines.tracking.client import tracking_uri as tracking_uri
    from pipelines.tracking.client import version_metrics as version_metrics
    from pipelines.tracking.server import SERVER_ENVIRONMENT as SERVER_ENVIRONMENT
    from pipelines.tracking.server import embedded_store as embedded_store
    from pipelines.tracking.server import server_command as server_command
    from pipelines.tracking.server import start_tracking_server as start_tracking_server

# The front door: what other rooms may use, by the module of the room that defines it (loaded on
# first use, so importing the room stays cheap).
__all__, __getattr__ = open_door(
    __name__,
    {
        "DEPLOYER": "accounts",
        "GRANTS": "accounts",
        "PIPELINE": "accounts",
        "REVIEWER": "accounts",
        "ROLES": "accounts",
        "SERVER_ENVIRONMENT": "server",
        "VIEWER": "accounts",
        "account": "accounts",
        "accounts_file": "accounts",
        "check_alias_name": "client",
        "connect": "client",
        "embedded_store": "server",
        "ensure_embedded_accounts": "accounts",
        "experiment_id": "client",
        "get_registered": "client",
        "get_version": "client",
        "password_variable": "accounts",
        "provision": "accounts",
        "server_command": "server",
        "server_environment": "accounts",
        "start_tracking_server": "server",
        "tracking_errors": "client",
        "tracking_uri": "client",
        "use_account": "accounts",
        "version_metrics": "client",
    },
)
