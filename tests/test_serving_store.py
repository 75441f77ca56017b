"""The serving store never swaps in a version that loads but cannot predict its own example."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
import pytest
from test_scoring import USE_CASE, normalised_trips

from mlplatform.core.features import trip_features
from mlplatform.core.modelling import TripModel, input_columns, input_defaults
from mlplatform.core.records import ModelRef
from mlplatform.serving.store import LoadedModel, ModelDoesNotPredict
from mlplatform.stages.training import model_signature
from mlplatform.use_cases.taxi_trip_duration import build_estimator


class BrokenEstimator:
    """Loads like any estimator, fails as soon as it predicts."""

    def predict(self, frame: pd.DataFrame) -> None:
        raise ValueError("feature mismatch: expected 12 columns")


def save(path: Path, broken: bool = False) -> str:
    """A small model saved with its input example; ``broken`` swaps in an estimator that fails."""
    features = USE_CASE.features.all
    trips = normalised_trips("2024-01", 500, seed=3).to_pandas()
    estimator = build_estimator("hist_gradient_boosting", {"max_iter": 5})
    estimator.fit(trip_features(trips)[list(features)], trips[USE_CASE.target.column])
    model = TripModel(estimator, features, USE_CASE.task, defaults=input_defaults(USE_CASE))
    example = trips[input_columns(features)].head(5)
    signature = model_signature(USE_CASE, model, example)
    if broken:
        model = TripModel(BrokenEstimator(), features, USE_CASE.task, defaults=input_defaults(USE_CASE))
    mlflow.pyfunc.save_model(
        path, python_model=model, signature=signature, input_example=example, pip_requirements=[]
    )
    return str(path)


def ref(version: str, uri: str) -> ModelRef:
    return ModelRef(USE_CASE.model_name, version, "champion", None, uri)


def test_a_version_that_predicts_its_example_loads(tmp_path: Path) -> None:
    uri = save(tmp_path / "good")
    loaded = LoadedModel.load(ref("1", uri), USE_CASE, uri)
    assert loaded.ref.version == "1"


def test_a_version_that_fails_on_its_example_is_refused(tmp_path: Path) -> None:
    uri = save(tmp_path / "broken", broken=True)
    with pytest.raises(ModelDoesNotPredict, match="version 2 loads but fails on its own input example"):
        LoadedModel.load(ref("2", uri), USE_CASE, uri)
