"""The duration model on real TLC trips (``tests/fixtures/real_tlc/``), and the modelling range.

Green 2021-01 trains, 2021-02 validates, on trips of 1 to 60 minutes (the spec's
``target.range``): the standard comparison, where a linear regression on the one-hot zone
pair plus the distance scores about 7.76 minutes RMSE and the best published result 6.30.
The model must hold across TLC's fare regimes: on green 2023-01 (the first month of the
2022-12-19 fares), split by date, it stays within the same share of that anchor.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlplatform.core import modelling
from mlplatform.core.modelling import TripModel, build_estimator, input_defaults
from mlplatform.core.spec import SpecError, load_spec, parse_spec
from mlplatform.stages import training

REAL = Path(__file__).parent / "fixtures" / "real_tlc"
JANUARY, FEBRUARY = (str(REAL / f"green_tripdata_2021-0{m}.parquet") for m in (1, 2))
JANUARY_2023 = str(REAL / "green_tripdata_2023-01.parquet")
MAX_ANCHOR_RATIO = 0.72
"""The default model's RMSE is at most this share of the linear anchor's on every real split
(``bench/bench_train.py`` prints each: 0.69 and 0.68 on 2021, 0.72 on 2023-01)."""


def test_the_modelling_range_is_validated_spec_data() -> None:
    use_case = load_spec("taxi_trip_duration")
    assert use_case.target.range_ == (1.0, 60.0)
    raw = use_case.model_dump(mode="json", by_alias=True)
    assert raw["target"]["range"] == [1.0, 60.0]
    with pytest.raises(SpecError, match=r"target\.range"):
        parse_spec({**raw, "target": {**raw["target"], "range": [60, 1]}})
    tips = load_spec("taxi_generous_tip").model_dump(mode="json", by_alias=True)
    with pytest.raises(SpecError, match="regression targets"):
        parse_spec({**tips, "target": {**tips["target"], "range": [0, 1]}})


def test_the_range_keeps_its_bounds_and_counts_what_it_leaves_out() -> None:
    use_case = load_spec("taxi_trip_duration")
    trips = pd.DataFrame(
        {
            "taxi_type": "green",
            "pickup_datetime": pd.Timestamp("2021-01-05 08:00"),
            "pu_location_id": 74,
            "do_location_id": 75,
            "trip_distance": 1.0,
            "duration_min": [0.5, 1.0, 12.0, 60.0, 61.0, np.nan],
        }
    )
    rows, outside = training.labelled_and_excluded(trips, use_case)
    assert rows["duration_min"].tolist() == [1.0, 12.0, 60.0] and outside == 2  # unknown is not counted
    no_range = use_case.model_copy(update={"target": use_case.target.model_copy(update={"range_": None})})
    assert len(training.labelled(trips, no_range)) == 5
    assert modelling.in_target_range(trips["duration_min"], None).all()


def test_a_request_without_the_taxi_type_is_a_trip_of_the_primary_type() -> None:
    use_case = load_spec("taxi_trip_duration")
    train, _ = training.read_tlc_files(use_case, [JANUARY])
    train = train.sample(5000, random_state=0).reset_index(drop=True)
    columns = list(use_case.features.all)
    estimator = build_estimator(use_case, "linear").fit(
        modelling.trip_features(train)[columns], train["duration_min"]
    )
    model = TripModel(estimator, use_case.features.all, use_case.task, defaults=input_defaults(use_case))
    trips = train.head(20).drop(columns=["taxi_type", "duration_min"])
    primary = model.predict(trips.assign(taxi_type=use_case.data.taxi_type))
    np.testing.assert_allclose(model.predict(trips)["prediction"], primary["prediction"])
    some_missing = trips.assign(taxi_type=[None, *["green"] * 19])
    answer = model.predict(some_missing)["prediction"].to_numpy()
    assert answer[0] == pytest.approx(primary["prediction"].iloc[0]) and np.isfinite(answer).all()


@pytest.mark.slow
def test_default_model_beats_the_linear_anchor_on_real_green_months() -> None:
    use_case = load_spec("taxi_trip_duration")
    result = training.train_files(use_case, [JANUARY], [FEBRUARY]).to_dict()

    # The range is applied to both months, and what it leaves out is counted.
    assert 0 < result["rows_outside_range"]["training"] < 0.05 * result["train_rows"]
    assert 0 < result["rows_outside_range"]["validation"] < 0.05 * result["validation_rows"]

    # The standard linear anchor on the same rows.
    train, _ = training.read_tlc_files(use_case, [JANUARY])
    valid, _ = training.read_tlc_files(use_case, [FEBRUARY])
    assert (len(train), len(valid)) == (result["train_rows"], result["validation_rows"])

    anchor = linear_anchor_rmse(train, valid)
    assert anchor == pytest.approx(7.76, abs=0.02)

    rmse = result["validation"]["overall"]["rmse"]
    assert rmse <= 5.6 and rmse <= MAX_ANCHOR_RATIO * anchor
    assert result["baseline"]["rmse"] < 1.01 * anchor  # the baseline is the anchor's kind of model
    searched = [trial["rmse"] for trial in result["search"]]
    assert max(searched) < 1.1 * min(searched)  # no trial is a lucky or unlucky outlier


@pytest.mark.slow
def test_default_model_holds_under_the_2022_fares_on_2023_01_split_by_date() -> None:
    """TLC's fare change of 2022-12-19 moved money, not travel times: on its first month, days
    1-21 training and 22-31 validating, the model keeps its lead over the linear anchor."""
    use_case = load_spec("taxi_trip_duration")
    rows, _ = training.read_tlc_files(use_case, [JANUARY_2023])
    pickup = rows["pickup_datetime"]
    inside = (pickup.dt.year == 2023) & (pickup.dt.month == 1)  # a few trips begun in December
    early = pickup.dt.day <= 21
    train, valid = rows[inside & early], rows[inside & ~early]
    assert len(train) > 40_000 and len(valid) > 20_000

    _, evaluation, baseline = training.train_frames(use_case, train, valid)
    anchor = linear_anchor_rmse(train, valid)
    assert anchor == pytest.approx(6.10, abs=0.02)
    assert evaluation.overall["rmse"] <= MAX_ANCHOR_RATIO * anchor
    assert baseline.overall["rmse"] < 1.01 * anchor


def linear_anchor_rmse(train: pd.DataFrame, valid: pd.DataFrame) -> float:
    """The zoomcamp's linear regression (one-hot ``PU_DO`` pair plus distance, least squares)
    fitted on ``train``, its RMSE on ``valid``."""
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LinearRegression

    def records(frame: pd.DataFrame) -> list[dict]:
        pair = frame["pu_location_id"].astype(str) + "_" + frame["do_location_id"].astype(str)
        return pd.DataFrame({"PU_DO": pair, "trip_distance": frame["trip_distance"]}).to_dict("records")

    vectorizer = DictVectorizer()
    model = LinearRegression().fit(vectorizer.fit_transform(records(train)), train["duration_min"])
    predicted = model.predict(vectorizer.transform(records(valid)))
    return float(np.sqrt(np.mean((predicted - valid["duration_min"].to_numpy()) ** 2)))
