"""Orthanc as the embedded stack's research PACS: its configuration and its login.

Debian's Orthanc 1.10 has no bind address: its HTTP port listens on every interface, so remote HTTP is
refused by the server itself (`RemoteAccessAllowed: false`) and authentication is always on. The DICOM
(DIMSE) port is off: studies arrive over DICOMweb (STOW-RS) only (SECURITY.md).
"""

from __future__ import annotations

import json
import secrets
import shutil
from pathlib import Path

from pipelines.ports import host_port
from pipelines.private_files import read_private, write_private
from pipelines.settings import Settings

BINARY = "/usr/sbin/Orthanc"
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
USER = "mura"
STABLE_AGE_SECONDS = 10  # a study with no new instance for this long counts as complete


def orthanc_binary() -> str | None:
    """Orthanc with its DICOMweb plugin (`apt-get install orthanc orthanc-dicomweb`), or None."""
    found = shutil.which("Orthanc") or (BINARY if Path(BINARY).is_file() else None)
    return found if found and DICOMWEB_PLUGIN.is_file() else None


def credentials_file(settings: Settings) -> Path:
    """The PACS login of the embedded stack (mode 0600)."""
    return settings.mura_home / "secrets" / "pacs.json"


def credentials(settings: Settings) -> tuple[str, str]:
    """(user, password): MURA_PACS_USER / MURA_PACS_PASSWORD when set (compose, another PACS), else the
    embedded stack's, generated once."""
    if settings.pacs_user and settings.pacs_password:
        return settings.pacs_user, settings.pacs_password
    path = credentials_file(settings)
    if path.is_file():
        stored = json.loads(read_private(path))
        return stored["user"], stored["password"]
    password = secrets.token_urlsafe(18)
    write_private(path, json.dumps({"user": USER, "password": password}))
    return USER, password


def folder(settings: Settings) -> Path:
    """Orthanc's storage, index and configuration under MURA_HOME."""
    return settings.mura_home / "pacs"


def write_config(settings: Settings) -> Path:
    """Orthanc's JSON configuration (0600: it holds the login) for the port of MURA_PACS_URL."""
    user, password = credentials(settings)
    _, port = host_port(settings.pacs_url)
    home = folder(settings)
    config = {
        "Name": "MURA research PACS",
        "StorageDirectory": str(home / "storage"),
        "IndexDirectory": str(home / "index"),
        "HttpPort": port,
        "DicomServerEnabled": False,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": True,
        "RegisteredUsers": {user: password},
        "HttpServerEnabled": True,
        "StableAge": STABLE_AGE_SECONDS,
        "Plugins": [str(DICOMWEB_PLUGIN)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
    }
    return write_private(home / "orthanc.json", json.dumps(config, indent=2))


def command(settings: Settings) -> list[str]:
    """How the stack starts it."""
    return [orthanc_binary() or BINARY, str(folder(settings) / "orthanc.json")]
