"""The figures a reviewer reads beside a training run, drawn by scikit-learn's display classes.

- ``plots/predicted_vs_actual.png``: :class:`~sklearn.metrics.PredictionErrorDisplay`
  (regression) or :class:`~sklearn.calibration.CalibrationDisplay` (classification);
- ``plots/residuals_by_hour.png``: the residuals by pickup hour (where a model is biased);
- ``plots/feature_importance.png``: :func:`~sklearn.inspection.permutation_importance` of
  each feature on validation rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlplatform.core import features
from mlplatform.core.spec import UseCase
from mlplatform.stages.training.dataset import SAMPLE_SEED, sample
from mlplatform.stages.training.evaluation import primary_metric
from mlplatform.stages.training.fitting import Fitted

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SHOWN_ROWS = 5000
"""Validation rows drawn (a uniform sample): enough for the shapes, quick to draw."""


def _predicted_vs_actual(use_case: UseCase, y: np.ndarray, answer: pd.DataFrame) -> Figure:
    import matplotlib.pyplot as plt
    from sklearn.calibration import CalibrationDisplay
    from sklearn.metrics import PredictionErrorDisplay

    fig, ax = plt.subplots(figsize=(6, 6))
    if use_case.task == "regression":
        PredictionErrorDisplay.from_predictions(
            y,
            answer["prediction"].to_numpy(),
            kind="actual_vs_predicted",
            subsample=None,
            ax=ax,
            scatter_kwargs={"s": 3, "alpha": 0.3},
        )
        unit = use_case.target.unit
        ax.set(
            xlabel=f"predicted ({unit})", ylabel=f"actual ({unit})", title="Predicted vs actual (validation)"
        )
    else:
        CalibrationDisplay.from_predictions(y, answer["probability"].to_numpy(), n_bins=10, ax=ax)
        ax.set(xlabel="predicted probability", ylabel="observed share", title="Calibration (validation)")
    return fig


def _residuals_by_hour(featured: pd.DataFrame, residual: np.ndarray) -> Figure:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    frame = pd.DataFrame({"pickup hour": featured["pickup_hour"].to_numpy(), "residual": residual})
    frame.boxplot(column="residual", by="pickup hour", ax=ax, showfliers=False, grid=False)
    ax.axhline(0, color="black", linewidth=1)
    fig.suptitle("")
    ax.set(xlabel="pickup hour", ylabel="actual - predicted", title="Residuals by pickup hour")
    return fig


def _feature_importance(use_case: UseCase, fitted: Fitted, featured: pd.DataFrame, y: np.ndarray) -> Figure:
    import matplotlib.pyplot as plt
    from sklearn.inspection import permutation_importance

    metric = primary_metric(use_case)
    scoring = {"rmse": "neg_root_mean_squared_error", "mae": "neg_mean_absolute_error"}.get(
        metric, "neg_log_loss" if use_case.task == "classification" else "r2"
    )
    columns = list(use_case.features.all)
    importance = permutation_importance(
        fitted.model.estimator,
        featured[columns],
        y,
        scoring=scoring,
        n_repeats=3,
        random_state=SAMPLE_SEED,
        max_samples=min(2000, len(featured)),
    )
    means = pd.Series(importance.importances_mean, index=columns).sort_values()
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(columns) + 1))
    means.plot.barh(ax=ax)
    ax.set(xlabel=f"increase in {metric} when shuffled", title="Permutation importance (validation)")
    fig.tight_layout()
    return fig


def figures(use_case: UseCase, fitted: Fitted, valid: pd.DataFrame) -> dict[str, Any]:
    """The run's figures by artifact path (matplotlib figures; the caller closes them)."""
    import matplotlib

    matplotlib.use("Agg")
    shown = sample(valid, SHOWN_ROWS)
    featured = features.trip_features(shown)
    y = shown[use_case.target.column].to_numpy(dtype=float)
    answer = fitted.model.answer(featured)
    answered = answer["prediction"] if use_case.task == "regression" else answer["probability"]
    return {
        "plots/predicted_vs_actual.png": _predicted_vs_actual(use_case, y, answer),
        "plots/residuals_by_hour.png": _residuals_by_hour(featured, y - answered.to_numpy()),
        "plots/feature_importance.png": _feature_importance(use_case, fitted, featured, y),
    }
