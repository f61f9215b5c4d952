"""The question a reviewer answers in mura_retrain's approval step: the evidence (the paired comparison
with the champion, each body part that moved, the data version and its validation, links to the card,
the version and the Data Docs) as Markdown for the Airflow UI, and the champion it was asked against
(pipelines.registry.approval acts on the answer)."""

from __future__ import annotations

from dataclasses import dataclass

from mura_core.contracts import CHAMPION, PROMOTE_OPTION
from pipelines.tracking import connect, tracking_errors

PART_MOVE = 0.05  # a body part's study kappa that moved at least this much is named in the question


@dataclass(frozen=True)
class ApprovalQuestion:
    """What the approval step asks, and the champion it was asked against."""

    subject: str
    body: str
    champion: int | None  # an answer is acted on only while this is still the champion


def _interval(section: dict, name: str) -> str:
    value, (low, high) = section.get(name), section.get(f"{name}_ci") or (None, None)
    if value is None:
        return "n/a"
    return f"{value:.3f} [{low:.3f}, {high:.3f}]" if low is not None and high is not None else f"{value:.3f}"


def _moved_parts(challenger: dict, champion: dict | None) -> list[str]:
    """Body parts whose study kappa moved by PART_MOVE or more against the champion."""
    if champion is None:
        return []
    lines = []
    ours, theirs = challenger["evaluation"]["per_part"], champion["evaluation"]["per_part"]
    for part in sorted(set(ours) & set(theirs)):
        new, old = ours[part].get("study_kappa"), theirs[part].get("study_kappa")
        if new is not None and old is not None and abs(new - old) >= PART_MOVE:
            lines.append(f"- {part}: study kappa {old:.3f} -> {new:.3f} ({new - old:+.3f})")
    return lines


def question(model: str, version: int, dag_run_id: str, client=None) -> ApprovalQuestion:
    """The question about `version` (a passing challenger): subject, Markdown body, current champion."""
    from mura_core.settings import get_settings
    from pipelines.views.lineage import version_lineage

    client = client or connect()
    with tracking_errors(client, f"asking about {model} v{version}"):
        aliases = client.get_registered_model(model).aliases
        champion = int(aliases[CHAMPION]) if CHAMPION in aliases else None
    ours = version_lineage(f"{model}/{version}", client)
    theirs = version_lineage(f"{model}/{champion}", client) if champion is not None else None
    ui = get_settings().mlflow_tracking_uri.rstrip("/")
    rows = [
        "| | study kappa [95 % CI] | study AUROC [95 % CI] |",
        "|---|---|---|",
        f"| **v{version}** (this version) | {_interval(ours['evaluation'], 'study_kappa')} | "
        f"{_interval(ours['evaluation'], 'study_auroc')} |",
    ]
    if theirs is not None:
        rows.append(
            f"| v{champion} (champion) | {_interval(theirs['evaluation'], 'study_kappa')} | "
            f"{_interval(theirs['evaluation'], 'study_auroc')} |"
        )
    moved = _moved_parts(ours, theirs) or ["- none by 0.05 or more" if theirs else "- no champion to compare"]
    docs = ours["validation"]["docs"]
    body = "\n".join(
        [
            f"### {model} v{version} passed the gate; promote it to champion?",
            "",
            *rows,
            "",
            f"**Gate:** {ours['gate']['reason']}",  # the reason starts with the verdict
            "",
            "**Body parts that moved:**",
            *moved,
            "",
            f"**Data:** version {ours['data']['md5']} (data.dvc at {ours['data']['data_dvc_commit']}); "
            f"Great Expectations: {ours['validation']['success']}",
            "",
            f"**Links:** [MLflow version]({ui}/#/models/{model}/versions/{version}) · model card: "
            f"`mura card {model}/{version}` · Data Docs: {docs or 'not recorded'}",
            "",
            f"*{PROMOTE_OPTION}* moves `champion` to v{version} (serving follows); *Keep as challenger* "
            "changes nothing. Either answer is recorded on the version with your name and this run.",
        ]
    )
    subject = f"Promote {model} v{version} to champion?"
    if champion is not None:
        subject += f" (champion now v{champion})"
    return ApprovalQuestion(subject=subject, body=body, champion=champion)
