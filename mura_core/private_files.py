"""Secret files (passwords, signing keys) readable by their owner only, from the first byte.

`write_text` then `chmod` leaves a window in which the file has the umask's mode (often 0644): another
local user can open it then and keep reading. Here the file is created with mode 0600 under a temporary
name (O_EXCL: never an existing file or a planted link) and renamed into place.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE = 0o600


def write_private(path: Path, text: str) -> Path:
    """Write `text` to `path` (replacing it atomically) with mode 0600."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def read_private(path: Path) -> str:
    """The text of a secret file, first narrowing its mode to 0600 when group or others could read it
    (a file an earlier version wrote with the umask's mode)."""
    path = Path(path)
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        path.chmod(PRIVATE)
    return path.read_text(encoding="utf-8")


def private_token(path: Path, size: int = 32) -> str:
    """A random secret kept at `path` (0600): made on the first ask, the same one read back after."""
    import secrets

    path = Path(path)
    if not path.is_file():
        write_private(path, secrets.token_urlsafe(size))
    return read_private(path).strip()
