"""SageMaker data capture read back by monitoring: capture files in SageMaker's record format,
in the lake on moto's S3 server, become the rows the local serving log holds, and give the
same serving performance per variant; malformed lines are counted and skipped."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import numpy as np
import pandas as pd
import pytest
from test_scoring import USE_CASE, add_snapshot

from mlplatform.adapters.lake import Lake
from mlplatform.adapters.sagemaker import capture_prefix, endpoint_name
from mlplatform.core.modelling import input_columns
from mlplatform.stages import monitoring
from mlplatform.stages.monitoring import measures, sources
from mlplatform.stages.monitoring.sources import ACTUAL, modelled_frame

OFFSET = {"champion": 1.0, "challenger": 3.0}  # each variant's answers are off the truth by this much


def record(
    request: tuple[str, str], response: tuple[str, str], inferred_at: str, base64_data: bool = False
) -> str:
    """One capture line as SageMaker writes it."""

    def side(mode: str, content_type: str, data: str) -> dict[str, Any]:
        if base64_data:
            return {
                "observedContentType": content_type,
                "mode": mode,
                "data": base64.b64encode(data.encode()).decode(),
                "encoding": "BASE64",
            }
        encoding = "CSV" if content_type == "text/csv" else "JSON"
        return {"observedContentType": content_type, "mode": mode, "data": data, "encoding": encoding}

    return json.dumps(
        {
            "captureData": {
                "endpointInput": side("INPUT", *request),
                "endpointOutput": side("OUTPUT", *response),
            },
            "eventMetadata": {"eventId": str(uuid.uuid4()), "inferenceTime": inferred_at},
            "eventVersion": "0",
        }
    )


def trip(row: Any) -> dict[str, Any]:
    return {
        c: (
            row[c].isoformat()
            if c == "pickup_datetime"
            else row[c].item()
            if hasattr(row[c], "item")
            else row[c]
        )
        for c in input_columns(USE_CASE.features.all)
    }


def capture_lines(rows: pd.DataFrame, variant: str) -> list[str]:
    """Captured requests of ``rows``: one JSON request per trip, then JSON Lines, then CSV."""
    columns = input_columns(USE_CASE.features.all)
    answer = lambda r: round(float(r[ACTUAL]) + OFFSET[variant], 6)  # noqa: E731
    at = "2024-03-20T10:00:00Z"
    single, lines, csv_rows = rows.iloc[:2], rows.iloc[2:5], rows.iloc[5:8]
    out = [
        record(
            ("application/json", json.dumps(trip(r))),
            (
                "application/json",
                json.dumps({"version": "4", "variant": variant, "predictions": [{"prediction": answer(r)}]}),
            ),
            at,
        )
        for _, r in single.iterrows()
    ]
    out.append(
        record(
            ("application/jsonlines", "".join(json.dumps(trip(r)) + "\n" for _, r in lines.iterrows())),
            (
                "application/jsonlines",
                "".join(json.dumps({"prediction": answer(r)}) + "\n" for _, r in lines.iterrows()),
            ),
            at,
            base64_data=True,
        )
    )
    text = "".join(",".join(str(trip(r)[c]) for c in columns) + "\n" for _, r in csv_rows.iterrows())
    out.append(
        record(
            ("text/csv", text), ("text/csv", "".join(f"{answer(r)}\n" for _, r in csv_rows.iterrows())), at
        )
    )
    return out


MALFORMED = [
    "{not json",
    json.dumps({"captureData": {}, "eventMetadata": {}}),
    record(
        ("application/json", '{"pickup_datetime": "2024-03-01T08:00:00"}'),
        ("application/json", '{"predictions": []}'),
        "2024-03-20T10:00:00Z",
    ),
    record(("text/csv", "1,2\n"), ("text/csv", "3.0\n"), "2024-03-20T10:00:00Z"),
    record(
        ("application/json", "{}"), ("application/json", "{}"), "2024-03-20T10:00:00Z", base64_data=False
    ).replace('"data": "{}"', '"data": 5', 1),
]


@pytest.fixture
def captured(s3_bucket: str) -> dict[str, Any]:
    """A lake in moto's S3 with a month's snapshot and a day of both variants' capture files."""
    lake = Lake(f"s3://{s3_bucket}/lake")
    snapshot = add_snapshot(lake, "2024-03", rows=400)
    keys = input_columns(USE_CASE.features.all)
    frame = modelled_frame(lake, USE_CASE, snapshot, keys, with_truth=True)
    frame = frame[frame[ACTUAL].notna()].drop_duplicates(keys, keep=False)
    rows = {"champion": frame.iloc[:8], "challenger": frame.iloc[8:16]}
    folder = f"{capture_prefix(USE_CASE.name)}/{endpoint_name(USE_CASE)}"
    for variant, chosen in rows.items():
        lines = capture_lines(chosen, variant)
        if variant == "challenger":
            lines[1:1] = MALFORMED
        lake.write_bytes(
            f"{folder}/{variant}/2024/03/20/10/capture-{variant}.jsonl", "\n".join(lines).encode()
        )
    # Traffic of another month, and a file that is not SageMaker's layout: neither is read.
    lake.write_bytes(
        f"{folder}/champion/2024/02/01/00/old.jsonl", capture_lines(rows["champion"], "champion")[0].encode()
    )
    lake.write_bytes(f"{folder}/notes.txt", b"not capture")
    return {"lake": lake, "rows": rows}


def test_capture_files_become_serving_log_rows_and_bad_lines_are_counted(captured: dict[str, Any]) -> None:
    found = monitoring.read_capture(captured["lake"], USE_CASE, "2024-03")

    assert (found.files, found.lines, found.malformed) == (2, 2 * 4 + len(MALFORMED), len(MALFORMED))
    assert found.metrics() == {"capture_lines": 13.0, "capture_malformed_lines": 5.0}
    rows = found.rows
    assert rows is not None and len(rows) == 16
    expected_columns = {
        "request_id",
        "item",
        "served_at",
        "variant",
        "model_name",
        "model_version",
        "status",
        "prediction",
    }
    assert expected_columns | set(input_columns(USE_CASE.features.all)) <= set(rows.columns)
    assert rows.groupby("variant").size().to_dict() == {"champion": 8, "challenger": 8}
    assert set(rows["status"]) == {200} and set(rows["model_name"]) == {USE_CASE.model_name}
    assert rows["request_id"].nunique() == 2 * (2 + 1 + 1)  # one per captured request
    assert (rows["pickup_datetime"].dt.strftime("%Y-%m") == "2024-03").all()


def test_captured_traffic_gives_serving_performance_per_variant(captured: dict[str, Any]) -> None:
    lake = captured["lake"]
    found = monitoring.read_capture(lake, USE_CASE, "2024-03")
    logged = sources.with_capture(None, found)

    outcomes, why = monitoring.serving_outcomes(lake, USE_CASE, logged)

    assert why == "" and outcomes is not None and len(outcomes) == 16
    variants = measures.performance(USE_CASE, outcomes).variants
    assert variants["champion"]["rmse"] == pytest.approx(OFFSET["champion"], abs=1e-4)
    assert variants["challenger"]["rmse"] == pytest.approx(OFFSET["challenger"], abs=1e-4)
    health = monitoring.serving_health(logged)
    assert health["requests"] == 8 and health["error_rate"] == 0.0
    assert "p99_latency_ms" not in health  # SageMaker records no latency in capture: CloudWatch has it


def test_captured_and_locally_logged_traffic_are_measured_together(captured: dict[str, Any]) -> None:
    found = monitoring.read_capture(captured["lake"], USE_CASE, "2024-03")
    assert found.rows is not None
    local = found.rows[found.rows["variant"] == "champion"].assign(
        request_id=lambda f: "local-" + f["request_id"], latency_ms=12.5
    )

    both = sources.with_capture(local, found)

    assert both is not None and len(both) == 24
    health = monitoring.serving_health(both)
    assert health["requests"] == 12 and health["p99_latency_ms"] == pytest.approx(12.5)
    assert sources.with_capture(None, sources.CaptureLog(None, 0, 0, 0)) is None
    assert np.isnan(both["latency_ms"]).sum() == 16


def test_a_window_without_capture_files_has_no_capture_metrics(tmp_path: Any) -> None:
    found = monitoring.read_capture(Lake(tmp_path.as_uri()), USE_CASE, "2024-03")
    assert found.rows is None and found.metrics() == {}
