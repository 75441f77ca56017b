"""The model artifact every stage shares: an MLflow pyfunc over normalised trip records.

Training logs, batch scoring and the serving app load one kind of model: a
:class:`TripModel`, which takes normalised trip columns (as :func:`mlplatform.tlc.normalise`
produces them), derives the spec's features itself and answers in the units a user wants:

- regression: a frame with ``prediction`` in the target's unit (e.g. minutes);
- classification: a frame with ``label`` (the spec's class names) and ``probability`` of
  the positive class.

So a request, a batch file and a training row all go through the same feature code.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from mlflow.pyfunc import PythonModel

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


class TripModel(PythonModel):
    """A fitted scikit-learn pipeline plus the feature derivation and output format."""

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

        frame = trip_features(model_input)[list(self.features)]
        if self.task == "regression":
            return pd.DataFrame({"prediction": self.estimator.predict(frame)}, index=model_input.index)
        probability = self.estimator.predict_proba(frame)[:, 1]
        negative, positive = self.labels or ("0", "1")
        label = pd.Series(negative, index=model_input.index).where(probability < 0.5, positive)
        return pd.DataFrame({"label": label, "probability": probability}, index=model_input.index)
