"""The serving app under hostile input, over real HTTP: bodies generated from its own
``/openapi.json`` request schema (property-based, hypothesis) and hand-picked attacks (deep
nesting, huge and non-finite numbers, extreme dates, empty and huge JSON Lines, bodies over
the limit, CSV garbage). Whatever arrives: no 5xx, a 4xx names what is wrong, the same
pooled client keeps working, and the server's memory stays bounded."""

from __future__ import annotations

import json
import resource
import socket
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import numpy as np
import pandas as pd
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_scoring import USE_CASE, normalised_trips
from test_serving import TRIP, labels, parsed, running

from mlplatform import serving
from mlplatform.adapters.lake import Lake

pytestmark = pytest.mark.slow

LIMIT = 1 * 2**20  # a small body limit, so going over it is cheap to test
FUZZ = settings(max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
JSON_LINES, CSV = {"Content-Type": "application/jsonlines"}, {"Content-Type": "text/csv"}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small trip-duration model saved as an MLflow pyfunc folder (no registry needed)."""
    import mlflow

    from mlplatform.adapters.pyfunc import TripPyfunc
    from mlplatform.core.modelling import TripModel, input_columns, input_defaults, trip_features
    from mlplatform.stages.training import model_signature
    from mlplatform.use_cases.taxi_trip_duration import build_estimator

    features = USE_CASE.features.all
    train = normalised_trips("2024-01", 2_000, seed=5).to_pandas()
    estimator = build_estimator("hist_gradient_boosting", {"max_iter": 10}, USE_CASE.features)
    estimator.fit(trip_features(train)[list(features)], train[USE_CASE.target.column])
    model = TripModel(estimator, features, USE_CASE.task, defaults=input_defaults(USE_CASE))
    path = tmp_path_factory.mktemp("model") / "model"
    signature = model_signature(USE_CASE, model, train[input_columns(features)].head(20))
    mlflow.pyfunc.save_model(path, python_model=TripPyfunc(model), signature=signature, pip_requirements=[])
    return path


class Server(NamedTuple):
    """The app under test, its address, a pooled client and its lake."""

    base: str
    http: httpx.Client
    app: FastAPI
    lake: Lake


@pytest.fixture(scope="module")
def server(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    lake = Lake((tmp_path_factory.mktemp("lake")).as_uri())
    app = serving.create_app(
        USE_CASE, lake=lake, model_uri=str(model_dir), model_version="1", poll_seconds=0, max_body_bytes=LIMIT
    )
    with running(app) as (base, http):
        yield Server(base, http, app, lake)


@pytest.fixture(scope="module")
def openapi(server: Server) -> dict[str, Any]:
    return dict(server.http.get(f"{server.base}/openapi.json").json())


# -- strategies from the OpenAPI document ---------------------------------------------------------
def resolve(schema: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def valid(schema: dict[str, Any], document: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values the schema allows (dates in the documented window, at most a few array items)."""
    schema = resolve(schema, document)
    if "oneOf" in schema:
        return st.one_of([valid(option, document) for option in schema["oneOf"]])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "object":
        properties = {name: valid(sub, document) for name, sub in schema["properties"].items()}
        required = set(schema.get("required", []))
        return st.fixed_dictionaries(
            {k: v for k, v in properties.items() if k in required},
            optional={k: v for k, v in properties.items() if k not in required},
        )
    if kind == "array":
        items = valid(schema["items"], document)
        return st.lists(items, min_size=schema.get("minItems", 0), max_size=min(schema.get("maxItems", 4), 4))
    if kind == "integer":
        return st.integers(schema.get("minimum"), schema.get("maximum"))
    if kind == "number":
        return st.floats(schema.get("minimum"), schema.get("maximum"), allow_nan=False, allow_infinity=False)
    if schema.get("format") == "date-time":
        return st.datetimes(datetime(2009, 1, 1), datetime(2025, 12, 31)).map(datetime.isoformat)
    return st.text(max_size=20)


ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


def hostile(schema: dict[str, Any], document: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values shaped by the schema where any part may be out of range, of another type or missing."""
    schema = resolve(schema, document)
    if "oneOf" in schema:
        return st.one_of([hostile(option, document) for option in schema["oneOf"]])
    if schema.get("type") == "object":
        properties = {name: hostile(sub, document) for name, sub in schema["properties"].items()}
        return st.fixed_dictionaries({}, optional=properties)
    if schema.get("type") == "array":
        return st.lists(hostile(schema["items"], document), max_size=4)
    extremes = st.sampled_from([10**400, -(10**400), 1e308, -1e308, 2**63, "0001-01-01T00:00:00+14:00"])
    return st.one_of(valid(schema, document), ANY_JSON, extremes)


def predict_schema(document: dict[str, Any]) -> dict[str, Any]:
    content = document["paths"]["/predict"]["post"]["requestBody"]["content"]
    return dict(content["application/json"]["schema"])


# -- the properties --------------------------------------------------------------------------------
def still_usable(base: str, http: httpx.Client) -> None:
    """The pooled client's next request works: no connection was dropped under it."""
    assert http.get(f"{base}/health").status_code == 200


def test_bodies_the_schema_allows_are_answered(server: Server, openapi: dict[str, Any]) -> None:
    base, http = server.base, server.http

    @FUZZ
    @given(valid(predict_schema(openapi), openapi))
    def answered(body: Any) -> None:
        response = http.post(f"{base}/predict", json=body)
        assert response.status_code == 200, (body, response.text)
        assert all(isinstance(p["prediction"], float) for p in response.json()["predictions"])

    answered()


def test_hostile_bodies_from_the_schema_get_a_4xx_naming_the_field(
    server: Server, openapi: dict[str, Any]
) -> None:
    base, http = server.base, server.http

    @FUZZ
    @given(hostile(predict_schema(openapi), openapi), st.sampled_from(["/predict", "/invocations"]))
    def refused_or_answered(body: Any, route: str) -> None:
        response = http.post(
            f"{base}{route}", content=json.dumps(body), headers={"Content-Type": "application/json"}
        )
        assert response.status_code < 500, (body, response.text)
        if response.status_code >= 400:
            assert all(d["field"] for d in response.json()["detail"]), response.text
        still_usable(base, http)

    refused_or_answered()


def deep(levels: int) -> str:
    return "[" * levels + "]" * levels


def stream(total: int, line: bytes) -> Iterator[bytes]:
    """A chunked body of ``total`` bytes, made on the fly (the client holds none of it)."""
    chunk = line * (2**16 // len(line))
    for _ in range(total // len(chunk) + 1):
        yield chunk


HOSTILE_REQUESTS: list[tuple[str, str | bytes, dict[str, str]]] = [
    ("/predict", deep(10_000), {}),
    ("/predict", '{"instances": ' + deep(50_000) + "}", {}),
    ("/predict", '{"trip_distance": ' + deep(100_000) + "}", {}),
    ("/predict", json.dumps({**TRIP, "trip_distance": 10**400}), {}),
    ("/predict", json.dumps({**TRIP, "pu_location_id": 10**4000}), {}),
    ("/predict", json.dumps(TRIP).replace("161", "1" * 5000), {}),  # over Python's int-digit limit
    ("/predict", json.dumps({**TRIP, "trip_distance": 1e308}), {}),
    ("/predict", json.dumps(TRIP).replace("2.1", "1e309"), {}),
    ("/predict", json.dumps(TRIP).replace("2.1", "NaN"), {}),
    ("/predict", json.dumps(TRIP).replace("2.1", "-Infinity"), {}),
    ("/predict", json.dumps({**TRIP, "trip_distance": -50}), {}),
    ("/predict", json.dumps({**TRIP, "pu_location_id": 0, "do_location_id": 99999}), {}),
    ("/predict", json.dumps({**TRIP, "pickup_datetime": "0001-01-01T00:00:00+14:00"}), {}),
    ("/predict", json.dumps({**TRIP, "pickup_datetime": "9999-12-31T23:59:59.999999-12:00"}), {}),
    ("/predict", json.dumps({**TRIP, "pickup_datetime": "0001-01-01"}), {}),
    ("/predict", json.dumps({"instances": [{}] * 10_000}), {}),
    ("/predict", json.dumps({"instances": [TRIP] * 10_000}), {}),  # over the 1 MiB limit
    ("/predict", json.dumps({"instances": None}), {}),
    ("/predict", "null", {}),
    ("/predict", "", {}),
    ("/predict", b"\xff\xfe{}", {}),
    ("/predict", json.dumps(TRIP), {"X-Request-Id": "x" * 8000, "X-Variant": "x" * 100}),
    ("/invocations", "", JSON_LINES),
    ("/invocations", "\n \n\t\n", JSON_LINES),
    ("/invocations", "[[{}]]\n[1]\n", JSON_LINES),
    ("/invocations", "7\nnull\n", JSON_LINES),
    ("/invocations", deep(10_000) + "\n", JSON_LINES),
    ("/invocations", json.dumps(TRIP) + "\n{oops\n", JSON_LINES),
    ("/invocations", "{}\n" * 10_001, JSON_LINES),
    ("/invocations", (json.dumps(TRIP) + "\n") * 10_000, JSON_LINES),  # over the 1 MiB limit
    ("/invocations", "", CSV),
    ("/invocations", "\x00\x01,\x02\n", CSV),
    ("/invocations", '"unbalanced,1,2,3,\n', CSV),
    ("/invocations", "a" * 200_000 + ",1,2,3,\n", CSV),
    ("/invocations", "2024-03-05T08:30:00,161,236,1e999,\n", CSV),
    ("/invocations", "2024-03-05T08:30:00,161,236\n", CSV),
    ("/invocations", b"\xff\xfe,\xfd\n", CSV),
    ("/invocations", json.dumps(TRIP), {"Content-Type": "application/xml"}),
    ("/invocations", json.dumps(TRIP), {"Accept": "image/png"}),
]


def test_hand_picked_attacks_get_4xx_and_leave_the_connection_and_memory_sound(server: Server) -> None:
    base, http = server.base, server.http
    statuses = []
    before = rss_bytes()
    for route, body, headers in HOSTILE_REQUESTS:
        try:
            response = http.post(f"{base}{route}", content=body, headers=headers)
        except httpx.HTTPError as exc:  # only the lying Content-Length may end the exchange
            assert "Content-Length" in headers, (route, body[:80], exc)
        else:
            assert 400 <= response.status_code < 500, (route, body[:80], response.status_code, response.text)
            statuses.append(response.status_code)
            assert response.json()["detail"], response.text
        still_usable(base, http)
    for content_type in ("application/json", "application/jsonlines", "text/csv"):
        over = http.post(
            f"{base}/invocations",
            content=stream(40 * 2**20, b'{"a": 1}\n'),
            headers={"Content-Type": content_type},
        )
        assert over.status_code == 413, over.text
        still_usable(base, http)
    peak_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    assert {400, 413, 415, 422, 406} <= set(statuses)
    assert peak_after - before < 300 * 2**20, (before, peak_after)  # far below any 40 MB body x parsing
    metrics = http.get(f"{base}/metrics").text
    assert 'status="500"' not in metrics and 'kind="too_large"' in metrics


def test_an_unexpected_error_is_a_counted_logged_500_and_the_connection_stays_usable(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, http = server.base, server.http
    route = {"model": USE_CASE.model_name, "route": "/predict"}
    key = ("mlplatform_serving_requests_total", labels(route, status="500"))
    failures = parsed(http.get(f"{base}/metrics").text).get(key, 0)

    def broken(*args: Any) -> bytes:
        raise RuntimeError("a bug")

    monkeypatch.setattr("mlplatform.serving.service.encode", broken)
    failed = http.post(f"{base}/predict", json=TRIP, headers={"X-Request-Id": "req-500"})
    monkeypatch.undo()
    after = http.post(f"{base}/predict", json=TRIP)
    metrics = parsed(http.get(f"{base}/metrics").text)

    assert failed.status_code == 500 and failed.json()["request_id"] == "req-500"
    assert after.status_code == 200
    assert metrics[key] == failures + 1
    assert metrics["mlplatform_serving_errors_total", labels(route, kind="server")] == failures + 1
    server.app.state.prediction_log.flush()
    logged = pd.concat(
        [
            server.lake.read_parquet(e.path).to_pandas()
            for e in server.lake.list(f"predictions/{USE_CASE.name}")
        ]
    )
    assert logged.set_index("request_id").loc["req-500", "status"] == 500


def test_a_prediction_that_is_not_finite_is_never_sent(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    champion = server.app.state.store.served.champion
    monkeypatch.setattr(champion, "lean", None)  # small requests would take the lean path
    monkeypatch.setattr(
        champion, "predict", lambda frame: pd.DataFrame({"prediction": [np.inf] * len(frame)})
    )
    answer = server.http.post(f"{server.base}/predict", json={"instances": [TRIP, TRIP]})

    assert answer.status_code == 422
    assert [d["field"] for d in answer.json()["detail"]] == ["instances[0]", "instances[1]"]


def lying_content_length(base: str) -> bytes:
    """What the app answers a request that announces a terabyte and sends two bytes."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as raw:
        raw.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n{}" % 2**40)
        return raw.recv(4096)


def rss_bytes() -> int:
    """The resident memory of this process (the server runs in it, on a thread)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")
