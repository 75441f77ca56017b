"""Request validation of the serving app (``mlplatform.serving.schema`` and ``.bodies``): what
a body becomes, how each wrong field is named, and that no value, however hostile, escapes
as an exception instead of a 4xx."""

from __future__ import annotations

from datetime import datetime

import pytest

from mlplatform.core.spec import load_spec
from mlplatform.serving.schema import (
    MAX_ROWS,
    Format,
    InputField,
    PredictionAnswer,
    Rejected,
    Validator,
    answer_format,
    convert,
    decode,
    encode,
    frame_of,
    instances_of,
    max_body_bytes,
    parse_json,
    request_format,
    spec_fields,
    trip_model,
)

USE_CASE = load_spec("taxi_trip_duration")
FIELDS = spec_fields(USE_CASE)
BY_NAME = {f.name: f for f in FIELDS}
TRIP = {
    "pickup_datetime": "2024-03-05T08:30:00",
    "pu_location_id": 161,
    "do_location_id": 236,
    "trip_distance": 2.1,
}


def test_the_spec_gives_the_inputs_their_plausible_ranges() -> None:
    assert [f.name for f in FIELDS] == [
        "pickup_datetime", "pu_location_id", "do_location_id", "trip_distance", "taxi_type",
    ]  # fmt: skip
    assert (BY_NAME["pu_location_id"].low, BY_NAME["pu_location_id"].high) == (1, 265)
    assert BY_NAME["trip_distance"].high == USE_CASE.contract.max_trip_miles
    assert BY_NAME["taxi_type"].choices == ("yellow", "green") and not BY_NAME["taxi_type"].required


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("pu_location_id", 7.0, 7),
        ("trip_distance", 3, 3.0),
        ("trip_distance", 0, 0.0),
        ("taxi_type", "green", "green"),
        ("pickup_datetime", "2024-03-05T08:30:00", datetime(2024, 3, 5, 8, 30)),
        # An aware time is New York wall-clock time, as TLC records trips.
        ("pickup_datetime", "2024-03-05T13:30:00Z", datetime(2024, 3, 5, 8, 30)),
    ],
)
def test_convert_accepts_plausible_values(name: str, value: object, expected: object) -> None:
    assert convert(BY_NAME[name], value) == (expected, None)


HOSTILE_VALUES = [
    ("pu_location_id", 2.5),
    ("pu_location_id", True),
    ("pu_location_id", 0),
    ("pu_location_id", 99999),
    ("pu_location_id", 2**31),
    ("pu_location_id", 10**400),
    ("trip_distance", "far"),
    ("trip_distance", float("nan")),
    ("trip_distance", float("inf")),
    ("trip_distance", 1e308),
    ("trip_distance", 10**400),
    ("trip_distance", -50),
    ("trip_distance", [[[1]]]),
    ("taxi_type", "blue"),
    ("taxi_type", 3),
    ("pickup_datetime", 1709627400),
    ("pickup_datetime", "yesterday"),
    ("pickup_datetime", "0001-01-01T00:00:00+05:00"),
    ("pickup_datetime", "9999-12-31T23:59:59-05:00"),
    ("pickup_datetime", "0001-01-01T00:00:00"),
    ("pickup_datetime", "9999-12-31T23:59:59"),
    ("pickup_datetime", "2024-03-05T08:30:00" + " " * 100),
]


@pytest.mark.parametrize(("name", "value"), HOSTILE_VALUES)
def test_convert_says_why_a_value_does_not_fit(name: str, value: object) -> None:
    converted, why = convert(BY_NAME[name], value)
    assert converted is None and why and len(why) < 200


def test_a_kind_json_cannot_carry_is_refused() -> None:
    assert convert(InputField("blob", "binary"), "AA==")[1]


def test_validation_names_each_wrong_field_under_its_prefix() -> None:
    trips = [
        TRIP,
        {**TRIP, "trip_distance": True},
        7,
        {k: v for k, v in TRIP.items() if k != "pu_location_id"},
    ]
    with pytest.raises(Rejected) as rejected:
        Validator(FIELDS).columns(trips, "instances")
    assert rejected.value.status == 422
    assert [e["field"] for e in rejected.value.detail] == [
        "instances[1].trip_distance",
        "instances[2]",
        "instances[3].pu_location_id",
    ]
    with pytest.raises(Rejected) as rejected:
        Validator(FIELDS).columns([{**TRIP, "trip_distance": None}], None)
    assert rejected.value.detail == [{"field": "trip_distance", "error": "required field is missing"}]


def test_validation_reports_at_most_twenty_errors() -> None:
    with pytest.raises(Rejected) as rejected:
        Validator(FIELDS).columns([{}] * 50, "instances")
    assert len(rejected.value.detail) == 20


def test_valid_trips_become_columns_and_a_typed_frame() -> None:
    columns = Validator(FIELDS).columns([TRIP, {**TRIP, "taxi_type": "green"}], "instances")
    assert columns["taxi_type"] == [None, "green"]  # optional and absent: no error
    frame = frame_of(columns, FIELDS)
    assert str(frame["pu_location_id"].dtype) == "int32" and str(frame["trip_distance"].dtype) == "float64"
    assert str(frame["pickup_datetime"].dtype).startswith("datetime64")


def test_the_trip_model_schema_shows_types_ranges_and_an_example() -> None:
    schema = trip_model(FIELDS).model_json_schema()
    assert schema["required"] == ["pickup_datetime", "pu_location_id", "do_location_id", "trip_distance"]
    assert (
        schema["properties"]["pu_location_id"] | {"minimum": 1, "maximum": 265}
        == schema["properties"]["pu_location_id"]
    )
    assert schema["properties"]["pickup_datetime"]["format"] == "date-time"
    assert schema["properties"]["taxi_type"]["enum"] == ["yellow", "green"]
    assert schema["examples"] == [TRIP]


def test_a_json_body_is_one_trip_or_a_list_of_instances() -> None:
    assert instances_of(TRIP).instances == [TRIP] and instances_of(TRIP).prefix is None
    assert instances_of({"instances": [TRIP, TRIP]}).prefix == "instances"
    for body, status in [
        ({"instances": []}, 422),
        ({"instances": "not a list"}, 422),
        ([TRIP], 422),
        ("a string", 422),
        ({"instances": [TRIP] * (MAX_ROWS + 1)}, 413),
    ]:
        with pytest.raises(Rejected) as rejected:
            instances_of(body)
        assert rejected.value.status == status


@pytest.mark.parametrize(
    "raw", [b"{trip", b"[" * 20_000 + b"]" * 20_000, b'{"a":' * 5_000 + b"1" + b"}" * 5_000, b"", b"\xff"]
)
def test_a_body_that_is_not_json_is_a_400_naming_the_body(raw: bytes) -> None:
    with pytest.raises(Rejected) as rejected:
        parse_json(raw)
    assert rejected.value.status == 400 and rejected.value.detail[0]["field"] == "body"


def test_json_lines_and_csv_bodies() -> None:
    lines = b'{"a": 1}\n\n{"a": 2}\n'
    assert decode(lines, Format.JSON_LINES, FIELDS).instances == [{"a": 1}, {"a": 2}]
    csv_trips = decode(
        b"2024-03-05T08:30:00,161,236,2.1,\n2024-03-05T09:00:00,1,2,x,green\n", Format.CSV, FIELDS
    )
    assert csv_trips.prefix == "line"
    assert csv_trips.instances[0] == {**TRIP, "taxi_type": None}
    assert csv_trips.instances[1]["trip_distance"] == "x"  # left for validation to name
    for raw, fmt, status, field in [
        (b'{"a": 1}\n{a\n', Format.JSON_LINES, 400, "line[1]"),
        (b"", Format.JSON_LINES, 422, "body"),
        (b"\n  \n", Format.JSON_LINES, 422, "body"),
        (b"[" * 5000 + b"\n", Format.JSON_LINES, 400, "line[0]"),
        (b"{}\n" * (MAX_ROWS + 1), Format.JSON_LINES, 413, "body"),
        (b"1,2\n", Format.CSV, 400, "line[0]"),
        (b"\xff,\xfe\n", Format.CSV, 400, "body"),
        (b"", Format.CSV, 422, "body"),
    ]:
        with pytest.raises(Rejected) as rejected:
            decode(raw, fmt, FIELDS)
        assert (rejected.value.status, rejected.value.detail[0]["field"]) == (status, field), raw[:20]


def test_content_types_and_accept() -> None:
    assert request_format(None) is Format.JSON
    assert request_format("application/x-jsonlines; charset=utf-8") is Format.JSON_LINES
    assert request_format("text/csv") is Format.CSV
    assert answer_format(None, Format.CSV) is Format.CSV
    assert answer_format("*/*", Format.JSON_LINES) is Format.JSON_LINES
    assert answer_format("text/csv, application/json;q=0.5", Format.JSON) is Format.CSV
    with pytest.raises(Rejected) as rejected:
        request_format("application/xml")
    assert rejected.value.status == 415
    with pytest.raises(Rejected) as rejected:
        answer_format("image/png", Format.JSON)
    assert rejected.value.status == 406


def test_answers_are_encoded_in_the_format_asked() -> None:
    answers: list[dict[str, float | str]] = [{"prediction": 9.5}, {"prediction": 11.0}]
    answer = PredictionAnswer(
        request_id="r", model="m", version="1", variant="champion", unit="minutes", predictions=answers
    )
    assert encode(answer, Format.CSV) == b"9.5\n11.0\n"
    assert encode(answer, Format.JSON_LINES) == b'{"prediction": 9.5}\n{"prediction": 11.0}\n'
    assert encode(answer, Format.JSON).startswith(b'{"request_id": "r"')


def test_the_body_limit_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLPLATFORM_SERVING_MAX_BODY_BYTES", raising=False)
    assert max_body_bytes() == 8 * 2**20
    monkeypatch.setenv("MLPLATFORM_SERVING_MAX_BODY_BYTES", "65536")
    assert max_body_bytes() == 65536
    monkeypatch.setenv("MLPLATFORM_SERVING_MAX_BODY_BYTES", "lots")
    with pytest.raises(ValueError, match="MLPLATFORM_SERVING_MAX_BODY_BYTES"):
        max_body_bytes()


def test_the_uvicorn_target_is_the_asgi_app() -> None:
    """`uvicorn mlplatform.serving:app` (what the embedded default runs) finds the app, not a
    submodule of the same name."""
    from fastapi import FastAPI
    from uvicorn.importer import import_from_string

    import mlplatform.serving.routes  # noqa: F401  (every submodule loaded, as in a running app)

    assert isinstance(import_from_string("mlplatform.serving:app"), FastAPI)
