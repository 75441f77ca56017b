"""The serving store: a version that loads but cannot predict its own example is never swapped
in; readiness names why nothing is served (files gone, a failing model); the loader backs off
exponentially, capped, until a model loads, then follows the aliases."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import mlflow
import pandas as pd
import pytest
from test_scoring import USE_CASE, normalised_trips

from mlplatform.adapters.pyfunc import TripPyfunc
from mlplatform.adapters.registry import ModelNotFound
from mlplatform.core.modelling import TripModel, input_columns, input_defaults, trip_features
from mlplatform.core.records import ModelRef
from mlplatform.serving.store import (
    ArtifactsUnavailable,
    LoadedModel,
    ModelDoesNotPredict,
    ModelLoader,
    ModelStore,
    Served,
)
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
    estimator = build_estimator("hist_gradient_boosting", {"max_iter": 5}, USE_CASE.features)
    estimator.fit(trip_features(trips)[list(features)], trips[USE_CASE.target.column])
    model = TripModel(estimator, features, USE_CASE.task, defaults=input_defaults(USE_CASE))
    example = trips[input_columns(features)].head(5)
    signature = model_signature(USE_CASE, model, example)
    if broken:
        model = TripModel(BrokenEstimator(), features, USE_CASE.task, defaults=input_defaults(USE_CASE))
    mlflow.pyfunc.save_model(
        path, python_model=TripPyfunc(model), signature=signature, input_example=example, pip_requirements=[]
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


# -- readiness: why nothing is served, and the loader's backoff -----------------------------------
def test_a_fixed_model_whose_files_are_gone_is_not_ready_and_says_why(tmp_path: Path) -> None:
    store = ModelStore(USE_CASE, fixed_uri=str(tmp_path / "gone"), fixed_version="7")
    assert store.readiness().reason == "starting" and not store.settled.is_set()

    with pytest.raises(ArtifactsUnavailable, match=r"version 7: its model at .*gone cannot be loaded"):
        store.refresh()

    readiness = store.readiness()
    assert not readiness.ready and readiness.reason == "artifacts_unavailable"
    assert readiness.last_error is not None and readiness.last_error.detail == readiness.detail
    assert store.settled.is_set() and store.reload_errors == 1 and store.served is None


def test_a_fixed_model_failing_its_own_example_is_not_ready(tmp_path: Path) -> None:
    store = ModelStore(USE_CASE, fixed_uri=save(tmp_path / "broken", broken=True), fixed_version="2")
    with pytest.raises(ModelDoesNotPredict):
        store.refresh()
    assert store.readiness().model_dump()["reason"] == "model_does_not_predict"


class FlakyStore(ModelStore):
    """A store whose registry has no champion for the first ``failures`` looks."""

    def __init__(self, failures: int) -> None:
        super().__init__(USE_CASE)
        self.failures = failures

    def _refresh(self) -> bool:
        if self.failures:
            self.failures -= 1
            raise ModelNotFound("no champion yet")
        self.served = cast(Served, object())  # anything: the loader only asks whether something is
        return True


class RecordedWaits:
    """Stands in for the loader's stop event: records each wait instead of sleeping, and says
    "stop" after ``stop_after`` waits."""

    def __init__(self, stop_after: int = 100) -> None:
        self.waits: list[float] = []
        self.stop_after = stop_after

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        return len(self.waits) >= self.stop_after

    def is_set(self) -> bool:
        return False


@pytest.fixture
def one_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """A store of a single-process app (no worker marks to look at between waits)."""
    monkeypatch.delenv("MLPLATFORM_SERVING_WORKER_MARKS", raising=False)


@pytest.mark.usefixtures("one_worker")
def test_the_loader_backs_off_exponentially_capped_until_a_model_loads() -> None:
    store = FlakyStore(failures=5)
    loader = ModelLoader(store, poll_seconds=0, first_delay=1, max_delay=4)
    loader._stop = recorded = RecordedWaits()  # type: ignore[assignment]

    loader._run()  # returns once a model is served: poll_seconds=0 means no following

    assert recorded.waits == [1, 2, 4, 4, 4]
    assert store.readiness().ready and store.attempts == 6 and store.reload_errors == 5
    assert store.next_retry_at is None


@pytest.mark.usefixtures("one_worker")
def test_once_serving_the_loader_follows_the_aliases_every_poll() -> None:
    store = FlakyStore(failures=1)
    loader = ModelLoader(store, poll_seconds=30, first_delay=1, max_delay=4)
    loader._stop = recorded = RecordedWaits(stop_after=3)  # type: ignore[assignment]

    loader._run()

    assert recorded.waits == [1, 30, 30] and store.next_retry_at is not None
