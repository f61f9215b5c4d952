"""MLflow accounts (basic-auth): who may read, register, tag deployments and move aliases.

Five accounts (docs/ARCHITECTURE.md, "MLflow accounts"): `admin` (users and permissions), `pipeline`
(DAG tasks and `mura train`/`register`: runs, versions, tags; champion only when auto-promote is on, a
rule of the code since MLflow cannot tell one alias from another), `reviewer` (moves `champion` and
`challenger`), `deployer` (the reconciler and webhook: reads, and tags the versions it deployed; it
cannot move an alias) and `viewer` (reads). Every authenticated account reads (`default_permission =
READ`); anonymous requests get 401.

Passwords: compose passes them as `MLFLOW_AUTH_ADMIN_PASSWORD` and `MURA_MLFLOW_<ROLE>_PASSWORD`
(from `.env`); the embedded stack generates them once in `$MURA_HOME/secrets/mlflow_accounts.json`
(mode 0600 from the first byte).
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from mura_core.errors import RegistryError
from mura_core.private_files import read_private, write_private

ADMIN, PIPELINE, REVIEWER, DEPLOYER, VIEWER = "admin", "pipeline", "reviewer", "deployer", "viewer"
ROLES = (ADMIN, PIPELINE, REVIEWER, DEPLOYER, VIEWER)
# What each account may do beyond reading, as MLflow role permissions (type, pattern, permission).
# The version tier lets the deployer tag versions without the model tier's alias rights.
GRANTS: dict[str, tuple[tuple[str, str, str], ...]] = {
    PIPELINE: (("experiment", "*", "EDIT"), ("registered_model", "*", "MANAGE")),
    REVIEWER: (("registered_model", "*", "MANAGE"),),
    DEPLOYER: (("registered_model_version", "*", "EDIT"),),
    VIEWER: (),
}
WORKSPACE = "default"  # MLflow's workspace when workspaces are off
ROLE_PREFIX = "mura-"
SECRET_KEY = "flask_secret_key"  # MLFLOW_FLASK_SERVER_SECRET_KEY: signs the UI's CSRF tokens
AUTH_CACHE_SECONDS = 60  # how long MLflow trusts a right password it checked (auth_settings)


@dataclass(frozen=True)
class Account:
    """One MLflow login."""

    username: str
    password: str

    def environment(self) -> dict[str, str]:
        """The variables MLflow's client reads its credentials from."""
        return {"MLFLOW_TRACKING_USERNAME": self.username, "MLFLOW_TRACKING_PASSWORD": self.password}


def accounts_file(mura_home: Path) -> Path:
    """The embedded stack's generated passwords (mode 0600)."""
    return Path(mura_home) / "secrets" / "mlflow_accounts.json"


def auth_config_file(mura_home: Path) -> Path:
    """The basic-auth app's ini file of the embedded stack (no secret in it)."""
    return Path(mura_home) / "secrets" / "mlflow_auth.ini"


def ensure_embedded_accounts(mura_home: Path) -> dict[str, str]:
    """The embedded stack's passwords by role (and the Flask secret key), generated once."""
    path = accounts_file(mura_home)
    stored = json.loads(read_private(path)) if path.is_file() else {}
    wanted = {name: stored.get(name) or secrets.token_urlsafe(18) for name in (*ROLES, SECRET_KEY)}
    if wanted != stored:
        write_private(path, json.dumps(wanted, indent=1))
    return wanted


def auth_settings(database_uri: str) -> str:
    """The `[mlflow]` section of the basic-auth ini: both stacks' (compose's file is checked against it)."""
    return (
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = {database_uri}\n"
        f"admin_username = {ADMIN}\n"
        # A right password is checked with scrypt once a minute per account, not on every request
        # (about 0.15 s each on 2 cores, and the embedded server has one worker: every call of the
        # pipeline queued behind it). MLflow drops the entry when the password changes through its API.
        f"auth_cache_ttl_seconds = {AUTH_CACHE_SECONDS}\n"
    )


def write_auth_config(mura_home: Path) -> Path:
    """The ini file of `mlflow server --app-name basic-auth`: users in `$MURA_HOME/mlflow/auth.db`."""
    database = Path(mura_home) / "mlflow" / "auth.db"
    database.parent.mkdir(parents=True, exist_ok=True)
    return write_private(auth_config_file(mura_home), auth_settings(f"sqlite:///{database}"))


def server_environment(mura_home: Path) -> dict[str, str]:
    """What the embedded `mlflow server` needs to run the basic-auth app."""
    passwords = ensure_embedded_accounts(mura_home)
    return {
        "MLFLOW_AUTH_CONFIG_PATH": str(write_auth_config(mura_home)),
        "MLFLOW_AUTH_ADMIN_PASSWORD": passwords[ADMIN],
        "MLFLOW_FLASK_SERVER_SECRET_KEY": passwords[SECRET_KEY],
    }


def password_variable(role: str) -> str:
    """The environment variable carrying `role`'s password in compose."""
    return "MLFLOW_AUTH_ADMIN_PASSWORD" if role == ADMIN else f"MURA_MLFLOW_{role.upper()}_PASSWORD"


def account(role: str, mura_home: Path | None = None, environ: dict | None = None) -> Account | None:
    """`role`'s login: from its environment variable, else the embedded file; None when neither has it."""
    if role not in ROLES:
        raise RegistryError(f"unknown MLflow account {role!r}; accounts: {', '.join(ROLES)}")
    env = os.environ if environ is None else environ
    password = env.get(password_variable(role))
    if not password:
        if mura_home is None:
            from mura_core.settings import get_settings

            mura_home = get_settings().mura_home
        path = accounts_file(mura_home)
        password = json.loads(read_private(path)).get(role) if path.is_file() else None
    return Account(role, password) if password else None


def use_account(role: str, tracking_uri: str) -> Account | None:
    """Act as `role` in this process when the server is HTTP and no account was chosen explicitly.

    An explicit MLFLOW_TRACKING_USERNAME (the operator's own login) always wins.
    """
    if not tracking_uri.startswith(("http://", "https://")) or os.environ.get("MLFLOW_TRACKING_USERNAME"):
        return None
    found = account(role)
    if found is not None:
        os.environ.update(found.environment())
    return found


def provision(tracking_uri: str, passwords: dict[str, str]) -> list[str]:
    """Create (or update) the accounts and their role permissions with the admin's login; idempotent.

    `passwords` maps every role to its password. Returns what changed, one line each.
    """
    from mlflow.exceptions import MlflowException, RestException
    from mlflow.server import get_app_client

    missing = [role for role in ROLES if not passwords.get(role)]
    if missing:
        raise RegistryError(
            f"no password for MLflow account(s) {', '.join(missing)}: set "
            + ", ".join(password_variable(role) for role in missing)
        )
    saved = {name: os.environ.get(name) for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}
    os.environ.update(Account(ADMIN, passwords[ADMIN]).environment())
    changes: list[str] = []
    try:
        client = get_app_client("basic-auth", tracking_uri=tracking_uri)
        existing_roles = {role.name: role for role in client.list_roles(WORKSPACE)}
        for role, grants in GRANTS.items():
            try:
                client.create_user(role, passwords[role])
                changes.append(f"user {role} created")
            except RestException as error:
                if error.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
                client.update_user_password(role, passwords[role])
            name = ROLE_PREFIX + role
            mlflow_role = existing_roles.get(name) or client.create_role(WORKSPACE, name, f"MURA {role}")
            have = {
                (grant.resource_type, grant.resource_pattern, grant.permission)
                for grant in client.list_role_permissions(mlflow_role.id)
            }
            for grant in grants:
                if grant not in have:
                    client.add_role_permission(mlflow_role.id, *grant)
                    changes.append(f"{role}: {grant[2]} on {grant[0]} {grant[1]}")
            if mlflow_role.id not in {held.id for held in client.list_user_roles(role)}:
                client.assign_role(role, mlflow_role.id)
    except MlflowException as error:
        raise RegistryError(f"provisioning MLflow accounts on {tracking_uri} failed: {error}") from error
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return changes
