"""The real-time endpoint: the registry's ``champion`` behind a small HTTP service.

Run it (the serving image does the same, see ``include/serving/``)::

    MLPLATFORM_USE_CASE=taxi_trip_duration python -m mlplatform.serving --port 8000
    uvicorn mlplatform.serving:app --port 8000          # the same, configured from the environment

HTTP interface (``/docs`` is the interactive reference, ``/openapi.json`` the document):

- ``POST /predict``: one trip (a JSON object of the model's input fields) or a batch
  (``{"instances": [trip, ...]}``). Answers ``{"request_id", "model", "version",
  "variant", "unit", "predictions": [...]}`` where each prediction is ``{"prediction": x}``
  in the target's unit (minutes for taxi durations) or ``{"label", "probability"}`` for a
  classifier. The request model is a pydantic model of the model's input signature.
  Headers: ``X-Request-Key`` keeps a caller on one variant (A/B stickiness),
  ``X-Request-Id`` names the request in the prediction log, ``X-Variant`` forces a variant
  (smoke tests).
- ``GET /ping`` and ``POST /invocations``: the SageMaker container contract. ``/invocations``
  takes JSON (as ``/predict``), JSON Lines (one trip per line, Batch Transform) or CSV
  (``text/csv``, no header, one trip per line, columns in the order of the model's inputs)
  and answers in the ``Accept`` type, else in the type sent (one answer per line for JSON
  Lines and CSV). ``/ping`` is 200 once a model is loaded, 503 before.
- ``GET /health``: liveness, 200 from the first second whatever the registry does: what is
  served (versions, inputs); ``status`` is ``no_model`` until a champion loads (``/predict``
  answers 503 meanwhile), ``readiness`` what ``/ready`` says, and ``note`` when the last look
  at the registry failed while a model is served.
- ``GET /ready``: readiness, 200 once a model is loaded; 503 before with ``reason``
  (``starting``, ``registry_unreachable``, ``registry_error`` for a registry answering 5xx
  or something that is not MLflow's API, ``no_champion``, ``artifacts_unavailable``,
  ``model_does_not_predict``), ``detail``, ``last_error`` and ``next_retry_at``.
- ``GET /metrics``: Prometheus exposition (``prometheus_client``, one registry per app):
  ``mlplatform_serving_requests_total{route,status}``, ``..._request_duration_seconds``,
  ``..._errors_total{route,kind}``, ``..._variant_requests_total`` and
  ``..._predictions_total`` by variant and version, the models served and reloads, plus the
  standard process, platform and garbage-collector families.
- ``POST /admin/reload``: look at the registry aliases now (the deploy DAG calls it). It
  needs ``Authorization: Bearer <MLPLATFORM_SERVING_ADMIN_TOKEN>``; without that variable
  the admin routes are off (403), a missing or wrong token is a 401.

Limits and errors. Input never causes a 5xx: every error is a JSON ``{"detail": [{"field",
"error"}], "request_id"}`` naming the field (``instances[3].trip_distance``, ``line[7]``,
``body`` or a header). A body is at most ``MLPLATFORM_SERVING_MAX_BODY_BYTES`` (default
8 MiB) and 10,000 trips, whatever its content type; bodies over 64 KiB are parsed on a
worker thread so ``/health`` stays responsive. Values must be plausible: distances from 0
to the contract's ``max_trip_miles``, zone ids of the TLC zone table (1-265), the spec's
taxi types, pickups (New York wall-clock time; aware times are converted) from 2009-01-01
to a year ahead, finite numbers. A prediction that is not a finite number is never sent.

| status | when |
|---|---|
| 400 | the body is not JSON / JSON Lines / CSV (including nesting too deep to parse) |
| 401, 403 | admin route: wrong or missing token; admin routes off |
| 406, 415 | ``Accept`` or ``Content-Type`` is not one of JSON, JSON Lines, CSV |
| 413 | body over the size limit, or more than 10,000 trips |
| 422 | trips that do not fit the model's inputs or ranges; ``X-Variant`` unknown; no finite prediction |
| 500 | the model failed, or an unexpected error (counted, logged, the connection stays usable) |
| 503 | no model loaded yet (the detail says why, as ``/ready`` does) |

Every answer is counted in ``/metrics`` by route and status; every prediction request,
answered or refused, is a row of the prediction log with its status.

A/B testing: ``serving.challenger_share`` of request keys go to the ``challenger`` alias,
chosen by a hash of the key, so a caller stays on one variant. Every prediction is logged
to ``predictions/<use case>/serving/month=YYYY-MM/`` in the lake for the monitoring DAG to
compare variants. Concurrent requests are predicted together.

Starting and stopping. The app listens before any model is loaded: ``/health``, ``/ready``,
``/docs``, ``/openapi.json`` and ``/metrics`` answer at once (the document describes the
spec's inputs until a champion is loaded, then that version's signature). A daemon thread
resolves the aliases and loads the models, retrying with exponential backoff (1 s doubling
to 30 s) until one loads, then follows the aliases every poll interval and swaps in a
promoted version without dropping a request; when the registry leaves, the last good
models keep serving. ``python -m mlplatform.serving`` bounds MLflow's own HTTP retries
(one try, ten-second timeout; ``MLFLOW_HTTP_REQUEST_*`` override them). SIGTERM drains:
requests in flight get ``MLPLATFORM_SERVING_SHUTDOWN_SECONDS`` (default 3) to finish, no
background thread holds the exit, and the process exits 0 in every state.

Configuration (environment, or the same-named arguments of ``python -m mlplatform.serving``):
``MLPLATFORM_USE_CASE`` (default ``taxi_trip_duration``), ``MLFLOW_TRACKING_URI``, ``MLPLATFORM_LAKE_URI``,
``MLPLATFORM_MODEL_URI`` (serve one fixed model instead of following the aliases, as
SageMaker containers do) with ``MLPLATFORM_MODEL_VERSION``,
``MLPLATFORM_SERVING_POLL_SECONDS`` (default 30, 0 never),
``MLPLATFORM_SERVING_LOG_PREDICTIONS`` (default 1), ``MLPLATFORM_SERVING_ADMIN_TOKEN``,
``MLPLATFORM_SERVING_MAX_BODY_BYTES``, ``MLPLATFORM_SERVING_SHUTDOWN_SECONDS``, ``HOST`` /
``PORT`` (default 127.0.0.1:8000). With
``serve`` (SageMaker) it listens on 0.0.0.0:8080 (``SAGEMAKER_BIND_TO_PORT``) and serves
the model in ``SM_MODEL_DIR`` (default ``/opt/ml/model``) unless ``MLPLATFORM_MODEL_URI`` is set.

The modules, each importing only those above it (none imports the package itself):

| module | what it is for |
|---|---|
| ``process`` | how the process runs: ``python -m mlplatform.serving``, workers, their readiness, SIGTERM |
| ``schema`` | requests and answers: input fields, ranges, validation, content types, body limits |
| ``lean`` | the lean single-trip path, derived from the loaded model and checked against it |
| ``store`` | the models served: background loading with backoff, readiness, the aliases, hot swap, A/B |
| ``telemetry`` | what the app reports: ``/metrics`` and the prediction log |
| ``service`` | one request apart from HTTP: variant, decoding, validation, the micro-batcher, metrics, log |
| ``routes`` | the app over HTTP: ``create_app``, ``app_from_env``, routes, OpenAPI document, guard |
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlplatform.serving.routes import app_from_env, create_app

__all__ = ["app", "app_from_env", "create_app"]


def __getattr__(name: str) -> Any:
    """The exports, imported on first use, so that ``python -m mlplatform.serving`` handles
    SIGTERM before the app's libraries load (a container stopped while it starts exits 0 too).

    ``mlplatform.serving:app``, for ``uvicorn``, is built on first access, from the environment.
    """
    if name in ("app_from_env", "create_app"):
        globals()[name] = value = getattr(importlib.import_module("mlplatform.serving.routes"), name)
        return value
    if name == "app":
        globals()["app"] = built = __getattr__("app_from_env")()
        return built
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
