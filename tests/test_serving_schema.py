"""Request validation of the serving app (``mlplatform.serving.schema``): what a body
becomes, and how each wrong field is named."""

from __future__ import annotations

from datetime import datetime

import pytest

from mlplatform.serving.schema import (
    MAX_INSTANCES,
    InputField,
    Rejected,
    convert,
    frame_of,
    instances_of,
    parse_json,
    parse_json_lines,
    validate,
)

FIELDS = [
    InputField("pickup_datetime", "datetime"),
    InputField("pu_location_id", "integer"),
    InputField("trip_distance", "double"),
    InputField("taxi_type", "string", required=False),
]
TRIP = {"pickup_datetime": "2024-03-05T08:30:00", "pu_location_id": 161, "trip_distance": 2.1}


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        ("integer", 7.0, 7),
        ("long", 2**40, 2**40),
        ("double", 3, 3.0),
        ("boolean", True, True),
        ("string", "green", "green"),
        ("datetime", "2024-03-05T08:30:00", datetime(2024, 3, 5, 8, 30)),
        # An aware time is New York wall-clock time, as TLC records trips.
        ("datetime", "2024-03-05T13:30:00Z", datetime(2024, 3, 5, 8, 30)),
    ],
)
def test_convert_accepts_json_values_of_the_signature_types(
    kind: str, value: object, expected: object
) -> None:
    assert convert(kind, value) == (expected, None)


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("integer", 2.5),
        ("integer", True),
        ("integer", 2**31),
        ("double", "far"),
        ("double", float("nan")),
        ("datetime", 1709627400),
        ("datetime", "yesterday"),
        ("boolean", 1),
        ("string", 3),
        ("binary", "AA=="),
    ],
)
def test_convert_says_why_a_value_does_not_fit(kind: str, value: object) -> None:
    converted, why = convert(kind, value)
    assert converted is None and why


def test_validate_names_each_wrong_field_under_its_prefix() -> None:
    trips = [
        TRIP,
        {**TRIP, "trip_distance": True},
        7,
        {k: v for k, v in TRIP.items() if k != "pu_location_id"},
    ]
    columns, errors = validate(trips, FIELDS, "instances")
    assert [e["field"] for e in errors] == [
        "instances[1].trip_distance",
        "instances[2]",
        "instances[3].pu_location_id",
    ]
    assert columns["taxi_type"] == [None, None, None]  # optional and absent: no error

    _, errors = validate([{**TRIP, "trip_distance": None}], FIELDS, None)
    assert errors == [{"field": "trip_distance", "error": "required double field is missing"}]


def test_validate_stops_after_the_errors_it_reports() -> None:
    _, errors = validate([{}] * 50, FIELDS, "instances")
    assert 20 <= len(errors) < 50


def test_a_body_is_one_trip_or_a_list_of_instances() -> None:
    assert instances_of(TRIP) == ([TRIP], None)
    assert instances_of({"instances": [TRIP, TRIP]}) == ([TRIP, TRIP], "instances")
    for body, status in [
        ({"instances": []}, 422),
        ({"instances": "not a list"}, 422),
        ([TRIP], 422),
        ("a string", 422),
        ({"instances": [TRIP] * (MAX_INSTANCES + 1)}, 413),
    ]:
        with pytest.raises(Rejected) as rejected:
            instances_of(body)
        assert rejected.value.status == status


def test_a_body_that_is_not_json_is_a_400_naming_the_body() -> None:
    with pytest.raises(Rejected) as rejected:
        parse_json(b"{trip")
    assert rejected.value.status == 400 and "not valid JSON" in rejected.value.detail[0]["error"]
    assert parse_json_lines(b'{"a": 1}\n\n{"a": 2}\n') == [{"a": 1}, {"a": 2}]
    with pytest.raises(Rejected, match="not JSON Lines"):
        parse_json_lines(b'{"a": 1}\n{a\n')


def test_frame_of_uses_the_signature_types() -> None:
    columns, errors = validate([TRIP, {**TRIP, "taxi_type": "green"}], FIELDS, "instances")
    frame = frame_of(columns, FIELDS)
    assert not errors
    assert str(frame["pu_location_id"].dtype) == "int32" and str(frame["trip_distance"].dtype) == "float64"
    assert str(frame["pickup_datetime"].dtype).startswith("datetime64")
    assert frame["taxi_type"].tolist() == [None, "green"]


def test_the_uvicorn_target_is_the_asgi_app() -> None:
    """`uvicorn mlplatform.serving:app` (what the embedded default runs) finds the app, not a
    submodule of the same name."""
    from fastapi import FastAPI
    from uvicorn.importer import import_from_string

    import mlplatform.serving.routes  # noqa: F401  (every submodule loaded, as in a running app)

    assert isinstance(import_from_string("mlplatform.serving:app"), FastAPI)
