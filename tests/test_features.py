"""core/modelling.py: the trip features training, batch scoring and serving share."""

from __future__ import annotations

import pandas as pd
import pytest

from mlplatform.core import modelling


def trips() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "pickup_datetime": pd.to_datetime(["2024-03-02 07:30", "2024-03-04 22:10", "2024-03-05 12:00"]),
            "pu_location_id": [132, 161, None],  # JFK, Midtown, unknown
            "do_location_id": [236, 138, 7],  # Upper East Side, LaGuardia, Astoria
            "trip_distance": [17.2, 9.5, 1.1],
            "duration_min": [48.0, 25.0, 6.5],
        }
    )


def test_features_are_derived_from_the_four_inputs() -> None:
    out = modelling.trip_features(trips())
    assert out["pickup_hour"].tolist() == [7, 22, 12]
    assert out["is_weekend"].tolist() == [1, 0, 0]  # a Saturday, then Monday and Tuesday
    assert out["is_airport_pickup"].tolist() == [1, 0, 0]
    assert out["is_airport_dropoff"].tolist() == [0, 1, 0]
    assert out["pu_borough"].tolist()[:2] == ["Queens", "Manhattan"]
    assert out["pu_do_pair"].tolist() == ["132_236", "161_138", "264_7"]  # unknown zone: 264
    assert out["hour_band"].tolist() == ["morning_rush", "evening", "midday"]
    assert "duration_min" in out and "pickup_hour" not in trips()  # a new frame, nothing dropped


def test_rows_filters_and_targets_follow_the_spec() -> None:
    frame = trips()
    assert len(modelling.modelled_rows(frame, "trip_distance > 5")) == 2
    with pytest.raises(ValueError, match=r"data\.filter"):
        modelling.modelled_rows(frame, "no_such_column >")
    assert modelling.in_target_range(frame["duration_min"], (1, 30)).tolist() == [False, True, True]
    assert modelling.in_target_range(frame["duration_min"], None).all()
    assert modelling.target_values(frame, "duration_min").tolist() == [48.0, 25.0, 6.5]
    assert modelling.target_values(frame, "x", "trip_distance > 5").tolist() == [1, 1, 0]
    with pytest.raises(ValueError, match="target column 'tip'"):
        modelling.target_values(frame, "tip")
