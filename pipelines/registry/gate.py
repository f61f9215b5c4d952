"""The champion/challenger gate: absolute floors, then no regression against the current champion.

Policy in params.yaml `gate:`. The first version of a model (no champion) is judged on floors only.
Metric names follow the contract (docs/ARCHITECTURE.md): `eval.study_kappa`, `eval.study_auroc`, `eval.<part>.study_kappa`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mura_core.config import GateParams
from mura_core.contracts import FAILED, PASSED, STUDY_AUROC, STUDY_KAPPA
from pipelines.registry.paired import PairedStudies, compare_paired
from pipelines.registry.pairing import Unpaired

KAPPA, AUROC = STUDY_KAPPA, STUDY_AUROC
PART_KAPPA = re.compile(r"^eval\.(?P<part>[a-z0-9_]+)\.study_kappa$")
# MLflow limits tag values; the reason is cut well below that.
MAX_REASON_CHARS = 4000
_SLACK = 1e-9  # float noise must not fail an equal model


@dataclass
class Judgement:
    """What the gate concludes: passed or not, a readable reason, and the champion version compared
    with (recorded, signed and acted on by registration, whose result is stages.GateVerdict)."""

    passed: bool
    reason: str
    failures: list[str] = field(default_factory=list)
    champion_version: int | None = None

    @property
    def status(self) -> str:
        """`passed` or `failed` (the `gate.status` tag)."""
        return PASSED if self.passed else FAILED


def part_kappas(metrics: dict[str, float]) -> dict[str, float]:
    """part slug -> study kappa, from `eval.<part>.study_kappa` entries."""
    return {match["part"]: value for key, value in metrics.items() if (match := PART_KAPPA.match(key))}


def _floors(candidate: dict[str, float], policy: GateParams, notes: list[str], failures: list[str]) -> None:
    for key, floor, label in (
        (KAPPA, policy.min_study_kappa, "study kappa"),
        (AUROC, policy.min_study_auroc, "study AUROC"),
    ):
        value = candidate.get(key)
        if value is None:
            failures.append(f"{key} missing: evaluate the run before registering it")
        elif value + _SLACK < floor:
            failures.append(f"{label} {value:.4f} below the floor {floor:.4f}")
        else:
            notes.append(f"{label} {value:.4f} >= {floor:.4f}")


def _against_champion(
    candidate: dict[str, float],
    champion: dict[str, float],
    policy: GateParams,
    notes: list[str],
    failures: list[str],
) -> None:
    for key, label in ((KAPPA, "study kappa"), (AUROC, "study AUROC")):
        if key not in champion or key not in candidate:
            continue  # a missing candidate metric already failed the floors
        change = candidate[key] - champion[key]
        if -change > policy.max_overall_drop + _SLACK:
            failures.append(
                f"{label} {candidate[key]:.4f} is {-change:.4f} below the champion's {champion[key]:.4f} "
                f"(allowed drop {policy.max_overall_drop:.4f})"
            )
        else:
            notes.append(f"{label} change {change:+.4f}")
    candidate_parts, champion_parts = part_kappas(candidate), part_kappas(champion)
    worst = None
    for part, reference in sorted(champion_parts.items()):
        if part not in candidate_parts:
            failures.append(f"eval.{part}.study_kappa missing while the champion has it")
            continue
        change = candidate_parts[part] - reference
        if -change > policy.max_part_kappa_drop + _SLACK:
            failures.append(
                f"{part} study kappa {candidate_parts[part]:.4f} is {-change:.4f} below the champion's "
                f"{reference:.4f} (allowed drop {policy.max_part_kappa_drop:.4f})"
            )
        elif worst is None or change < worst[1]:
            worst = (part, change)
    if worst is not None:
        notes.append(f"worst part {worst[0]} {worst[1]:+.4f}")


def lineage_failures(tags: dict[str, str]) -> list[str]:
    """Why a version's lineage forbids it to serve: data not versioned and pushed, or uncommitted code.

    A tag that is absent counts as a failure: a version whose origin cannot be shown does not go live.
    """
    failures = []
    if tags.get("data.versioned") != "true":
        failures.append(
            f"lineage: data {tags.get('data.md5', 'of unknown hash')} is not a pushed DVC version "
            "(run 'mura data push', commit data.dvc, retrain)"
        )
    if tags.get("code.dirty") != "false":
        failures.append(
            f"lineage: code {tags.get('code.git_sha', 'unknown')[:12]} had uncommitted changes "
            f"(code.dirty={tags.get('code.dirty', 'unknown')}; commit and retrain)"
        )
    return failures


def evaluate_gate(
    candidate: dict[str, float],
    champion: dict[str, float] | None,
    policy: GateParams,
    champion_version: int | None = None,
    lineage: list[str] | None = None,
    paired: PairedStudies | Unpaired | None = None,
) -> Judgement:
    """Judge `candidate` metrics: floors always; against the champion when there is one, by a paired
    bootstrap on the same holdout studies when `paired` holds them, else by single numbers (the
    reason then says so and why);
    `lineage` failures (lineage_failures) fail it whatever its metrics."""
    notes: list[str] = []
    failures: list[str] = list(lineage or [])
    fallback = ""  # a weaker comparison is said whatever the verdict
    _floors(candidate, policy, notes, failures)
    if champion is not None and isinstance(paired, PairedStudies):
        paired_notes, paired_failures = compare_paired(paired, policy)
        notes += paired_notes
        failures += paired_failures
    elif champion is not None:
        why = paired.reason if isinstance(paired, Unpaired) else "no paired holdout predictions"
        fallback = f" [single numbers compared: {why}]"
        _against_champion(candidate, champion, policy, notes, failures)
    against = f" vs champion v{champion_version}" if champion is not None and champion_version else ""
    if champion is None:
        against = " (first version: floors only)"
    if failures:
        reason = f"failed{against}{fallback}: " + "; ".join(failures)
    else:
        reason = f"passed{against}{fallback}: " + "; ".join(notes)
    return Judgement(
        not failures, reason[:MAX_REASON_CHARS], failures, champion_version if champion else None
    )
