"""The logged model is self-contained: it loads and predicts where ``mlplatform`` is not
installed (the code it needs travels with it), and in processes that already imported
``mlplatform`` (batch scoring, the serving app) it keeps using their copy."""

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
from mlplatform.core import generator, tlc
from mlplatform.core.modelling import TripModel, input_columns
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
model = mlflow.pyfunc.load_model({model!r})
trips = pd.read_parquet({trips!r})
answer = model.predict(trips)
print(json.dumps({{"prediction": answer["prediction"].tolist(),
                   "module": sys.modules["mlplatform.core.modelling"].__file__}}))
"""


def trips(rows: int, month: str, seed: int) -> pd.DataFrame:
    raw = generator.generate_month("yellow", month, rows, seed=seed).table
    return training.labelled(tlc.normalise(raw).to_pandas(), USE_CASE)


@pytest.fixture(scope="module")
def fitted() -> training.Fitted:
    """A linear model on a small month: the real wrapper, fitted in a second."""
    return training.fit(USE_CASE, trips(3000, "2024-01", 1), family="linear")


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


def test_a_logged_model_loads_and_predicts_without_the_package(
    fitted: training.Fitted, requests: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run's model, logged by the training stage itself, in a process without mlplatform."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    evaluation, baseline = training.validate(USE_CASE, fitted, trips(1000, "2024-02", 3))
    logged = training.log_run(USE_CASE, fitted, evaluation, baseline, trips(500, "2024-02", 4))
    model_dir = mlflow.artifacts.download_artifacts(logged.model_uri, dst_path=str(tmp_path / "model"))
    assert (Path(model_dir) / "code" / "mlplatform" / "core" / "modelling.py").is_file()
    payload = tmp_path / "trips.parquet"
    requests.to_parquet(payload)

    out = run_clean(CLEAN_LOAD.format(include=INCLUDE, model=model_dir, trips=str(payload)), tmp_path)

    assert out["module"].startswith(model_dir)  # the model's own copy of the code
    expected = fitted.model.predict(None, requests)["prediction"].tolist()
    assert out["prediction"] == pytest.approx(expected, rel=1e-12)


def test_a_process_that_imported_mlplatform_keeps_its_own_classes(
    fitted: training.Fitted, requests: pd.DataFrame, tmp_path: Path
) -> None:
    """Batch scoring and the serving app load models after importing the package: the
    wrapper they unwrap is the package's class, and the model's code shadows nothing."""
    path = tmp_path / "model"
    code = training.model_code(tmp_path / "code")
    mlflow.pyfunc.save_model(str(path), python_model=fitted.model, code_paths=code, pip_requirements=[])
    loaded_before = set(sys.modules)

    model = scoring.load_model(str(path))

    inner = model.unwrap_python_model()
    assert isinstance(inner, TripModel) and type(inner) is TripModel
    assert scoring.model_task(model) == "regression"
    expected = fitted.model.predict(None, requests)
    pd.testing.assert_frame_equal(scoring.predictor(model)(requests), expected)
    pd.testing.assert_frame_equal(model.predict(requests), expected)
    for name in [n for n in sys.modules if n == "mlplatform" or n.startswith("mlplatform.")]:
        where = getattr(sys.modules[name], "__file__", None) or INCLUDE
        assert where.startswith(INCLUDE), f"{name} came from {where}"
    assert {n for n in loaded_before if n.startswith("mlplatform")} <= set(sys.modules)
