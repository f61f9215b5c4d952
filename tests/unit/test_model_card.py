"""Model card pieces without a registry: the cases it shows, the table it prints, what it escapes."""

from __future__ import annotations

import pandas as pd
import pytest

from pipelines.cards import paper
from pipelines.cards.build import render
from pipelines.cards.examples import pick_cases
from pipelines.cards.facts import data_counts, limitations, performance_rows


def _study(kappa, count=40):
    return {
        "count": count,
        "kappa": kappa,
        "kappa_ci_low": kappa - 0.1,
        "kappa_ci_high": kappa + 0.1,
        "auroc": 0.9,
        "auroc_ci_low": 0.85,
        "auroc_ci_high": 0.95,
        "sensitivity": 0.8,
        "specificity": 0.85,
    }


METRICS = {
    "threshold": 0.42,
    "study": _study(0.61, 80),
    "per_part": {"XR_ELBOW": {"study": _study(0.5)}, "XR_WRIST": {"study": _study(0.7)}},
    "calibration": {"study": {"ece": 0.09, "bins": []}, "study_raw": {"ece": 0.16, "bins": []}},
    "operating_point": {"threshold": 0.42, "method": "fitted"},
}


def test_cases_are_the_surest_of_each_kind():
    predictions = pd.DataFrame(
        {
            "image_path": [f"image{i}.png" for i in range(6)],
            "label": [1, 1, 0, 0, 1, 1],
            "probability": [0.95, 0.60, 0.90, 0.10, 0.05, 0.30],
        }
    )
    picked = [(kind, row["image_path"]) for kind, row in pick_cases(predictions, 0.5, per_kind=1)]
    assert picked == [
        ("true positive", "image0.png"),
        ("false positive", "image2.png"),
        ("false negative", "image4.png"),
    ]


def test_performance_rows_put_each_type_beside_the_papers_numbers():
    rows = performance_rows(METRICS)
    assert [row["type"] for row in rows] == ["Elbow", "Wrist", "Overall"]
    assert rows[0]["kappa"] == {"value": 0.5, "low": 0.4, "high": 0.6}
    assert rows[-1]["paper"][-1] == {"value": 0.705, "low": 0.700, "high": 0.710}
    assert all(len(row["paper"]) == len(paper.READERS) for row in rows)


def test_counts_are_per_type_and_split_in_studies_and_images():
    manifest = pd.DataFrame(
        {
            "body_part": ["XR_HAND"] * 3 + ["XR_ELBOW"],
            "split": ["train", "train", "valid", "train"],
            "study_id": ["h/p1/s1", "h/p1/s1", "h/p2/s1", "e/p3/s1"],
            "label": [1, 1, 0, 0],
        }
    )
    rows = {row["type"]: row for row in data_counts(manifest)}
    assert rows["Hand"]["train"] == {"studies": 1, "abnormal": 1, "images": 2}
    assert rows["All types"]["train"] == {"studies": 2, "abnormal": 1, "images": 3}
    assert rows["Finger"]["valid"]["studies"] == 0


def test_limitations_name_what_this_version_lacks():
    items = " ".join(
        limitations(
            {
                "config": {"weights": None, "image_size": [96, 96]},
                "synthetic": True,
                "calibration": {"ece_calibrated": 0.09},
            }
        )
    )
    assert "random initialisation" in items and "96x96" in items and "synthetic" in items and "0.090" in items


def test_rendered_card_escapes_what_users_wrote(tmp_path):
    hostile = '<script>alert("x")</script>'
    card = {
        "model": "mura_binary",
        "version": 3,
        "aliases": ["champion"],
        "run_id": "abc",
        "tags": {"gate.status": "passed", "gate.reason": hostile, "data.rev": hostile},
        "run_tags": {},
        "config": {"arch": hostile, "weights": None},
        "metrics": METRICS,
        "paper": paper,
        "synthetic": False,
        "counts": None,
        "performance": performance_rows(METRICS),
        "calibration": {
            "ece_raw": 0.16,
            "ece_calibrated": 0.09,
            "operating_point": METRICS["operating_point"],
        },
        "figures": [],
        "overlays": [],
        "gaps": [],
        "limitations": ["one"],
        "external": [
            {
                "site": "st-olav",
                "data_md5": "abc.dir",
                "run_id": "r1",
                "studies": 120.0,
                "kappa": 0.31,
                "kappa_ci": [0.2, 0.42],
                "valid_kappa": 0.61,
                "auroc": 0.7,
                "drop_significant": True,
                "drift": True,
                "report": hostile,
            }
        ],
    }
    html, markdown = render(card, tmp_path)
    text = html.read_text()
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert "Research use only" in text and 'id="kappa-table"' in text and "[0.400, 0.600]" in text
    assert "| Overall | 80 | 0.610 | [0.510, 0.710]" in markdown.read_text()
    # The external validations: the site's kappa with its interval beside the valid one, the drop flagged.
    assert "<td>st-olav</td><td>120</td><td>0.310</td>" in text and "[0.200, 0.420]" in text
    assert "| st-olav | 120 | 0.310 | [0.200, 0.420] | 0.610 | 0.700 | yes | yes |" in markdown.read_text()


@pytest.mark.parametrize(
    ("tag", "shown"),
    [("True", "passed"), ("true", "passed"), ("False", "failed"), (None, "unknown (no validation recorded)")],
)
def test_the_card_states_the_validation_verdict_the_tag_holds(tmp_path, tag, shown):
    """A validated model's card once read "not passed: True": the tag is Python's spelling."""
    tags = {"gate.status": "passed"} | ({"validation.success": tag} if tag is not None else {})
    card = {
        "model": "mura_binary", "version": 3, "aliases": [], "run_id": "abc", "tags": tags, "run_tags": {},
        "config": {"arch": "baseline_cnn", "weights": None}, "metrics": METRICS, "paper": paper,
        "synthetic": False, "counts": None, "performance": performance_rows(METRICS),
        "calibration": {"ece_raw": 0.16, "ece_calibrated": 0.09, "operating_point": METRICS["operating_point"]},
        "figures": [], "overlays": [], "gaps": [], "limitations": ["one"], "external": [],
    }  # fmt: skip
    html, markdown = render(card, tmp_path)
    assert f"<dt>Great Expectations</dt><dd>{shown};" in html.read_text()
    assert f"- Great Expectations: {shown};" in markdown.read_text()
