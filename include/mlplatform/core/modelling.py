"""The model every stage shares: a fitted estimator over normalised trip records.

Training logs, batch scoring and the serving app load one kind of model: a
:class:`TripModel`, which takes normalised trip columns (as :func:`mlplatform.core.tlc.normalise`
produces them), derives the spec's features itself and answers in the units a user wants:

- regression: a frame with ``prediction`` in the target's unit (e.g. minutes);
- classification: a frame with ``label`` (the spec's class names) and ``probability`` of
  the positive class.

So a request, a batch file and a training row all go through the same feature code:
:func:`trip_features` derives every feature a spec may name from the normalised trips, and
:func:`modelled_rows`, :func:`target_values` and :func:`in_target_range` pick the rows and
the target a use case models.
The class knows nothing of MLflow: :mod:`mlplatform.adapters.pyfunc` wraps it in the pyfunc
flavour when it is logged, and unwraps it when a stage loads it back.
Inputs with a default (:func:`input_defaults`: the taxi type) are optional in the logged
signature and filled in before the features are derived.

The estimator inside comes from the use case's model module (``use_cases/<module>.py``),
which offers ``FAMILIES`` and ``build_estimator(family, params, features)`` (the spec's
``features`` section: the module reads its columns from the spec, never lists them again).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlplatform.core import tlc

if TYPE_CHECKING:
    from mlplatform.core.spec import Hyperparameter, UseCase

# Normalised columns the shared trip features are computed from.
BASE_INPUTS = ("pickup_datetime", "pu_location_id", "do_location_id", "trip_distance")
_DERIVED = {
    "pickup_hour",
    "pickup_weekday",
    "is_weekend",
    "is_airport_pickup",
    "is_airport_dropoff",
    "pu_borough",
    "do_borough",
    "pu_do_pair",
    "hour_band",
}


def input_columns(features: tuple[str, ...]) -> list[str]:
    """The normalised columns a model with these features needs as input."""
    raw = [f for f in features if f not in _DERIVED and f not in BASE_INPUTS]
    return [*BASE_INPUTS, *raw]


def input_defaults(use_case: UseCase) -> dict[str, str]:
    """Inputs a request may leave out, with the value they take then.

    ``taxi_type``: a trip of the use case's primary taxi type (``data.taxi_types[0]``), so
    clients that send the four base fields keep working once a model uses the taxi type.
    """
    if "taxi_type" in use_case.features.all:
        return {"taxi_type": use_case.data.taxi_type}
    return {}


def model_module(use_case: UseCase) -> ModuleType:
    """The use case's model module (``use_cases/<model.module>.py``, or beside an outside spec)."""
    from mlplatform.core import spec

    return spec.model_module(use_case)


def build_estimator(
    use_case: UseCase, family: str, params: Mapping[str, Hyperparameter] | None = None
) -> Any:
    """An unfitted estimator of ``family`` from the use case's model module.

    Raises ``ValueError`` naming the families the module offers when ``family`` is not one.
    """
    module = model_module(use_case)
    families = tuple(getattr(module, "FAMILIES", ()))
    if family not in families:
        raise ValueError(
            f"model family {family!r} is not offered by use_cases/{use_case.model.module}.py "
            f"(it offers: {', '.join(families) or 'none'}); fix model.family/model.baseline in the spec "
            "or the family parameter"
        )
    return module.build_estimator(family, dict(params or {}), use_case.features)


class TripModel:
    """A fitted scikit-learn estimator plus the feature derivation and output format."""

    def __init__(
        self,
        estimator: Any,
        features: tuple[str, ...],
        task: str,
        labels: tuple[str, str] | None = None,
        defaults: Mapping[str, str] | None = None,
    ) -> None:
        self.estimator = estimator
        self.features = tuple(features)
        self.task = task
        self.labels = labels
        self.defaults = dict(defaults or {})

    def predict(self, trips: pd.DataFrame) -> pd.DataFrame:
        """The answer for normalised trips (see :func:`input_columns`): features derived here."""

        return self.answer(trip_features(self.with_defaults(trips)))

    def with_defaults(self, trips: pd.DataFrame) -> pd.DataFrame:
        """``trips`` with every optional input (see :func:`input_defaults`) present and filled."""
        missing = {c: v for c, v in self.defaults.items() if c not in trips or trips[c].isna().any()}
        if not missing:
            return trips
        out = trips.copy()
        for column, value in missing.items():
            out[column] = out[column].fillna(value) if column in out else value
        return out

    def answer(self, featured: pd.DataFrame) -> pd.DataFrame:
        """The answer for trips whose features are already derived (see :meth:`predict`)."""
        frame = featured[list(self.features)]
        if self.task == "regression":
            return pd.DataFrame({"prediction": self.estimator.predict(frame)}, index=featured.index)
        probability = self.estimator.predict_proba(frame)[:, 1]
        negative, positive = self.labels or ("0", "1")
        label = pd.Series(negative, index=featured.index).where(probability < 0.5, positive)
        return pd.DataFrame({"label": label, "probability": probability}, index=featured.index)


AIRPORTS = np.array(sorted(tlc.AIRPORT_ZONES))
HOUR_BANDS = ("night", "morning_rush", "midday", "evening_rush", "evening")


def hour_band(hour: pd.Series) -> pd.Series:
    """Coarse time-of-day band, used for slices and reports."""
    bins = [-1, 5, 9, 15, 19, 23]
    return pd.cut(hour, bins=bins, labels=list(HOUR_BANDS)).astype(str)


def trip_features(trips: pd.DataFrame) -> pd.DataFrame:
    """Add the derived trip features to normalised trips (returns a new frame).

    Needs ``pickup_datetime``, ``pu_location_id``, ``do_location_id`` and
    ``trip_distance``; every other column is kept as it is.
    """
    out = trips.copy()
    pickup = pd.to_datetime(out["pickup_datetime"])
    pu = out["pu_location_id"].fillna(264).astype("int64")
    do = out["do_location_id"].fillna(264).astype("int64")
    out["pickup_hour"] = pickup.dt.hour.astype("int64")
    out["pickup_weekday"] = pickup.dt.dayofweek.astype("int64")
    out["is_weekend"] = (out["pickup_weekday"] >= 5).astype("int64")
    out["is_airport_pickup"] = pu.isin(AIRPORTS).astype("int64")
    out["is_airport_dropoff"] = do.isin(AIRPORTS).astype("int64")
    out["pu_borough"] = tlc.borough_of(pu.to_numpy())
    out["do_borough"] = tlc.borough_of(do.to_numpy())
    out["pu_do_pair"] = pu.astype(str) + "_" + do.astype(str)
    out["hour_band"] = hour_band(out["pickup_hour"])
    return out


def modelled_rows(trips: pd.DataFrame, data_filter: str | None) -> pd.DataFrame:
    """The trips a use case models: those its spec's ``data.filter`` query selects (all without one)."""
    if not data_filter:
        return trips
    try:
        return trips.query(data_filter)
    except Exception as exc:  # pandas raises several types for a bad query
        raise ValueError(f"spec data.filter {data_filter!r} cannot be applied to the trips: {exc}") from None


def in_target_range(target: pd.Series, bounds: tuple[float, float] | None) -> pd.Series:
    """Which targets lie in the spec's ``target.range`` (inclusive): the rows a model is
    trained on, validated on and monitored on. Every row without a range."""
    if bounds is None:
        return pd.Series(True, index=target.index)
    low, high = bounds
    return target.between(low, high, inclusive="both")


def target_values(trips: pd.DataFrame, column: str, expression: str | None = None) -> pd.Series:
    """The target of each trip: the spec's ``target.expression`` evaluated, else ``target.column``.

    A boolean expression (a classifier's target) comes back as 0/1 integers.
    """
    if expression is None:
        if column not in trips:
            raise ValueError(
                f"target column {column!r} is not in the data; set target.expression in the spec"
            )
        return trips[column].rename(column)
    try:
        values = trips.eval(expression)
    except Exception as exc:
        raise ValueError(f"spec target.expression {expression!r} cannot be evaluated: {exc}") from None
    if values.dtype == bool:
        values = values.astype("int64")
    return pd.Series(values, index=trips.index, name=column)
