"""The real-time endpoint: the registry's ``champion`` behind a small HTTP service.

Run it (the serving image does the same, see ``include/serving/``)::

    MLPLATFORM_USE_CASE=taxi_trip_duration python -m mlplatform.serving --port 8000
    uvicorn mlplatform.serving:app --port 8000          # the same, configured from the environment

HTTP interface:

- ``POST /predict``: one trip (a JSON object of the model's input fields) or a batch
  (``{"instances": [trip, ...]}``). Answers ``{"request_id", "model", "version",
  "variant", "unit", "predictions": [...]}`` where each prediction is ``{"prediction": x}``
  in the target's unit (minutes for taxi durations) or ``{"label", "probability"}`` for a
  classifier. Input is checked against the model's signature: a malformed request gets a
  4xx whose ``detail`` names each wrong field, never a 5xx.
  Headers: ``X-Request-Key`` keeps a caller on one variant (A/B stickiness),
  ``X-Request-Id`` names the request in the prediction log, ``X-Variant`` forces a variant
  (smoke tests).
- ``GET /health``: liveness and what is served (versions, inputs); ``status`` is
  ``no_model`` until a champion exists (``/predict`` answers 503 meanwhile).
- ``GET /metrics``: Prometheus text format: requests, latency histogram, errors and rows,
  by variant and model version.
- ``POST /admin/reload``: look at the registry aliases now (the deploy DAG calls it). It
  can only load what the registry says, so it needs no secret.
- ``GET /ping`` and ``POST /invocations``: the SageMaker container contract (JSON, or JSON
  Lines in and out for Batch Transform).

A/B testing: ``serving.challenger_share`` of request keys go to the ``challenger`` alias,
chosen by a hash of the key, so a caller stays on one variant. Every prediction is logged
to ``predictions/<use case>/serving/month=YYYY-MM/`` in the lake for the monitoring DAG to
compare variants. A background thread follows the aliases and swaps in a promoted version
without dropping a request; concurrent requests are predicted together.

Configuration (environment, or the same-named arguments of ``python -m mlplatform.serving``):
``MLPLATFORM_USE_CASE`` (default ``taxi_trip_duration``), ``MLFLOW_TRACKING_URI``, ``MLPLATFORM_LAKE_URI``,
``MLPLATFORM_MODEL_URI`` (serve one fixed model instead of following the aliases, as
SageMaker containers do) with ``MLPLATFORM_MODEL_VERSION``,
``MLPLATFORM_SERVING_POLL_SECONDS`` (default 30, 0 never) and
``MLPLATFORM_SERVING_LOG_PREDICTIONS`` (default 1).

The modules, each importing only those above it:

| module | what it is for |
|---|---|
| ``schema`` | request validation against the model's input signature |
| ``store`` | the models served: loading, following the aliases, hot swap, the A/B split |
| ``batcher`` | the micro-batcher: queued requests for one model predicted in one call |
| ``metrics`` | ``/metrics`` in the Prometheus text format |
| ``log`` | the prediction log: its row layout and the buffered writer to the lake |
| ``service`` | one request apart from HTTP: variant, validation, prediction, metrics, log |
| ``routes`` | the routes: ``create_app`` |
| ``run`` | ``app_from_env`` (the uvicorn factory) and the ``python -m mlplatform.serving`` command |
"""

from __future__ import annotations

from typing import Any

from mlplatform.serving.routes import create_app
from mlplatform.serving.run import app_from_env, main
from mlplatform.serving.store import assign_variant

__all__ = ["app_from_env", "assign_variant", "create_app", "main"]


def __getattr__(name: str) -> Any:
    """``mlplatform.serving:app`` for ``uvicorn``: built on first access, from the environment."""
    if name == "app":
        globals()["app"] = built = app_from_env()
        return built
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
