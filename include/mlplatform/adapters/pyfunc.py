"""The MLflow pyfunc flavour of a :class:`~mlplatform.core.modelling.TripModel`.

The core's model knows nothing of MLflow. Training logs it wrapped in :class:`TripPyfunc`
with the code :func:`model_code` bundles, and ``mlflow.pyfunc.load_model`` unpickles that
wrapper wherever the model is loaded (batch scoring, shadow scoring, promotion, the
serving app, the SageMaker container); :func:`trip_model` hands the stages the model inside.

This module travels with every logged model, so it imports only the core and MLflow. It is
not part of the registry (:mod:`mlplatform.adapters.registry`): the stages and the serving
app import that at module level, where MLflow is imported only once a model is used, and it
reads the settings and the lake, which a model never needs.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.pyfunc.model import PythonModel

from mlplatform.core.modelling import TripModel

PACKAGE_ROOT = Path(__file__).resolve().parents[1]


class TripPyfunc(PythonModel):
    """A :class:`~mlplatform.core.modelling.TripModel` as MLflow logs and loads it."""

    def __init__(self, model: TripModel) -> None:
        self.model = model

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        return self.model.predict(model_input)


def trip_model(loaded: Any) -> TripModel:
    """The :class:`~mlplatform.core.modelling.TripModel` inside a loaded pyfunc.

    Raises ``TypeError`` when ``loaded`` holds another kind of model (one not logged by the
    training stage, or registered before the core's model left MLflow: retrain it).
    """
    try:
        inner = loaded.unwrap_python_model()
    except Exception as exc:  # not a Python-function model at all (e.g. a bare sklearn flavour)
        raise TypeError(f"not a trip model: {type(exc).__name__}: {exc}") from None
    if not isinstance(inner, TripPyfunc):
        raise TypeError(
            f"not a trip model: the pyfunc holds a {type(inner).__module__}.{type(inner).__qualname__}; "
            "retrain the version with the current training stage"
        )
    return inner.model


def model_code(folder: Path) -> list[str]:
    """Copy the code a logged model needs into ``folder``; returns its MLflow ``code_paths``.

    That is the package's ``__init__``, its pure core, the use cases' model modules (their
    estimators' classes are pickled by reference) and this module, Python files only: what
    :class:`TripPyfunc` and the model inside import.
    """
    target = folder / "mlplatform"
    sources = [
        PACKAGE_ROOT / "__init__.py",
        PACKAGE_ROOT / "adapters" / "__init__.py",
        Path(__file__).resolve(),
        *(PACKAGE_ROOT / "core").rglob("*.py"),
        *(PACKAGE_ROOT / "use_cases").glob("*.py"),
    ]
    for source in sources:
        destination = target / source.relative_to(PACKAGE_ROOT)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, destination)
    return [str(target)]
