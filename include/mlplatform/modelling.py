"""The model artifact every stage shares: an MLflow pyfunc over normalised trip records.

Training logs, batch scoring and the serving app load one kind of model: a
:class:`TripModel`, which takes normalised trip columns (as :func:`mlplatform.tlc.normalise`
produces them), derives the spec's features itself and answers in the units a user wants:

- regression: a frame with ``prediction`` in the target's unit (e.g. minutes);
- classification: a frame with ``label`` (the spec's class names) and ``probability`` of
  the positive class.

So a request, a batch file and a training row all go through the same feature code.

The estimator inside comes from the use case's model module (``use_cases/<module>.py``),
which offers ``FAMILIES`` and ``build_estimator(family, params)``.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pandas as pd
from mlflow.pyfunc import PythonModel

if TYPE_CHECKING:
    from mlplatform.spec import UseCase

# Normalised columns the shared trip features are computed from.
BASE_INPUTS = ("pickup_datetime", "pu_location_id", "do_location_id", "trip_distance")
_DERIVED = {
    "pickup_hour",
    "pickup_weekday",
    "is_weekend",
    "is_airport_pickup",
    "is_airport_dropoff",
    "pu_borough",
    "do_borough",
    "pu_do_pair",
    "hour_band",
}


def input_columns(features: tuple[str, ...]) -> list[str]:
    """The normalised columns a model with these features needs as input."""
    raw = [f for f in features if f not in _DERIVED and f not in BASE_INPUTS]
    return [*BASE_INPUTS, *raw]


def model_module(use_case: UseCase) -> ModuleType:
    """The use case's model module (``use_cases/<model.module>.py``)."""
    return importlib.import_module(f"mlplatform.use_cases.{use_case.model.module}")


def build_estimator(use_case: UseCase, family: str, params: dict[str, Any] | None = None) -> Any:
    """An unfitted estimator of ``family`` from the use case's model module.

    Raises ``ValueError`` naming the families the module offers when ``family`` is not one.
    """
    module = model_module(use_case)
    families = tuple(getattr(module, "FAMILIES", ()))
    if family not in families:
        raise ValueError(
            f"model family {family!r} is not offered by use_cases/{use_case.model.module}.py "
            f"(it offers: {', '.join(families) or 'none'}); fix model.family/model.baseline in the spec "
            "or the family parameter"
        )
    return module.build_estimator(family, dict(params or {}))


class TripModel(PythonModel):
    """A fitted scikit-learn estimator plus the feature derivation and output format."""

    def __init__(
        self,
        estimator: Any,
        features: tuple[str, ...],
        task: str,
        labels: tuple[str, str] | None = None,
    ) -> None:
        self.estimator = estimator
        self.features = tuple(features)
        self.task = task
        self.labels = labels

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        from mlplatform.features import trip_features

        return self.answer(trip_features(model_input))

    def answer(self, featured: pd.DataFrame) -> pd.DataFrame:
        """The answer for trips whose features are already derived (see :meth:`predict`)."""
        frame = featured[list(self.features)]
        if self.task == "regression":
            return pd.DataFrame({"prediction": self.estimator.predict(frame)}, index=featured.index)
        probability = self.estimator.predict_proba(frame)[:, 1]
        negative, positive = self.labels or ("0", "1")
        label = pd.Series(negative, index=featured.index).where(probability < 0.5, positive)
        return pd.DataFrame({"label": label, "probability": probability}, index=featured.index)
