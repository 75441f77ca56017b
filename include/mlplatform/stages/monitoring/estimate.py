"""Performance before the labels: direct loss estimation (DLE) of the champion's RMSE.

TLC publishes a trip's duration about two months after the trip. Until then a window's
RMSE is unknown, but the features and the model's predictions are there. Direct loss
estimation (NannyML's DLE for regression) learns, on a *labelled* reference window the
model did not train on, how large the model's squared error tends to be given the
features and the prediction; the estimated RMSE of an unlabelled window is then
``sqrt(mean of the predicted squared errors)`` over its trips. It sees shifts in the mix of
trips (more airport trips, longer distances: rows where the model errs more), not a change
of the relation between features and duration (concept drift), which only the labels show.
That is why an estimated breach warns and only a measured one acts.

NannyML itself resolves against the project's pins but would bring about forty packages
(LightGBM, XGBoost, a telemetry client) for one regressor: the method is small, so it is
implemented here with scikit-learn's histogram gradient boosting, the family the platform
already ships.

Pure: frames in, numbers out; no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

PREDICTION = "__prediction__"
MIN_REFERENCE_ROWS = 1000
"""Labelled reference trips below which no estimator is fitted (the estimate would be noise)."""
SEED = 20240101


@dataclass(frozen=True)
class LossEstimator:
    """A regressor from (features, prediction) to the model's squared error, fitted on a labelled window."""

    model: Any
    columns: tuple[str, ...]
    categories: dict[str, list[Any]]
    reference_rmse: float
    reference_rows: int

    def _matrix(self, features: pd.DataFrame, prediction: npt.ArrayLike) -> pd.DataFrame:
        return _encode(features, prediction, self.columns, self.categories)

    def squared_errors(self, features: pd.DataFrame, prediction: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """The expected squared error of each trip (clipped at 0: a squared error is never negative)."""
        predicted = self.model.predict(self._matrix(features, prediction))
        return np.clip(np.asarray(predicted, dtype=np.float64), 0.0, None)

    def estimate_rmse(self, features: pd.DataFrame, prediction: npt.ArrayLike) -> float:
        """The window's estimated RMSE: the root of the mean expected squared error of its trips."""
        if not len(features):
            return math.nan
        return float(math.sqrt(self.squared_errors(features, prediction).mean()))


def _encode(
    features: pd.DataFrame,
    prediction: npt.ArrayLike,
    columns: tuple[str, ...],
    categories: dict[str, list[Any]],
) -> pd.DataFrame:
    """Numeric columns as they are, categorical ones as codes of the reference's categories
    (a category the reference never saw is missing, which the trees route on their own)."""
    out = pd.DataFrame(index=features.index)
    for column in columns:
        if column in categories:
            coded = pd.Categorical(features[column].astype(str), categories=categories[column]).codes
            out[column] = np.where(coded < 0, np.nan, coded).astype(np.float64)
        else:
            out[column] = pd.to_numeric(features[column], errors="coerce").astype(np.float64)
    out[PREDICTION] = np.asarray(prediction, dtype=np.float64)
    return out


def fit_loss_estimator(
    features: pd.DataFrame,
    prediction: npt.ArrayLike,
    actual: npt.ArrayLike,
    columns: list[str] | None = None,
    seed: int = SEED,
) -> LossEstimator:
    """Fit the squared-error regressor on a labelled reference window.

    ``features`` are the model's inputs (:func:`mlplatform.core.features.trip_features`),
    ``prediction`` its answers and ``actual`` the truth, row for row. The reference must be
    trips the model did not train on, or the estimate learns its training error.
    """
    from sklearn.ensemble import HistGradientBoostingRegressor

    y, p = np.asarray(actual, dtype=np.float64), np.asarray(prediction, dtype=np.float64)
    if not (len(features) == len(y) == len(p)):
        raise ValueError(
            f"features, predictions and truth need as many rows: {len(features)}, {len(p)}, {len(y)}"
        )
    keep = np.isfinite(y) & np.isfinite(p)
    if int(keep.sum()) < MIN_REFERENCE_ROWS:
        raise ValueError(
            f"a loss estimator needs at least {MIN_REFERENCE_ROWS} labelled reference trips, "
            f"got {int(keep.sum())}"
        )
    chosen = tuple(columns or features.columns)
    frame = features.loc[keep]
    categories = {
        c: sorted(frame[c].astype(str).unique())
        for c in chosen
        if not pd.api.types.is_numeric_dtype(frame[c]) or isinstance(frame[c].dtype, pd.CategoricalDtype)
    }
    squared = (p[keep] - y[keep]) ** 2
    model = HistGradientBoostingRegressor(
        loss="squared_error", learning_rate=0.05, max_iter=300, max_leaf_nodes=31, min_samples_leaf=100,
        early_stopping=True, validation_fraction=0.2, n_iter_no_change=20, random_state=seed,
    )  # fmt: skip
    model.fit(_encode(frame, p[keep], chosen, categories), squared)
    return LossEstimator(model, chosen, categories, float(math.sqrt(squared.mean())), int(keep.sum()))


def estimate_error(estimated: float | None, realised: float | None) -> float | None:
    """How far an estimate was from the RMSE measured once the labels arrived, relative to the
    measured one (``+0.05``: the estimate was 5% too high); ``None`` when either is missing."""
    if estimated is None or realised is None or not math.isfinite(estimated) or not realised:
        return None
    return float(estimated / realised - 1)
