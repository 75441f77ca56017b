"""The logged model is self-contained: a registered version loads through
``mlflow.pyfunc.load_model`` and predicts where ``mlplatform`` is not installed (the code it
needs travels with it: the core, the use cases' model modules and the pyfunc wrapper), and
in processes that already imported ``mlplatform`` (batch scoring, the serving app) it keeps
using their copy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import mlflow
import mlflow.pyfunc
import pandas as pd
import pytest

import mlplatform
from mlplatform.adapters.pyfunc import TripPyfunc, model_code, trip_model
from mlplatform.core import generator, tlc
from mlplatform.core.modelling import TripModel, build_estimator, input_columns
from mlplatform.core.spec import load_spec
from mlplatform.stages import scoring, training

USE_CASE = load_spec("taxi_trip_duration")
INCLUDE = str(Path(mlplatform.__file__).resolve().parents[1])

# A process whose sys.path cannot reach the package: the editable install's folder, the
# working directory and PYTHONPATH are gone, so `mlplatform` can come only from the model.
CLEAN_LOAD = """
import importlib.util, json, sys
sys.path = [p for p in sys.path if p not in ("", ".") and not p.startswith({include!r})]
assert importlib.util.find_spec("mlplatform") is None, "mlplatform is importable without the model"
import mlflow.pyfunc, pandas as pd
assert not [n for n in sys.modules if n.startswith("mlplatform")], "mlplatform imported before the load"
model = mlflow.pyfunc.load_model({model!r})
trips = pd.read_parquet({trips!r})
answer = model.predict(trips)
print(json.dumps({{"prediction": answer["prediction"].tolist(),
                   "wrapper": type(model.unwrap_python_model()).__qualname__,
                   "modules": {{n: sys.modules[n].__file__ for n in (
                       "mlplatform.core.modelling", "mlplatform.adapters.pyfunc",
                       "mlplatform.use_cases.taxi_trip_duration")}}}}))
"""


def trips(rows: int, month: str, seed: int) -> pd.DataFrame:
    raw = generator.generate_month("yellow", month, rows, seed=seed).table
    return training.labelled(tlc.normalise(raw).to_pandas(), USE_CASE)


@pytest.fixture(scope="module")
def fitted() -> training.Fitted:
    """A small gradient-boosting model on a small month (its encoding holds the use case's own
    transformer, pickled by reference to ``mlplatform.use_cases``), with a linear baseline."""
    from mlplatform.core.modelling import trip_features
    from mlplatform.stages.training.fitting import trip_model as wrap

    train = trips(3000, "2024-01", 1)
    X, y = trip_features(train)[list(USE_CASE.features.all)], train[USE_CASE.target.column]
    params = {"max_iter": 20}
    model = wrap(USE_CASE, build_estimator(USE_CASE, "hist_gradient_boosting", params).fit(X, y))
    baseline = wrap(USE_CASE, build_estimator(USE_CASE, "linear").fit(X, y))
    return training.Fitted("hist_gradient_boosting", params, model, baseline, [], 0.0)


@pytest.fixture(scope="module")
def requests() -> pd.DataFrame:
    return trips(200, "2024-02", 2)[input_columns(USE_CASE.features.all)].head(50)


def run_clean(script: str, cwd: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_a_registered_model_loads_and_predicts_in_a_process_without_the_package(
    fitted: training.Fitted, requests: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run's model, logged by the training stage itself and registered, loaded from the
    registry (``models:/<name>/<version>``) by a fresh process that cannot import mlplatform."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)  # the default artifact root (./mlruns) stays in the test's folder
    evaluation, baseline = training.validate(USE_CASE, fitted, trips(1000, "2024-02", 3))
    logged = training.log_run(USE_CASE, fitted, evaluation, baseline, trips(500, "2024-02", 4))
    version = mlflow.register_model(logged.model_uri, USE_CASE.model_name).version
    code = Path(mlflow.artifacts.download_artifacts(logged.model_uri, dst_path=str(tmp_path / "model")))
    for bundled in ("core/modelling.py", "adapters/pyfunc.py", "use_cases/taxi_trip_duration.py"):
        assert (code / "code" / "mlplatform" / bundled).is_file(), bundled
    payload = tmp_path / "trips.parquet"
    requests.to_parquet(payload)

    uri = f"models:/{USE_CASE.model_name}/{version}"
    out = run_clean(CLEAN_LOAD.format(include=INCLUDE, model=uri, trips=str(payload)), tmp_path)

    assert out["wrapper"] == "TripPyfunc"
    for module, where in out["modules"].items():  # the model's own copy of the code
        assert not where.startswith(INCLUDE) and "/code/mlplatform/" in where, (module, where)
    expected = fitted.model.predict(requests)["prediction"].tolist()
    assert out["prediction"] == pytest.approx(expected, rel=1e-12)


def test_a_process_that_imported_mlplatform_keeps_its_own_classes(
    fitted: training.Fitted, requests: pd.DataFrame, tmp_path: Path
) -> None:
    """Batch scoring and the serving app load models after importing the package: the
    wrapper they unwrap is the package's class, and the model's code shadows nothing."""
    path = tmp_path / "model"
    code = model_code(tmp_path / "code")
    wrapped = TripPyfunc(fitted.model)
    mlflow.pyfunc.save_model(str(path), python_model=wrapped, code_paths=code, pip_requirements=[])
    loaded_before = set(sys.modules)

    model = scoring.load_model(str(path))

    assert type(model.unwrap_python_model()) is TripPyfunc
    assert type(trip_model(model)) is TripModel
    assert scoring.model_task(model) == "regression"
    expected = fitted.model.predict(requests)
    pd.testing.assert_frame_equal(scoring.predictor(model)(requests), expected)
    pd.testing.assert_frame_equal(model.predict(requests), expected)
    for name in [n for n in sys.modules if n == "mlplatform" or n.startswith("mlplatform.")]:
        where = getattr(sys.modules[name], "__file__", None) or INCLUDE
        assert where.startswith(INCLUDE), f"{name} came from {where}"
    assert {n for n in loaded_before if n.startswith("mlplatform")} <= set(sys.modules)


def test_a_pyfunc_of_another_kind_is_not_taken_for_a_trip_model(tmp_path: Path) -> None:
    """A version logged with another wrapper (or registered before the model's wrapper moved
    out of the core) is named as such: scoring falls back to the pyfunc's own predict."""

    class Doubling(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
        def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
            return model_input * 2

    mlflow.pyfunc.save_model(str(tmp_path / "model"), python_model=Doubling(), pip_requirements=[])
    model = scoring.load_model(str(tmp_path / "model"))

    with pytest.raises(TypeError, match="not a trip model"):
        trip_model(model)
    assert scoring.model_task(model) == "regression"
    assert scoring.predictor(model) == model.predict
