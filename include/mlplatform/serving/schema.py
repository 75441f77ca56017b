"""Request validation: a request body becomes columns typed by the model's input signature.

A malformed request is answered with a 4xx whose ``detail`` names each wrong field, never
a 5xx: :class:`Rejected` carries that answer for a body that is not a trip or a list of
trips, :func:`validate` collects the per-field errors of the trips themselves.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

MAX_INSTANCES = 10_000
MAX_ERRORS_REPORTED = 20
NEW_YORK = ZoneInfo("America/New_York")

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


@dataclass(frozen=True)
class InputField:
    """One input of the model's signature and how a JSON value becomes a column value."""

    name: str
    kind: str  # integer | long | float | double | string | boolean | datetime
    required: bool = True


class Rejected(Exception):
    """A request refused before it reaches the model: its HTTP status and ``detail``."""

    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(status, detail)
        self.status, self.detail = status, detail


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


def parse_json(raw: bytes) -> Any:
    """The JSON document of a request body; a 400 naming the body when it is not JSON."""
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise Rejected(400, [{"field": "body", "error": f"not valid JSON: {exc}"}]) from None


def parse_json_lines(raw: bytes) -> list[Any]:
    """The documents of a JSON Lines body, one per non-blank line; a 400 when one is not JSON."""
    lines = [line for line in raw.splitlines() if line.strip()]
    try:
        return [json.loads(line) for line in lines]
    except ValueError as exc:
        raise Rejected(400, [{"field": "body", "error": f"not JSON Lines: {exc}"}]) from None


def instances_of(body: Any) -> tuple[list[Any], str | None]:
    """The trips of a request body, and the field prefix errors are reported under."""
    if isinstance(body, dict) and "instances" in body:
        instances = body["instances"]
        if not isinstance(instances, list) or not instances:
            raise Rejected(422, [{"field": "instances", "error": "expected a non-empty list of trips"}])
        if len(instances) > MAX_INSTANCES:
            raise Rejected(
                413, [{"field": "instances", "error": f"at most {MAX_INSTANCES} trips per request"}]
            )
        return instances, "instances"
    if isinstance(body, dict):
        return [body], None
    raise Rejected(422, [{"field": "body", "error": 'expected a trip object or {"instances": [trips]}'}])


def convert(kind: str, value: Any) -> tuple[Any, str | None]:
    """``value`` as the column type ``kind``, or ``None`` and why it cannot be."""
    if kind in _INT_BOUNDS:
        return _integer(kind, value)
    if kind in ("float", "double"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None, f"expected a number, got {value!r}"
        if not math.isfinite(value):
            return None, f"expected a finite number, got {value!r}"
        return float(value), None
    if kind == "datetime":
        return _datetime(value)
    if kind == "boolean":
        return (value, None) if isinstance(value, bool) else (None, f"expected true or false, got {value!r}")
    if kind == "string":
        return (value, None) if isinstance(value, str) else (None, f"expected a string, got {value!r}")
    return None, f"the model's signature has a {kind} input, which this app cannot take from JSON"


def _integer(kind: str, value: Any) -> tuple[Any, str | None]:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        return None, f"expected an integer, got {value!r}"
    low, high = _INT_BOUNDS[kind]
    if not low <= value <= high:
        return None, f"integer {value} is out of range for {kind}"
    return value, None


def _datetime(value: Any) -> tuple[Any, str | None]:
    if not isinstance(value, str):
        return None, f"expected an ISO 8601 date-time string, got {value!r}"
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None, f"expected an ISO 8601 date-time like 2024-03-05T08:30:00, got {value!r}"
    if parsed.tzinfo is not None:  # trips are in New York local time, as TLC records them
        parsed = parsed.astimezone(NEW_YORK).replace(tzinfo=None)
    return parsed, None


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
            converted, why = convert(f.kind, value)
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
