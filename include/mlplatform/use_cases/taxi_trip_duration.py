"""Model module of ``taxi_trip_duration``: the estimators its spec can ask for.

``build_estimator(family, params)`` returns an unfitted scikit-learn pipeline that takes
the spec's feature columns (as produced by :func:`mlplatform.features.trip_features`).
Zones and zone pairs have hundreds of levels, so they are target-encoded (cross-fitted,
no leakage) rather than one-hot encoded.
"""

from __future__ import annotations

from typing import Any

from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler, TargetEncoder

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


def build_estimator(family: str, params: dict[str, Any] | None = None) -> Pipeline:
    """An unfitted pipeline of the given ``family`` with ``params`` for its regressor."""
    params = dict(params or {})
    if family == "linear":
        encode = ColumnTransformer(
            [
                ("numeric", StandardScaler(), NUMERIC),
                (
                    "zones",
                    TargetEncoder(target_type="continuous", cv=KFold(5, shuffle=True, random_state=0)),
                    HIGH_CARDINALITY,
                ),
                ("boroughs", OneHotEncoder(handle_unknown="ignore"), LOW_CARDINALITY),
            ]
        )
        return Pipeline([("encode", encode), ("model", Ridge(**params))])
    if family == "hist_gradient_boosting":
        encode = ColumnTransformer(
            [
                ("numeric", "passthrough", NUMERIC),
                (
                    "zones",
                    TargetEncoder(target_type="continuous", cv=KFold(5, shuffle=True, random_state=0)),
                    HIGH_CARDINALITY,
                ),
                ("boroughs", OneHotEncoder(handle_unknown="ignore", sparse_output=False), LOW_CARDINALITY),
            ]
        )
        model = HistGradientBoostingRegressor(random_state=0, early_stopping=True, **params)
        return Pipeline([("encode", encode), ("model", model)])
    raise ValueError(f"unknown model family {family!r} for taxi_trip_duration; known: {', '.join(FAMILIES)}")
