"""Model module of ``taxi_trip_duration``: the estimators its spec can ask for.

``build_estimator(family, params)`` returns an unfitted scikit-learn estimator that takes
the spec's feature columns (as produced by :func:`mlplatform.features.trip_features`) and
predicts minutes.

- ``linear``: the baseline, a ridge regression on minutes.
- ``hist_gradient_boosting``: gradient-boosted trees that learn the *pace* of a trip
  (minutes per mile) rather than its minutes, weighted by distance, and answer pace times
  distance. Travel time is distance times a pace set by zones, hour and weekday; trees
  approximate that product poorly but learn the pace directly, and the zone target
  encodings become zone paces. It reaches the generator's noise floor within a few percent
  where the same trees on minutes stay about 5% above it.

Zones and zone pairs have hundreds or thousands of levels, so they are target-encoded
(cross-fitted, no leakage); the two borough columns are native categorical features.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler, TargetEncoder

NUMERIC = [
    "trip_distance",
    "pickup_hour",
    "pickup_weekday",
    "is_weekend",
    "is_airport_pickup",
    "is_airport_dropoff",
]
HIGH_CARDINALITY = ["pu_location_id", "do_location_id", "pu_do_pair"]
LOW_CARDINALITY = ["pu_borough", "do_borough"]
FAMILIES = ("linear", "hist_gradient_boosting")
MIN_MILES = 0.1
"""Distances are floored here before dividing: same-zone hops record a few hundredths."""


class PerMileRegressor(RegressorMixin, BaseEstimator):
    """Fits ``estimator`` (a pipeline whose last step is ``model``) to minutes per mile.

    Sample weights are the distance, so the loss tracks errors in minutes rather than
    letting short hops with extreme paces dominate it; predictions are pace times distance.
    """

    def __init__(self, estimator: Any, distance: str = "trip_distance") -> None:
        self.estimator = estimator
        self.distance = distance

    def _miles(self, X: pd.DataFrame) -> np.ndarray:
        return np.clip(X[self.distance].to_numpy(dtype=float), MIN_MILES, None)

    def fit(self, X: pd.DataFrame, y: Any) -> PerMileRegressor:
        miles = self._miles(X)
        self.estimator_ = clone(self.estimator)
        self.estimator_.fit(X, np.asarray(y, dtype=float) / miles, model__sample_weight=miles)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.estimator_.predict(X) * self._miles(X)


def _zone_encoder() -> TargetEncoder:
    return TargetEncoder(target_type="continuous", cv=KFold(5, shuffle=True, random_state=0))


def build_estimator(family: str, params: dict[str, Any] | None = None) -> BaseEstimator:
    """An unfitted estimator of the given ``family`` with ``params`` for its regressor."""
    params = dict(params or {})
    if family == "linear":
        encode = ColumnTransformer(
            [
                ("numeric", StandardScaler(), NUMERIC),
                ("zones", _zone_encoder(), HIGH_CARDINALITY),
                ("boroughs", OneHotEncoder(handle_unknown="ignore"), LOW_CARDINALITY),
            ]
        )
        return Pipeline([("encode", encode), ("model", Ridge(**params))])
    if family == "hist_gradient_boosting":
        encode = ColumnTransformer(
            [
                ("numeric", "passthrough", NUMERIC),
                ("zones", _zone_encoder(), HIGH_CARDINALITY),
                (
                    "boroughs",
                    OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1),
                    LOW_CARDINALITY,
                ),
            ],
            verbose_feature_names_out=False,
        ).set_output(transform="pandas")
        model = HistGradientBoostingRegressor(
            random_state=0, early_stopping=True, categorical_features=LOW_CARDINALITY, **params
        )
        return PerMileRegressor(Pipeline([("encode", encode), ("model", model)]))
    raise ValueError(f"unknown model family {family!r} for taxi_trip_duration; known: {', '.join(FAMILIES)}")
