"""The serving app's routes: HTTP in, a :class:`~mlplatform.serving.service.PredictionService` call, HTTP out.

``create_app`` builds the FastAPI app from its parts: the service (models, batcher,
metrics, prediction log), a lifespan that loads the models and starts the background
threads, the prediction routes (``/predict``, and ``/invocations`` of the SageMaker
container contract) and the operation routes (``/health``, ``/ping``, ``/metrics``,
``/admin/reload``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import FastAPI, Request, Response

from mlplatform.adapters.lake import Lake
from mlplatform.core.spec import UseCase
from mlplatform.serving.schema import Rejected, instances_of, parse_json, parse_json_lines
from mlplatform.serving.service import Answer, PredictionService
from mlplatform.serving.store import AliasPoller

log = logging.getLogger(__name__)

JSON = "application/json"
JSON_LINES = ("application/jsonlines", "application/x-jsonlines")


def create_app(
    use_case: UseCase,
    *,
    lake: Lake | None = None,
    poll_seconds: float = 30.0,
    challenger_share: float | None = None,
    model_uri: str | None = None,
    model_version: str | None = None,
    log_predictions: bool = True,
    flush_seconds: float = 5.0,
) -> FastAPI:
    """The serving app for ``use_case``'s registered model.

    ``model_uri`` serves one fixed model instead of following the aliases (no A/B, no
    reload). ``challenger_share`` overrides the spec's ``serving.challenger_share``.
    """
    share = use_case.serving.challenger_share if challenger_share is None else challenger_share
    service = PredictionService(
        use_case,
        lake=lake,
        share=share,
        model_uri=model_uri,
        model_version=model_version,
        log_predictions=log_predictions,
        flush_seconds=flush_seconds,
    )
    lifespan = _lifespan(service, poll_seconds, fixed_model=bool(model_uri))
    app = FastAPI(title=f"{use_case.name} serving", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.store, app.state.metrics = service.store, service.metrics
    app.state.prediction_log = service.prediction_log
    _add_prediction_routes(app, service)
    _add_operation_routes(app, service)
    return app


def _lifespan(
    service: PredictionService, poll_seconds: float, *, fixed_model: bool
) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]:
    """Load the models, then run the alias poll and the prediction log until shutdown."""
    store, prediction_log = service.store, service.prediction_log

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            await asyncio.to_thread(store.refresh)
        except Exception as exc:
            if fixed_model:  # a container for one model that cannot load it must not pretend to serve
                raise
            # No champion yet (a new platform) or the registry is down: answer 503 until the
            # alias poll (or POST /admin/reload) loads one.
            log.warning("serving %s without a model for now: %s", store.model_name, exc)
        poller = AliasPoller(store, poll_seconds)
        if poll_seconds > 0 and not fixed_model:
            poller.start()
        if prediction_log is not None:
            prediction_log.start()
        try:
            yield
        finally:
            poller.stop()
            if prediction_log is not None:
                await asyncio.to_thread(prediction_log.stop)
            service.batcher.close()

    return lifespan


def _respond(status: int, body: Any, request_id: str) -> Response:
    return Response(
        json.dumps(body), status_code=status, media_type=JSON, headers={"X-Request-Id": request_id}
    )


async def _answer(
    service: PredictionService, request: Request, instances: list[Any], prefix: str | None
) -> Answer:
    headers = request.headers
    return await service.answer(
        instances,
        prefix,
        request_id=headers.get("x-request-id"),
        key=headers.get("x-request-key"),
        forced=headers.get("x-variant"),
    )


def _add_prediction_routes(app: FastAPI, service: PredictionService) -> None:
    """``POST /predict`` (JSON) and ``POST /invocations`` (JSON, or JSON Lines in and out)."""

    @app.post("/predict")
    async def predict(request: Request) -> Response:
        try:
            instances, prefix = instances_of(parse_json(await request.body()))
        except Rejected as exc:
            return _respond(exc.status, {"detail": exc.detail}, request.headers.get("x-request-id") or "")
        answer = await _answer(service, request, instances, prefix)
        return _respond(answer.status, answer.body, answer.request_id)

    @app.post("/invocations")
    async def invocations(request: Request) -> Response:
        content_type = request.headers.get("content-type", JSON).split(";")[0].strip()
        if content_type not in JSON_LINES:
            return await predict(request)
        try:
            instances = parse_json_lines(await request.body())
        except Rejected as exc:
            return _respond(exc.status, {"detail": exc.detail}, "")
        answer = await _answer(service, request, instances, "line")
        if answer.status != 200:
            return _respond(answer.status, answer.body, answer.request_id)
        text = "".join(json.dumps(a) + "\n" for a in answer.predictions or [])
        return Response(text, media_type="application/jsonlines")


def _add_operation_routes(app: FastAPI, service: PredictionService) -> None:
    """``GET /health``, ``GET /ping``, ``GET /metrics`` and ``POST /admin/reload``."""
    store = service.store

    @app.get("/health")
    async def health() -> Response:
        """Liveness and what is served; ``status`` is ``no_model`` until a champion loads."""
        return _respond(200, service.health(), "")

    @app.get("/ping")
    async def ping() -> Response:
        return Response(status_code=200 if store.served is not None else 503)

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(service.metrics.render(store), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.post("/admin/reload")
    async def reload() -> Response:
        try:
            changed = await asyncio.to_thread(store.refresh)
        except Exception as exc:
            served = store.served
            still = served.champion.ref.version if served else None
            detail = f"reload failed: {exc}; still serving champion version {still}"
            return _respond(503, {"detail": detail}, "")
        return _respond(200, {**service.health(), "changed": changed}, "")
