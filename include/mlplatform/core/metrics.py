"""Model metrics: one scoring function and one table of which way each metric is better.

Training, promotion and monitoring all score answers here, so a metric means the same
thing at training time, at the promotion gate and in production.
"""

from __future__ import annotations

from typing import Any

import numpy as np

LOWER_IS_BETTER: dict[str, bool] = {
    "rmse": True,
    "mae": True,
    "log_loss": True,
    "brier": True,
    "r2": False,
    "accuracy": False,
    "roc_auc": False,
}
"""Every metric :func:`score` reports, and whether a lower value is better."""


def score(task: str, y: Any, answer: Any) -> dict[str, float]:
    """Metrics of answers (a model's output frame: ``prediction``, or ``probability`` for a
    classifier) against the truth ``y``."""
    truth = np.asarray(y, dtype=float)
    if task == "regression":
        from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error

        predicted = answer["prediction"].to_numpy(dtype=float)
        out = {
            "rmse": float(root_mean_squared_error(truth, predicted)),
            "mae": float(mean_absolute_error(truth, predicted)),
        }
        if len(truth) > 1:
            out["r2"] = float(r2_score(truth, predicted))
        return out
    from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

    probability = np.clip(answer["probability"].to_numpy(dtype=float), 1e-6, 1 - 1e-6)
    out = {
        "log_loss": float(log_loss(truth, probability, labels=[0, 1])),
        "brier": float(brier_score_loss(truth, probability, pos_label=1)),
        "accuracy": float(np.mean((probability >= 0.5) == (truth == 1))),
    }
    if 0 < truth.sum() < len(truth):
        out["roc_auc"] = float(roc_auc_score(truth, probability))
    return out


def relative_degradation(metric: str, value: float, reference: float) -> float:
    """How much worse ``value`` is than ``reference``, as a share of it (negative: better)."""
    if not reference:
        return 0.0
    change = (value - reference) / abs(reference)
    return change if LOWER_IS_BETTER[metric] else -change
