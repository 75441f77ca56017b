"""The serving app's routes: HTTP in, a :class:`~mlplatform.serving.service.PredictionService` call, HTTP out.

``create_app`` builds the FastAPI app from its parts: the service (models, batcher,
metrics, prediction log), a lifespan that starts the background threads (the model loader
and the prediction log) without waiting for a model, the
:class:`~mlplatform.serving.guard.Guard` around everything, the prediction routes
(``/predict``, and ``/invocations`` of the SageMaker container contract) and the
operation routes (``/health`` liveness, ``/ready`` and ``/ping`` readiness, ``/metrics``,
``/admin/reload``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, FastAPI, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from mlplatform.adapters.lake import Lake
from mlplatform.core.spec import UseCase
from mlplatform.serving import docs
from mlplatform.serving.bodies import DEFAULT_MAX_BODY_BYTES, Format, answer_format, request_format, too_large
from mlplatform.serving.guard import Guard, request_id_of
from mlplatform.serving.metrics import CONTENT_TYPE
from mlplatform.serving.schema import InputField, Rejected, spec_fields
from mlplatform.serving.service import Call, PredictionService
from mlplatform.serving.store import ModelLoader, ModelStore

log = logging.getLogger(__name__)

ADMIN_TOKEN_VARIABLE = "MLPLATFORM_SERVING_ADMIN_TOKEN"
PREDICTION_ROUTES = ("/predict", "/invocations")
T = TypeVar("T")
_bearer = HTTPBearer(auto_error=False, description=f"The token in {ADMIN_TOKEN_VARIABLE}.")


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
    admin_token: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> FastAPI:
    """The serving app for ``use_case``'s registered model.

    ``model_uri`` serves one fixed model instead of following the aliases (no A/B, no
    reload). ``challenger_share`` overrides the spec's ``serving.challenger_share``.
    ``admin_token`` opens the admin routes to ``Authorization: Bearer <token>`` (without
    it they answer 403). A request body is at most ``max_body_bytes``.
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
    document_fields = DocumentFields(service.store, use_case)
    lifespan = _lifespan(service, poll_seconds, document_fields.prepare, fixed_model=bool(model_uri))
    app = FastAPI(title=f"{use_case.name} serving", description=use_case.description, lifespan=lifespan)
    app.state.store, app.state.metrics = service.store, service.metrics
    app.state.prediction_log = service.prediction_log
    app.add_middleware(Guard, service=service, prediction_routes=PREDICTION_ROUTES)
    _add_prediction_routes(app, service, max_body_bytes)
    _add_operation_routes(app, service, admin_token)
    app.openapi = docs.live_document(app, document_fields)  # type: ignore[method-assign]
    return app


class DocumentFields:
    """The fields ``/docs`` describes: the champion's once one is loaded, else the spec's once
    :meth:`prepare` has run (the model loader runs it first: the spec's columns import MLflow,
    which the event loop must not wait for), else none yet (a generic body)."""

    def __init__(self, store: ModelStore, use_case: UseCase) -> None:
        self.store, self.use_case = store, use_case
        self.from_spec: list[InputField] | None = None

    def prepare(self) -> None:
        self.from_spec = spec_fields(self.use_case)

    def __call__(self) -> tuple[str, list[InputField] | None]:
        served = self.store.served
        if served is not None:
            return f"version {served.champion.ref.version}", served.champion.fields
        if self.from_spec is not None:
            return "spec", self.from_spec
        return "generic", None


def _lifespan(
    service: PredictionService, poll_seconds: float, prepare: Callable[[], None], *, fixed_model: bool
) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]:
    """Start the model loader and the prediction log; stop them at shutdown.

    Startup does not wait for a model: the app listens at once, ``/health`` answers, and
    ``/ready`` (``/ping``) say 503 with the reason until the loader has loaded one. A fixed
    model that cannot load keeps them at 503 (SageMaker's health check fails the
    deployment), it does not crash the container into a restart loop.
    """
    store, prediction_log = service.store, service.prediction_log

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loader = ModelLoader(store, poll_seconds, follow=not fixed_model, prepare=prepare)
        loader.start()
        if prediction_log is not None:
            prediction_log.start()
        try:
            yield
        finally:
            loader.stop()
            if prediction_log is not None:
                await asyncio.to_thread(prediction_log.stop)
            service.batcher.close()

    return lifespan


def _respond(status: int, body: Any, request_id: str = "", headers: dict[str, str] | None = None) -> Response:
    extra = {"X-Request-Id": request_id} if request_id else {}
    return Response(
        json.dumps(body),
        status_code=status,
        media_type=Format.JSON.value,
        headers={**extra, **(headers or {})},
    )


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused (413) as soon as it is known to be over ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _add_prediction_routes(app: FastAPI, service: PredictionService, max_body_bytes: int) -> None:
    """``POST /predict`` (JSON) and ``POST /invocations`` (JSON, JSON Lines or CSV, answered
    in the ``Accept`` type)."""

    async def serve(request: Request, *, negotiate: bool) -> Response:
        started, headers = time.perf_counter(), request.headers
        request_id = request_id_of(headers)
        try:
            sent = request_format(headers.get("content-type")) if negotiate else Format.JSON
            answer_in = answer_format(headers.get("accept"), sent) if negotiate else Format.JSON
            body = await read_body(request, max_body_bytes)
        except Rejected as refusal:
            answer = service.refuse(request_id, refusal, started)
        else:
            call = Call(
                body, sent, answer_in, request_id, headers.get("x-request-key"), headers.get("x-variant")
            )
            answer = await service.answer(call)
        return Response(
            answer.content, answer.status, media_type=answer.media_type, headers={"X-Request-Id": request_id}
        )

    # The request bodies are described by docs.live_document, from the fields served now.
    @app.post("/predict", responses=docs.ANSWERS, tags=["prediction"])
    async def predict(request: Request) -> Response:
        """Predict one trip or a batch (``{"instances": [...]}``), in the model's unit.

        Headers: ``X-Request-Key`` keeps a caller on one variant, ``X-Request-Id`` names the
        request in the prediction log, ``X-Variant`` forces a variant (smoke tests).
        """
        return await serve(request, negotiate=False)

    @app.post("/invocations", responses=docs.ERRORS, tags=["prediction"])
    async def invocations(request: Request) -> Response:
        """SageMaker's prediction route: JSON like ``/predict``, JSON Lines or CSV (no header),
        answered in the ``Accept`` type (else the type sent): one answer per line for JSON
        Lines and CSV."""
        return await serve(request, negotiate=True)


def _add_operation_routes(app: FastAPI, service: PredictionService, admin_token: str | None) -> None:
    """``GET /health``, ``GET /ready``, ``GET /ping``, ``GET /metrics`` and ``POST /admin/reload``."""
    store = service.store

    @app.get("/health", tags=["operation"])
    async def health() -> Response:
        """Liveness: always 200, with what is served (``status`` is ``no_model`` until a champion
        loads) and what the model loader last ran into (``readiness``)."""
        return _respond(200, service.health())

    @app.get("/ready", tags=["operation"])
    async def ready() -> Response:
        """Readiness: 200 once a model is loaded; 503 before, with the reason (``starting``,
        ``registry_unreachable``, ``registry_error``, ``no_champion``, ``artifacts_unavailable``,
        ``model_does_not_predict``), the last error and the next retry."""
        readiness, served = store.readiness(), store.served
        body = readiness.to_dict()
        if served is not None:  # which path predicts: the lean one, or the normal one and why
            body["fast_path"] = served.champion.lean_status
        return _respond(200 if readiness.ready else 503, body)

    @app.get("/ping", tags=["operation"])
    async def ping() -> Response:
        """SageMaker's health check: 200 once a model is loaded (by every worker), 503 before."""
        return Response(status_code=200 if store.readiness().ready else 503)

    @app.get("/metrics", tags=["operation"])
    async def prometheus() -> Response:
        """The Prometheus exposition of the app, the process and the Python runtime."""
        return Response(service.metrics.render(), media_type=CONTENT_TYPE)

    @app.post("/admin/reload", tags=["admin"])
    async def reload(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Response:
        """Look at the registry aliases now (the deploy DAG calls it). Needs the admin token."""
        refusal = _admin_refusal(admin_token, credentials)
        if refusal is not None:
            return refusal
        try:
            store.workers.ask_reload()  # the other workers look at the registry too
            changed = await _on_daemon_thread(store.refresh)
        except Exception as exc:
            served = store.served
            still = served.champion.ref.version if served else None
            return _respond(503, {"detail": f"reload failed: {exc}; still serving champion version {still}"})
        return _respond(200, {**service.health(), "changed": changed})


async def _on_daemon_thread(work: Callable[[], T]) -> T:
    """``work()`` on a daemon thread of its own: unlike ``asyncio.to_thread`` (whose pool the
    interpreter joins at exit), a registry call that hangs cannot hold up the process's exit."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def run() -> None:
        result, error = None, None
        try:
            result = work()
        except BaseException as exc:
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile (shutdown)
            loop.call_soon_threadsafe(_settle, future, result, error)

    threading.Thread(target=run, name="admin-reload", daemon=True).start()
    return await future


def _settle(future: asyncio.Future[T], result: T | None, error: BaseException | None) -> None:
    if future.done():  # the request was cancelled meanwhile (shutdown)
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)  # type: ignore[arg-type]


def _admin_refusal(token: str | None, credentials: HTTPAuthorizationCredentials | None) -> Response | None:
    """403 when the admin routes are off (no token configured), 401 for a missing or wrong token."""
    if not token:
        detail = (
            f"the admin routes are off: start the app with {ADMIN_TOKEN_VARIABLE} set and send "
            "'Authorization: Bearer <token>'"
        )
        return _respond(403, {"detail": detail})
    given = credentials.credentials if credentials is not None else ""
    if not hmac.compare_digest(given.encode(), token.encode()):
        detail = "send the admin token as 'Authorization: Bearer <token>'"
        return _respond(401, {"detail": detail}, headers={"WWW-Authenticate": "Bearer"})
    return None
