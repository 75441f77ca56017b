"""What one prediction request goes through, apart from HTTP.

Pick the variant (sticky per request key, or forced for smoke tests), check the trips
against that model's signature, predict them in the micro-batch, then count the request in
the metrics and write it to the prediction log, failures included. The routes of
:mod:`mlplatform.serving.routes` only turn HTTP into these calls and the results back.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

from mlplatform.adapters.lake import Lake
from mlplatform.core.spec import UseCase
from mlplatform.serving.batcher import MicroBatcher
from mlplatform.serving.log import PredictionLog, answer_rows, failure_row
from mlplatform.serving.metrics import Metrics
from mlplatform.serving.schema import validate
from mlplatform.serving.store import LoadedModel, ModelStore, assign_variant

log = logging.getLogger(__name__)

VARIANTS = ("champion", "challenger")


@dataclass(frozen=True)
class Answer:
    """The outcome of one request: HTTP status, JSON body, request id, and the raw answers
    (one dict per trip) when it succeeded."""

    status: int
    body: Any
    request_id: str
    predictions: list[dict[str, Any]] | None = None


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
            use_case.model_name, fixed_uri=model_uri, fixed_version=model_version, follow_challenger=share > 0
        )
        self.metrics = Metrics(use_case.model_name)
        self.batcher = MicroBatcher()
        self.prediction_log = (
            PredictionLog(lake or Lake(), use_case.name, self.metrics, flush_seconds)
            if log_predictions
            else None
        )

    def health(self) -> dict[str, Any]:
        """Liveness and what is served; ``status`` is ``no_model`` until a champion loads."""
        served = self.store.served
        name = self.use_case.model_name
        if served is None:
            return {"status": "no_model", "model": name, "champion": None, "challenger": None}
        return {
            "status": "ok",
            "model": name,
            "champion": _describe(served.champion),
            "challenger": _describe(served.challenger),
            "challenger_share": self.share if served.challenger else 0.0,
            "since": served.since,
            "unit": self.unit,
            "inputs": [f.name for f in served.champion.fields],
        }

    async def answer(
        self,
        instances: list[Any],
        prefix: str | None,
        *,
        request_id: str | None,
        key: str | None,
        forced: str | None,
    ) -> Answer:
        """Answer ``instances`` (``prefix`` names them in errors); counts and logs the request.

        ``request_id`` names it in the log (a new one if missing), ``key`` keeps a caller on
        one variant, ``forced`` picks the variant outright.
        """
        started = time.perf_counter()
        request_id = request_id or uuid.uuid4().hex
        served = self.store.served
        if served is None:
            detail = f"no version of {self.use_case.model_name} is loaded yet: promote a champion, then retry"
            self._log_failure(request_id, instances, None, None, 503, started)
            return Answer(503, {"detail": detail}, request_id)
        if forced not in (None, *VARIANTS):
            detail = [{"field": "X-Variant", "error": "expected champion or challenger"}]
            return Answer(422, {"detail": detail}, request_id)
        variant = forced or assign_variant(key or request_id, self.share)
        if variant == "challenger" and served.challenger is not None:
            model = served.challenger
        else:
            variant, model = "champion", served.champion
        return await self._predict(model, variant, instances, prefix, request_id, started)

    async def _predict(
        self,
        model: LoadedModel,
        variant: str,
        instances: list[Any],
        prefix: str | None,
        request_id: str,
        started: float,
    ) -> Answer:
        version = model.ref.version
        columns, errors = validate(instances, model.fields, prefix)
        if errors:
            self.metrics.observe(variant, version, 422, time.perf_counter() - started, 0, "validation")
            self._log_failure(request_id, instances, variant, model, 422, started)
            return Answer(422, {"detail": errors, "request_id": request_id}, request_id)
        try:
            answers = await self.batcher.predict(model, columns, len(instances))
        except Exception as exc:
            log.exception("model %s failed on request %s", model.ref.uri, request_id)
            self.metrics.observe(variant, version, 500, time.perf_counter() - started, 0, "model")
            self._log_failure(request_id, instances, variant, model, 500, started)
            return Answer(500, {"detail": f"the model failed: {exc}", "request_id": request_id}, request_id)
        latency = time.perf_counter() - started
        self.metrics.observe(variant, version, 200, latency, len(instances), None)
        if self.prediction_log is not None:
            rows = answer_rows(request_id, variant, model.ref.name, version, latency * 1000, columns, answers)
            self.prediction_log.add(rows, len(instances))
        body = {
            "request_id": request_id,
            "model": model.ref.name,
            "version": version,
            "variant": variant,
            "unit": self.unit,
            "predictions": answers,
        }
        return Answer(200, body, request_id, answers)

    def _log_failure(
        self,
        request_id: str,
        instances: list[Any],
        variant: str | None,
        model: LoadedModel | None,
        status: int,
        started: float,
    ) -> None:
        """One log row for a failed request, so monitoring counts it in the error rate."""
        if self.prediction_log is None:
            return
        name = model.ref.name if model is not None else self.use_case.model_name
        version = model.ref.version if model is not None else None
        latency_ms = (time.perf_counter() - started) * 1000
        self.prediction_log.add(
            failure_row(request_id, instances, variant, name, version, status, latency_ms), 1
        )


def _describe(model: LoadedModel | None) -> dict[str, Any] | None:
    return None if model is None else {"version": model.ref.version, "uri": model.uri}
