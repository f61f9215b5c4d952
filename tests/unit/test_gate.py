"""The champion/challenger gate: floors, change thresholds against the champion, and the policy in params.yaml."""

from __future__ import annotations

import pytest

from pipelines.errors import ConfigError
from pipelines.registry.gate import GatePolicy, evaluate_gate

POLICY = GatePolicy(
    min_study_kappa=0.3,
    min_study_auroc=0.7,
    max_overall_drop=0.02,
    max_part_kappa_drop=0.05,
    auto_promote=False,
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
    policy = GatePolicy.from_params()
    assert 0 <= policy.max_overall_drop and 0 <= policy.max_part_kappa_drop
    assert policy.auto_promote is False


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"min_study_kappa": 0.1, "min_study_auroc": 0.6, "max_overall_drop": 0.02}, "lacks"),
        (
            {
                "min_study_kappa": "high",
                "min_study_auroc": 0.6,
                "max_overall_drop": 0.02,
                "max_part_kappa_drop": 0.1,
                "approval": "off",
            },
            "number",
        ),
        (
            {
                "min_study_kappa": 0.1,
                "min_study_auroc": 0.6,
                "max_overall_drop": -0.1,
                "max_part_kappa_drop": 0.1,
                "approval": "off",
            },
            "negative",
        ),
        (
            {
                "min_study_kappa": 0.1,
                "min_study_auroc": 1.6,
                "max_overall_drop": 0.1,
                "max_part_kappa_drop": 0.1,
                "approval": "off",
            },
            "[0, 1]",
        ),
    ],
)
def test_bad_policy_is_a_config_error(section, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        GatePolicy.from_params(section)


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
