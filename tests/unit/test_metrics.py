"""Evaluation metric functions against scikit-learn on hand-made cases."""

import math

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from pipelines.evaluation.metrics import binary_metrics, calibration, evaluate_predictions, study_scores
from pipelines.evaluation.report import flat_metrics, kappa_table

LABELS = np.array([0, 0, 0, 1, 1, 1, 1, 0, 1, 0])
PROBS = np.array([0.1, 0.6, 0.2, 0.8, 0.4, 0.9, 0.7, 0.3, 0.55, 0.45])


def test_binary_metrics_match_sklearn():
    result = binary_metrics(LABELS, PROBS, threshold=0.5)
    predicted = (PROBS >= 0.5).astype(int)
    tn, fp, fn, tp = skm.confusion_matrix(LABELS, predicted).ravel()
    assert result["auroc"] == pytest.approx(skm.roc_auc_score(LABELS, PROBS))
    assert result["kappa"] == pytest.approx(skm.cohen_kappa_score(LABELS, predicted))
    assert result["accuracy"] == pytest.approx(skm.accuracy_score(LABELS, predicted))
    assert result["f1"] == pytest.approx(skm.f1_score(LABELS, predicted))
    assert result["sensitivity"] == pytest.approx(tp / (tp + fn))
    assert result["specificity"] == pytest.approx(tn / (tn + fp))
    assert (result["count"], result["positives"]) == (10, 5)


def test_threshold_changes_the_decision():
    strict = binary_metrics(LABELS, PROBS, threshold=0.75)
    assert strict["sensitivity"] == pytest.approx(2 / 5)
    assert strict["specificity"] == pytest.approx(1.0)


def test_one_class_gives_nan_auroc_not_an_error():
    result = binary_metrics([1, 1, 1], [0.2, 0.7, 0.9], threshold=0.5)
    assert math.isnan(result["auroc"])
    assert math.isnan(result["specificity"])
    assert result["sensitivity"] == pytest.approx(2 / 3)


def _images() -> pd.DataFrame:
    # Study A (abnormal): images 0.9, 0.2 -> mean 0.55; study B (normal): 0.3, 0.5, 0.1 -> 0.3;
    # study C (abnormal, elbow): 0.4 -> 0.4; study D (normal, elbow): 0.8, 0.6 -> 0.7.
    return pd.DataFrame(
        {
            "study_id": ["A", "A", "B", "B", "B", "C", "D", "D"],
            "label": [1, 1, 0, 0, 0, 1, 0, 0],
            "body_part": ["XR_HAND"] * 5 + ["XR_ELBOW"] * 3,
            "probability": [0.9, 0.2, 0.3, 0.5, 0.1, 0.4, 0.8, 0.6],
        }
    )


def test_study_probability_is_the_mean_of_its_images():
    studies = study_scores(_images()).set_index("study_id")
    assert studies.loc["A", "probability"] == pytest.approx(0.55)
    assert studies.loc["B", "probability"] == pytest.approx(0.3)
    assert studies.loc["D", "probability"] == pytest.approx(0.7)
    assert studies.loc["B", "images"] == 3


def test_study_level_metrics_use_the_study_means():
    result = evaluate_predictions(_images(), threshold=0.5, bins=10)
    study_labels, study_probs = [1, 0, 1, 0], [0.55, 0.3, 0.4, 0.7]
    predicted = (np.array(study_probs) >= 0.5).astype(int)
    assert result["study"]["count"] == 4
    assert result["study"]["auroc"] == pytest.approx(skm.roc_auc_score(study_labels, study_probs))
    assert result["study"]["kappa"] == pytest.approx(skm.cohen_kappa_score(study_labels, predicted))
    image_predicted = (_images()["probability"] >= 0.5).astype(int)
    assert result["image"]["kappa"] == pytest.approx(
        skm.cohen_kappa_score(_images()["label"], image_predicted)
    )
    hand = result["per_part"]["XR_HAND"]["study"]
    assert (hand["count"], hand["accuracy"]) == (2, 1.0)
    elbow = result["per_part"]["XR_ELBOW"]["study"]
    assert elbow["accuracy"] == 0.0


def test_expected_calibration_error_by_hand():
    # Bin [0.0,0.5): probs 0.2, 0.4 (mean 0.3), labels 0, 1 (rate 0.5) -> |0.5-0.3| * 2/4
    # Bin [0.5,1.0]: probs 0.6, 1.0 (mean 0.8), labels 1, 1 (rate 1.0) -> |1.0-0.8| * 2/4
    result = calibration([0, 1, 1, 1], [0.2, 0.4, 0.6, 1.0], bins=2)
    assert result["ece"] == pytest.approx(0.2)
    assert [b["count"] for b in result["bins"]] == [2, 2]


def test_flat_names_and_kappa_table():
    result = evaluate_predictions(_images(), threshold=0.5, bins=10)
    flat = flat_metrics(result)
    assert flat["eval.study_kappa"] == pytest.approx(result["study"]["kappa"])
    assert "eval.study_auroc" in flat and "eval.elbow.study_kappa" in flat and "eval.hand.image_auroc" in flat
    table = kappa_table(result)
    assert "Elbow" in table and "Overall" in table
