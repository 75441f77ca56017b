"""What a monitoring window reads: the lake's rows, the serving traffic, and the champion.

- **Modelled rows** (:func:`modelled_frame`): a snapshot's rows the use case models, with
  their ground truth as :data:`ACTUAL` once it is known; reproducible uniform samples of them.
- **The serving log** (:func:`serving_log`): every real-time prediction the local serving
  app logged for trips of the window.
- **SageMaker data capture** (:func:`read_capture`): endpoint traffic read back from the
  lake as serving-log rows. SageMaker endpoints capture every request and answer
  (``DataCaptureConfig``, see :func:`mlplatform.adapters.sagemaker.data_capture_config`) as
  JSON lines under ``predictions/<uc>/capture/<endpoint>/<variant>/YYYY/MM/DD/HH/<file>.jsonl``,
  one record per request::

    {"captureData": {"endpointInput":  {"observedContentType": "...", "encoding": "JSON", "data": "..."},
                     "endpointOutput": {"observedContentType": "...", "encoding": "JSON", "data": "..."}},
     "eventMetadata": {"eventId": "...", "inferenceTime": "2024-03-05T08:30:01Z"},
     "eventVersion": "0"}

  They become the rows the local serving app logs (one per trip: ``request_id``, ``item``,
  ``served_at``, ``variant``, ``model_name``, ``model_version``, ``status``, the inputs and
  the answer), so monitoring measures SageMaker traffic exactly as it measures the local
  app's. Requests are JSON, JSON Lines or CSV (columns in the model's input order, or a
  header line); data is plain text or base64. A line that cannot be read, whose trips or
  answers hold anything but plain values, or whose answers do not match its trips one for
  one, is counted and skipped, never fatal. SageMaker records
  no latency in a capture record: CloudWatch's ``ModelLatency`` has it.
- **The champion and its training reference** (:func:`champion`): the ``champion``
  version, the metrics and params its training run logged, the validation value of the
  monitored metric under the names training uses, and the months it trained on (the drift
  reference).

Every measure of :mod:`mlplatform.stages.monitoring` starts from these readers, so a
window's rows are chosen, filtered and sampled the same way for performance and drift.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import logging
import re
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from mlplatform.adapters import registry, snapshots
from mlplatform.adapters.lake import Lake
from mlplatform.adapters.registry import model_url
from mlplatform.adapters.sagemaker import capture_prefix
from mlplatform.core import months as monthly
from mlplatform.core.modelling import input_columns
from mlplatform.core.spec import UseCase
from mlplatform.stages import scoring

log = logging.getLogger(__name__)

ACTUAL = "actual"
"""Column holding the ground truth once predictions are joined to outcomes."""


def seed(*parts: str) -> int:
    """A sampling seed derived from ``parts``: the same window samples the same rows every run."""
    return zlib.crc32("|".join(parts).encode())


def sample(frame: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    """At most ``rows`` rows of ``frame``, drawn uniformly with ``seed``, in their original order."""
    return frame if len(frame) <= rows else frame.sample(rows, random_state=seed).sort_index()


def answer_column(use_case: UseCase) -> str:
    """The column holding the model's answer: ``prediction``, or a classifier's ``probability``."""
    return "prediction" if use_case.task == "regression" else "probability"


def _referenced(use_case: UseCase, schema: list[str]) -> list[str]:
    """Snapshot columns the spec's ``data.filter`` and ``target.expression`` mention."""
    text = f"{use_case.data.filter or ''} {use_case.target.expression or ''}"
    return [c for c in schema if re.search(rf"\b{re.escape(c)}\b", text)]


def modelled_frame(
    lake: Lake, use_case: UseCase, snapshot: snapshots.Snapshot, columns: list[str], with_truth: bool = False
) -> pd.DataFrame:
    """The snapshot's rows the use case models (``data.filter``), indexed by row position.

    ``with_truth`` adds the ground truth (``target.column`` or ``target.expression``) as
    :data:`ACTUAL`; it is NaN where the snapshot cannot tell it.
    """
    from mlplatform.core.modelling import modelled_rows, target_values

    schema = list(snapshot.manifest.get("schema") or {})
    extra = _referenced(use_case, schema)
    target = use_case.target.column
    if with_truth and use_case.target.expression is None and target in schema:
        extra.append(target)
    wanted = list(dict.fromkeys([*columns, *extra]))
    frame = modelled_rows(snapshots.read_table(lake, snapshot, wanted).to_pandas(), use_case.data.filter)
    out = frame[columns].copy()
    if with_truth:
        try:
            out[ACTUAL] = target_values(frame, target, use_case.target.expression).astype(float)
        except ValueError:  # the month's data does not carry the outcome (yet)
            out[ACTUAL] = np.nan
    return out


def serving_log(lake: Lake, use_case: str, window: str) -> pd.DataFrame | None:
    """Every logged real-time prediction for a trip that began in the window.

    The log is partitioned by the month a prediction was served, which is the trip's
    month in production; replays of past trips land in later folders, so every folder
    from the window on is read and rows are kept by pickup month.
    """
    folders: dict[str, list[str]] = {}
    for entry in lake.list(f"predictions/{use_case}/serving"):
        month = entry.path.split("/")[3].removeprefix("month=")
        if entry.path.endswith(".parquet") and month >= window:
            folders.setdefault(month, []).append(entry.path)
    frames = []
    for month, files in sorted(folders.items()):
        frame = pa.concat_tables(
            [lake.read_parquet(p) for p in files], promote_options="permissive"
        ).to_pandas()
        if "pickup_datetime" in frame:
            # A failed request without a readable pickup time counts where it was served.
            pickup = pd.to_datetime(frame["pickup_datetime"]).dt.strftime("%Y-%m").fillna(month)
            frame = frame[pickup == window]
        elif month != window:
            continue
        frames.append(frame)
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else None


# -- SageMaker data capture ----------------------------------------------------------------------
# <endpoint>/<variant>/YYYY/MM/DD/HH/<file>.jsonl below the capture prefix
CAPTURE_FILE = re.compile(
    r"(?P<endpoint>[^/]+)/(?P<variant>[^/]+)/(?P<year>\d{4})/(?P<month>\d{2})/\d{2}/\d{2}/[^/]+\.jsonl"
)


class MalformedRecord(ValueError):
    """One capture line that cannot be turned into rows; the message says why."""


@dataclass(frozen=True)
class CaptureLog:
    """What the capture files of a window held: the rows, and how many lines were read or skipped."""

    rows: pd.DataFrame | None
    files: int
    lines: int
    malformed: int

    def metrics(self) -> dict[str, float]:
        """``capture_lines`` and ``capture_malformed_lines``, when the window has capture files."""
        if not self.files:
            return {}
        return {"capture_lines": float(self.lines), "capture_malformed_lines": float(self.malformed)}


@dataclass(frozen=True)
class Payload:
    """One side of a captured request: its content type and its text."""

    content_type: str
    text: str

    @classmethod
    def of(cls, part: Any) -> Payload:
        if not isinstance(part, dict) or not isinstance(part.get("data"), str):
            raise MalformedRecord("no captured data")
        content_type = str(part.get("observedContentType") or "").split(";")[0].strip().lower()
        data = part["data"]
        if str(part.get("encoding") or "").upper() == "BASE64":
            try:
                data = base64.b64decode(data, validate=True).decode()
            except ValueError as exc:
                raise MalformedRecord(f"data is not base64 of UTF-8 text: {exc}") from None
        return cls(content_type, data)


Cell = str | int | float | bool | None
"""One value of a captured trip or answer: a JSON scalar, or a CSV cell read as one."""

Values = dict[str, Cell]
"""A captured trip (its input columns) or an answer (``prediction`` or ``probability``)."""


def _cell(value: str) -> Cell:
    """A CSV cell as the JSON value it stands for: an int, a float, or the text."""
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def _json_lines(text: str) -> list[Any]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _values(item: Any, what: str) -> Values:
    """A JSON object of scalars, as captured; raises :class:`MalformedRecord` for anything else."""
    if not isinstance(item, dict) or not all(isinstance(v, str | int | float | None) for v in item.values()):
        raise MalformedRecord(f"{what} is not an object of plain values")
    return {str(k): v for k, v in item.items()}


def trips_of(payload: Payload, columns: list[str]) -> list[Values]:
    """The trips of a captured request, as the serving app reads them."""
    try:
        if payload.content_type == "text/csv":
            rows = [row for row in csv.reader(io.StringIO(payload.text)) if row]
            if rows and set(rows[0]) <= set(columns) and rows[0][0] == columns[0]:
                header, rows = rows[0], rows[1:]  # a header line names the columns
            else:
                header = columns
            if any(len(row) != len(header) for row in rows):
                raise MalformedRecord(f"a CSV row does not have the {len(header)} input columns")
            return [{name: _cell(value) for name, value in zip(header, row, strict=True)} for row in rows]
        body = json.loads(payload.text) if payload.content_type == "application/json" else None
        if body is None:
            trips = _json_lines(payload.text)
        elif isinstance(body, dict):
            trips = body.get("instances", [body])
        else:
            trips = body
    except (ValueError, KeyError, TypeError) as exc:
        raise MalformedRecord(f"request is not readable {payload.content_type or 'data'}: {exc}") from None
    if not isinstance(trips, list) or not trips or not all(isinstance(t, dict) for t in trips):
        raise MalformedRecord("request holds no trip objects")
    return [_values(t, "a trip") for t in trips]


def answers_of(payload: Payload, answer: str) -> tuple[list[Values], str | None]:
    """The answers of a captured response, one per trip, and the model version that gave them."""
    version = None
    try:
        if payload.content_type == "application/json":
            body = json.loads(payload.text)
            if isinstance(body, dict):
                version = body.get("version")
                body = body.get("predictions")
            items = body
        elif payload.content_type == "text/csv":
            items = [float(row[0]) for row in csv.reader(io.StringIO(payload.text)) if row]
        else:
            items = _json_lines(payload.text)
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise MalformedRecord(f"response is not readable {payload.content_type or 'data'}: {exc}") from None
    if not isinstance(items, list):
        raise MalformedRecord("response holds no answers")
    answers = [_values(item if isinstance(item, dict) else {answer: item}, "an answer") for item in items]
    if any(answer not in a for a in answers):
        raise MalformedRecord(f"an answer has no {answer!r}")
    return answers, None if version is None else str(version)


@dataclass(frozen=True)
class CapturedTrip:
    """One trip of a captured request with the endpoint's answer to it: a serving-log row."""

    request_id: str
    item: int
    served_at: pd.Timestamp
    variant: str
    model_name: str
    model_version: str | None
    inputs: Values
    answer: Values
    status: int = 200

    def row(self) -> dict[str, Cell | pd.Timestamp]:
        """The row as the local serving app logs it: the request's columns, the inputs, the answer."""
        return {
            "request_id": self.request_id,
            "served_at": self.served_at,
            "variant": self.variant,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "status": self.status,
            "item": self.item,
            **self.inputs,
            **self.answer,
        }


def record_rows(line: str, variant: str, use_case: UseCase) -> list[CapturedTrip]:
    """The trips of one capture line, each with its answer; raises :class:`MalformedRecord`."""
    try:
        record = json.loads(line)
        capture, meta = record["captureData"], record["eventMetadata"]
        request, response = Payload.of(capture["endpointInput"]), Payload.of(capture["endpointOutput"])
        event_id, served_at = str(meta["eventId"]), pd.Timestamp(meta["inferenceTime"])
    except (ValueError, KeyError, TypeError) as exc:
        raise MalformedRecord(f"not a SageMaker capture record: {exc}") from None
    trips = trips_of(request, input_columns(use_case.features.all))
    answers, version = answers_of(response, answer_column(use_case))
    if len(answers) != len(trips):
        raise MalformedRecord(f"{len(answers)} answers for {len(trips)} trips")
    return [
        CapturedTrip(event_id, i, served_at, variant, use_case.model_name, version, trip, a)
        for i, (trip, a) in enumerate(zip(trips, answers, strict=True))
    ]


def read_capture(lake: Lake, use_case: UseCase, window: str) -> CaptureLog:
    """Every captured request for a trip that began in the window, as serving-log rows.

    As with the serving log, files captured in the window's month and later are read
    (replays of past trips land later) and rows are kept by pickup month.
    """
    prefix = capture_prefix(use_case.name)
    files = []
    for entry in lake.list(prefix):
        found = CAPTURE_FILE.fullmatch(entry.path.removeprefix(f"{prefix}/"))
        if found and f"{found['year']}-{found['month']}" >= window:
            files.append((entry.path, found["variant"]))
    rows: list[CapturedTrip] = []
    lines = malformed = 0
    for path, variant in sorted(files):
        for number, line in enumerate(lake.read_bytes(path).decode(errors="replace").splitlines(), 1):
            if not line.strip():
                continue
            lines += 1
            try:
                rows.extend(record_rows(line, variant, use_case))
            except MalformedRecord as exc:
                malformed += 1
                log.warning("skipping line %d of %s: %s", number, lake.uri(path), exc)
    return CaptureLog(_in_window(rows, window), len(files), lines, malformed)


def _in_window(rows: list[CapturedTrip], window: str) -> pd.DataFrame | None:
    if not rows:
        return None
    frame = pd.DataFrame([r.row() for r in rows])
    served = pd.to_datetime(frame["served_at"], utc=True)
    frame["served_at"] = served
    if "pickup_datetime" in frame:
        frame["pickup_datetime"] = pd.to_datetime(frame["pickup_datetime"], errors="coerce")
        month = frame["pickup_datetime"].dt.strftime("%Y-%m").fillna(served.dt.strftime("%Y-%m"))
    else:
        month = served.dt.strftime("%Y-%m")
    frame = frame[month == window].reset_index(drop=True)
    return frame if len(frame) else None


def with_capture(logged: pd.DataFrame | None, captured: CaptureLog) -> pd.DataFrame | None:
    """The local serving log and the captured SageMaker traffic of a window, as one frame."""
    frames = [f for f in (logged, captured.rows) if f is not None and len(f)]
    if not frames:
        return None
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


# -- the champion and its training reference ----------------------------------------------------
@dataclass
class Champion:
    """The version serving now, and what its training run recorded."""

    name: str
    version: str
    run_id: str | None
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    url: str = ""
    model: Any = field(default=None, repr=False)


def champion(use_case: UseCase, client: Any = None, load: bool = True) -> Champion | None:
    """The ``champion`` version with its run's metrics and params; ``None`` when none is set."""
    try:
        client = client or registry.client()
        ref = registry.resolve(use_case.model_name, "champion", client)
    except registry.ModelNotFound:
        return None
    found = Champion(ref.name, ref.version, ref.run_id, url=model_url(ref.name, ref.version))
    if ref.run_id:
        run = client.get_run(ref.run_id)
        found.metrics = dict(run.data.metrics)
        found.params = {**run.data.params, **run.data.tags}
    if load:
        found.model = scoring.load_model(ref.uri)
    return found


def version_metrics(client: Any, name: str, version: str) -> dict[str, float]:
    """Metrics of the training run of any registered version (empty when it has none)."""
    try:
        run_id = client.get_model_version(name, str(version)).run_id
        return dict(client.get_run(run_id).data.metrics) if run_id else {}
    except Exception:  # a deleted version or run: no reference to compare with
        return {}


_METRIC_KEYS = ("val_{m}", "validation_{m}", "val.{m}", "validation.{m}", "validation/{m}", "{m}_val", "{m}")


def reference_metric(metrics: dict[str, float], metric: str) -> float | None:
    """The validation value of ``metric`` a training run logged, under the names training uses."""
    for pattern in _METRIC_KEYS:
        if (value := metrics.get(pattern.format(m=metric))) is not None:
            return float(value)
    return None


_MONTH_KEYS = ("train_months", "training_months", "training.months", "data.train_months", "train.months")


def reference_months(
    use_case: UseCase, window: str, params: dict[str, str], available: list[str]
) -> list[str]:
    """The months the champion trained on, else the ``training.window_months`` before the window."""
    for key in _MONTH_KEYS:
        if raw := params.get(key):
            months = [found.group() for found in re.finditer(monthly.MONTH_PATTERN, raw)]
            if ".." in raw and len(months) == 2:  # a range, first..last
                months = monthly.sequence(months[0], _months_between(*months) + 1)
            chosen = [m for m in months if m in available and m != window]
            if chosen:
                return chosen
    before = [m for m in available if m < window]
    return before[-use_case.training.window_months :]


def _months_between(first: str, last: str) -> int:
    (y1, m1), (y2, m2) = map(int, first.split("-")), map(int, last.split("-"))
    return (y2 * 12 + m2) - (y1 * 12 + m1)
