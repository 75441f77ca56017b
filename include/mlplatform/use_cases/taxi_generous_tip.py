"""Model module of ``taxi_generous_tip``: the classifiers its spec can ask for.

``build_estimator(family, params, features)`` returns an unfitted scikit-learn classifier
over the spec's feature columns (``features``: the spec's ``numeric`` and ``categorical``
lists, as :func:`mlplatform.core.modelling.trip_features` derives them) whose
``predict_proba(X)[:, 1]`` is the probability of a generous tip.

- ``linear``: the baseline, a logistic regression.
- ``hist_gradient_boosting``: gradient-boosted trees, which also find what a linear model
  cannot: generous tips cluster in hour ranges (late evening and night), not along the hour.

Zones (the categorical ``*_location_id`` columns) are target-encoded (cross-fitted, no
leakage); the other categorical columns (boroughs) are native categories.
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

FAMILIES = ("linear", "hist_gradient_boosting")


def _zone_encoder() -> TargetEncoder:
    return TargetEncoder(target_type="binary", cv=StratifiedKFold(5, shuffle=True, random_state=0))


def build_estimator(family: str, params: dict[str, Any] | None, features: Any) -> BaseEstimator:
    """An unfitted classifier of the given ``family`` with ``params`` for its model, over the
    spec's ``features`` (its ``numeric`` and ``categorical`` column names)."""
    params = dict(params or {})
    numeric = list(features.numeric)
    zones = [c for c in features.categorical if c.endswith("_location_id")]
    categories = [c for c in features.categorical if c not in zones]
    if family == "linear":
        encode = ColumnTransformer(
            [
                ("numeric", StandardScaler(), numeric),
                ("zones", _zone_encoder(), zones),
                ("categories", OneHotEncoder(handle_unknown="ignore"), categories),
            ]
        )
        return Pipeline([("encode", encode), ("model", LogisticRegression(max_iter=500, **params))])
    if family == "hist_gradient_boosting":
        encode = ColumnTransformer(
            [
                ("numeric", "passthrough", numeric),
                ("zones", _zone_encoder(), zones),
                (
                    "categories",
                    OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1),
                    categories,
                ),
            ],
            verbose_feature_names_out=False,
        ).set_output(transform="pandas")
        model = HistGradientBoostingClassifier(
            random_state=0, early_stopping=True, categorical_features=categories, **params
        )
        return Pipeline([("encode", encode), ("model", model)])
    raise ValueError(f"unknown model family {family!r} for taxi_generous_tip; known: {', '.join(FAMILIES)}")
