"""Features derived from normalised trip records, shared by every taxi use case.

A use case's spec names the columns its model uses; :func:`trip_features` computes all
of them from the normalised trips, so training, batch scoring and the serving app build
exactly the same inputs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlplatform.core import tlc

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
