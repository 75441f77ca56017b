"""What one prediction request goes through, apart from HTTP.

Pick the variant (sticky per request key, or forced for smoke tests), decode the body and
check its trips against that model's fields (on a worker thread when the body is large, so
the event loop stays free), predict them in the micro-batch, refuse answers that are not
finite numbers, then count the request per variant and write it to the prediction log,
failures included. The routes of :mod:`mlplatform.serving.routes` only turn HTTP into a
:class:`Call` and the :class:`Answer` back into HTTP.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from mlplatform.adapters.lake import Lake
from mlplatform.core.spec import UseCase
from mlplatform.serving.batcher import MicroBatcher
from mlplatform.serving.bodies import OFF_LOOP_BYTES, Batch, Format, decode, encode
from mlplatform.serving.log import PredictionLog, answer_rows, failure_row
from mlplatform.serving.metrics import Metrics
from mlplatform.serving.schema import Rejected, field_error
from mlplatform.serving.store import LoadedModel, ModelStore, assign_variant

log = logging.getLogger(__name__)

VARIANTS = ("champion", "challenger")
T = TypeVar("T")


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

    def health(self) -> dict[str, Any]:
        """Liveness and what is served; ``status`` is ``no_model`` until a champion loads.

        ``readiness`` is what ``/ready`` says; ``note`` says when the last look at the
        registry failed while a model is served (it keeps being served).
        """
        served = self.store.served
        name = self.use_case.model_name
        readiness = self.store.readiness()
        if served is None:
            return {
                "status": "no_model",
                "model": name,
                "champion": None,
                "challenger": None,
                "readiness": readiness.to_dict(),
            }
        health = {
            "status": "ok",
            "model": name,
            "champion": _describe(served.champion),
            "challenger": _describe(served.challenger),
            "challenger_share": self.share if served.challenger else 0.0,
            "since": served.since,
            "unit": self.unit,
            "inputs": [f.name for f in served.champion.fields],
            "readiness": readiness.to_dict(),
        }
        if readiness.problem is not None:
            problem = readiness.problem
            health["note"] = (
                f"the last look at the registry failed at {problem.at} ({problem.reason}: {problem.detail}); "
                f"still serving champion version {served.champion.ref.version}"
            )
        return health

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
    ) -> list[dict[str, Any]]:
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
        answers: list[dict[str, Any]],
        started: float,
    ) -> Answer:
        rows, version = len(answers), model.ref.version
        body = {
            "request_id": call.request_id,
            "model": model.ref.name,
            "version": version,
            "variant": variant,
            "unit": self.unit,
            "predictions": answers,
        }
        content = await _off_loop(rows * 64, encode, body, answers, call.answer_in)
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


def _refuse_non_finite(answers: list[dict[str, Any]], prefix: str | None) -> None:
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


def _describe(model: LoadedModel | None) -> dict[str, Any] | None:
    if model is None:
        return None
    return {"version": model.ref.version, "uri": model.uri, "fast_path": model.lean_status}
