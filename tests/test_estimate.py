"""Direct loss estimation: the champion's RMSE estimated before the labels, against the RMSE
measured once they arrive, on a generated clean month and on real TLC months."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from mlplatform.core import generator, modelling
from mlplatform.core.spec import load_spec
from mlplatform.stages import training
from mlplatform.stages.monitoring.measures import MIN_REFERENCE_ROWS, estimate_error, fit_loss_estimator
from mlplatform.use_cases.taxi_trip_duration import build_estimator

REAL = Path(__file__).parent / "fixtures" / "real_tlc"
TARGET = 0.10  # the estimate within 10% of the realised RMSE on clean months


def _rmse(predicted: np.ndarray, actual: pd.Series) -> float:
    return float(np.sqrt(np.mean((predicted - actual.to_numpy()) ** 2)))


def _estimate_on(train: pd.DataFrame, reference: pd.DataFrame, target: pd.DataFrame) -> tuple[float, float]:
    """Train the champion on ``train``, fit DLE on ``reference``, estimate ``target``'s RMSE
    from its features alone; return the estimate and the RMSE its labels give."""
    use_case = load_spec("taxi_trip_duration")
    columns, label = list(use_case.features.all), use_case.target.column
    model = build_estimator(use_case.model.family, use_case.model.hyperparameters, use_case.features)
    model.fit(modelling.trip_features(train)[columns], train[label])
    ref_x, new_x = modelling.trip_features(reference)[columns], modelling.trip_features(target)[columns]
    ref_pred, new_pred = model.predict(ref_x), model.predict(new_x)
    estimator = fit_loss_estimator(ref_x, ref_pred, reference[label])
    assert estimator.reference_rmse == pytest.approx(_rmse(ref_pred, reference[label]))
    return estimator.estimate_rmse(new_x, new_pred), _rmse(new_pred, target[label])


def _real(month: str) -> pd.DataFrame:
    use_case = load_spec("taxi_trip_duration")
    rows, _ = training.read_tlc_files(use_case, [str(REAL / f"green_tripdata_{month}.parquet")])
    return rows


def _generated(tmp_path: Path, month: str, seed: int) -> pd.DataFrame:
    made = generator.generate_month("yellow", month, 60_000, seed=seed, clean=True)
    path = tmp_path / f"yellow_tripdata_{month}.parquet"
    pq.write_table(made.table, path)
    rows, _ = training.read_tlc_files(load_spec("taxi_trip_duration"), [str(path)])
    return rows


def test_generated_clean_month_within_ten_percent(tmp_path: Path) -> None:
    estimated, realised = _estimate_on(
        _generated(tmp_path, "2024-01", 1),
        _generated(tmp_path, "2024-02", 2),
        _generated(tmp_path, "2024-03", 3),
    )
    assert abs(estimate_error(estimated, realised) or math.inf) <= TARGET, (estimated, realised)


def test_real_green_2021_within_ten_percent() -> None:
    """Champion trained on 2021-01, DLE fitted on labelled 2021-02, 2021-03 estimated."""
    estimated, realised = _estimate_on(_real("2021-01"), _real("2021-02"), _real("2021-03"))
    assert abs(estimate_error(estimated, realised) or math.inf) <= TARGET, (estimated, realised)


def test_real_green_2023_split_by_date_within_ten_percent() -> None:
    """The one month of the 2022-12-19 fares: days 1-14 train, 15-21 reference, 22-31 estimated."""
    rows = _real("2023-01")
    rows = rows[rows["pickup_datetime"].dt.strftime("%Y-%m") == "2023-01"]
    day = rows["pickup_datetime"].dt.day
    estimated, realised = _estimate_on(rows[day <= 14], rows[(day > 14) & (day <= 21)], rows[day > 21])
    assert abs(estimate_error(estimated, realised) or math.inf) <= TARGET, (estimated, realised)


def test_estimate_sees_a_harder_mix_of_trips() -> None:
    """Longer trips err more: a window of only long trips is estimated worse than the reference."""
    rows = _real("2021-02")
    use_case = load_spec("taxi_trip_duration")
    columns, label = list(use_case.features.all), use_case.target.column
    x = modelling.trip_features(rows)[columns]
    predicted = (
        x["trip_distance"].clip(0, 30).to_numpy() * 3.0 + 5.0
    )  # a crude model, errors grow with distance
    estimator = fit_loss_estimator(x, predicted, rows[label])
    long_trips = (x["trip_distance"] > x["trip_distance"].quantile(0.8)).to_numpy()
    estimated = estimator.estimate_rmse(x[long_trips], predicted[long_trips])
    assert estimated > estimator.reference_rmse
    assert abs(estimated / _rmse(predicted[long_trips], rows[label][long_trips]) - 1) <= 0.15


def test_bad_inputs_say_what_is_wrong() -> None:
    x = pd.DataFrame({"trip_distance": np.arange(10.0)})
    with pytest.raises(ValueError, match="as many rows"):
        fit_loss_estimator(x, np.zeros(9), np.zeros(10))
    with pytest.raises(ValueError, match=f"at least {MIN_REFERENCE_ROWS}"):
        fit_loss_estimator(x, np.zeros(10), np.zeros(10))
    assert estimate_error(None, 3.0) is None and estimate_error(3.3, 3.0) == pytest.approx(0.1)
