"""Model module of ``taxi_generous_tip``: the classifiers its spec can ask for.

``build_estimator(family, params)`` returns an unfitted scikit-learn classifier over the
spec's feature columns (from :func:`mlplatform.core.features.trip_features`) whose
``predict_proba(X)[:, 1]`` is the probability of a generous tip.

- ``linear``: the baseline, a logistic regression.
- ``hist_gradient_boosting``: gradient-boosted trees, which also find what a linear model
  cannot: generous tips cluster in hour ranges (late evening and night), not along the hour.

Zones are target-encoded (cross-fitted, no leakage); boroughs are native categories.
"""

from __future__ import annotations

from typing import Any

from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
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
ZONES = ["pu_location_id", "do_location_id"]
BOROUGHS = ["pu_borough", "do_borough"]
FAMILIES = ("linear", "hist_gradient_boosting")


def _zone_encoder() -> TargetEncoder:
    return TargetEncoder(target_type="binary", cv=StratifiedKFold(5, shuffle=True, random_state=0))


def build_estimator(family: str, params: dict[str, Any] | None = None) -> BaseEstimator:
    """An unfitted classifier of the given ``family`` with ``params`` for its model."""
    params = dict(params or {})
    if family == "linear":
        encode = ColumnTransformer(
            [
                ("numeric", StandardScaler(), NUMERIC),
                ("zones", _zone_encoder(), ZONES),
                ("boroughs", OneHotEncoder(handle_unknown="ignore"), BOROUGHS),
            ]
        )
        return Pipeline([("encode", encode), ("model", LogisticRegression(max_iter=500, **params))])
    if family == "hist_gradient_boosting":
        encode = ColumnTransformer(
            [
                ("numeric", "passthrough", NUMERIC),
                ("zones", _zone_encoder(), ZONES),
                ("boroughs", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1), BOROUGHS),
            ],
            verbose_feature_names_out=False,
        ).set_output(transform="pandas")
        model = HistGradientBoostingClassifier(
            random_state=0, early_stopping=True, categorical_features=BOROUGHS, **params
        )
        return Pipeline([("encode", encode), ("model", model)])
    raise ValueError(f"unknown model family {family!r} for taxi_generous_tip; known: {', '.join(FAMILIES)}")
