"""The champion/challenger gate: floors, change thresholds against the champion, and the policy in params.yaml."""

from __future__ import annotations

import dataclasses
import re

import pytest

from mura_core.config import load_config, parse_config
from mura_core.errors import ConfigError
from pipelines.registry.gate import evaluate_gate

POLICY = dataclasses.replace(
    load_config().gate,
    min_study_kappa=0.3,
    min_study_auroc=0.7,
    max_overall_drop=0.02,
    max_part_kappa_drop=0.05,
)
CHAMPION = {
    "eval.study_kappa": 0.60,
    "eval.study_auroc": 0.80,
    "eval.elbow.study_kappa": 0.55,
    "eval.hand.study_kappa": 0.40,
}


def candidate(**changes) -> dict:
    """The champion's metrics with some changed (keys use `_` for `.`: elbow_study_kappa)."""
    metrics = dict(CHAMPION)
    for key, value in changes.items():
        name = "eval." + key.replace("_study", ".study") if key.count("_") > 1 else "eval." + key
        if value is None:
            metrics.pop(name)
        else:
            metrics[name] = value
    return metrics


def test_first_version_is_judged_on_floors_only():
    verdict = evaluate_gate({"eval.study_kappa": 0.31, "eval.study_auroc": 0.71}, None, POLICY)
    assert verdict.passed and verdict.status == "passed" and "floors only" in verdict.reason
    assert verdict.champion_version is None


@pytest.mark.parametrize(
    ("metrics", "message"),
    [
        ({"eval.study_kappa": 0.29, "eval.study_auroc": 0.90}, "study kappa 0.2900 below the floor 0.3000"),
        ({"eval.study_kappa": 0.50, "eval.study_auroc": 0.69}, "study AUROC 0.6900 below the floor 0.7000"),
        ({"eval.study_auroc": 0.90}, "eval.study_kappa missing"),
    ],
)
def test_floors_fail_with_the_reason(metrics, message):
    verdict = evaluate_gate(metrics, None, POLICY)
    assert not verdict.passed and verdict.status == "failed"
    assert message in verdict.reason


def test_equal_or_slightly_worse_than_champion_passes():
    assert evaluate_gate(dict(CHAMPION), CHAMPION, POLICY, champion_version=3).passed
    verdict = evaluate_gate(
        candidate(study_kappa=0.58, elbow_study_kappa=0.50), CHAMPION, POLICY, champion_version=3
    )
    assert verdict.passed and "vs champion v3" in verdict.reason and verdict.champion_version == 3


def test_overall_drop_beyond_delta_fails():
    verdict = evaluate_gate(candidate(study_kappa=0.57), CHAMPION, POLICY, champion_version=1)
    assert not verdict.passed
    assert "study kappa 0.5700 is 0.0300 below the champion's 0.6000 (allowed drop 0.0200)" in verdict.reason
    assert not evaluate_gate(candidate(study_auroc=0.77), CHAMPION, POLICY).passed


def test_one_body_part_worse_than_epsilon_fails_even_if_overall_improves():
    verdict = evaluate_gate(
        candidate(study_kappa=0.70, hand_study_kappa=0.34), CHAMPION, POLICY, champion_version=1
    )
    assert not verdict.passed and verdict.failures == [
        "hand study kappa 0.3400 is 0.0600 below the champion's 0.4000 (allowed drop 0.0500)"
    ]


def test_a_part_the_champion_has_must_be_measured():
    verdict = evaluate_gate(candidate(elbow_study_kappa=None), CHAMPION, POLICY)
    assert not verdict.passed and "eval.elbow.study_kappa missing" in verdict.reason


def test_policy_from_the_repository_params():
    policy = load_config().gate
    assert 0 <= policy.max_overall_drop and 0 <= policy.max_part_kappa_drop
    assert policy.approval == "required" and policy.paired_replicates >= 100


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"max_part_kappa_drop": None}, "missing key(s) ['max_part_kappa_drop']"),
        ({"paired_replicates": None}, "missing key(s) ['paired_replicates']"),
        ({"min_study_kappa": "high"}, "gate.min_study_kappa"),
        ({"max_overall_drop": -0.1}, "cannot be negative"),
        ({"min_study_auroc": 1.6}, "[0, 1]"),
        ({"paired_replicates": 10}, "paired_replicates must be >= 100"),
        ({"confidence": 1.0}, "confidence in [0.5, 1)"),
    ],
)
def test_bad_policy_is_a_config_error(changes, message):
    """One policy type, read from params.yaml with every key required: the gate once had its own
    copy with fallbacks (1000 resamples where params.yaml said 2000)."""
    from pathlib import Path

    import yaml

    params = yaml.safe_load(Path(load_config().source).read_text())
    for name, value in changes.items():
        if value is None:
            del params["gate"][name]
        else:
            params["gate"][name] = value
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config(params)


def test_lineage_that_cannot_be_shown_fails_the_gate_whatever_the_metrics():
    from pipelines.registry.gate import lineage_failures

    clean = {"data.versioned": "true", "code.dirty": "false", "data.md5": "a.dir", "code.git_sha": "abc"}
    assert lineage_failures(clean) == []
    unversioned = lineage_failures({**clean, "data.versioned": "false"})
    assert len(unversioned) == 1 and "a.dir is not a pushed DVC version" in unversioned[0]
    assert "uncommitted changes" in lineage_failures({**clean, "code.dirty": "true"})[0]
    assert len(lineage_failures({})) == 2  # no lineage recorded at all
    verdict = evaluate_gate(candidate(), None, POLICY, lineage=unversioned)
    assert not verdict.passed and "lineage" in verdict.reason


def test_a_single_number_fallback_is_said_in_the_verdict_whatever_it_is():
    """A champion that could not be scored on the new holdout made the gate compare single numbers,
    said only in a log line; the reason a reviewer reads (and the card) now names it and why."""
    from pipelines.registry.pairing import Unpaired

    why = Unpaired("the champion's run r1 could not be scored on the new holdout: 3 images missing")
    passed = evaluate_gate(candidate(), CHAMPION, POLICY, 3, paired=why)
    failed = evaluate_gate(candidate(study_kappa=0.5), CHAMPION, POLICY, 3, paired=why)
    for verdict in (passed, failed):
        assert f"vs champion v3 [single numbers compared: {why.reason}]:" in verdict.reason
    assert passed.passed and not failed.passed


def test_a_champion_that_cannot_be_scored_gives_the_reason_not_none(monkeypatch, caplog):
    import pandas as pd

    from mura_core.errors import DataError
    from pipelines.evaluation import holdout
    from pipelines.registry import pairing

    table = pd.DataFrame({"study_id": ["s1", "s2"], "body_part": ["XR_HAND"] * 2, "label": [0, 1]})
    monkeypatch.setattr(
        holdout, "stored_holdout_studies", lambda client, run: (table, 0.5) if run == "new" else None
    )

    def unscorable(client, challenger_run, champion_run):
        raise DataError("3 images of the holdout are missing under data/")

    monkeypatch.setattr(pairing, "_score_champion", unscorable)
    found = pairing.paired_holdout(None, "new", "old")
    assert isinstance(found, pairing.Unpaired)
    assert "run old could not be scored" in found.reason and "3 images" in found.reason
    assert "single numbers" in caplog.text
