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
(request id, variant, version, inputs, answer, latency) to
``predictions/<use case>/serving/month=YYYY-MM/`` in the lake, in small parquet files
written atomically by a background thread, for the monitoring DAG to compare variants.

Hot reload: a background thread checks the aliases every ``poll_seconds``. A new version
is loaded beside the old one and then swapped in with one reference assignment: requests
in flight finish on the model they started with, none is dropped.

Throughput: concurrent requests for the same model are predicted together. While one
prediction runs, new requests queue; the next call takes all of them at once, so a busy
server does one model call for many requests instead of one each, without ever waiting
for a batch to fill.

Configuration (environment, or the same-named arguments of ``python -m mlplatform.serving``):
``MLPLATFORM_USE_CASE`` (default ``taxi_trip_duration``), ``MLFLOW_TRACKING_URI``, ``MLPLATFORM_LAKE_URI``,
``MLPLATFORM_MODEL_URI`` (serve one fixed model instead of following the aliases, as
SageMaker containers do) with ``MLPLATFORM_MODEL_VERSION``,
``MLPLATFORM_SERVING_POLL_SECONDS`` (default 30, 0 never) and
``MLPLATFORM_SERVING_LOG_PREDICTIONS`` (default 1).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import logging
import math
import os
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from fastapi import FastAPI, Request, Response

from mlplatform.adapters.lake import Lake
from mlplatform.core.spec import UseCase, load_spec
from mlplatform.stages import scoring
from mlplatform.stages.scoring import ModelNotFound, ModelRef

log = logging.getLogger(__name__)

REFERENCE_USE_CASE = "taxi_trip_duration"
DEFAULT_PORT = 8000
SAGEMAKER_PORT = 8080  # SageMaker sends /ping and /invocations to this port
MAX_INSTANCES = 10_000
MAX_ERRORS_REPORTED = 20
MAX_ROWS_PER_CALL = 4096
NEW_YORK = ZoneInfo("America/New_York")
JSON = "application/json"


# -- input validation against the signature -------------------------------------------------
@dataclass(frozen=True)
class InputField:
    """One input of the model's signature and how a JSON value becomes a column value."""

    name: str
    kind: str  # integer | long | float | double | string | boolean | datetime
    required: bool = True


_INT_BOUNDS = {"integer": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
_DTYPES = {
    "integer": "int32",
    "long": "int64",
    "float": "float32",
    "double": "float64",
    "boolean": "bool",
    "datetime": "datetime64[us]",
    "string": "object",
}


def input_fields(model: Any) -> list[InputField]:
    """The fields a request must carry: the model's input signature.

    A model logged without a signature falls back to the normalised trip schema of the
    columns its features need.
    """
    schema = model.metadata.get_input_schema()
    if schema is not None and schema.has_input_names():
        return [
            InputField(spec.name, spec.type.name, bool(getattr(spec, "required", True)))
            for spec in schema.inputs
        ]
    from mlplatform.core.modelling import input_columns
    from mlplatform.core.tlc import NORMALISED_SCHEMA

    kinds = {"int32": "integer", "int64": "long", "double": "double", "string": "string"}
    return [
        InputField(name, kinds.get(str(NORMALISED_SCHEMA.field(name).type), "datetime"))
        for name in input_columns(model.unwrap_python_model().features)
    ]


def _convert(kind: str, value: Any) -> tuple[Any, str | None]:
    """``value`` as the column type ``kind``, or ``None`` and why it cannot be."""
    if kind in _INT_BOUNDS:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            return None, f"expected an integer, got {value!r}"
        low, high = _INT_BOUNDS[kind]
        if not low <= value <= high:
            return None, f"integer {value} is out of range for {kind}"
        return value, None
    if kind in ("float", "double"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None, f"expected a number, got {value!r}"
        if not math.isfinite(value):
            return None, f"expected a finite number, got {value!r}"
        return float(value), None
    if kind == "datetime":
        if not isinstance(value, str):
            return None, f"expected an ISO 8601 date-time string, got {value!r}"
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None, f"expected an ISO 8601 date-time like 2024-03-05T08:30:00, got {value!r}"
        if parsed.tzinfo is not None:  # trips are in New York local time, as TLC records them
            parsed = parsed.astimezone(NEW_YORK).replace(tzinfo=None)
        return parsed, None
    if kind == "boolean":
        return (value, None) if isinstance(value, bool) else (None, f"expected true or false, got {value!r}")
    if kind == "string":
        return (value, None) if isinstance(value, str) else (None, f"expected a string, got {value!r}")
    return None, f"the model's signature has a {kind} input, which this app cannot take from JSON"


def validate(
    instances: Sequence[Any], fields: Sequence[InputField], prefix: str | None
) -> tuple[dict[str, list[Any]], list[dict[str, str]]]:
    """Columns of checked values, and the errors (each naming its field) if any."""
    columns: dict[str, list[Any]] = {f.name: [] for f in fields}
    errors: list[dict[str, str]] = []
    for i, item in enumerate(instances):
        where = f"{prefix}[{i}]" if prefix else ""
        if not isinstance(item, dict):
            errors.append({"field": where or "body", "error": "expected a JSON object of trip fields"})
            continue
        for f in fields:
            name = f"{where}.{f.name}" if where else f.name
            value = item.get(f.name)
            if value is None:
                if f.required:
                    errors.append({"field": name, "error": f"required {f.kind} field is missing"})
                columns[f.name].append(None)
                continue
            converted, why = _convert(f.kind, value)
            if why:
                errors.append({"field": name, "error": why})
            columns[f.name].append(converted)
        if len(errors) >= MAX_ERRORS_REPORTED:
            break
    return columns, errors


def frame_of(columns: dict[str, list[Any]], fields: Sequence[InputField]) -> pd.DataFrame:
    """A frame with the signature's column types (nullable inputs fall back to inference)."""
    data = {}
    for f in fields:
        values = columns[f.name]
        dtype = _DTYPES.get(f.kind, "object")
        try:
            data[f.name] = np.array(values, dtype=dtype)
        except (TypeError, ValueError):  # None among optional values
            data[f.name] = pd.Series(values)
    return pd.DataFrame(data)


# -- the models being served ----------------------------------------------------------------
@dataclass
class LoadedModel:
    """One registered version, loaded and ready to predict."""

    ref: ModelRef
    uri: str  # where it was loaded from
    pyfunc: Any
    fields: list[InputField]
    task: str
    predict: Callable[[pd.DataFrame], pd.DataFrame] = field(repr=False)

    @classmethod
    def load(cls, ref: ModelRef, uri: str | None = None) -> LoadedModel:
        uri = uri or ref.uri
        model = scoring.load_model(uri)
        return cls(ref, uri, model, input_fields(model), scoring.model_task(model), scoring.predictor(model))


@dataclass(frozen=True)
class Served:
    """What the app serves right now; replaced as a whole, never changed in place."""

    champion: LoadedModel
    challenger: LoadedModel | None
    since: str

    def versions(self) -> tuple[str, str | None]:
        return self.champion.ref.version, self.challenger.ref.version if self.challenger else None


class ModelStore:
    """Follows the registry aliases and swaps in new versions once they have loaded."""

    def __init__(
        self,
        model_name: str,
        *,
        fixed_uri: str | None = None,
        fixed_version: str | None = None,
        follow_challenger: bool = True,
    ) -> None:
        self.model_name = model_name
        self.fixed_uri = fixed_uri
        self.fixed_version = fixed_version
        self.follow_challenger = follow_challenger
        self.served: Served | None = None
        self.reloads = 0
        self.reload_errors = 0
        self._lock = threading.Lock()

    def refresh(self) -> bool:
        """Load what the aliases point at if it changed; returns whether anything changed.

        Raises when the registry cannot be read or a model cannot be loaded; what was
        served before keeps being served then.
        """
        with self._lock:
            try:
                return self._refresh()
            except Exception:
                self.reload_errors += 1
                raise

    def _refresh(self) -> bool:
        now = datetime.now(UTC).isoformat()
        if self.fixed_uri:
            if self.served is None:
                ref = ModelRef(self.model_name, self.fixed_version or "0", None, None, self.fixed_uri)
                self.served = Served(LoadedModel.load(ref, self.fixed_uri), None, now)
                return True
            return False
        client = scoring.registry_client()
        champion = scoring.resolve(self.model_name, "champion", client)
        challenger = None
        if self.follow_challenger:
            with contextlib.suppress(ModelNotFound):
                challenger = scoring.resolve(self.model_name, "challenger", client)
        wanted = (champion.version, challenger.version if challenger else None)
        current = self.served
        if current is not None and current.versions() == wanted:
            return False
        cache = {m.ref.version: m for m in (current.champion, current.challenger) if m} if current else {}
        for ref in (champion, challenger):
            if ref is not None and ref.version not in cache:
                log.info("loading %s version %s", ref.name, ref.version)
                cache[ref.version] = LoadedModel.load(ref)
        # The swap: one assignment; requests holding the old Served finish on it.
        self.served = Served(cache[champion.version], cache[challenger.version] if challenger else None, now)
        self.reloads += 1
        log.info("now serving %s champion %s, challenger %s", self.model_name, *wanted)
        return True


def assign_variant(key: str, share: float) -> str:
    """``challenger`` for a ``share`` of keys, the same answer for the same key every time."""
    if share <= 0:
        return "champion"
    bucket = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64
    return "challenger" if bucket < share else "champion"


# -- predicting many requests at once ----------------------------------------------------------
class MicroBatcher:
    """Runs predictions on one worker thread, merging requests that queued meanwhile."""

    def __init__(self) -> None:
        self._pending: list[tuple[LoadedModel, dict[str, list[Any]], int, asyncio.Future]] = []
        self._running = False
        self._task: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="predict", initializer=_one_native_thread)

    async def predict(
        self, model: LoadedModel, columns: dict[str, list[Any]], rows: int
    ) -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        self._pending.append((model, columns, rows, future))
        if not self._running:
            self._running = True
            self._task = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                group, rows, rest = [], 0, []
                model = self._pending[0][0]
                for item in self._pending:
                    if item[0] is model and (rows == 0 or rows + item[2] <= MAX_ROWS_PER_CALL):
                        group.append(item)
                        rows += item[2]
                    else:
                        rest.append(item)
                self._pending = rest
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


def _predict_group(model: LoadedModel, group: list[tuple[Any, dict[str, list[Any]], int, Any]]) -> list[dict]:
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


# -- observability --------------------------------------------------------------------------
class Metrics:
    """Counters and a latency histogram, rendered in the Prometheus text format."""

    BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

    def __init__(self, model_name: str) -> None:
        self.model_name = model_name
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, str], int] = defaultdict(int)
        self.errors: dict[tuple[str, str, str], int] = defaultdict(int)
        self.rows: dict[tuple[str, str], int] = defaultdict(int)
        self.latency_buckets: dict[tuple[str, str], list[int]] = {}
        self.latency_sum: dict[tuple[str, str], float] = defaultdict(float)
        self.log_dropped = 0
        self.log_errors = 0

    def observe(
        self, variant: str, version: str, status: int, seconds: float, rows: int, error: str | None
    ) -> None:
        with self._lock:
            self.requests[(variant, version, str(status))] += 1
            if error:
                self.errors[(variant, version, error)] += 1
            self.rows[(variant, version)] += rows
            buckets = self.latency_buckets.setdefault((variant, version), [0] * (len(self.BUCKETS) + 1))
            for i, bound in enumerate(self.BUCKETS):
                if seconds <= bound:
                    buckets[i] += 1
            buckets[-1] += 1
            self.latency_sum[(variant, version)] += seconds

    def render(self, store: ModelStore) -> str:
        out: list[str] = []

        def family(name: str, kind: str, help_text: str) -> None:
            out.extend(
                [f"# HELP mlplatform_serving_{name} {help_text}", f"# TYPE mlplatform_serving_{name} {kind}"]
            )

        def sample(name: str, value: float, **labels: str) -> None:
            text = ",".join(f'{k}="{v}"' for k, v in {"model": self.model_name, **labels}.items())
            out.append(f"mlplatform_serving_{name}{{{text}}} {value}")

        with self._lock:
            family("requests_total", "counter", "Prediction requests answered, by HTTP status.")
            for (variant, version, status), n in sorted(self.requests.items()):
                sample("requests_total", n, variant=variant, version=version, status=status)
            family("errors_total", "counter", "Failed requests: validation (4xx) or model (5xx).")
            for (variant, version, kind), n in sorted(self.errors.items()):
                sample("errors_total", n, variant=variant, version=version, kind=kind)
            family("predictions_total", "counter", "Rows predicted.")
            for (variant, version), n in sorted(self.rows.items()):
                sample("predictions_total", n, variant=variant, version=version)
            family("request_duration_seconds", "histogram", "Time from request to answer.")
            for (variant, version), buckets in sorted(self.latency_buckets.items()):
                for bound, n in zip((*self.BUCKETS, "+Inf"), buckets, strict=True):
                    sample(
                        "request_duration_seconds_bucket", n, variant=variant, version=version, le=str(bound)
                    )
                total = round(self.latency_sum[(variant, version)], 6)
                sample("request_duration_seconds_sum", total, variant=variant, version=version)
                sample("request_duration_seconds_count", buckets[-1], variant=variant, version=version)
            dropped, log_errors = self.log_dropped, self.log_errors
        family("model_info", "gauge", "The versions served now, by variant.")
        served = store.served
        if served is not None:
            for variant, loaded in (("champion", served.champion), ("challenger", served.challenger)):
                if loaded is not None:
                    sample("model_info", 1, variant=variant, version=loaded.ref.version)
        family("model_reloads_total", "counter", "Times a new version was swapped in.")
        sample("model_reloads_total", store.reloads)
        family("model_reload_errors_total", "counter", "Alias checks or model loads that failed.")
        sample("model_reload_errors_total", store.reload_errors)
        family("prediction_log_dropped_total", "counter", "Logged predictions dropped: lake unreachable.")
        sample("prediction_log_dropped_total", dropped)
        family("prediction_log_errors_total", "counter", "Failed writes of the prediction log.")
        sample("prediction_log_errors_total", log_errors)
        return "\n".join(out) + "\n"


class PredictionLog:
    """Buffers served predictions and flushes them to the lake as small parquet files.

    Files go to ``predictions/<use case>/serving/month=YYYY-MM/<time>-<id>.parquet``,
    each written atomically. Flushes happen on a background thread every
    ``flush_seconds`` or once ``flush_rows`` are buffered, and at shutdown. If the lake is
    unreachable rows are kept up to ``max_rows`` and then the oldest are dropped (counted
    in ``/metrics``): serving never stops for logging.
    """

    def __init__(
        self,
        lake: Lake,
        use_case: str,
        metrics: Metrics,
        flush_seconds: float = 5.0,
        flush_rows: int = 5000,
        max_rows: int = 500_000,
    ) -> None:
        self.lake, self.use_case, self.metrics = lake, use_case, metrics
        self.flush_seconds, self.flush_rows, self.max_rows = flush_seconds, flush_rows, max_rows
        self._chunks: list[dict[str, list[Any]]] = []
        self._rows = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._written = 0

    def add(self, chunk: dict[str, list[Any]], rows: int) -> None:
        with self._lock:
            self._chunks.append(chunk)
            self._rows += rows
            full = self._rows >= self.flush_rows
        if full:
            self._wake.set()

    def flush(self) -> str | None:
        """Write what is buffered; returns the lake path written, if any."""
        import pyarrow as pa

        with self._lock:
            chunks, self._chunks, self._rows = self._chunks, [], 0
        if not chunks:
            return None
        names = list(dict.fromkeys(name for chunk in chunks for name in chunk))
        data = {}
        for name in names:
            values: list[Any] = []
            for chunk in chunks:
                n = len(chunk["request_id"])
                values.extend(chunk.get(name, [None] * n))
            data[name] = values
        table = pa.table(data)
        now = datetime.now(UTC)
        self._written += 1
        path = (
            f"predictions/{self.use_case}/serving/month={now:%Y-%m}/"
            f"{now:%Y%m%dT%H%M%S%f}-{os.getpid()}-{self._written:06d}.parquet"
        )
        try:
            self.lake.write_parquet(path, table, compression="zstd")
        except Exception as exc:  # the lake's backends raise many types; serving goes on
            log.warning("could not write the prediction log to %s: %s", self.lake.uri(path), exc)
            with self._lock:
                self.metrics.log_errors += 1
                self._chunks[:0] = chunks
                self._rows += table.num_rows
                while self._rows > self.max_rows and self._chunks:
                    dropped = self._chunks.pop(0)
                    self._rows -= len(dropped["request_id"])
                    self.metrics.log_dropped += len(dropped["request_id"])
            return None
        return path

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            self.flush()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.flush()


# -- the app ----------------------------------------------------------------------------------
class _Rejected(Exception):
    def __init__(self, status: int, detail: Any) -> None:
        self.status, self.detail = status, detail


def _instances(body: Any) -> tuple[list[Any], str | None]:
    """The trips of a request body, and the field prefix errors are reported under."""
    if isinstance(body, dict) and "instances" in body:
        instances = body["instances"]
        if not isinstance(instances, list) or not instances:
            raise _Rejected(422, [{"field": "instances", "error": "expected a non-empty list of trips"}])
        if len(instances) > MAX_INSTANCES:
            raise _Rejected(
                413, [{"field": "instances", "error": f"at most {MAX_INSTANCES} trips per request"}]
            )
        return instances, "instances"
    if isinstance(body, dict):
        return [body], None
    raise _Rejected(422, [{"field": "body", "error": 'expected a trip object or {"instances": [trips]}'}])


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
    store = ModelStore(
        use_case.model_name, fixed_uri=model_uri, fixed_version=model_version, follow_challenger=share > 0
    )
    metrics = Metrics(use_case.model_name)
    batcher = MicroBatcher()
    prediction_log = (
        PredictionLog(lake or Lake(), use_case.name, metrics, flush_seconds) if log_predictions else None
    )
    unit = use_case.target.unit
    stop_polling = threading.Event()

    def poll() -> None:
        while not stop_polling.wait(poll_seconds):
            try:
                store.refresh()
            except Exception as exc:  # registry or artifact store down: keep serving, try again
                log.warning("could not check the %s aliases: %s", use_case.model_name, exc)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        try:
            await asyncio.to_thread(store.refresh)
        except Exception as exc:
            if model_uri:  # a container for one model that cannot load it must not pretend to serve
                raise
            # No champion yet (a new platform) or the registry is down: answer 503 until the
            # alias poll (or POST /admin/reload) loads one.
            log.warning("serving %s without a model for now: %s", use_case.model_name, exc)
        poller = None
        if poll_seconds > 0 and not model_uri:
            poller = threading.Thread(target=poll, name="alias-poll", daemon=True)
            poller.start()
        if prediction_log is not None:
            prediction_log.start()
        try:
            yield
        finally:
            stop_polling.set()
            if prediction_log is not None:
                await asyncio.to_thread(prediction_log.stop)
            batcher.close()

    app = FastAPI(title=f"{use_case.name} serving", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.store, app.state.metrics, app.state.prediction_log = store, metrics, prediction_log

    def health_body() -> dict[str, Any]:
        served = store.served

        def describe(m: LoadedModel | None) -> dict[str, Any] | None:
            return None if m is None else {"version": m.ref.version, "uri": m.uri}

        if served is None:
            return {"status": "no_model", "model": use_case.model_name, "champion": None, "challenger": None}
        return {
            "status": "ok",
            "model": use_case.model_name,
            "champion": describe(served.champion),
            "challenger": describe(served.challenger),
            "challenger_share": share if served.challenger else 0.0,
            "since": served.since,
            "unit": unit,
            "inputs": [f.name for f in served.champion.fields],
        }

    def respond(status: int, body: Any, request_id: str) -> Response:
        return Response(
            json.dumps(body), status_code=status, media_type=JSON, headers={"X-Request-Id": request_id}
        )

    def log_failure(
        request_id: str, instances: list[Any], variant: str | None, model: Any, status: int, started: float
    ) -> None:
        """One log row for a failed request, so monitoring counts it in the error rate. It
        carries the first trip's pickup time when that is readable (the window it belongs to)."""
        if prediction_log is None:
            return
        first = instances[0] if instances and isinstance(instances[0], dict) else {}
        pickup, why = _convert("datetime", first.get("pickup_datetime"))
        record = {
            "request_id": [request_id],
            "item": [0],
            "served_at": [datetime.now(UTC)],
            "variant": [variant],
            "model_name": [model.ref.name if model is not None else use_case.model_name],
            "model_version": [model.ref.version if model is not None else None],
            "latency_ms": [(time.perf_counter() - started) * 1000],
            "status": [status],
            "pickup_datetime": [None if why else pickup],
        }
        prediction_log.add(record, 1)

    async def answer(request: Request, instances: list[Any], prefix: str | None) -> tuple[int, Any, str, Any]:
        """(status, body, request id, raw answers) for trips; logs and counts the request."""
        started = time.perf_counter()
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        served = store.served
        if served is None:
            detail = f"no version of {use_case.model_name} is loaded yet: promote a champion, then retry"
            log_failure(request_id, instances, None, None, 503, started)
            return 503, {"detail": detail}, request_id, None
        forced = request.headers.get("x-variant")
        if forced not in (None, "champion", "challenger"):
            return (
                422,
                {"detail": [{"field": "X-Variant", "error": "expected champion or challenger"}]},
                request_id,
                None,
            )
        variant = forced or assign_variant(request.headers.get("x-request-key") or request_id, share)
        if variant == "challenger" and served.challenger is not None:
            model = served.challenger
        else:
            variant, model = "champion", served.champion
        version = model.ref.version
        columns, errors = validate(instances, model.fields, prefix)
        if errors:
            metrics.observe(variant, version, 422, time.perf_counter() - started, 0, "validation")
            log_failure(request_id, instances, variant, model, 422, started)
            return 422, {"detail": errors, "request_id": request_id}, request_id, None
        try:
            answers = await batcher.predict(model, columns, len(instances))
        except Exception as exc:
            log.exception("model %s failed on request %s", model.ref.uri, request_id)
            metrics.observe(variant, version, 500, time.perf_counter() - started, 0, "model")
            log_failure(request_id, instances, variant, model, 500, started)
            return 500, {"detail": f"the model failed: {exc}", "request_id": request_id}, request_id, None
        latency = time.perf_counter() - started
        metrics.observe(variant, version, 200, latency, len(instances), None)
        if prediction_log is not None:
            n = len(instances)
            record = {
                "request_id": [request_id] * n,
                "item": list(range(n)),
                "served_at": [datetime.now(UTC)] * n,
                "variant": [variant] * n,
                "model_name": [model.ref.name] * n,
                "model_version": [version] * n,
                "latency_ms": [latency * 1000] * n,
                "status": [200] * n,
                **columns,
                **{key: [a[key] for a in answers] for key in answers[0]},
            }
            prediction_log.add(record, n)
        body = {
            "request_id": request_id,
            "model": model.ref.name,
            "version": version,
            "variant": variant,
            "unit": unit,
            "predictions": answers,
        }
        return 200, body, request_id, answers

    async def parse_json(request: Request) -> Any:
        raw = await request.body()
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise _Rejected(400, [{"field": "body", "error": f"not valid JSON: {exc}"}]) from None

    @app.post("/predict")
    async def predict(request: Request) -> Response:
        try:
            instances, prefix = _instances(await parse_json(request))
        except _Rejected as exc:
            return respond(exc.status, {"detail": exc.detail}, request.headers.get("x-request-id") or "")
        status, body, request_id, _ = await answer(request, instances, prefix)
        return respond(status, body, request_id)

    @app.post("/invocations")
    async def invocations(request: Request) -> Response:
        content_type = request.headers.get("content-type", JSON).split(";")[0].strip()
        if content_type in ("application/jsonlines", "application/x-jsonlines"):
            lines = [line for line in (await request.body()).splitlines() if line.strip()]
            try:
                instances = [json.loads(line) for line in lines]
            except ValueError as exc:
                return respond(400, {"detail": [{"field": "body", "error": f"not JSON Lines: {exc}"}]}, "")
            status, body, request_id, answers = await answer(request, instances, "line")
            if status != 200:
                return respond(status, body, request_id)
            text = "".join(json.dumps(a) + "\n" for a in answers)
            return Response(text, media_type="application/jsonlines")
        return await predict(request)

    @app.get("/health")
    async def health() -> Response:
        """Liveness and what is served; ``status`` is ``no_model`` until a champion loads."""
        return respond(200, health_body(), "")

    @app.get("/ping")
    async def ping() -> Response:
        return Response(status_code=200 if store.served is not None else 503)

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(metrics.render(store), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.post("/admin/reload")
    async def reload() -> Response:
        try:
            changed = await asyncio.to_thread(store.refresh)
        except Exception as exc:
            served = store.served
            still = served.champion.ref.version if served else None
            return respond(
                503,
                {"detail": f"reload failed: {exc}; still serving champion version {still}"},
                "",
            )
        return respond(200, {**health_body(), "changed": changed}, "")

    return app


def app_from_env() -> FastAPI:
    """The app configured from the environment (what the serving image runs).

    Without ``MLPLATFORM_USE_CASE`` it serves the reference use case.
    """
    name = os.getenv("MLPLATFORM_USE_CASE") or REFERENCE_USE_CASE
    return create_app(
        load_spec(name),
        poll_seconds=float(os.getenv("MLPLATFORM_SERVING_POLL_SECONDS", "30")),
        model_uri=os.getenv("MLPLATFORM_MODEL_URI") or None,
        model_version=os.getenv("MLPLATFORM_MODEL_VERSION") or None,
        log_predictions=os.getenv("MLPLATFORM_SERVING_LOG_PREDICTIONS", "1") == "1",
    )


def __getattr__(name: str) -> Any:
    """``mlplatform.serving:app`` for ``uvicorn``: built on first access, from the environment."""
    if name == "app":
        globals()["app"] = built = app_from_env()
        return built
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m mlplatform.serving [serve] [--use-case NAME] [--host H] [--port P]``.

    The optional ``serve`` word is what SageMaker passes to a container.
    """
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m mlplatform.serving", description=__doc__.splitlines()[0])
    parser.add_argument("command", nargs="?", choices=["serve"], help="SageMaker passes it: listen on 8080")
    parser.add_argument(
        "--use-case", help=f"use case (default: MLPLATFORM_USE_CASE, else {REFERENCE_USE_CASE})"
    )
    parser.add_argument("--host", default=os.getenv("HOST", "0.0.0.0"), help="address (default 0.0.0.0)")
    parser.add_argument("--port", type=int, help="port (default: PORT, else 8000; 8080 with `serve`)")
    parser.add_argument("--poll-seconds", type=float, help="alias poll interval (default 30)")
    parser.add_argument(
        "--access-log", action="store_true", help="log every request (off: /metrics counts them)"
    )
    args = parser.parse_args(argv)
    if args.use_case:
        os.environ["MLPLATFORM_USE_CASE"] = args.use_case
    if args.poll_seconds is not None:
        os.environ["MLPLATFORM_SERVING_POLL_SECONDS"] = str(args.poll_seconds)
    default = SAGEMAKER_PORT if args.command == "serve" else DEFAULT_PORT
    port = args.port or int(os.getenv("PORT") or default)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(
        "mlplatform.serving:app_from_env",
        factory=True,
        host=args.host,
        port=port,
        access_log=args.access_log,
        timeout_graceful_shutdown=30,
    )


if __name__ == "__main__":
    main()
