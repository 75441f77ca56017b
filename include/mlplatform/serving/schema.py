"""What a request and its answer are: the trip fields a model takes, their plausible ranges
and validation, the content types read and written, and the limits on a body.

The fields come from the model's input signature (or, for a model logged without one and
for the OpenAPI document, from the spec's feature columns). :func:`trip_model` turns them
into a pydantic model whose JSON schema is what ``/docs`` shows and whose validation is what
``/predict`` runs; :class:`Validator` reports each wrong field by its place in the request
(``instances[3].trip_distance``), never a 5xx: every conversion and overflow error of a
value is a message. Ranges are data of the use case and the TLC format: distances from 0 to
the contract's longest plausible trip, zone ids of the TLC zone table, pickups from the
first TLC records to a year from now.

``/predict`` takes JSON; ``/invocations`` (SageMaker's contract) takes JSON, JSON Lines (one
trip object per line, what Batch Transform sends) or CSV (no header, one trip per line, the
columns in the order of the model's inputs) and answers in the type ``Accept`` asks for,
else in the type it was sent. A body is at most ``max_body_bytes`` (8 MiB unless
``MLPLATFORM_SERVING_MAX_BODY_BYTES`` says otherwise) and :data:`MAX_ROWS` trips, whatever
its type. Everything wrong with a body is a :class:`Rejected` 4xx naming where: 400 (not
parseable), 406 (no answer type we speak), 413 (too large), 415 (a content type we do not
read), 422 (parsed, but not trips). The answers are :class:`PredictionAnswer` and
:class:`ErrorAnswer`.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
)
from pydantic import create_model as pydantic_model
from pydantic_core import PydanticCustomError

from mlplatform.core.spec import UseCase

if TYPE_CHECKING:  # pandas loads with the first model, not before the app listens
    import pandas as pd

MAX_ROWS = 10_000
DEFAULT_MAX_BODY_BYTES = 8 * 2**20
MAX_BODY_BYTES_VARIABLE = "MLPLATFORM_SERVING_MAX_BODY_BYTES"
OFF_LOOP_BYTES = 64 * 2**10
"""Bodies larger than this are parsed on a worker thread, so the event loop stays free."""
MAX_ERRORS_REPORTED = 20
MAX_STRING_CHARS = 200
NEW_YORK = ZoneInfo("America/New_York")
EARLIEST_PICKUP = datetime(2009, 1, 1)  # the first TLC trip records
LATEST_PICKUP_AHEAD = timedelta(days=366)  # a trip booked ahead, not a typo of the year

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
_JSON_TYPES = {"integer": "integer", "long": "integer", "float": "number", "double": "number"}
_PYTHON_TYPES: dict[str, type] = {
    "integer": int,
    "long": int,
    "float": float,
    "double": float,
    "boolean": bool,
    "datetime": datetime,
    "string": str,
}
_EXAMPLES: dict[str, str | float] = {
    "pickup_datetime": "2024-03-05T08:30:00",
    "pu_location_id": 161,
    "do_location_id": 236,
    "trip_distance": 2.1,
}


@dataclass(frozen=True)
class InputField:
    """One input of the model and what a value of it must be."""

    name: str
    kind: str  # integer | long | float | double | string | boolean | datetime
    required: bool = True
    low: float | None = None  # numbers: inclusive bounds
    high: float | None = None
    choices: tuple[str, ...] | None = None  # strings: the values there are


class Rejected(Exception):
    """A request refused before it reaches the model: its HTTP status and ``detail``."""

    def __init__(self, status: int, detail: list[dict[str, str]] | str) -> None:
        super().__init__(status, detail)
        self.status, self.detail = status, detail


def field_error(field: str, error: str) -> list[dict[str, str]]:
    """The ``detail`` of a 4xx about one field (or ``body``, or a header)."""
    return [{"field": field, "error": error}]


class FieldError(BaseModel):
    """One thing wrong with a request: where, and what."""

    field: str = Field(description="The field, header, line or ``body`` that is wrong.")
    error: str


class ErrorAnswer(BaseModel):
    """The body of every 4xx and 5xx answer."""

    detail: list[FieldError] | str
    request_id: str | None = None


class PredictionAnswer(BaseModel):
    """The answer of ``/predict``: one prediction per trip, in the order sent."""

    request_id: str
    model: str
    version: str
    variant: str = Field(description="champion or challenger")
    unit: str = Field(description="the unit of the predictions (minutes for trip durations)")
    predictions: list[dict[str, float | str]] = Field(
        description='{"prediction": x} for a regression, {"label", "probability"} for a classifier'
    )


def model_fields(model: Any, use_case: UseCase) -> list[InputField]:
    """The inputs of a loaded pyfunc: its signature, else the columns its features need."""
    schema = model.metadata.get_input_schema()
    if schema is not None and schema.has_input_names():
        fields = [
            InputField(spec.name, spec.type.name, bool(getattr(spec, "required", True)))
            for spec in schema.inputs
        ]
        return with_ranges(fields, use_case)
    from mlplatform.adapters.pyfunc import trip_model

    return spec_fields(use_case, trip_model(model).features)


def spec_fields(use_case: UseCase, features: Sequence[str] | None = None) -> list[InputField]:
    """The inputs of a model of ``use_case`` (with ``features``, default the spec's): its
    feature columns in the normalised trip schema."""
    from mlplatform.core.modelling import input_columns, input_defaults
    from mlplatform.core.tlc import NORMALISED_SCHEMA

    kinds = {"int32": "integer", "int64": "long", "double": "double", "string": "string"}
    optional = input_defaults(use_case)
    fields = [
        InputField(name, kinds.get(str(NORMALISED_SCHEMA.field(name).type), "datetime"), name not in optional)
        for name in input_columns(tuple(use_case.features.all if features is None else features))
    ]
    return with_ranges(fields, use_case)


def with_ranges(fields: Sequence[InputField], use_case: UseCase) -> list[InputField]:
    """``fields`` with the plausible ranges of the use case and the TLC zone table."""
    from mlplatform.core.tlc import N_ZONES

    bounds: dict[str, tuple[float, float]] = {
        "trip_distance": (0.0, use_case.contract.max_trip_miles),
        "pu_location_id": (1, N_ZONES),
        "do_location_id": (1, N_ZONES),
        "passenger_count": (0, 9),
    }
    choices = {"taxi_type": tuple(use_case.data.taxi_types)}
    ranged = []
    for f in fields:
        if f.name in bounds:
            f = replace(f, low=bounds[f.name][0], high=bounds[f.name][1])
        if f.name in choices:
            f = replace(f, choices=choices[f.name])
        ranged.append(f)
    return ranged


def convert(field: InputField, value: Any) -> tuple[Any, str | None]:
    """``value`` as a value of ``field``, or ``None`` and why it cannot be."""
    kind = field.kind
    if kind in _INT_BOUNDS:
        converted, why = _integer(kind, value)
    elif kind in ("float", "double"):
        converted, why = _number(value)
    elif kind == "datetime":
        return _datetime(value)
    elif kind == "boolean":
        return (
            (value, None)
            if isinstance(value, bool)
            else (None, f"expected true or false, got {_show(value)}")
        )
    elif kind == "string":
        return _string(field, value)
    else:
        return None, f"the model's signature has a {kind} input, which this app cannot take from JSON"
    if why is None and not _within(field, converted):
        return None, f"{converted} is outside the plausible range [{field.low:g}, {field.high:g}]"
    return converted, why


def _within(field: InputField, number: float) -> bool:
    low = -math.inf if field.low is None else field.low
    high = math.inf if field.high is None else field.high
    return bool(low <= number <= high)


def _show(value: Any) -> str:
    """A short description of a value for an error message (never a huge or deep repr)."""
    if isinstance(value, dict | list):
        return "a JSON object" if isinstance(value, dict) else "a JSON array"
    text = repr(value) if not isinstance(value, int) or abs(value) < 10**30 else "a very large integer"
    return text if len(text) <= 60 else f"{text[:57]}..."


def _integer(kind: str, value: Any) -> tuple[Any, str | None]:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        return None, f"expected an integer, got {_show(value)}"
    low, high = _INT_BOUNDS[kind]
    if not low <= value <= high:
        return None, f"integer {_show(value)} is out of range for {kind}"
    return value, None


def _number(value: Any) -> tuple[Any, str | None]:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None, f"expected a number, got {_show(value)}"
    try:
        number = float(value)
    except OverflowError:
        return None, f"{_show(value)} is too large for a number"
    if not math.isfinite(number):
        return None, f"expected a finite number, got {_show(value)}"
    return number, None


def _string(field: InputField, value: Any) -> tuple[Any, str | None]:
    if not isinstance(value, str):
        return None, f"expected a string, got {_show(value)}"
    if field.choices is not None and value not in field.choices:
        return None, f"expected one of {list(field.choices)}, got {_show(value)}"
    if len(value) > MAX_STRING_CHARS:
        return None, f"a string of at most {MAX_STRING_CHARS} characters"
    return value, None


def _datetime(value: Any) -> tuple[Any, str | None]:
    """A naive New York wall-clock time (TLC's convention) in the plausible window."""
    if not isinstance(value, str) or len(value) > 64:
        return None, f"expected an ISO 8601 date-time string, got {_show(value)}"
    latest = datetime.now() + LATEST_PICKUP_AHEAD
    outside = f"{value} is outside the plausible window {EARLIEST_PICKUP:%Y-%m-%d} to {latest:%Y-%m-%d}"
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None, f"expected an ISO 8601 date-time like 2024-03-05T08:30:00, got {_show(value)}"
    try:
        if parsed.tzinfo is not None:  # trips are in New York local time, as TLC records them
            parsed = parsed.astimezone(NEW_YORK).replace(tzinfo=None)
    except OverflowError:  # years 1 and 9999 have no neighbours to shift into
        return None, outside
    return (parsed, None) if EARLIEST_PICKUP <= parsed <= latest else (None, outside)


def _checked(field: InputField, value: Any) -> Any:
    if value is None:
        if field.required:
            raise PydanticCustomError("missing", "required {kind} field is missing", {"kind": field.kind})
        return None
    converted, why = convert(field, value)
    if why is not None:
        raise PydanticCustomError("invalid", "{why}", {"why": why})
    return converted


def _json_schema(field: InputField) -> dict[str, Any]:
    """The JSON schema of one field, as ``/docs`` shows it."""
    if field.kind == "datetime":
        window = f"from {EARLIEST_PICKUP:%Y-%m-%d} to a year ahead"
        return {"type": "string", "format": "date-time", "description": f"New York wall-clock time, {window}"}
    bounds = {} if field.low is None else {"minimum": field.low, "maximum": field.high}
    choices = {} if field.choices is None else {"enum": list(field.choices)}
    return {"type": _JSON_TYPES.get(field.kind, field.kind), **bounds, **choices}


def example_of(field: InputField) -> str | float | bool:
    """A plausible value of ``field`` for the documentation."""
    if field.name in _EXAMPLES:
        return _EXAMPLES[field.name]
    if field.choices:
        return field.choices[0]
    return {"datetime": _EXAMPLES["pickup_datetime"], "boolean": False, "string": ""}.get(
        field.kind, field.low or 1
    )


def trip_model(fields: Sequence[InputField], name: str = "Trip") -> type[BaseModel]:
    """The pydantic model of one trip: validation and the JSON schema ``/docs`` shows."""
    definitions: dict[str, Any] = {}  # keyword arguments of pydantic's create_model
    for f in fields:
        annotated = Annotated[  # type: ignore[valid-type]
            _PYTHON_TYPES.get(f.kind, Any) | None,
            PlainValidator(partial(_checked, f)),
            WithJsonSchema(_json_schema(f)),
        ]
        default = ... if f.required else None
        definitions[f.name] = (annotated, Field(default, examples=[example_of(f)]))
    config = ConfigDict(extra="ignore", json_schema_extra={"examples": [{**example_trip(fields)}]})
    return pydantic_model(name, __config__=config, **definitions)


def example_trip(fields: Sequence[InputField]) -> dict[str, str | float | bool]:
    """One plausible trip of ``fields`` (the required ones) for the documentation."""
    return {f.name: example_of(f) for f in fields if f.required}


class Validator:
    """Checks the trips of a request against one model's fields (its pydantic trip model)."""

    def __init__(self, fields: Sequence[InputField]) -> None:
        self.fields = list(fields)
        self.model = trip_model(self.fields)
        self._trips = TypeAdapter(list[self.model])  # type: ignore[name-defined]

    def columns(self, instances: Sequence[Any], prefix: str | None) -> dict[str, list[Any]]:
        """Columns of checked values; raises :class:`Rejected` (422) naming each wrong field."""
        try:
            trips = self._trips.validate_python(instances)
        except ValidationError as exc:
            raise Rejected(422, _named_errors(exc, prefix)) from None
        return {f.name: [getattr(t, f.name) for t in trips] for f in self.fields}


def _named_errors(exc: ValidationError, prefix: str | None) -> list[dict[str, str]]:
    errors = []
    for err in exc.errors(include_url=False, include_input=False)[:MAX_ERRORS_REPORTED]:
        index, *names = err["loc"]
        where = f"{prefix}[{index}]" if prefix else ""
        if not names:
            errors.append({"field": where or "body", "error": "expected a JSON object of trip fields"})
            continue
        name = f"{where}.{names[0]}" if where else str(names[0])
        message = "required field is missing" if err["type"] == "missing" else err["msg"]
        errors.append({"field": name, "error": message})
    return errors


def frame_of(columns: dict[str, list[Any]], fields: Sequence[InputField]) -> pd.DataFrame:
    """A frame with the signature's column types (nullable inputs fall back to inference)."""
    import numpy as np
    import pandas as pd

    data = {}
    for f in fields:
        values = columns[f.name]
        dtype = _DTYPES.get(f.kind, "object")
        try:
            data[f.name] = np.array(values, dtype=dtype)
        except (TypeError, ValueError):  # None among optional values
            data[f.name] = pd.Series(values)
    return pd.DataFrame(data)


# ---------------------------------------------------------------------------- bodies


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


def csv_trips(
    lines: Sequence[bytes], fields: Sequence[InputField]
) -> list[dict[str, str | float | bool | None]]:
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


def _cell(kind: str, text: str) -> str | float | bool | None:
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


def encode(answer: PredictionAnswer, fmt: Format) -> bytes:
    """``answer`` in ``fmt``: the whole answer as JSON, or its predictions one per line."""
    if fmt is Format.JSON:
        return json.dumps(answer.model_dump(), allow_nan=False).encode()
    answers = answer.predictions
    if fmt is Format.JSON_LINES:
        return "".join(json.dumps(a, allow_nan=False) + "\n" for a in answers).encode()
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(list(a.values()) for a in answers)
    return out.getvalue().encode()
