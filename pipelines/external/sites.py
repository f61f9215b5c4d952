"""A site's external data: its name and where its release, DVC pointer, gate result and pseudonym
map live. The release (`external/<site>/`) holds nothing of a patient; the pseudonym map does, and
stays under MURA_HOME's secrets (0600), never pushed, never logged."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from mura_core.errors import ConfigError
from mura_core.settings import Settings, get_settings

EXTERNAL_DIR = "external"
IMPORT_REPORT = "import_report.json"  # in the release: what was imported and what refused, and why
SITE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,47}$")  # also the DAG form's pattern (flows.external)


def check_site(name: str) -> str:
    """The site name, or ConfigError: it names folders and MLflow tags, so it is a plain slug."""
    if not SITE_NAME.fullmatch(name or ""):  # fullmatch: `$` alone lets a trailing newline through
        raise ConfigError(
            f"site {name!r}: use 1-48 lower-case letters, digits, '-' or '_', starting with a letter or "
            "digit (e.g. st-olav); it names the folder external/<site>/ and the MLflow tag external.site"
        )
    return name


@dataclass(frozen=True)
class Site:
    """The places of one site's data."""

    name: str
    repo_root: Path
    mura_home: Path
    external_dir: Path  # where sites' releases live (MURA_EXTERNAL_DIR, default <repo>/external)

    @property
    def root(self) -> Path:
        """The folder holding the site's MURA-v1.1/ release."""
        return self.external_dir / self.name

    @property
    def relative(self) -> str:
        """The release folder relative to the project (`external/<site>`), which DVC versions."""
        try:
            return self.root.relative_to(self.repo_root).as_posix()
        except ValueError:
            raise ConfigError(
                f"{self.root} lies outside the project {self.repo_root}: DVC versions folders inside it; "
                "set MURA_EXTERNAL_DIR under the project, or import with --no-push"
            ) from None

    @property
    def pointer(self) -> Path:
        """The site's DVC pointer, `external/<site>.dvc`."""
        return self.root.with_name(f"{self.name}.dvc")

    @property
    def pseudonyms(self) -> Path:
        """Original identifiers -> the release's pseudonyms: at the site only."""
        return self.mura_home / "secrets" / f"pseudonyms-{self.name}.json"

    def gate_file(self, data_md5: str) -> Path:
        """The data gate's result on the release with this DVC hash."""
        return self.mura_home / EXTERNAL_DIR / self.name / f"gate-{data_md5.removesuffix('.dir')}.json"


def site(name: str, settings: Settings | None = None) -> Site:
    """The site `name` of this project (ConfigError for a name that is not a plain slug)."""
    settings = settings or get_settings()
    external = settings.external_dir or settings.repo_root / EXTERNAL_DIR
    return Site(check_site(name), settings.repo_root, settings.mura_home, external)
