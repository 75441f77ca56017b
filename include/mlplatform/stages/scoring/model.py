"""The registered model as batch scoring uses it: loaded once, its inputs, task and predictor."""

from __future__ import annotations

from typing import Any

from mlplatform.adapters import settings


def load_model(uri: str) -> Any:
    """Load an MLflow pyfunc (a :class:`mlplatform.core.modelling.TripModel`) from any MLflow URI."""
    import mlflow.pyfunc

    if uri.startswith(("models:/", "runs:/")):
        import mlflow

        mlflow.set_tracking_uri(settings.tracking_uri())
    return mlflow.pyfunc.load_model(uri)


def model_inputs(model: Any) -> list[str]:
    """The input columns a pyfunc needs: from its signature, else from the TripModel itself."""
    schema = model.metadata.get_input_schema()
    if schema is not None and schema.has_input_names():
        return list(schema.input_names())
    from mlplatform.core.modelling import input_columns

    return input_columns(model.unwrap_python_model().features)


def model_task(model: Any) -> str:
    """``regression`` or ``classification``: which answer columns the model returns."""
    try:
        return str(model.unwrap_python_model().task)
    except Exception:  # not a TripModel: a regressor is the only other shape we accept
        return "regression"


def predictor(model: Any) -> Any:
    """The fastest correct predict callable of a pyfunc.

    A :class:`~mlplatform.core.modelling.TripModel` is called directly: the input was already
    checked (against the data contract here, against the signature in the serving app), so
    the pyfunc wrapper's second schema pass would only cost time. The callable takes a frame
    of the model's inputs and returns its answer frame.
    """
    try:
        inner = model.unwrap_python_model()
    except Exception:
        return model.predict
    if hasattr(inner, "estimator") and hasattr(inner, "features"):
        return lambda frame: inner.predict(None, frame)
    return model.predict
