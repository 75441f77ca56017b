"""The serving app over HTTP: its routes, their OpenAPI document, and the guard around them.

:func:`create_app` builds the FastAPI app from its parts: the service (models, batcher,
metrics, prediction log), a lifespan that starts the background threads (the model loader
and the prediction log) without waiting for a model, the :class:`Guard` around everything,
the prediction routes (``/predict``, and ``/invocations`` of the SageMaker container
contract) and the operation routes (``/health`` liveness, ``/ready`` and ``/ping``
readiness, ``/metrics``, ``/admin/reload``). :func:`app_from_env` is the same app configured
from the environment: the uvicorn factory each worker of ``python -m mlplatform.serving``
runs (also ``mlplatform.serving:app_from_env``).

The OpenAPI document. The bodies are read by hand (size limit, parsing off the event loop,
several content types), so FastAPI cannot derive their schema from a parameter;
:func:`live_document` describes them from the same pydantic trip model that validates them
(:func:`~mlplatform.serving.schema.trip_model`), so ``/docs`` and ``/openapi.json`` show
what ``/predict`` takes. The fields are the loaded champion's (its input signature) once one
is loaded, the spec's feature columns before, and for the first seconds, until the model
loader has imported MLflow (which the spec's columns need), a generic body: the document is
built on demand, so it answers from the app's first second, never waits for an import, and
follows the version served.

The guard (:class:`Guard`, an ASGI middleware) counts every request in ``/metrics`` by route
and status with its latency, and turns an exception nothing else handled into a JSON 500
that names the request id (also written to the prediction log for the prediction routes).
The 500 is a complete answer, so the server keeps the connection open for the client's next
request instead of dropping it.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hmac
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from typing import Annotated, Any, TypeVar

from fastapi import Depends, FastAPI, Request, Response
from fastapi.openapi.models import MediaType, RequestBody, Schema
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from pydantic import create_model as pydantic_model
from pydantic.json_schema import models_json_schema
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mlplatform.adapters.lake import Lake
from mlplatform.core.spec import UseCase, load_spec
from mlplatform.serving.process import LOG_FORMAT, REFERENCE_USE_CASE, REGISTRY_CALL_LIMITS
from mlplatform.serving.schema import (
    DEFAULT_MAX_BODY_BYTES,
    MAX_ROWS,
    ErrorAnswer,
    Format,
    InputField,
    PredictionAnswer,
    Rejected,
    answer_format,
    example_trip,
    max_body_bytes,
    request_format,
    spec_fields,
    too_large,
    trip_model,
)
from mlplatform.serving.service import Call, PredictionService
from mlplatform.serving.store import ModelLoader, ModelStore
from mlplatform.serving.telemetry import CONTENT_TYPE

log = logging.getLogger(__name__)

ADMIN_TOKEN_VARIABLE = "MLPLATFORM_SERVING_ADMIN_TOKEN"
PREDICTION_ROUTES = ("/predict", "/invocations")
REQUEST_ID_HEADER = b"x-request-id"
MAX_REQUEST_ID_CHARS = 128
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
    app.openapi = live_document(app, document_fields)  # type: ignore[method-assign]
    return app


def app_from_env() -> FastAPI:
    """The app configured from the environment (what the serving image runs).

    Without ``MLPLATFORM_USE_CASE`` it serves the reference use case. MLflow's HTTP calls
    in this process are bounded by :data:`~mlplatform.serving.process.REGISTRY_CALL_LIMITS`
    unless the environment sets them.
    """
    for variable, value in REGISTRY_CALL_LIMITS.items():
        os.environ.setdefault(variable, value)
    # A worker process of its own (several workers) has not configured logging yet: no-op otherwise.
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    name = os.getenv("MLPLATFORM_USE_CASE") or REFERENCE_USE_CASE
    return create_app(
        load_spec(name),
        poll_seconds=float(os.getenv("MLPLATFORM_SERVING_POLL_SECONDS", "30")),
        model_uri=os.getenv("MLPLATFORM_MODEL_URI") or None,
        model_version=os.getenv("MLPLATFORM_MODEL_VERSION") or None,
        log_predictions=os.getenv("MLPLATFORM_SERVING_LOG_PREDICTIONS", "1") == "1",
        admin_token=os.getenv(ADMIN_TOKEN_VARIABLE, "").strip() or None,
        max_body_bytes=max_body_bytes(),
    )


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

    # The request bodies are described by live_document, from the fields served now.
    @app.post("/predict", responses=ANSWERS, tags=["prediction"])
    async def predict(request: Request) -> Response:
        """Predict one trip or a batch (``{"instances": [...]}``), in the model's unit.

        Headers: ``X-Request-Key`` keeps a caller on one variant, ``X-Request-Id`` names the
        request in the prediction log, ``X-Variant`` forces a variant (smoke tests).
        """
        return await serve(request, negotiate=False)

    @app.post("/invocations", responses=ERRORS, tags=["prediction"])
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
        return _respond(200, service.health().model_dump(exclude_unset=True))

    @app.get("/ready", tags=["operation"])
    async def ready() -> Response:
        """Readiness: 200 once a model is loaded; 503 before, with the reason (``starting``,
        ``registry_unreachable``, ``registry_error``, ``no_champion``, ``artifacts_unavailable``,
        ``model_does_not_predict``), the last error and the next retry."""
        readiness, served = store.readiness(), store.served
        body = readiness.model_dump()
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
        return _respond(200, {**service.health().model_dump(exclude_unset=True), "changed": changed})


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


# ---------------------------------------------------------------------------- the OpenAPI document

REF = "#/components/schemas/{model}"
ERRORS: dict[int | str, dict[str, type[BaseModel] | str]] = {
    status: {"model": ErrorAnswer, "description": why}
    for status, why in {
        400: "The body is not JSON (or JSON Lines, or CSV).",
        413: f"The body is over the size limit or has more than {MAX_ROWS} trips.",
        415: "A content type the route does not read.",
        422: "The trips do not fit the model's inputs: each wrong field is named.",
        503: "No model is loaded yet.",
    }.items()
}
ANSWERS: dict[int | str, dict[str, type[BaseModel] | str]] = {200: {"model": PredictionAnswer}, **ERRORS}
GENERIC_TRIP = (
    'A trip (a JSON object of the model\'s input fields) or a batch ({"instances": [trips]}). '
    "The app is still starting: reload this page in a few seconds for the trip's fields."
)


def _json_media(fields: Sequence[InputField]) -> MediaType:
    trip = example_trip(fields)
    refs = [Schema.model_validate({"$ref": REF.format(model=name)}) for name in ("Trip", "TripBatch")]
    return MediaType(
        schema=Schema(oneOf=refs),
        examples={"one trip": {"value": trip}, "a batch": {"value": {"instances": [trip, trip]}}},
    )


def _text_media(description: str, example: str | None = None) -> MediaType:
    return MediaType(schema=Schema(type="string", description=description), example=example)


def request_bodies(fields: Sequence[InputField] | None) -> dict[str, RequestBody]:
    """The request bodies of ``POST /predict`` (one trip or ``{"instances": [trips]}``) and
    ``POST /invocations`` (JSON, JSON Lines or CSV) by path; ``None``: the fields are not
    known yet, a generic description."""
    if fields is None:
        trip = MediaType(schema=Schema(type="object", description=GENERIC_TRIP))
        lines = _text_media("One trip object per line, or CSV lines.")
        return {
            "/predict": RequestBody(required=True, content={Format.JSON.value: trip}),
            "/invocations": RequestBody(
                required=True,
                content={Format.JSON.value: trip, Format.JSON_LINES.value: lines, Format.CSV.value: lines},
            ),
        }
    trip_example = example_trip(fields)
    columns = ", ".join(f.name for f in fields)
    csv_line = ",".join(str(trip_example.get(f.name, "")) for f in fields)
    invocations = {
        Format.JSON.value: _json_media(fields),
        Format.JSON_LINES.value: _text_media(
            "One Trip object per line.", "\n".join([json.dumps(trip_example)] * 2) + "\n"
        ),
        Format.CSV.value: _text_media(
            f"No header; one trip per line, columns: {columns}.", "\n".join([csv_line] * 2) + "\n"
        ),
    }
    return {
        "/predict": RequestBody(required=True, content={Format.JSON.value: _json_media(fields)}),
        "/invocations": RequestBody(required=True, content=invocations),
    }


def trip_schemas(fields: Sequence[InputField]) -> dict[str, Any]:
    """The ``Trip`` and ``TripBatch`` component schemas."""
    trip = trip_model(fields)
    batch = pydantic_model("TripBatch", instances=(list[trip], Field(min_length=1, max_length=MAX_ROWS)))  # type: ignore[valid-type]
    _, definitions = models_json_schema([(trip, "validation"), (batch, "validation")], ref_template=REF)
    return definitions["$defs"]  # type: ignore[no-any-return]


def live_document(
    app: FastAPI, fields_now: Callable[[], tuple[str, Sequence[InputField] | None]]
) -> Callable[[], dict[str, Any]]:
    """``app.openapi``: FastAPI's document with the prediction bodies of the fields served now.

    ``fields_now`` returns a key (what the fields come from, e.g. a version) and the
    fields, ``None`` while they are not known yet; the document is built again only when
    the key changes.
    """
    generate = app.openapi
    built: dict[str, dict[str, Any]] = {}

    def openapi() -> dict[str, Any]:
        key, fields = fields_now()
        if key not in built:
            app.openapi_schema = None
            document = copy.deepcopy(generate())
            paths = document.get("paths", {})
            if fields is not None:
                document.setdefault("components", {}).setdefault("schemas", {}).update(trip_schemas(fields))
            for path, body in request_bodies(fields).items():
                if "post" in paths.get(path, {}):
                    paths[path]["post"]["requestBody"] = body.model_dump(by_alias=True, exclude_none=True)
            built.clear()
            built[key] = document
        app.openapi_schema = built[key]
        return built[key]

    return openapi


# ---------------------------------------------------------------------------- the guard


def request_id_of(headers: Any) -> str:
    """The caller's ``X-Request-Id`` (cut to a sane length), or a new one."""
    given = headers.get("x-request-id") or ""
    return given[:MAX_REQUEST_ID_CHARS] or uuid.uuid4().hex


class Guard:
    """Counts each request by route and status; answers an unhandled exception with a 500."""

    def __init__(self, app: ASGIApp, service: PredictionService, prediction_routes: Collection[str]) -> None:
        self.app, self.service, self.prediction_routes = app, service, prediction_routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status: int | None = None

        async def send_counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_counted)
        except Exception:
            route = _route_of(scope)
            log.exception("unexpected error on %s %s", scope.get("method"), route)
            if status is None:  # nothing sent yet: answer, so the connection stays usable
                status = 500
                await self._unexpected(scope, send, route, started)
        finally:
            self.service.metrics.observe_request(
                _route_of(scope), status or 500, time.perf_counter() - started
            )

    async def _unexpected(self, scope: Scope, send: Send, route: str, started: float) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        request_id = request_id_of(headers)
        if route in self.prediction_routes:
            self.service.log_failure(request_id, 500, started)
        body = json.dumps(
            {
                "detail": f"unexpected error; the server log has it under request {request_id}",
                "request_id": request_id,
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 500,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (REQUEST_ID_HEADER, request_id.encode("latin-1", "replace")),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _route_of(scope: Scope) -> str:
    """The route template that matched (bounded label values), or ``unmatched``."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else "unmatched"
