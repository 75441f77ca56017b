"""What one prediction request goes through, apart from HTTP.

Pick the variant (sticky per request key, or forced for smoke tests), decode the body and
check its trips against that model's fields (on a worker thread when the body is large, so
the event loop stays free), predict them in the micro-batch, refuse answers that are not
finite numbers, then count the request per variant and write it to the prediction log,
failures included. The routes of :mod:`mlplatform.serving.routes` only turn HTTP into a
:class:`Call` and the :class:`Answer` back into HTTP; :meth:`PredictionService.health` is
what ``/health`` says.

The micro-batcher (:class:`MicroBatcher`): while one prediction runs, new requests queue;
the next call takes all of them at once (up to ``MAX_ROWS_PER_CALL`` rows), so a busy
server does one model call for many requests instead of one each, without ever waiting for
a batch to fill. A request of at most ``LEAN_MAX_ROWS`` trips is answered at once on the
event loop by the model's lean path (:mod:`mlplatform.serving.lean`) when it has one;
larger requests, and a model without one, take the logged model's ``predict``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel

from mlplatform.adapters.lake import Lake
from mlplatform.core.spec import UseCase
from mlplatform.serving.schema import (
    OFF_LOOP_BYTES,
    Batch,
    Format,
    PredictionAnswer,
    Rejected,
    decode,
    encode,
    field_error,
    frame_of,
)
from mlplatform.serving.store import LoadedModel, ModelStore, Readiness, assign_variant
from mlplatform.serving.telemetry import Metrics, PredictionLog, answer_rows, failure_row

log = logging.getLogger(__name__)

VARIANTS = ("champion", "challenger")
MAX_ROWS_PER_CALL = 4096
LEAN_MAX_ROWS = 32  # calls of up to this many trips take the model's lean path (serving.lean), if it has one
T = TypeVar("T")
# One answer per trip: {"prediction": x}, or {"label", "probability"} for a classifier.
Answers = list[dict[str, float | str]]
# One queued request: the model, its checked columns, its row count, and where its answers go.
Pending = tuple[LoadedModel, dict[str, list[Any]], int, "asyncio.Future[Answers]"]


@dataclass(frozen=True)
class Call:
    """One prediction request as the routes hand it over."""

    body: bytes
    sent: Format  # the body's format
    answer_in: Format  # the format the caller accepts
    request_id: str
    key: str | None = None  # keeps a caller on one variant
    forced: str | None = None  # picks the variant outright (smoke tests)


@dataclass(frozen=True)
class Answer:
    """The outcome of one request: HTTP status, the encoded body and its media type."""

    status: int
    content: bytes
    media_type: str
    request_id: str


class VersionServed(BaseModel):
    """One loaded version as ``/health`` describes it."""

    version: str
    uri: str
    fast_path: str


class Health(BaseModel):
    """What ``/health`` says: what is served (``status`` is ``no_model`` until a champion
    loads; only the fields set are sent), what ``/ready`` says, and ``note`` when the last
    look at the registry failed while a model is served."""

    status: str
    model: str
    champion: VersionServed | None
    challenger: VersionServed | None
    challenger_share: float = 0.0
    since: str | None = None
    unit: str | None = None
    inputs: list[str] | None = None
    readiness: Readiness
    note: str | None = None


class PredictionService:
    """The models, the batcher, the metrics and the prediction log of one use case."""

    def __init__(
        self,
        use_case: UseCase,
        *,
        lake: Lake | None,
        share: float,
        model_uri: str | None,
        model_version: str | None,
        log_predictions: bool,
        flush_seconds: float,
    ) -> None:
        self.use_case, self.share, self.unit = use_case, share, use_case.target.unit
        self.store = ModelStore(
            use_case, fixed_uri=model_uri, fixed_version=model_version, follow_challenger=share > 0
        )
        self.metrics = Metrics(use_case.model_name)
        self.metrics.watch(self.store)
        self.batcher = MicroBatcher()
        self.prediction_log = (
            PredictionLog(lake or Lake(), use_case.name, self.metrics, flush_seconds)
            if log_predictions
            else None
        )

    def health(self) -> Health:
        """Liveness and what is served; ``status`` is ``no_model`` until a champion loads.

        ``readiness`` is what ``/ready`` says; ``note`` says when the last look at the
        registry failed while a model is served (it keeps being served).
        """
        served = self.store.served
        name = self.use_case.model_name
        readiness = self.store.readiness()
        if served is None:
            return Health(status="no_model", model=name, champion=None, challenger=None, readiness=readiness)
        problem = readiness.last_error
        note = (
            None
            if problem is None
            else f"the last look at the registry failed at {problem.at} ({problem.reason}: "
            f"{problem.detail}); still serving champion version {served.champion.ref.version}"
        )
        health = Health(
            status="ok",
            model=name,
            champion=_describe(served.champion),
            challenger=_describe(served.challenger),
            challenger_share=self.share if served.challenger else 0.0,
            since=served.since,
            unit=self.unit,
            inputs=[f.name for f in served.champion.fields],
            readiness=readiness,
        )
        return health if note is None else health.model_copy(update={"note": note})

    async def answer(self, call: Call) -> Answer:
        """Answer ``call``; every outcome is counted and logged, a refusal is a 4xx naming why."""
        started = time.perf_counter()
        model, variant, batch = None, None, Batch([], None)
        try:
            model, variant = self._pick(call)
            batch = await _off_loop(len(call.body), decode, call.body, call.sent, model.fields)
            columns = await _off_loop(len(call.body), model.validator.columns, batch.instances, batch.prefix)
            answers = await self._predict(model, columns, len(batch.instances), call.request_id)
            _refuse_non_finite(answers, batch.prefix)
            return await self._answered(call, model, variant, columns, answers, started)
        except Rejected as exc:
            return self.refuse(call.request_id, exc, started, model, variant, batch.instances)

    async def _predict(
        self, model: LoadedModel, columns: dict[str, list[Any]], rows: int, request_id: str
    ) -> Answers:
        """The model's answers; a failing model is a 500 that says so (and is logged)."""
        try:
            return await self.batcher.predict(model, columns, rows)
        except Exception as exc:
            log.exception("model %s failed on request %s", model.ref.uri, request_id)
            raise Rejected(500, f"the model failed: {str(exc)[:300]}") from None

    def _pick(self, call: Call) -> tuple[LoadedModel, str]:
        served = self.store.served
        if served is None:
            readiness = self.store.readiness()
            raise Rejected(
                503,
                f"no version of {self.use_case.model_name} is loaded yet ({readiness.reason}: "
                f"{readiness.detail}); GET /ready says when one is",
            )
        if call.forced not in (None, *VARIANTS):
            raise Rejected(422, field_error("X-Variant", "expected champion or challenger"))
        variant = call.forced or assign_variant(call.key or call.request_id, self.share)
        if variant == "challenger" and served.challenger is not None:
            return served.challenger, variant
        return served.champion, "champion"

    async def _answered(
        self,
        call: Call,
        model: LoadedModel,
        variant: str,
        columns: dict[str, list[Any]],
        answers: Answers,
        started: float,
    ) -> Answer:
        rows, version = len(answers), model.ref.version
        body = PredictionAnswer(
            request_id=call.request_id,
            model=model.ref.name,
            version=version,
            variant=variant,
            unit=self.unit,
            predictions=answers,
        )
        content = await _off_loop(rows * 64, encode, body, call.answer_in)
        latency = time.perf_counter() - started
        self.metrics.observe_variant(variant, version, 200, rows)
        if self.prediction_log is not None:
            logged = answer_rows(
                call.request_id, variant, model.ref.name, version, latency * 1000, columns, answers
            )
            self.prediction_log.add(logged, rows)
        return Answer(200, content, call.answer_in.value, call.request_id)

    def refuse(
        self,
        request_id: str,
        refusal: Rejected,
        started: float,
        model: LoadedModel | None = None,
        variant: str | None = None,
        instances: list[Any] | None = None,
    ) -> Answer:
        """The JSON error answer of ``refusal``, counted per variant and in the prediction log."""
        if model is not None and variant is not None:
            self.metrics.observe_variant(variant, model.ref.version, refusal.status, 0)
        self.log_failure(request_id, refusal.status, started, model, variant, instances or [])
        content = json.dumps({"detail": refusal.detail, "request_id": request_id}).encode()
        return Answer(refusal.status, content, Format.JSON.value, request_id)

    def log_failure(
        self,
        request_id: str,
        status: int,
        started: float,
        model: LoadedModel | None = None,
        variant: str | None = None,
        instances: list[Any] | None = None,
    ) -> None:
        """One log row for a failed request, so monitoring counts it in the error rate."""
        if self.prediction_log is None:
            return
        name = model.ref.name if model is not None else self.use_case.model_name
        version = model.ref.version if model is not None else None
        latency_ms = (time.perf_counter() - started) * 1000
        row = failure_row(request_id, instances or [], variant, name, version, status, latency_ms)
        self.prediction_log.add(row, 1)


def _refuse_non_finite(answers: Answers, prefix: str | None) -> None:
    """A 422 naming the trips whose prediction is not a finite number (never sent as JSON)."""
    bad = [
        i
        for i, a in enumerate(answers)
        if any(isinstance(v, float) and not math.isfinite(v) for v in a.values())
    ]
    if bad:
        why = "the model gives no finite prediction for this trip; check its values"
        raise Rejected(
            422, [{"field": f"{prefix}[{i}]" if prefix else "body", "error": why} for i in bad[:20]]
        )


async def _off_loop(size: int, work: Callable[..., T], *args: Any) -> T:
    """``work(*args)``: on a worker thread when ``size`` is large, inline when small."""
    if size > OFF_LOOP_BYTES:
        return await asyncio.to_thread(work, *args)
    return work(*args)


def _describe(model: LoadedModel | None) -> VersionServed | None:
    if model is None:
        return None
    return VersionServed(version=model.ref.version, uri=model.uri, fast_path=model.lean_status)


# ---------------------------------------------------------------------------- the micro-batcher


class MicroBatcher:
    """Runs predictions on one worker thread, merging requests that queued meanwhile."""

    def __init__(self) -> None:
        self._pending: list[Pending] = []
        self._running = False
        self._task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="predict", initializer=_one_native_thread)

    async def predict(self, model: LoadedModel, columns: dict[str, list[Any]], rows: int) -> Answers:
        """The answers for ``rows`` trips of checked ``columns``, one dict per trip."""
        if model.lean is not None and rows <= LEAN_MAX_ROWS:
            # Sub-millisecond work: answered on the event loop. Handing it to the predict
            # thread would cost more than the work (the GIL changes hands every 5 ms at best).
            answers = _lean_answers(model, columns)
            if answers is not None:
                return answers
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Answers] = loop.create_future()
        self._pending.append((model, columns, rows, future))
        if not self._running:
            self._running = True
            self._task = loop.create_task(self._drain())
        return await future

    def _next_group(self) -> tuple[LoadedModel, list[Pending]]:
        """Take the queued requests for the first one's model, up to a call's rows."""
        group, rows, rest = [], 0, []
        model = self._pending[0][0]
        for item in self._pending:
            if item[0] is model and (rows == 0 or rows + item[2] <= MAX_ROWS_PER_CALL):
                group.append(item)
                rows += item[2]
            else:
                rest.append(item)
        self._pending = rest
        return model, group

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                model, group = self._next_group()
                try:
                    answers = await loop.run_in_executor(self._executor, _predict_group, model, group)
                except Exception as exc:
                    for *_, future in group:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                start = 0
                for _, _, n, future in group:
                    if not future.done():
                        future.set_result(answers[start : start + n])
                    start += n
        finally:
            self._running = False

    def close(self) -> None:
        self._executor.shutdown(wait=True)


def _one_native_thread() -> None:
    """Keep the model's native code (OpenMP, BLAS) on the predict thread alone.

    Requests are small: a pool of spinning OpenMP threads costs more than it saves there,
    and it would compete with the event loop for the same cores.
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)


def _lean_answers(model: LoadedModel, columns: dict[str, list[Any]]) -> Answers | None:
    """The lean path's answers; ``None`` when it declines (or fails: the normal path answers then)."""
    if model.lean is None:
        return None
    try:
        return model.lean.answers(columns)
    except Exception:  # never an error the normal path would not give
        log.exception("the lean path of %s failed; the normal path answers", model.ref.uri)
        return None


def _predict_group(model: LoadedModel, group: list[Pending]) -> Answers:
    merged: dict[str, list[Any]] = {f.name: [] for f in model.fields}
    for _, columns, _, _ in group:
        for name, values in columns.items():
            merged[name].extend(values)
    out = model.predict(frame_of(merged, model.fields))
    if model.task == "regression":
        return [{"prediction": float(v)} for v in out["prediction"].to_numpy()]
    return [
        {"label": str(label), "probability": float(p)}
        for label, p in zip(out["label"].to_numpy(), out["probability"].to_numpy(), strict=True)
    ]
