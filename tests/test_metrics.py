"""core/metrics.py: one scoring function for training, promotion and monitoring."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlplatform.core import metrics


def test_regression_metrics_are_scikit_learns() -> None:
    truth = [10.0, 20.0, 30.0, 40.0]
    answer = pd.DataFrame({"prediction": [12.0, 18.0, 33.0, 40.0]})
    scored = metrics.score("regression", truth, answer)
    assert scored["rmse"] == pytest.approx(np.sqrt((4 + 4 + 9 + 0) / 4))
    assert scored["mae"] == pytest.approx(7 / 4)
    assert scored["r2"] == pytest.approx(1 - 17 / 500)
    assert "r2" not in metrics.score("regression", [5.0], pd.DataFrame({"prediction": [4.0]}))


def test_classifier_metrics_clip_probabilities_and_skip_auc_on_one_class() -> None:
    answer = pd.DataFrame({"probability": [0.0, 1.0, 0.8, 0.3]})
    scored = metrics.score("classification", [0, 1, 1, 0], answer)
    assert np.isfinite(scored["log_loss"]) and scored["accuracy"] == 1.0 and scored["roc_auc"] == 1.0
    assert "roc_auc" not in metrics.score("classification", [1, 1], answer.head(2))


def test_every_reported_metric_knows_which_way_is_better() -> None:
    reported = set(metrics.score("regression", [1.0, 2.0], pd.DataFrame({"prediction": [1.0, 3.0]})))
    reported |= set(metrics.score("classification", [0, 1], pd.DataFrame({"probability": [0.2, 0.9]})))
    assert reported == set(metrics.LOWER_IS_BETTER)


def test_relative_degradation_is_signed_by_direction() -> None:
    assert metrics.relative_degradation("rmse", 5.5, 5.0) == pytest.approx(0.1)
    assert metrics.relative_degradation("rmse", 4.5, 5.0) == pytest.approx(-0.1)
    assert metrics.relative_degradation("accuracy", 0.72, 0.8) == pytest.approx(0.1)
    assert metrics.relative_degradation("rmse", 3.0, 0.0) == 0.0
