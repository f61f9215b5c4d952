"""The site's key from its own identifiers to the release's pseudonyms (`patient00001/study1`): what
lets the site find a refused or surprising study again. Written 0600 under MURA_HOME/secrets, never
pushed, never logged; kept across imports, so a study keeps its pseudonym when the site adds more."""

from __future__ import annotations

import json
from pathlib import Path

from mura_core.private_files import read_private, write_private


class Pseudonyms:
    """Original PatientID / StudyInstanceUID -> pseudonymous patient number, study number, refusal number."""

    def __init__(self, path: Path):
        self.path = Path(path)
        stored = json.loads(read_private(self.path)) if self.path.is_file() else {}
        self._patients: dict[str, int] = stored.get("patients", {})
        self._studies: dict[str, list[int]] = stored.get("studies", {})  # uid -> [patient, study]
        self._refused: dict[str, int] = stored.get("refused", {})

    def study(self, uid: str, patient_id: str) -> tuple[int, int]:
        """(patient number, study number) of an imported study; new ones get the next free numbers."""
        if uid in self._studies:
            patient, number = self._studies[uid]
            return int(patient), int(number)
        patient = self._patients.setdefault(patient_id or f"study:{uid}", len(self._patients) + 1)
        taken = [number for owner, number in self._studies.values() if owner == patient]
        self._studies[uid] = [patient, max(taken, default=0) + 1]
        return patient, self._studies[uid][1]

    def refusal(self, uid: str) -> str:
        """`refused-0003`: how the import report names a study it could not take in."""
        number = self._refused.setdefault(uid, len(self._refused) + 1)
        return f"refused-{number:04d}"

    def save(self) -> Path:
        """Write the map (mode 0600 from the first byte)."""
        body = {"patients": self._patients, "studies": self._studies, "refused": self._refused}
        return write_private(self.path, json.dumps(body, indent=1, sort_keys=True))
