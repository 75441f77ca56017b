"""Request bodies in, answers out: the content types the app speaks and the limits on a body.

``/predict`` takes JSON; ``/invocations`` (SageMaker's contract) takes JSON, JSON Lines (one
trip object per line, what Batch Transform sends) or CSV (no header, one trip per line, the
columns in the order of the model's inputs) and answers in the type ``Accept`` asks for,
else in the type it was sent. A body is at most ``max_body_bytes`` (8 MiB unless
``MLPLATFORM_SERVING_MAX_BODY_BYTES`` says otherwise) and :data:`MAX_ROWS` trips, whatever
its type. Everything wrong with a body is a :class:`~mlplatform.serving.schema.Rejected`
4xx naming where: 400 (not parseable), 406 (no answer type we speak), 413 (too large),
415 (a content type we do not read), 422 (parsed, but not trips).
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from mlplatform.serving.schema import InputField, Rejected, field_error

MAX_ROWS = 10_000
DEFAULT_MAX_BODY_BYTES = 8 * 2**20
MAX_BODY_BYTES_VARIABLE = "MLPLATFORM_SERVING_MAX_BODY_BYTES"
OFF_LOOP_BYTES = 64 * 2**10
"""Bodies larger than this are parsed on a worker thread, so the event loop stays free."""


class Format(StrEnum):
    """A content type the app reads and writes."""

    JSON = "application/json"
    JSON_LINES = "application/jsonlines"
    CSV = "text/csv"


_MEDIA_TYPES = {
    "application/json": Format.JSON,
    "application/jsonlines": Format.JSON_LINES,
    "application/x-jsonlines": Format.JSON_LINES,
    "application/jsonl": Format.JSON_LINES,
    "application/x-ndjson": Format.JSON_LINES,
    "text/csv": Format.CSV,
}


@dataclass(frozen=True)
class Batch:
    """The trips of a request body, and the prefix its errors name them by (``instances``)."""

    instances: list[Any]
    prefix: str | None


def max_body_bytes() -> int:
    """The body size limit: ``MLPLATFORM_SERVING_MAX_BODY_BYTES``, else 8 MiB."""
    raw = os.getenv(MAX_BODY_BYTES_VARIABLE) or str(DEFAULT_MAX_BODY_BYTES)
    if not raw.isdigit() or int(raw) < 1024:
        raise ValueError(f"{MAX_BODY_BYTES_VARIABLE}={raw!r}: expected a number of bytes, at least 1024")
    return int(raw)


def too_large(limit: int) -> Rejected:
    """The 413 of a body over ``limit`` bytes."""
    return Rejected(413, field_error("body", f"at most {limit} bytes per request; split the trips"))


def request_format(content_type: str | None) -> Format:
    """The format of a body sent as ``content_type`` (JSON when absent); 415 when unknown."""
    media = (content_type or Format.JSON).split(";")[0].strip().lower()
    if media not in _MEDIA_TYPES:
        known = ", ".join(sorted(_MEDIA_TYPES))
        raise Rejected(415, field_error("Content-Type", f"expected one of {known}, got {media!r}"))
    return _MEDIA_TYPES[media]


def answer_format(accept: str | None, sent: Format) -> Format:
    """The format to answer in: the first one ``accept`` names that we write, else ``sent``."""
    wanted = [part.split(";")[0].strip().lower() for part in (accept or "").split(",") if part.strip()]
    if not wanted or any(media in ("*/*", "application/*", "text/*") for media in wanted):
        return sent
    for media in wanted:
        if media in _MEDIA_TYPES:
            return _MEDIA_TYPES[media]
    raise Rejected(406, field_error("Accept", f"answers are {', '.join(f.value for f in Format)}"))


def decode(raw: bytes, fmt: Format, fields: Sequence[InputField]) -> Batch:
    """The trips of a body of ``fmt``; a 4xx naming the body, line or field when it has none."""
    if fmt is Format.JSON:
        return instances_of(parse_json(raw))
    lines = [line for line in raw.splitlines() if line.strip()]
    if not lines:
        raise Rejected(422, field_error("body", "expected at least one trip (one per line)"))
    if len(lines) > MAX_ROWS:
        raise Rejected(413, field_error("body", f"at most {MAX_ROWS} trips (lines) per request"))
    if fmt is Format.CSV:
        return Batch(csv_trips(lines, fields), "line")
    trips = []
    for i, line in enumerate(lines):
        try:
            trips.append(json.loads(line))
        except (ValueError, RecursionError) as exc:
            raise Rejected(400, field_error(f"line[{i}]", f"not a JSON document: {_why(exc)}")) from None
    return Batch(trips, "line")


def parse_json(raw: bytes) -> Any:
    """The JSON document of a request body; a 400 naming the body when it is not JSON."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise Rejected(400, field_error("body", f"not valid JSON: {_why(exc)}")) from None


def _why(exc: Exception) -> str:
    return "nested too deeply" if isinstance(exc, RecursionError) else str(exc)[:200]


def instances_of(body: Any) -> Batch:
    """The trips of a JSON body: one trip object, or ``{"instances": [trips]}``."""
    if isinstance(body, dict) and "instances" in body:
        instances = body["instances"]
        if not isinstance(instances, list) or not instances:
            raise Rejected(422, field_error("instances", "expected a non-empty list of trips"))
        if len(instances) > MAX_ROWS:
            raise Rejected(413, field_error("instances", f"at most {MAX_ROWS} trips per request"))
        return Batch(instances, "instances")
    if isinstance(body, dict):
        return Batch([body], None)
    raise Rejected(422, field_error("body", 'expected a trip object or {"instances": [trips]}'))


def csv_trips(lines: Sequence[bytes], fields: Sequence[InputField]) -> list[dict[str, Any]]:
    """Trips from CSV lines whose columns are ``fields`` in order (empty cells are missing)."""
    try:
        rows = list(csv.reader(io.StringIO(b"\n".join(lines).decode("utf-8"))))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise Rejected(400, field_error("body", f"not CSV: {str(exc)[:200]}")) from None
    names = [f.name for f in fields]
    trips = []
    for i, row in enumerate(rows):
        if len(row) != len(fields):
            why = f"expected {len(fields)} columns ({', '.join(names)}), got {len(row)}"
            raise Rejected(400, field_error(f"line[{i}]", why))
        trips.append({f.name: _cell(f.kind, text) for f, text in zip(fields, row, strict=True)})
    return trips


def _cell(kind: str, text: str) -> Any:
    """A CSV cell as the JSON value it stands for; text that is not one is left for validation
    to name."""
    text = text.strip()
    if not text:
        return None
    try:
        if kind in ("integer", "long"):
            return int(text)
        if kind in ("float", "double"):
            return float(text)
    except ValueError:
        return text
    if kind == "boolean" and text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


def encode(body: dict[str, Any], answers: Sequence[dict[str, Any]], fmt: Format) -> bytes:
    """An answer in ``fmt``: the JSON ``body``, or the ``answers`` one per line."""
    if fmt is Format.JSON:
        return json.dumps(body, allow_nan=False).encode()
    if fmt is Format.JSON_LINES:
        return "".join(json.dumps(a, allow_nan=False) + "\n" for a in answers).encode()
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(list(a.values()) for a in answers)
    return out.getvalue().encode()
