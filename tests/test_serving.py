"""The serving app over real HTTP (uvicorn on a free port) with models from a real MLflow
server: answers, 4xx for bad input, metrics, the A/B split and its log, hot reload."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from test_scoring import USE_CASE, normalised_trips, registered_versions, set_alias

from mlplatform import serving
from mlplatform.adapters.lake import Lake
from mlplatform.core.spec import UseCase
from mlplatform.serving.store import assign_variant
from mlplatform.stages import monitoring, scoring

from conftest import free_port

pytestmark = pytest.mark.slow

TRIP = {
    "pickup_datetime": "2024-03-05T08:30:00",
    "pu_location_id": 161,
    "do_location_id": 236,
    "trip_distance": 2.1,
}


ADMIN_TOKEN = "test-admin-token"


@contextlib.contextmanager
def running_app(use_case: UseCase, **options: Any) -> Iterator[tuple[str, httpx.Client]]:
    """The serving app under uvicorn on a free localhost port; stopped (and flushed) on exit."""
    with running(serving.create_app(use_case, **options)) as (base, http):
        yield base, http


@contextlib.contextmanager
def running(app: FastAPI) -> Iterator[tuple[str, httpx.Client]]:
    """``app`` under uvicorn on a free localhost port, with a pooled client; stopped on exit."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the serving app did not start")
        time.sleep(0.05)
    # The app listens before its models load; tests start from the loader's first outcome.
    if not app.state.store.settled.wait(timeout=max(deadline - time.monotonic(), 1)):
        raise RuntimeError("the serving app's model loader did not finish its first attempt")
    try:
        with httpx.Client(timeout=60) as http:
            yield f"http://127.0.0.1:{port}", http
    finally:
        server.should_exit = True
        thread.join(timeout=60)


@pytest.fixture(scope="module")
def versions(mlflow_server: str) -> list[str]:
    return registered_versions(mlflow_server)


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake((tmp_path / "lake").as_uri())


def expected_minutes(version: str, trips: list[dict[str, Any]]) -> np.ndarray:
    model = scoring.load_model(f"models:/{USE_CASE.model_name}/{version}")
    frame = pd.DataFrame(trips).astype({"pu_location_id": "int32", "do_location_id": "int32"})
    frame["pickup_datetime"] = pd.to_datetime(frame["pickup_datetime"])
    return model.predict(frame)["prediction"].to_numpy()


def some_trips(n: int) -> list[dict[str, Any]]:
    frame = normalised_trips("2024-03", n, seed=21).to_pandas()
    return [
        {
            "pickup_datetime": row.pickup_datetime.isoformat(),
            "pu_location_id": int(row.pu_location_id),
            "do_location_id": int(row.do_location_id),
            "trip_distance": float(row.trip_distance),
        }
        for row in frame.itertuples()
    ]


def test_answers_one_trip_and_a_batch_in_minutes_with_the_version(versions: list[str], lake: Lake) -> None:
    set_alias(USE_CASE.model_name, "champion", versions[0])
    trips = some_trips(3)
    with running_app(USE_CASE, lake=lake, challenger_share=0.0, poll_seconds=0) as (base, http):
        health = http.get(f"{base}/health").json()
        one = http.post(f"{base}/predict", json=TRIP)
        batch = http.post(f"{base}/predict", json={"instances": trips})
        ping = http.get(f"{base}/ping")
        ready = http.get(f"{base}/ready")
        metrics = http.get(f"{base}/metrics")

    assert health["champion"]["version"] == versions[0] and health["unit"] == "minutes"
    # taxi_type is optional: a trip without it is one of the use case's primary taxi type.
    inputs = ["pickup_datetime", "pu_location_id", "do_location_id", "trip_distance", "taxi_type"]
    assert health["inputs"] == inputs
    assert one.status_code == 200 and batch.status_code == 200 and ping.status_code == 200
    assert ready.status_code == 200 and ready.json()["ready"] is True and "note" not in health
    body = one.json()
    assert body["version"] == versions[0] and body["variant"] == "champion" and body["unit"] == "minutes"
    assert body["predictions"][0]["prediction"] == pytest.approx(expected_minutes(versions[0], [TRIP])[0])
    answers = [p["prediction"] for p in batch.json()["predictions"]]
    np.testing.assert_allclose(answers, expected_minutes(versions[0], trips), rtol=1e-9)

    assert metrics.headers["content-type"].startswith("text/plain")
    got = parsed(metrics.text)
    model, variant = {"model": USE_CASE.model_name}, {"variant": "champion", "version": versions[0]}
    assert got["mlplatform_serving_requests_total", labels(model, route="/predict", status="200")] == 2
    assert got["mlplatform_serving_variant_requests_total", labels(model, variant, status="200")] == 2
    assert got["mlplatform_serving_predictions_total", labels(model, variant)] == 4
    assert got["mlplatform_serving_request_duration_seconds_count", labels(model, route="/predict")] == 2
    assert got["mlplatform_serving_model_info", labels(model, variant)] == 1
    assert {"process_resident_memory_bytes", "python_info", "python_gc_objects_collected_total"} <= {
        name for name, _ in got
    }


def labels(*parts: dict[str, str], **more: str) -> tuple[tuple[str, str], ...]:
    """A sample's labels as :func:`parsed` keys them."""
    merged = {k: v for part in parts for k, v in part.items()} | more
    return tuple(sorted(merged.items()))


def parsed(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """A Prometheus exposition parsed: (sample name, sorted labels) -> value."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


BAD_REQUESTS = [
    ({**TRIP, "trip_distance": "far"}, "trip_distance"),
    ({k: v for k, v in TRIP.items() if k != "pu_location_id"}, "pu_location_id"),
    ({**TRIP, "pickup_datetime": "yesterday"}, "pickup_datetime"),
    ({**TRIP, "pickup_datetime": 1709627400}, "pickup_datetime"),
    ({**TRIP, "do_location_id": 2.5}, "do_location_id"),
    ({**TRIP, "do_location_id": 10**12}, "do_location_id"),
    ({**TRIP, "trip_distance": None}, "trip_distance"),
    ({"instances": [TRIP, {**TRIP, "trip_distance": True}]}, "instances[1].trip_distance"),
    ({"instances": []}, "instances"),
    ({"instances": "not a list"}, "instances"),
    ({"instances": [TRIP, 7]}, "instances[1]"),
    ([TRIP], "body"),
    ("a string", "body"),
]


def test_bad_input_gets_a_4xx_naming_the_field(versions: list[str], lake: Lake) -> None:
    set_alias(USE_CASE.model_name, "champion", versions[0])
    with running_app(USE_CASE, lake=lake, challenger_share=0.0, poll_seconds=0) as (base, http):
        answers = [(http.post(f"{base}/predict", json=body), field) for body, field in BAD_REQUESTS]
        not_json = http.post(
            f"{base}/predict", content=b"{trip", headers={"Content-Type": "application/json"}
        )
        bad_variant = http.post(f"{base}/predict", json=TRIP, headers={"X-Variant": "blue"})
        metrics = http.get(f"{base}/metrics").text

    for response, field in answers:
        assert 400 <= response.status_code < 500, (field, response.status_code, response.text)
        named = [d["field"] for d in response.json()["detail"]]
        assert field in named, (field, named)
    assert not_json.status_code == 400 and "not valid JSON" in not_json.text
    assert bad_variant.status_code == 422 and "X-Variant" in bad_variant.text
    got = parsed(metrics)
    errors = "mlplatform_serving_errors_total"
    model = {"model": USE_CASE.model_name, "route": "/predict"}
    assert got[errors, labels(model, kind="validation")] == len(BAD_REQUESTS) + 1
    assert got[errors, labels(model, kind="body")] == 1

    # Each of those is in the prediction log with its status, for monitoring's error rate,
    # and counts in the window of its trip's pickup (or where it was served, if unreadable).
    logged = pd.concat(
        [lake.read_parquet(e.path).to_pandas() for e in lake.list(f"predictions/{USE_CASE.name}/serving")]
    )
    assert len(logged) == len(BAD_REQUESTS) + 2 and set(logged["status"]) == {400, 422}
    assert logged["pickup_datetime"].notna().sum() == 7  # two requests had no readable pickup
    window = TRIP["pickup_datetime"][:7]
    health = monitoring.serving_health(monitoring.serving_log(lake, USE_CASE.name, window))
    assert health["error_rate"] == 1.0 and health["requests"] == 7
    assert monitoring.serving_outcomes(
        lake, USE_CASE, monitoring.serving_log(lake, USE_CASE.name, window)
    ) == (
        None,
        "no_predictions",
    )


def test_the_challenger_gets_its_share_sticky_per_key_and_every_prediction_is_logged(
    versions: list[str], lake: Lake
) -> None:
    champion, challenger = versions[0], versions[1]
    set_alias(USE_CASE.model_name, "champion", champion)
    set_alias(USE_CASE.model_name, "challenger", challenger)
    keys = [f"rider-{i}" for i in range(400)]
    share = 0.3
    try:
        with running_app(USE_CASE, lake=lake, challenger_share=share, poll_seconds=0) as (base, http):

            def ask(key: str) -> dict[str, Any]:
                response = http.post(f"{base}/predict", json=TRIP, headers={"X-Request-Key": key})
                assert response.status_code == 200, response.text
                return response.json()

            with ThreadPoolExecutor(16) as pool:
                answers = list(pool.map(ask, keys))
                again = list(pool.map(ask, keys[:40]))
    finally:
        set_alias(USE_CASE.model_name, "challenger", None)

    variants = Counter(a["variant"] for a in answers)
    assert abs(variants["challenger"] / len(keys) - share) < 0.08, variants
    assert all(a["version"] == (challenger if a["variant"] == "challenger" else champion) for a in answers)
    assert [a["variant"] for a in again] == [a["variant"] for a in answers[:40]]  # sticky
    assert [a["variant"] for a in answers] == [assign_variant(k, share) for k in keys]
    minutes = {a["variant"]: a["predictions"][0]["prediction"] for a in answers}
    assert minutes["champion"] != minutes["challenger"]

    logged = pd.concat(
        [lake.read_parquet(e.path).to_pandas() for e in lake.list(f"predictions/{USE_CASE.name}/serving")]
    )
    assert len(logged) == len(answers) + len(again)
    by_request = logged.set_index("request_id")
    for answer in answers:
        row = by_request.loc[answer["request_id"]]
        assert row["variant"] == answer["variant"] and row["model_version"] == answer["version"]
        assert row["prediction"] == pytest.approx(answer["predictions"][0]["prediction"])
        assert row["pu_location_id"] == TRIP["pu_location_id"] and row["latency_ms"] > 0


def test_the_variant_split_matches_the_share_over_many_keys() -> None:
    for share in (0.05, 0.1, 0.5):
        got = np.mean([assign_variant(f"key-{i}", share) == "challenger" for i in range(20_000)])
        assert abs(got - share) < 0.01
    assert assign_variant("anyone", 0.0) == "champion"


def test_a_promotion_is_picked_up_without_dropping_requests(versions: list[str], lake: Lake) -> None:
    set_alias(USE_CASE.model_name, "champion", versions[0])
    statuses: list[int] = []
    seen: list[str] = []
    stop = threading.Event()
    with running_app(USE_CASE, lake=lake, challenger_share=0.0, poll_seconds=0.5) as (base, http):

        def keep_asking() -> None:
            while not stop.is_set():
                response = http.post(f"{base}/predict", json=TRIP)
                statuses.append(response.status_code)
                if response.status_code == 200:
                    seen.append(response.json()["version"])

        callers = [threading.Thread(target=keep_asking) for _ in range(4)]
        for caller in callers:
            caller.start()
        time.sleep(1)
        set_alias(USE_CASE.model_name, "champion", versions[2])  # a promotion
        deadline = time.monotonic() + 300
        while http.get(f"{base}/health").json()["champion"]["version"] != versions[2]:
            assert time.monotonic() < deadline, "the app did not pick up the new champion"
            time.sleep(0.2)
        time.sleep(1)
        stop.set()
        for caller in callers:
            caller.join()
        metrics = http.get(f"{base}/metrics").text

    set_alias(USE_CASE.model_name, "champion", versions[0])
    assert statuses and set(statuses) == {200}
    assert seen[0] == versions[0] and seen[-1] == versions[2]
    first_new = seen.index(versions[2])
    assert versions[0] not in seen[first_new + 8 :]  # after the swap only requests in flight finish on v1
    assert parsed(metrics)["mlplatform_serving_model_reloads_total", labels(model=USE_CASE.model_name)] == 2


def test_without_a_champion_the_app_starts_and_answers_503(mlflow_server: str, lake: Lake) -> None:
    unknown = USE_CASE.model_copy(update={"name": "no_model_registered_yet"})
    with running_app(unknown, lake=lake, poll_seconds=0, admin_token=ADMIN_TOKEN) as (base, http):
        health = http.get(f"{base}/health")
        predict = http.post(f"{base}/predict", json=TRIP)
        ping = http.get(f"{base}/ping")
        ready = http.get(f"{base}/ready")
        reload = http.post(f"{base}/admin/reload", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})

    assert health.status_code == 200 and health.json()["status"] == "no_model"
    assert health.json()["readiness"]["reason"] == "no_champion"
    assert predict.status_code == 503 and "no_champion" in predict.json()["detail"]
    assert "promote a version first" in predict.json()["detail"]
    assert ready.status_code == 503 and ready.json()["reason"] == "no_champion"
    assert ping.status_code == 503
    assert reload.status_code == 503 and "no version with alias 'champion'" in reload.json()["detail"]


def test_docs_and_the_openapi_document_show_the_request_schema(versions: list[str], lake: Lake) -> None:
    set_alias(USE_CASE.model_name, "champion", versions[0])
    with running_app(USE_CASE, lake=lake, challenger_share=0.0, poll_seconds=0) as (base, http):
        docs = http.get(f"{base}/docs")
        document = http.get(f"{base}/openapi.json").json()

    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    body = document["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    refs = [option["$ref"].rsplit("/", 1)[-1] for option in body["schema"]["oneOf"]]
    assert refs == ["Trip", "TripBatch"] and body["examples"]["one trip"]["value"] == TRIP
    trip = document["components"]["schemas"]["Trip"]
    assert trip["required"] == list(TRIP)
    assert trip["properties"]["do_location_id"]["maximum"] == 265
    invocations = document["paths"]["/invocations"]["post"]["requestBody"]["content"]
    assert set(invocations) == {"application/json", "application/jsonlines", "text/csv"}
    assert "422" in document["paths"]["/predict"]["post"]["responses"]


def test_invocations_speak_json_lines_and_csv_in_the_accept_type(versions: list[str], lake: Lake) -> None:
    set_alias(USE_CASE.model_name, "champion", versions[0])
    trips = some_trips(3)
    columns = ["pickup_datetime", "pu_location_id", "do_location_id", "trip_distance"]
    csv_body = "".join(",".join(str(t[c]) for c in columns) + ",\n" for t in trips)
    lines_body = "".join(json.dumps(t) + "\n" for t in trips)
    with running_app(USE_CASE, lake=lake, challenger_share=0.0, poll_seconds=0) as (base, http):
        as_csv = http.post(f"{base}/invocations", content=csv_body, headers={"Content-Type": "text/csv"})
        as_lines = http.post(
            f"{base}/invocations",
            content=lines_body,
            headers={"Content-Type": "application/jsonlines", "Accept": "text/csv"},
        )
        as_json = http.post(f"{base}/invocations", json={"instances": trips})
        bad_csv = http.post(
            f"{base}/invocations",
            content="2024-03-05T08:30:00,0,1,2,\n",
            headers={"Content-Type": "text/csv"},
        )
        xml = http.post(f"{base}/invocations", content="<trip/>", headers={"Content-Type": "application/xml"})

    expected = expected_minutes(versions[0], trips)
    assert as_csv.status_code == 200 and as_csv.headers["content-type"].startswith("text/csv")
    np.testing.assert_allclose([float(v) for v in as_csv.text.splitlines()], expected, rtol=1e-9)
    np.testing.assert_allclose([float(v) for v in as_lines.text.splitlines()], expected, rtol=1e-9)
    np.testing.assert_allclose([p["prediction"] for p in as_json.json()["predictions"]], expected, rtol=1e-9)
    assert bad_csv.status_code == 422 and bad_csv.json()["detail"][0]["field"] == "line[0].pu_location_id"
    assert xml.status_code == 415


def test_admin_routes_need_the_token(versions: list[str], lake: Lake) -> None:
    set_alias(USE_CASE.model_name, "champion", versions[0])
    with running_app(USE_CASE, lake=lake, poll_seconds=0) as (base, http):
        off = http.post(f"{base}/admin/reload", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    with running_app(USE_CASE, lake=lake, poll_seconds=0, admin_token=ADMIN_TOKEN) as (base, http):
        missing = http.post(f"{base}/admin/reload")
        wrong = http.post(f"{base}/admin/reload", headers={"Authorization": "Bearer guess"})
        right = http.post(f"{base}/admin/reload", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})

    assert off.status_code == 403 and "MLPLATFORM_SERVING_ADMIN_TOKEN" in off.json()["detail"]
    assert missing.status_code == 401 and wrong.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert right.status_code == 200 and right.json()["changed"] is False


def test_the_command_binds_localhost_and_serve_follows_sagemaker(monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    from mlplatform.serving.process import main

    started: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *args, **options: started.append(options))
    monkeypatch.delenv("HOST", raising=False)
    monkeypatch.delenv("PORT", raising=False)
    monkeypatch.setenv("SAGEMAKER_BIND_TO_PORT", "9090")
    monkeypatch.setenv("SM_MODEL_DIR", "/nonexistent")
    main([])
    main(["serve"])
    assert (started[0]["host"], started[0]["port"]) == ("127.0.0.1", 8000)
    assert (started[1]["host"], started[1]["port"]) == ("0.0.0.0", 9090)
