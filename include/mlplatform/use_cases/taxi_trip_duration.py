"""Model module of ``taxi_trip_duration``: the estimators its spec can ask for.

``build_estimator(family, params, features)`` returns an unfitted scikit-learn estimator
that takes the spec's feature columns (``features``: the spec's ``numeric`` and
``categorical`` lists, as :func:`mlplatform.core.modelling.trip_features` derives them) and
predicts minutes.

- ``linear``: the baseline, the standard linear anchor of NYC trip-duration work: a
  regression on the one-hot pickup/dropoff zone pair plus the distance (and the taxi
  type, when the spec lists it). Its RMSE is what "beats the baseline" is measured against.
- ``hist_gradient_boosting``: gradient-boosted trees on minutes. Pickup and dropoff zones
  (the categorical ``*_location_id`` columns) are native categorical features (the trees
  group zones freely instead of relying on an order), the zone pair ``pu_do_pair`` is
  target-encoded (cross-fitted, no leakage), and the other categorical columns (boroughs,
  the taxi type) are native categories too.

Both answer minutes directly. Real trip records carry zero distances, and distances of
thousands of miles on trips of a few minutes: a model that divides by the distance (a
pace) or multiplies by it turns those into errors of hours, while trees only place them
in their last distance bin and let the zones decide.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, TargetEncoder

PAIR = "pu_do_pair"
FAMILIES = ("linear", "hist_gradient_boosting")
MAX_ZONE_CATEGORIES = 250
"""Native categories per zone column: the most frequent zones, the rarest share one level.
Gradient boosting takes at most 255 levels; TLC has 265 zone ids, few of them busy."""


class PairPace(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Travel time at the zone pair's usual pace: ``trip_distance`` times the pair's minutes
    per mile, learned from the training trips (cross-fitted, as ``TargetEncoder`` does).

    Time is distance over speed, and speed is a property of the roads between two zones
    (and of their traffic, in every fare regime): trees on raw minutes must rebuild that
    product from many splits on distance and a per-pair mean; this hands them the product.
    A pair's pace is the mean over its trips of at least ``min_miles`` (shorter ones divide
    by an odometer's rounding), shrunk towards its pickup zone's pace, and that towards the
    overall pace, with ``smoothing`` pseudo-trips: a rare pair borrows from its zone.
    Outputs ``pair_pace`` (minutes per mile) and ``pace_minutes`` (the distance at that pace).
    """

    def __init__(self, min_miles: float = 0.5, max_pace: float = 30.0, smoothing: float = 20.0, cv: int = 5):
        self.min_miles = min_miles
        self.max_pace = max_pace
        self.smoothing = smoothing
        self.cv = cv

    @staticmethod
    def _keys(X: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pu = np.nan_to_num(X["pu_location_id"].to_numpy(dtype=float), nan=264.0).astype(np.int64)
        do = np.nan_to_num(X["do_location_id"].to_numpy(dtype=float), nan=264.0).astype(np.int64)
        return pu, pu * 1000 + do, X["trip_distance"].to_numpy(dtype=float)

    def _paces(self, X: Any, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
        pu, pair, distance = self._keys(X)
        usable = (distance >= self.min_miles) & (distance <= 100) & np.isfinite(y)
        pace = np.clip(y[usable] / distance[usable], 0.0, self.max_pace)
        overall = float(pace.mean()) if pace.size else 0.0
        zones, zone_pace = _shrunk_means(pu[usable], pace, np.full(usable.sum(), overall), self.smoothing)
        prior = _lookup(zones, zone_pace, pu[usable], overall)
        pairs, pair_pace = _shrunk_means(pair[usable], pace, prior, self.smoothing)
        return zones, zone_pace, pairs, pair_pace, overall

    def _apply(
        self, X: Any, tables: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]
    ) -> np.ndarray:
        zones, zone_pace, pairs, pair_pace, overall = tables
        pu, pair, distance = self._keys(X)
        pace = _lookup(pairs, pair_pace, pair, np.nan)
        pace = np.where(np.isnan(pace), _lookup(zones, zone_pace, pu, overall), pace)
        return np.column_stack([pace, pace * np.clip(distance, 0.0, 100.0)])

    def fit(self, X: Any, y: Any) -> PairPace:
        self.tables_ = self._paces(X, np.asarray(y, dtype=float))
        return self

    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> np.ndarray:
        y = np.asarray(y, dtype=float)
        out = np.zeros((len(X), 2))
        for fit_rows, apply_rows in KFold(self.cv, shuffle=True, random_state=0).split(X):
            out[apply_rows] = self._apply(X.iloc[apply_rows], self._paces(X.iloc[fit_rows], y[fit_rows]))
        self.fit(X, y)
        return out

    def transform(self, X: Any) -> np.ndarray:
        return self._apply(X, self.tables_)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.array(["pair_pace", "pace_minutes"], dtype=object)


def _shrunk_means(
    keys: np.ndarray, values: np.ndarray, priors: np.ndarray, smoothing: float
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct keys and the mean of ``values`` of each, shrunk towards the mean of
    its rows' ``priors`` with ``smoothing`` pseudo-values."""
    distinct, index = np.unique(keys, return_inverse=True)
    counts = np.bincount(index, minlength=distinct.size)
    sums = np.bincount(index, weights=values, minlength=distinct.size)
    prior = np.bincount(index, weights=priors, minlength=distinct.size) / np.maximum(counts, 1)
    return distinct, (sums + smoothing * prior) / (counts + smoothing)


def _lookup(keys: np.ndarray, values: np.ndarray, wanted: np.ndarray, missing: float) -> np.ndarray:
    """``values`` of ``wanted`` keys in sorted ``keys``; ``missing`` for keys not there."""
    if keys.size == 0:
        return np.full(wanted.shape, missing, dtype=float)
    at = np.clip(np.searchsorted(keys, wanted), 0, keys.size - 1)
    return np.where(keys[at] == wanted, values[at], missing)


def _pair_encoder() -> TargetEncoder:
    return TargetEncoder(target_type="continuous", cv=KFold(5, shuffle=True, random_state=0))


def _categories(max_categories: int | None = None) -> OrdinalEncoder:
    return OrdinalEncoder(
        handle_unknown="use_encoded_value",
        unknown_value=np.nan,
        encoded_missing_value=np.nan,
        max_categories=max_categories,
    )


def build_estimator(family: str, params: dict[str, Any] | None, features: Any) -> BaseEstimator:
    """An unfitted estimator of the given ``family`` with ``params`` for its regressor, over
    the spec's ``features`` (its ``numeric`` and ``categorical`` column names)."""
    params = dict(params or {})
    numeric = list(features.numeric)
    zones = [c for c in features.categorical if c.endswith("_location_id")]
    pair = [c for c in features.categorical if c == PAIR]
    categories = [c for c in features.categorical if c not in zones and c not in pair]
    if family == "linear":
        encode = ColumnTransformer(
            [
                (
                    "pair",
                    OneHotEncoder(handle_unknown="ignore"),
                    [*pair, *[c for c in categories if c == "taxi_type"]],
                ),
                ("distance", "passthrough", ["trip_distance"]),
            ]
        )
        return Pipeline([("encode", encode), ("model", Ridge(**{"alpha": 1.0, **params}))])
    if family == "hist_gradient_boosting":
        encode = ColumnTransformer(
            [
                ("numeric", "passthrough", numeric),
                ("zones", _categories(MAX_ZONE_CATEGORIES), zones),
                ("pair", _pair_encoder(), pair),
                ("pace", PairPace(), ["trip_distance", *zones]),
                ("categories", _categories(), categories),
            ],
            verbose_feature_names_out=False,
        ).set_output(transform="pandas")
        model = HistGradientBoostingRegressor(
            random_state=0, early_stopping=True, categorical_features=[*zones, *categories], **params
        )
        return Pipeline([("encode", encode), ("model", model)])
    raise ValueError(f"unknown model family {family!r} for taxi_trip_duration; known: {', '.join(FAMILIES)}")
