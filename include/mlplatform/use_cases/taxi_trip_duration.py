"""Model module of ``taxi_trip_duration``: the estimators its spec can ask for.

``build_estimator(family, params)`` returns an unfitted scikit-learn estimator that takes
the spec's feature columns (as produced by :func:`mlplatform.core.features.trip_features`) and
predicts minutes.

- ``linear``: the baseline, the standard linear anchor of NYC trip-duration work: a
  regression on the one-hot pickup/dropoff zone pair plus the distance (and the taxi
  type). Its RMSE is what "beats the baseline" is measured against.
- ``hist_gradient_boosting``: gradient-boosted trees on minutes. Pickup and dropoff zones
  are native categorical features (the trees group zones freely instead of relying on an
  order), the zone pair is target-encoded (cross-fitted, no leakage), and boroughs and
  the taxi type are native categories too.

Both answer minutes directly. Real trip records carry zero distances, and distances of
thousands of miles on trips of a few minutes: a model that divides by the distance (a
pace) or multiplies by it turns those into errors of hours, while trees only place them
in their last distance bin and let the zones decide.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, TargetEncoder

NUMERIC = [
    "trip_distance",
    "pickup_hour",
    "pickup_weekday",
    "is_weekend",
    "is_airport_pickup",
    "is_airport_dropoff",
]
ZONES = ["pu_location_id", "do_location_id"]
PAIR = ["pu_do_pair"]
LOW_CARDINALITY = ["pu_borough", "do_borough", "taxi_type"]
FAMILIES = ("linear", "hist_gradient_boosting")
MAX_ZONE_CATEGORIES = 250
"""Native categories per zone column: the most frequent zones, the rarest share one level.
Gradient boosting takes at most 255 levels; TLC has 265 zone ids, few of them busy."""


def _pair_encoder() -> TargetEncoder:
    return TargetEncoder(target_type="continuous", cv=KFold(5, shuffle=True, random_state=0))


def _categories(max_categories: int | None = None) -> OrdinalEncoder:
    return OrdinalEncoder(
        handle_unknown="use_encoded_value",
        unknown_value=np.nan,
        encoded_missing_value=np.nan,
        max_categories=max_categories,
    )


def build_estimator(family: str, params: dict[str, Any] | None = None) -> BaseEstimator:
    """An unfitted estimator of the given ``family`` with ``params`` for its regressor."""
    params = dict(params or {})
    if family == "linear":
        encode = ColumnTransformer(
            [
                ("pair", OneHotEncoder(handle_unknown="ignore"), [*PAIR, "taxi_type"]),
                ("distance", "passthrough", ["trip_distance"]),
            ]
        )
        return Pipeline([("encode", encode), ("model", Ridge(**{"alpha": 1.0, **params}))])
    if family == "hist_gradient_boosting":
        encode = ColumnTransformer(
            [
                ("numeric", "passthrough", NUMERIC),
                ("zones", _categories(MAX_ZONE_CATEGORIES), ZONES),
                ("pair", _pair_encoder(), PAIR),
                ("categories", _categories(), LOW_CARDINALITY),
            ],
            verbose_feature_names_out=False,
        ).set_output(transform="pandas")
        model = HistGradientBoostingRegressor(
            random_state=0, early_stopping=True, categorical_features=[*ZONES, *LOW_CARDINALITY], **params
        )
        return Pipeline([("encode", encode), ("model", model)])
    raise ValueError(f"unknown model family {family!r} for taxi_trip_duration; known: {', '.join(FAMILIES)}")
