"""Alerts reach Slack, or the local webhook sink, over real HTTP; the sink keeps what it gets."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from mlplatform.adapters import alerts
from mlplatform.adapters.lake import Lake
from mlplatform.airflow.dagkit import FailureNotifier
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


@pytest.fixture(autouse=True)
def own_lake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test queues its alerts in a lake of its own: no alert of another test is flushed."""
    monkeypatch.setenv("MLPLATFORM_LAKE_URI", (tmp_path / "own-lake").as_uri())


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
    assert post(f"{sink.url}/hooks/alerts", b'{"text": "x", "blocks": "none"}') == (400, "invalid_payload")
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


# -- the outbox: alerts are never lost ------------------------------------------------------------
@pytest.fixture
def outbox_lake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Lake:
    """A lake of the test's own: its outbox starts empty."""
    lake = Lake((tmp_path / "lake").as_uri())
    monkeypatch.setenv("MLPLATFORM_LAKE_URI", lake.root_uri)
    return lake


def _alert(n: int) -> alerts.Alert:
    return alerts.Alert(f"taxi_trip_duration problem {n}", "breach", lines=(f"line {n}",), fields={"n": n})


def _ids(lake: Lake, state: str) -> list[str]:
    return [e.id for e in alerts.queued(lake, state)]


def test_alerts_wait_in_the_outbox_while_slack_is_down_and_go_once_each_when_it_is_back(
    tmp_path: Path, outbox_lake: Lake, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    store = tmp_path / "sink" / "messages.jsonl"
    first = WebhookSink(store=store).start()
    port = int(first.url.rsplit(":", 1)[1])
    monkeypatch.setenv("MLPLATFORM_SLACK_CONN_ID", "")
    monkeypatch.setenv("MLPLATFORM_SLACK_WEBHOOK_URL", first.hook_url)
    try:
        assert alerts.send(_alert(0))
    finally:
        first.stop()  # Slack goes away: connection refused

    assert alerts.send(_alert(1)) is False
    assert alerts.send(_alert(2)) is False
    assert alerts.send(_alert(1)) is False  # the same problem again: one entry
    queued = alerts.queued(outbox_lake)
    assert [e.alert.title for e in queued] == [_alert(1).title, _alert(2).title]
    assert queued[0].id == _alert(1).id and queued[0].repeated == 1
    # Each send tried the oldest queued alert once and stopped there: Slack is down for all.
    assert queued[0].attempts == 3 and "unreachable" in (queued[0].last_error or "")
    assert queued[1].attempts == 0
    assert "kept in the outbox" in caplog.text
    assert outbox_lake.exists(f"alerts/outbox/{_alert(2).id}.json")

    second = WebhookSink(port=port, store=store).start()  # Slack is back, same URL
    try:
        assert alerts.send(_alert(3))  # a send flushes what was queued first, oldest first
        assert alerts.flush(outbox_lake).delivered == []  # nothing left: nothing sent twice
        texts = [m["text"] for m in received(second)]
    finally:
        second.stop()
    assert texts == [_alert(n).text for n in (0, 1, 2, 3)]  # none lost, none doubled, in order
    assert _ids(outbox_lake, "outbox") == []
    assert set(_ids(outbox_lake, "sent")) == {_alert(n).id for n in range(4)}
    assert _ids(outbox_lake, "failed") == []


def test_alerts_flush_command_delivers_what_is_queued(
    sink: Any, outbox_lake: Lake, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlplatform import cli

    for n in (5, 6):
        alerts.enqueue(outbox_lake, _alert(n))  # queued by a run whose Slack was down
    assert cli.main(["alerts", "list", "--lake", outbox_lake.root_uri, "--json"]) == 1
    listed = json.loads(capsys.readouterr().out)
    assert [e["state"] for e in listed] == ["outbox", "outbox"]

    assert cli.main(["alerts", "flush", "--lake", outbox_lake.root_uri, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report == {"delivered": [_alert(5).id, _alert(6).id], "queued": [], "failed": []}
    assert [m["text"] for m in received(sink)] == [_alert(5).text, _alert(6).text]
    assert cli.main(["alerts", "flush", "--lake", outbox_lake.root_uri, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["delivered"] == []
    assert len(received(sink)) == 2


class _Refusing(BaseHTTPRequestHandler):
    """A webhook that answers every post as Slack answers a revoked or wrong URL."""

    status = 403

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.posts += 1  # type: ignore[attr-defined]
        body = b"invalid_token" if self.status == 403 else b"internal_error"
        self.send_response(self.status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def _webhook(status: int) -> Any:
    handler = type("Handler", (_Refusing,), {"status": status})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.posts = 0  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_a_webhook_answering_4xx_fails_the_alert_with_the_reason_and_never_retries(
    outbox_lake: Lake, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    server = _webhook(403)
    monkeypatch.setenv("MLPLATFORM_SLACK_CONN_ID", "")
    monkeypatch.setenv("MLPLATFORM_SLACK_WEBHOOK_URL", f"http://127.0.0.1:{server.server_port}/hooks/revoked")
    try:
        assert alerts.send(_alert(7)) is False
        assert alerts.flush(outbox_lake).failed == []  # not retried: nothing left to flush
        assert alerts.send(_alert(8)) is False
        posts = server.posts  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()
    assert posts == 2  # one post per alert, no retry loop
    failed = alerts.queued(outbox_lake, "failed")
    assert [e.id for e in failed] == [_alert(7).id, _alert(8).id]
    assert "answered 403: invalid_token" in (failed[0].reason or "") and failed[0].attempts == 1
    assert _ids(outbox_lake, "outbox") == [] and _ids(outbox_lake, "sent") == []
    refused = [r for r in caplog.records if "Slack refused it" in r.getMessage()]
    assert len(refused) == 2 and all(r.levelname == "ERROR" for r in refused)


def test_a_webhook_answering_5xx_keeps_the_alert_queued(
    outbox_lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = _webhook(503)
    monkeypatch.setenv("MLPLATFORM_SLACK_CONN_ID", "")
    monkeypatch.setenv("MLPLATFORM_SLACK_WEBHOOK_URL", f"http://127.0.0.1:{server.server_port}/hooks/alerts")
    try:
        assert alerts.send(_alert(9)) is False
        report = alerts.flush(outbox_lake)
    finally:
        server.shutdown()
        server.server_close()
    assert report.queued == [_alert(9).id] and report.failed == []
    [entry] = alerts.queued(outbox_lake)
    assert entry.attempts == 2 and "answered 503" in (entry.last_error or "")


def test_without_a_writable_lake_an_alert_is_delivered_directly(
    sink: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Broken(Lake):
        def write_bytes(self, path: str, data: Any) -> str:
            raise OSError(28, "No space left on device")

    broken = Broken(sink.url.replace("http://", "memory://"))
    assert alerts.send(_alert(10), broken)
    assert [m["text"] for m in received(sink)] == [_alert(10).text]


def test_an_outbox_entry_reads_back_as_it_was_written() -> None:
    """The outbox's JSON form, as entries in a lake hold it: read and written the same."""
    stored = {
        "id": _alert(4).id,
        "alert": _alert(4).to_dict(),
        "queued_at": "2024-05-01T00:00:00+00:00",
        "attempts": 2,
        "repeated": 1,
        "last_error": "unreachable: connection refused",
        "last_try_at": "2024-05-01T00:05:00+00:00",
    }
    entry = alerts.OutboxEntry.from_dict(stored)
    assert entry.alert.title == _alert(4).title and entry.alert.id == _alert(4).id
    assert entry.to_dict() == stored and list(entry.to_dict()) == list(stored)
    fresh = {"id": "x", "alert": _alert(5).to_dict(), "queued_at": "2024-05-02T00:00:00+00:00", "attempts": 0}
    assert alerts.OutboxEntry.from_dict(fresh).to_dict() == fresh


# -- many flushers: each queued alert is claimed before it is delivered --------------------------
class _Slow(BaseHTTPRequestHandler):
    """A webhook that keeps what it is posted and answers the first post only once released."""

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        server: Any = self.server
        with server.lock:
            server.texts.append(body["text"])
            first = len(server.texts) == 1
        if first:
            server.first_arrived.set()
            server.release.wait(timeout=300)
        else:
            time.sleep(0.05)  # slow, so that flushers overlap; nothing asserts on time
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def slow_webhook(monkeypatch: pytest.MonkeyPatch) -> Any:
    server: Any = ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    server.texts, server.lock = [], threading.Lock()
    server.first_arrived, server.release = threading.Event(), threading.Event()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("MLPLATFORM_SLACK_CONN_ID", "")
    monkeypatch.setenv("MLPLATFORM_SLACK_WEBHOOK_URL", f"http://127.0.0.1:{server.server_port}/hooks/alerts")
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()


# A flusher of its own process; it waits as long as the slow webhook takes to answer.
_FLUSHER = """
import json, sys
from mlplatform.adapters import alerts
from mlplatform.adapters.lake import Lake
alerts.TIMEOUT_S = 300
print(json.dumps(alerts.flush(Lake(sys.argv[1])).to_dict()))
"""


def _flusher(lake: Lake) -> subprocess.Popen[str]:
    command = [sys.executable, "-c", _FLUSHER, lake.root_uri]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _report(process: subprocess.Popen[str]) -> dict[str, list[str]]:
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    return json.loads(out)


def test_two_processes_flushing_at_once_deliver_each_alert_once(outbox_lake: Lake, slow_webhook: Any) -> None:
    for n in range(3):
        alerts.enqueue(outbox_lake, _alert(n))
    ids = [_alert(n).id for n in range(3)]
    first = _flusher(outbox_lake)
    assert slow_webhook.first_arrived.wait(timeout=300)  # the first flusher is delivering alert 0
    # The second finds alert 0 queued, but claimed: it leaves it and the rest to the first.
    assert _report(_flusher(outbox_lake)) == {"delivered": [], "queued": ids, "failed": []}
    slow_webhook.release.set()
    assert _report(first) == {"delivered": ids, "queued": [], "failed": []}
    assert slow_webhook.texts == [_alert(n).text for n in range(3)]  # once each, in order
    assert _ids(outbox_lake, "outbox") == [] and sorted(_ids(outbox_lake, "sent")) == sorted(ids)
    assert list(outbox_lake.list("alerts/claims")) == []


def test_processes_racing_for_an_outbox_deliver_each_alert_exactly_once(
    outbox_lake: Lake, slow_webhook: Any
) -> None:
    slow_webhook.release.set()  # every answer slow, none held
    for n in range(6):
        alerts.enqueue(outbox_lake, _alert(n))
    flushers = [_flusher(outbox_lake) for _ in range(3)]
    reports = [_report(process) for process in flushers]
    delivered = [alert_id for report in reports for alert_id in report["delivered"]]
    assert sorted(delivered) == sorted(_alert(n).id for n in range(6))  # by one flusher each
    assert sorted(slow_webhook.texts) == sorted(_alert(n).text for n in range(6))  # and posted once each
    assert _ids(outbox_lake, "outbox") == [] and list(outbox_lake.list("alerts/claims")) == []


def test_the_claim_of_a_flusher_that_died_is_taken_over_after_the_grace(
    outbox_lake: Lake, slow_webhook: Any
) -> None:
    alerts.enqueue(outbox_lake, _alert(11))
    dying = _flusher(outbox_lake)
    assert slow_webhook.first_arrived.wait(timeout=300)
    dying.kill()  # killed mid-delivery: its claim stays behind
    dying.communicate(timeout=60)
    [claim] = outbox_lake.list("alerts/claims")
    assert f"-{dying.pid}-" in alerts.Claim.from_dict(outbox_lake.read_json(claim.path)).owner

    # Within the grace the claim holds: another flusher leaves the alert queued.
    assert alerts.flush(outbox_lake).queued == [_alert(11).id]
    assert slow_webhook.texts == [_alert(11).text]  # only the dead flusher's post
    # Past it (a grace made small here), the next flusher takes the alert over and delivers it.
    report = alerts.flush(outbox_lake, claim_grace_seconds=0.0)
    assert report.delivered == [_alert(11).id]
    assert slow_webhook.texts == [_alert(11).text] * 2  # at least once: never silently dropped
    assert _ids(outbox_lake, "outbox") == [] and _ids(outbox_lake, "sent") == [_alert(11).id]
    assert list(outbox_lake.list("alerts/claims")) == []
