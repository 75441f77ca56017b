"""The OpenAPI document of the prediction routes: request bodies, answers and errors.

The bodies are read by hand (size limit, parsing off the event loop, several content
types), so FastAPI cannot derive their schema from a parameter; these functions describe
them from the same pydantic trip model that validates them (:func:`~mlplatform.serving.schema.trip_model`),
so ``/docs`` and ``/openapi.json`` show what ``/predict`` takes. The fields are the loaded
champion's (its input signature) once one is loaded, the spec's feature columns before,
and for the first seconds, until the model loader has imported MLflow (which the spec's
columns need), a generic body: :func:`live_document` builds the document on demand, so
it answers from the app's first second, never waits for an import, and follows the
version served.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, Field
from pydantic import create_model as pydantic_model
from pydantic.json_schema import models_json_schema

from mlplatform.serving.bodies import MAX_ROWS, Format
from mlplatform.serving.schema import InputField, example_trip, trip_model

REF = "#/components/schemas/{model}"


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
    predictions: list[dict[str, Any]] = Field(
        description='{"prediction": x} for a regression, {"label", "probability"} for a classifier'
    )


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorAnswer, "description": why}
    for status, why in {
        400: "The body is not JSON (or JSON Lines, or CSV).",
        413: f"The body is over the size limit or has more than {MAX_ROWS} trips.",
        415: "A content type the route does not read.",
        422: "The trips do not fit the model's inputs: each wrong field is named.",
        503: "No model is loaded yet.",
    }.items()
}
ANSWERS: dict[int | str, dict[str, Any]] = {200: {"model": PredictionAnswer}, **ERRORS}


def _json_body(fields: Sequence[InputField]) -> dict[str, Any]:
    trip = example_trip(fields)
    return {
        "schema": {"oneOf": [{"$ref": REF.format(model="Trip")}, {"$ref": REF.format(model="TripBatch")}]},
        "examples": {
            "one trip": {"value": trip},
            "a batch": {"value": {"instances": [trip, trip]}},
        },
    }


def _csv_line(fields: Sequence[InputField]) -> str:
    trip = example_trip(fields)
    return ",".join(str(trip.get(f.name, "")) for f in fields)


def predict_body(fields: Sequence[InputField]) -> dict[str, Any]:
    """``openapi_extra`` of ``POST /predict``: one trip or ``{"instances": [trips]}``."""
    return {"requestBody": {"required": True, "content": {Format.JSON.value: _json_body(fields)}}}


def invocations_body(fields: Sequence[InputField]) -> dict[str, Any]:
    """``openapi_extra`` of ``POST /invocations``: JSON, JSON Lines or CSV."""
    columns = ", ".join(f.name for f in fields)
    lines = "\n".join([_csv_line(fields)] * 2) + "\n"
    content = {
        Format.JSON.value: _json_body(fields),
        Format.JSON_LINES.value: {
            "schema": {"type": "string", "description": "One Trip object per line."},
            "example": "\n".join([json.dumps(example_trip(fields))] * 2) + "\n",
        },
        Format.CSV.value: {
            "schema": {"type": "string", "description": f"No header; one trip per line, columns: {columns}."},
            "example": lines,
        },
    }
    return {"requestBody": {"required": True, "content": content}}


def trip_schemas(fields: Sequence[InputField]) -> dict[str, Any]:
    """The ``Trip`` and ``TripBatch`` component schemas."""
    trip = trip_model(fields)
    batch = pydantic_model("TripBatch", instances=(list[trip], Field(min_length=1, max_length=MAX_ROWS)))  # type: ignore[valid-type]
    _, definitions = models_json_schema([(trip, "validation"), (batch, "validation")], ref_template=REF)
    schemas: dict[str, Any] = definitions["$defs"]
    return schemas


GENERIC_TRIP = (
    'A trip (a JSON object of the model\'s input fields) or a batch ({"instances": [trips]}). '
    "The app is still starting: reload this page in a few seconds for the trip's fields."
)


def generic_bodies() -> dict[str, dict[str, Any]]:
    """``/predict`` and ``/invocations`` bodies before the fields are known."""
    trip = {"schema": {"type": "object", "description": GENERIC_TRIP}}
    lines = {"schema": {"type": "string", "description": "One trip object per line, or CSV lines."}}
    return {
        "/predict": {"requestBody": {"required": True, "content": {Format.JSON.value: trip}}},
        "/invocations": {
            "requestBody": {
                "required": True,
                "content": {Format.JSON.value: trip, Format.JSON_LINES.value: lines, Format.CSV.value: lines},
            }
        },
    }


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
            if fields is None:
                bodies = generic_bodies()
            else:
                bodies = {"/predict": predict_body(fields), "/invocations": invocations_body(fields)}
                document.setdefault("components", {}).setdefault("schemas", {}).update(trip_schemas(fields))
            for path, body in bodies.items():
                if "post" in paths.get(path, {}):
                    paths[path]["post"].update(body)
            built.clear()
            built[key] = document
        app.openapi_schema = built[key]
        return built[key]

    return openapi
