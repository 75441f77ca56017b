"""Alerts reach Slack, or the local webhook sink, over real HTTP; the sink keeps what it gets."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from mlplatform.adapters import alerts
from mlplatform.airflow.notifiers import FailureNotifier
from mlplatform.dev.webhook_sink import WebhookSink

from conftest import free_port


def received(sink: Any) -> list[dict[str, Any]]:
    """What the sink holds, read over HTTP as a person would."""
    with urllib.request.urlopen(f"{sink.url}/messages", timeout=10) as response:
        return json.load(response)


def post(url: str, body: bytes, content_type: str = "application/json") -> tuple[int, str]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture
def sink(webhook_sink: Any) -> Any:
    webhook_sink.clear()
    return webhook_sink


ALERT = alerts.Alert(
    title="taxi_trip_duration 2024-03: data contract breached",
    severity="breach",
    lines=("• schema broken: required column(s) missing: trip_distance",),
    fields={"Use case": "taxi_trip_duration", "Month": "2024-03"},
    links={"Data Docs": "file:///tmp/docs/index.html", "Task log": None},
)


def test_blocks_have_a_header_text_fields_and_links() -> None:
    blocks = ALERT.blocks()
    assert [b["type"] for b in blocks] == ["header", "section", "section", "context"]
    assert blocks[0]["text"]["text"].startswith(":rotating_light: [breach] taxi_trip_duration 2024-03")
    assert "trip_distance" in blocks[1]["text"]["text"]
    assert blocks[2]["fields"][1]["text"] == "*Month*\n2024-03"
    # Links without a URL are left out.
    assert blocks[3]["elements"][0]["text"] == "<file:///tmp/docs/index.html|Data Docs>"


def test_blocks_respect_slack_limits() -> None:
    long = alerts.Alert("t" * 500, "info", lines=("x" * 5000,), fields={f"f{i}": "v" for i in range(15)})
    header, text, fields = long.blocks()
    assert len(header["text"]["text"]) == 150 and len(text["text"]["text"]) == 3000
    assert len(fields["fields"]) == 10


def test_send_posts_block_kit_to_the_webhook_url(sink: Any) -> None:
    assert alerts.send(ALERT)
    [message] = received(sink)
    assert message["text"] == ALERT.text and message["blocks"] == ALERT.blocks()
    assert message["path"] == "/hooks/alerts" and message["received_at"]


def test_send_through_a_slack_connection(sink: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    connection = {"conn_type": "slackwebhook", "password": f"{sink.url}/services/T000/B000/XXXX"}
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_TEST", json.dumps(connection))
    monkeypatch.setenv("MLPLATFORM_SLACK_CONN_ID", "slack_test")
    monkeypatch.setenv("MLPLATFORM_SLACK_WEBHOOK_URL", "http://127.0.0.1:9/unused")
    assert alerts.send(ALERT)
    [message] = received(sink)
    assert message["path"] == "/services/T000/B000/XXXX" and message["blocks"] == ALERT.blocks()


def test_send_never_raises_when_nobody_listens(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("MLPLATFORM_SLACK_CONN_ID", "")
    monkeypatch.setenv("MLPLATFORM_SLACK_WEBHOOK_URL", f"http://127.0.0.1:{free_port()}/hooks/alerts")
    assert alerts.send(ALERT) is False
    assert "alert not delivered" in caplog.text and "ALERT" in caplog.text  # logged either way


def _context(error: BaseException) -> dict[str, Any]:
    ti = SimpleNamespace(
        dag_id="taxi_trip_duration_validate",
        task_id="check_contract",
        run_id="manual__2024-03",
        try_number=3,
        max_tries=2,
        log_url="http://airflow.example/dags/taxi_trip_duration_validate/runs/manual__2024-03",
    )
    return {"ti": ti, "run_id": ti.run_id, "exception": error}


def test_failure_callback_names_the_task_and_links_its_log(sink: Any) -> None:
    notify = FailureNotifier("taxi_trip_duration", "validate")
    notify(_context(RuntimeError("the lake is unreachable")))
    [message] = received(sink)
    assert "taxi_trip_duration_validate: task check_contract failed" in message["text"]
    body = json.dumps(message["blocks"])
    assert "the lake is unreachable" in body and "airflow.example" in body
    assert "3 of 3 (retries exhausted)" in body


def test_failure_notifier_is_an_airflow_notifier_and_names_late_data(sink: Any) -> None:
    from airflow.sdk.bases.notifier import BaseNotifier
    from airflow.sdk.exceptions import AirflowSensorTimeout

    notifier = FailureNotifier("taxi_trip_duration")
    assert isinstance(notifier, BaseNotifier)
    notifier(_context(AirflowSensorTimeout("raw month 2024-03 not published")))
    [message] = received(sink)
    assert "task check_contract waited past its deadline" in message["text"]
    assert "*Stage*\\nvalidate" in json.dumps(message["blocks"])  # from the DAG id


def test_failure_callback_uses_the_notifier_with_a_connection(
    sink: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    connection = {"conn_type": "slackwebhook", "password": f"{sink.url}/services/notifier"}
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_TEST", json.dumps(connection))
    monkeypatch.setenv("MLPLATFORM_SLACK_CONN_ID", "slack_test")
    FailureNotifier("taxi_trip_duration", "validate")(_context(ValueError("boom")))
    [message] = received(sink)
    assert message["path"] == "/services/notifier" and "check_contract failed" in message["text"]


def test_failure_callback_is_silent_for_failures_that_already_alerted(sink: Any) -> None:
    class Breach(RuntimeError, alerts.AlertedFailure):
        pass

    FailureNotifier("taxi_trip_duration", "validate")(_context(Breach("already told Slack")))
    assert received(sink) == []


def test_sink_accepts_form_payloads_and_refuses_garbage(sink: Any) -> None:
    form = "payload=" + urllib.request.quote(json.dumps({"text": "from a form"}))
    assert post(f"{sink.url}/any/path", form.encode(), "application/x-www-form-urlencoded") == (200, "ok")
    assert post(f"{sink.url}/hooks/alerts", b"not json") == (400, "invalid_payload")
    assert post(f"{sink.url}/hooks/alerts", b"[1, 2]") == (400, "invalid_payload")
    [message] = received(sink)
    assert message == {**message, "text": "from a form", "path": "/any/path"}


def test_sink_keeps_messages_in_its_store_across_restarts(tmp_path: Path) -> None:
    store = tmp_path / "alerts" / "messages.jsonl"
    first = WebhookSink(store=store).start()
    try:
        post(first.hook_url, json.dumps({"text": "one"}).encode())
    finally:
        first.stop()
    assert json.loads(store.read_text().splitlines()[0])["text"] == "one"
    second = WebhookSink(store=store).start()
    try:
        post(second.hook_url, json.dumps({"text": "two"}).encode())
        assert [m["text"] for m in received(second)] == ["one", "two"]
        assert len(store.read_text().splitlines()) == 2
    finally:
        second.stop()


def test_sink_runs_as_a_module(tmp_path: Path) -> None:
    port, store = free_port(), tmp_path / "messages.jsonl"
    command = [
        sys.executable,
        "-m",
        "mlplatform.dev.webhook_sink",
        "--port",
        str(port),
        "--store",
        str(store),
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    server = SimpleNamespace(url=f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{server.url}/health", timeout=2).close()
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
                time.sleep(0.2)
        assert post(f"{server.url}/hooks/alerts", b'{"text": "hello"}') == (200, "ok")
        assert [m["text"] for m in received(server)] == ["hello"]
        assert store.exists()
    finally:
        process.terminate()
        process.wait(timeout=10)
