"""The lean single-trip path gives the logged model's answers, for every family of every use case.

Models are fitted on a real TLC month (`tests/fixtures/real_tlc/`), saved as MLflow
models and loaded back, as the app loads them. Requests are real trips of another month
and hostile but valid ones: every zone, unseen zones and pairs, zero and maximal
distances, any hour; the lean answers must equal the logged model's ``predict`` within
float rounding. No server and no timing here: `bench/bench_serving.py` measures speed.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from mlplatform.adapters.pyfunc import TripPyfunc
from mlplatform.core import spec, tlc
from mlplatform.core.modelling import TripModel, modelled_rows, trip_features
from mlplatform.serving import lean
from mlplatform.serving.schema import frame_of, model_fields

REAL = Path(__file__).parent / "fixtures" / "real_tlc"
USE_CASES = ("taxi_trip_duration", "taxi_generous_tip")
TRAIN_ROWS = 20_000


def _family_cases() -> list[tuple[str, str]]:
    cases = []
    for name in USE_CASES:
        use_case = spec.load_spec(name)
        cases += [(name, family) for family in spec.model_module(use_case).FAMILIES]
    return cases


def _real_trips(month: str, rows: int, seed: int) -> pd.DataFrame:
    table = tlc.normalise(pq.read_table(REAL / f"green_tripdata_{month}.parquet"), "green")
    trips = table.to_pandas()
    trips = trips[trips["trip_distance"].notna() & trips["pu_location_id"].notna()]
    return trips.sample(min(rows, len(trips)), random_state=seed).reset_index(drop=True)


def _fit_and_log(name: str, family: str, folder: Path) -> Any:
    """A model of ``family`` fitted on a real month, saved as MLflow saves it, loaded back."""
    import mlflow.pyfunc

    from mlplatform.core.modelling import build_estimator, in_target_range, input_columns, target_values
    from mlplatform.stages.training import model_signature
    from mlplatform.stages.training.fitting import trip_model

    use_case = spec.load_spec(name)
    trips = _real_trips("2021-01", TRAIN_ROWS, seed=1)
    if name == "taxi_generous_tip":  # the green fixtures stand in for yellow card trips
        trips = trips.assign(taxi_type="yellow")
    trips = modelled_rows(trips, use_case.data.filter)
    y = target_values(trips, use_case.target.column, use_case.target.expression)
    keep = in_target_range(y, use_case.target.range_).to_numpy()
    trips, y = trips[keep], y[keep]
    params = use_case.model.hyperparameters if family == use_case.model.family else {}
    params = {**params, "max_iter": 60} if "max_iter" in params else params
    estimator = build_estimator(use_case, family, params)
    estimator.fit(trip_features(trips)[list(use_case.features.all)], y)
    model = trip_model(use_case, estimator)
    example = trips[input_columns(use_case.features.all)].head(10)
    path = folder / f"{name}-{family}"
    mlflow.pyfunc.save_model(
        str(path),
        python_model=TripPyfunc(model),
        signature=model_signature(use_case, model, example),
        input_example=example,
    )
    return mlflow.pyfunc.load_model(str(path))


@pytest.fixture(scope="module", params=_family_cases(), ids=lambda case: f"{case[0]}-{case[1]}")
def logged(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    name, family = request.param
    use_case = spec.load_spec(name)
    return use_case, _fit_and_log(name, family, tmp_path_factory.mktemp("lean"))


def _requests(use_case: Any, fields: list[Any]) -> dict[str, list[Any]]:
    """Thousands of requests: real trips of a later month, then hostile but valid ones."""
    real = _real_trips("2021-03", 2_000, seed=3)
    columns: dict[str, list[Any]] = {
        "pickup_datetime": [t.to_pydatetime() for t in real["pickup_datetime"]],
        "pu_location_id": real["pu_location_id"].astype(int).tolist(),
        "do_location_id": real["do_location_id"].astype(int).tolist(),
        "trip_distance": np.clip(real["trip_distance"], 0, use_case.contract.max_trip_miles).tolist(),
    }
    hostile = lean.sample_columns(fields, rows=2_000, seed=11)
    names = [f.name for f in fields]
    for name in names:
        if name not in columns:  # the optional taxi type: real trips leave it to its default
            columns[name] = [None] * len(real)
        columns[name] = columns[name] + hostile[name]
    return {name: columns[name] for name in names}


def _logged_answers(pyfunc: Any, fields: list[Any], columns: dict[str, list[Any]]) -> pd.DataFrame:
    return pyfunc.predict(frame_of(columns, fields))


def test_the_lean_path_gives_the_logged_models_answers(logged: tuple[Any, Any]) -> None:
    use_case, pyfunc = logged
    fields = model_fields(pyfunc, use_case)
    model = lean.compile_model(pyfunc)
    columns = _requests(use_case, fields)
    rows = len(columns["pu_location_id"])
    assert rows >= 4_000
    expected = _logged_answers(pyfunc, fields, columns)
    for start in range(0, rows, lean.MAX_ROWS):
        chunk = {k: v[start : start + lean.MAX_ROWS] for k, v in columns.items()}
        want = expected.iloc[start : start + lean.MAX_ROWS].reset_index(drop=True)
        assert lean.mismatches(model, want, chunk, use_case.task) == [], f"rows {start}.."


def test_one_trip_at_a_time_and_unseen_zones_match(logged: tuple[Any, Any]) -> None:
    use_case, pyfunc = logged
    fields = model_fields(pyfunc, use_case)
    model = lean.compile_model(pyfunc)
    base = {f.name: None for f in fields} | {
        "pickup_datetime": pd.Timestamp("2024-03-05 08:30").to_pydatetime()
    }
    unseen_zone = 264 if use_case.name == "taxi_trip_duration" else 265  # "Unknown" / outside NYC
    trips = [
        base | {"pu_location_id": 161, "do_location_id": 236, "trip_distance": 2.1},
        base | {"pu_location_id": unseen_zone, "do_location_id": 1, "trip_distance": 0.0},  # unseen pair
        base | {"pu_location_id": 1, "do_location_id": 1, "trip_distance": use_case.contract.max_trip_miles},
        base | {"pu_location_id": 105, "do_location_id": 199, "trip_distance": 0.01},
    ]
    for trip in trips:
        columns = {name: [value] for name, value in trip.items()}
        want = _logged_answers(pyfunc, fields, columns)
        assert lean.mismatches(model, want, columns, use_case.task) == [], trip


def test_load_time_check_accepts_every_family(logged: tuple[Any, Any]) -> None:
    from mlplatform.stages.scoring import predictor

    use_case, pyfunc = logged
    fields = model_fields(pyfunc, use_case)
    model, status = lean.verified(pyfunc, fields, predictor(pyfunc), use_case.task)
    assert model is not None, status
    assert status.startswith("lean path")


def test_a_model_whose_lean_answers_differ_is_refused(logged: tuple[Any, Any]) -> None:
    use_case, pyfunc = logged
    fields = model_fields(pyfunc, use_case)

    def off_by_a_little(frame: pd.DataFrame) -> pd.DataFrame:
        answer = pyfunc.predict(frame)
        column = "prediction" if use_case.task == "regression" else "probability"
        return answer.assign(**{column: answer[column] * 1.001 + 1e-3})

    model, status = lean.verified(pyfunc, fields, off_by_a_little, use_case.task)
    assert model is None
    assert "differ from the logged model" in status


def test_a_model_without_a_lean_form_declines_and_says_why(logged: tuple[Any, Any]) -> None:
    use_case, pyfunc = logged

    class Other:
        def unwrap_python_model(self) -> Any:
            return TripPyfunc(TripModel(object(), (), "regression"))

    class Foreign:
        def unwrap_python_model(self) -> Any:
            return object()

    with pytest.raises(lean.NotCompilable, match="two-step pipeline"):
        lean.compile_model(Other())
    with pytest.raises(lean.NotCompilable, match="not a model of this platform"):
        lean.compile_model(Foreign())
    model, status = lean.verified(Other(), model_fields(pyfunc, use_case), pyfunc.predict, use_case.task)
    assert model is None and status.startswith("normal path")


def test_the_batcher_uses_the_lean_path_for_small_requests(logged: tuple[Any, Any]) -> None:
    """Small requests take the lean path, large ones the normal one; both answer the same."""
    from mlplatform.core.records import ModelRef
    from mlplatform.serving.schema import Validator
    from mlplatform.serving.service import MicroBatcher
    from mlplatform.serving.store import LoadedModel
    from mlplatform.stages.scoring import predictor

    use_case, pyfunc = logged
    fields = model_fields(pyfunc, use_case)
    calls = {"normal": 0}
    normal = predictor(pyfunc)

    def counted(frame: pd.DataFrame) -> pd.DataFrame:
        calls["normal"] += 1
        return normal(frame)

    ref = ModelRef(use_case.model_name, "1", None, None, "memory")
    model = LoadedModel(ref, "memory", pyfunc, fields, use_case.task, counted, Validator(fields))
    model.lean, model.lean_status = lean.verified(pyfunc, fields, normal, use_case.task)
    columns = lean.sample_columns(fields, rows=100, seed=5)
    small = {k: v[:3] for k, v in columns.items()}

    async def both() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        batcher = MicroBatcher()
        try:
            return await batcher.predict(model, small, 3), await batcher.predict(model, columns, 100)
        finally:
            batcher.close()

    fast, slow = asyncio.run(both())
    assert calls["normal"] == 1  # only the large request went through the normal path
    key = "prediction" if use_case.task == "regression" else "probability"
    np.testing.assert_allclose([a[key] for a in fast], [a[key] for a in slow[:3]], rtol=1e-9)


def test_encoders_with_infrequent_and_unseen_categories_become_the_same_tables() -> None:
    """Grouped rare levels, unseen values and target encodings come out as the fitted encoder gives them."""
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OrdinalEncoder, TargetEncoder

    rng = np.random.default_rng(0)
    zones = rng.choice([1, 2, 3, 4, 5, 6, 7], size=500, p=[0.4, 0.3, 0.2, 0.05, 0.03, 0.01, 0.01])
    frame = pd.DataFrame({"pu_location_id": zones, "pu_do_pair": [f"{z}_{z % 3}" for z in zones]})
    encode = ColumnTransformer(
        [
            (
                "zones",
                OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan, max_categories=3),
                ["pu_location_id"],
            ),
            ("pair", TargetEncoder(target_type="continuous"), ["pu_do_pair"]),
        ]
    ).fit(frame, rng.normal(size=500) + zones)
    compiled = lean.compile_encoding(encode)
    asked = pd.DataFrame(
        {"pu_location_id": [1, 4, 6, 7, 99], "pu_do_pair": ["1_1", "4_1", "6_0", "7_1", "99_0"]}
    )
    features = {name: asked[name].to_numpy() for name in asked}
    np.testing.assert_allclose(compiled.dense(features), encode.transform(asked), rtol=1e-12, equal_nan=True)
