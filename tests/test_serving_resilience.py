"""The serving app as a process, whatever its registry does: it listens and answers liveness,
docs and metrics before any model, says on ``/ready`` why nothing is served (nothing
listening, a registry that never answers, one answering 500, one answering garbage), loads
the champion once the registry comes back, keeps serving the last good model when the
registry leaves, and on SIGTERM finishes the request in flight and exits 0 in every state.

Each test runs ``python -m mlplatform.serving`` as a subprocess and polls until a state is
reached, with generous deadlines; nothing asserts on elapsed time (``bench/bench_serving_shutdown.py``
measures the time to listen and to exit).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_scoring import USE_CASE, registered_versions, set_alias
from test_serving import TRIP, parsed

from conftest import free_port, stop_process_group

pytestmark = pytest.mark.slow

ADMIN_TOKEN = "resilience-admin-token"
DEADLINE_SECONDS = 180  # generous: a busy machine is slow, never wrong
EXIT_SECONDS = 30


# -- registries that misbehave --------------------------------------------------------------------
class SilentRegistry:
    """Accepts connections (the kernel's backlog does) and never answers a byte."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.uri = f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def close(self) -> None:
        self.sock.close()


class AnsweringRegistry:
    """An HTTP server answering every request with one status and body."""

    def __init__(self, status: int, body: bytes, content_type: str) -> None:
        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PATCH = do_DELETE = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.uri = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Forwarder:
    """The registry's address as the app knows it: a TCP forwarder to the real MLflow server,
    so a test can take the registry away (:meth:`stop`), make it hang (``start(forward=False)``)
    or bring it back (:meth:`start`). Its port is bound from the start (connections are
    refused until it listens), so nothing else can take it."""

    def __init__(self, target: str) -> None:
        self.target = int(target.rsplit(":", 1)[1])
        self._listener: socket.socket | None = self._bound()
        self.port = self._listener.getsockname()[1]
        self.uri = f"http://127.0.0.1:{self.port}"
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._accepting: threading.Thread | None = None
        self._stopping = threading.Event()
        self.held = 0  # connections accepted and never answered (``forward=False``)

    def _bound(self, port: int = 0) -> socket.socket:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        return sock

    def start(self, *, forward: bool = True) -> None:
        listener = self._listener or self._bound(self.port)
        self._listener = listener
        listener.listen(128)
        listener.settimeout(0.2)
        self._stopping.clear()
        self._accepting = threading.Thread(target=self._accept, args=(listener, forward), daemon=True)
        self._accepting.start()

    def stop(self) -> None:
        """Refuse new connections and cut the open ones (MLflow's pooled connections too)."""
        self._stopping.set()
        if self._accepting is not None:
            self._accepting.join()
            self._accepting = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._open.clear()

    def _accept(self, listener: socket.socket, forward: bool) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            with self._lock:
                self._open.add(client)
            if not forward:
                self.held += 1  # hold the connection, answer nothing
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open.add(upstream)
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(source, sink), daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    for sock in (source, sink):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


# -- the app as a process -------------------------------------------------------------------------
@dataclass
class Serving:
    """``python -m mlplatform.serving`` running in a session of its own."""

    process: subprocess.Popen
    port: int
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str, trip: dict[str, Any] | None = None) -> httpx.Response | None:
        """``GET path`` (``POST`` of ``trip`` when given); ``None`` when it does not answer."""
        try:
            if trip is not None:
                return httpx.post(f"{self.base}{path}", json=trip, timeout=10)
            return httpx.get(f"{self.base}{path}", timeout=10)
        except httpx.HTTPError:
            return None

    def predict(self, trip: dict[str, Any]) -> httpx.Response:
        return httpx.post(f"{self.base}/predict", json=trip, timeout=30)

    def wait_for(
        self,
        path: str,
        wanted: Callable[[httpx.Response], bool],
        what: str,
        trip: dict[str, Any] | None = None,
    ) -> httpx.Response:
        """Poll ``GET path`` (``POST`` of ``trip``) until its answer is ``wanted``; fails naming
        ``what`` with the log's tail. Each server process of the app may answer a poll, so a
        state is awaited wherever it is read, not assumed from another route's answer."""
        deadline = time.monotonic() + DEADLINE_SECONDS
        while True:
            response = self.get(path, trip)
            if response is not None and wanted(response):
                return response
            if self.process.poll() is not None or time.monotonic() > deadline:
                last = None if response is None else (response.status_code, response.text[:500])
                tail = self.log.read_text()[-3000:]
                pytest.fail(
                    f"{what}: not reached (exit code {self.process.poll()}, last {last}); log:\n{tail}"
                )
            time.sleep(0.2)

    def terminate(self) -> int:
        """SIGTERM, as an orchestrator stops a container; the exit code."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=EXIT_SECONDS)


@contextlib.contextmanager
def serving_process(tmp_path: Path, registry_uri: str, **environment: str) -> Iterator[Serving]:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_HTTP_REQUEST")},
        "MLFLOW_TRACKING_URI": registry_uri,
        "MLPLATFORM_USE_CASE": USE_CASE.name,
        "MLPLATFORM_LAKE_URI": (tmp_path / "lake").as_uri(),
        "MLPLATFORM_SERVING_ADMIN_TOKEN": ADMIN_TOKEN,
        **environment,
    }
    log_path = tmp_path / "serving.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "mlplatform.serving", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield Serving(process, port, log_path)
        finally:
            stop_process_group(process)


def ready_reason(response: httpx.Response) -> str | None:
    return response.json().get("reason") if response.status_code == 503 else None


def schemas(response: httpx.Response) -> dict[str, Any]:
    return dict(response.json().get("components", {}).get("schemas", {}))


def reload_errors(response: httpx.Response) -> float:
    key = ("mlplatform_serving_model_reload_errors_total", (("model", USE_CASE.model_name),))
    return parsed(response.text).get(key, 0.0)


# -- a registry that is not there or misbehaves ---------------------------------------------------
REGISTRIES = {
    "nothing listens": ("registry_unreachable", "cannot be reached"),
    "accepts and never answers": ("registry_unreachable", "timed out"),
    "answers 500": ("registry_error", "server errors"),
    "answers garbage": ("registry_error", "does not answer MLflow's API"),
}


@pytest.fixture(params=list(REGISTRIES))
def bad_registry(request: pytest.FixtureRequest) -> Iterator[tuple[str, str, str]]:
    """(registry URI, the reason /ready gives, words of its detail) for each kind of trouble."""
    reason, words = REGISTRIES[request.param]
    server: Any
    if request.param == "nothing listens":
        yield f"http://127.0.0.1:{free_port()}", reason, words
        return
    if request.param == "accepts and never answers":
        server = SilentRegistry()
    elif request.param == "answers 500":
        server = AnsweringRegistry(500, b'{"error_code": "INTERNAL_ERROR"}', "application/json")
    else:
        server = AnsweringRegistry(200, b"<html><body>It works!</body></html>", "text/html")
    try:
        yield server.uri, reason, words
    finally:
        server.close()


def test_without_a_usable_registry_the_app_answers_says_why_and_stops_cleanly(
    bad_registry: tuple[str, str, str], tmp_path: Path
) -> None:
    uri, reason, words = bad_registry
    # Two-second registry calls keep the test short; the default is ten (MLflow's own is 120).
    with serving_process(tmp_path, uri, MLFLOW_HTTP_REQUEST_TIMEOUT="2") as app:
        health = app.wait_for("/health", lambda r: r.status_code == 200, "liveness")
        # Before any model: the docs, the document and the metrics answer.
        docs, document, metrics = app.get("/docs"), app.get("/openapi.json"), app.get("/metrics")
        ready = app.wait_for(
            "/ready", lambda r: ready_reason(r) not in (None, "starting"), "a reason on /ready"
        )
        # The loader prepares the spec's inputs for the document before its first attempt.
        from_spec = app.wait_for("/openapi.json", lambda r: "Trip" in schemas(r), "the spec's trip schema")
        predict = app.wait_for("/predict", lambda r: reason in r.text, "a 503 naming the reason", TRIP)
        ping = app.get("/ping")
        health_after = app.wait_for(
            "/health", lambda r: r.json()["readiness"]["reason"] == reason, "the reason on /health"
        )
        metrics_after = app.wait_for("/metrics", lambda r: reload_errors(r) >= 1, "a reload error counted")
        code = app.terminate()
    log = app.log.read_text()

    assert health.json()["status"] == "no_model"
    assert docs is not None and docs.status_code == 200 and "swagger" in docs.text.lower()
    assert document is not None and document.status_code == 200 and "/predict" in document.json()["paths"]
    assert from_spec.json()["components"]["schemas"]["Trip"]["properties"]["do_location_id"]["maximum"] == 265
    assert metrics is not None and metrics.status_code == 200
    assert ready.status_code == 503
    body = ready.json()
    assert body["ready"] is False and body["reason"] == reason and words in body["detail"], body
    assert body["next_retry_at"] and body["last_error"]["reason"] == reason
    assert predict.status_code == 503 and reason in predict.json()["detail"]
    assert ping is not None and ping.status_code == 503
    assert health_after.json()["status"] == "no_model" and metrics_after.status_code == 200
    assert words in log  # the same message in the log, for whoever reads it there
    assert code == 0, log[-3000:]


# -- the real registry, coming and going ----------------------------------------------------------
@pytest.fixture(scope="module")
def versions(mlflow_server: str) -> list[str]:
    return registered_versions(mlflow_server)


@pytest.fixture
def registry(mlflow_server: str, versions: list[str]) -> Iterator[Forwarder]:
    """The real MLflow server behind a forwarder that is not started: nothing listens yet."""
    set_alias(USE_CASE.model_name, "champion", versions[0])
    set_alias(USE_CASE.model_name, "challenger", None)
    forwarder = Forwarder(mlflow_server)
    try:
        yield forwarder
    finally:
        forwarder.stop()


def shutting_down(log: Path) -> bool:
    """Whether every server process of the app has begun its shutdown (uvicorn says so in the log)."""
    text = log.read_text(errors="replace")
    return 0 < text.count("Started server process") <= text.count("Shutting down")


def sigterm_during_a_request(app: Serving, body: bytes) -> bytes:
    """Send a request's headers, wait until the app reads its body (``100 Continue``), send
    SIGTERM, wait until the app is shutting down, then send the body; the raw answer."""
    with socket.create_connection(("127.0.0.1", app.port), timeout=EXIT_SECONDS) as sock:
        head = (
            "POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n"
        )
        sock.sendall(head.encode())
        assert sock.recv(1024).startswith(b"HTTP/1.1 100"), "the app did not start reading the body"
        app.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + EXIT_SECONDS
        while not shutting_down(app.log):
            assert time.monotonic() < deadline, "the app did not begin its shutdown"
            time.sleep(0.02)
        sock.sendall(body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer


def test_the_registry_coming_back_is_loaded_and_its_leaving_changes_nothing(
    registry: Forwarder, versions: list[str], tmp_path: Path
) -> None:
    import json

    environment = {
        "MLPLATFORM_SERVING_POLL_SECONDS": "1",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "2",
        # Long enough for the test's request in flight on any machine; the default is 3 s.
        "MLPLATFORM_SERVING_SHUTDOWN_SECONDS": "60",
    }
    with serving_process(tmp_path, registry.uri, **environment) as app:
        down = app.wait_for("/ready", lambda r: ready_reason(r) == "registry_unreachable", "unreachable")
        before = app.wait_for("/openapi.json", lambda r: "Trip" in schemas(r), "the spec's trip schema")
        registry.start()  # the registry comes back
        ready = app.wait_for("/ready", lambda r: r.status_code == 200, "the champion loaded")
        served = app.predict(TRIP)
        after = app.get("/openapi.json")

        registry.stop()  # the registry goes away again
        health = app.wait_for("/health", lambda r: "note" in r.json(), "a note on /health")
        still_ready = app.get("/ready")
        answers = [app.predict(TRIP) for _ in range(5)]

        in_flight = sigterm_during_a_request(app, json.dumps(TRIP).encode())
        code = app.process.wait(timeout=EXIT_SECONDS)

    assert "cannot be reached" in down.json()["detail"] and down.json()["next_retry_at"]
    assert ready.json()["ready"] is True
    assert served.status_code == 200 and served.json()["version"] == versions[0]
    # The document before the model (the spec's inputs) and after (the champion's signature)
    # both describe the trip.
    assert before is not None and after is not None
    for document in (before.json(), after.json()):
        assert document["components"]["schemas"]["Trip"]["properties"]["do_location_id"]["maximum"] == 265
    assert "registry_unreachable" in health.json()["note"] and versions[0] in health.json()["note"]
    assert still_ready is not None and still_ready.status_code == 200
    assert [a.status_code for a in answers] == [200] * 5
    assert {a.json()["version"] for a in answers} == {versions[0]}
    status_line, _, rest = in_flight.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 200"), in_flight[:500]
    assert json.loads(rest.split(b"\r\n\r\n", 1)[1])["version"] == versions[0]
    assert code == 0


def test_sigterm_while_the_registry_hangs_after_a_model_is_served(
    registry: Forwarder, versions: list[str], tmp_path: Path
) -> None:
    registry.start()
    environment = {"MLPLATFORM_SERVING_POLL_SECONDS": "1"}  # default registry timeout: ten seconds
    with serving_process(tmp_path, registry.uri, **environment) as app:
        app.wait_for("/ready", lambda r: r.status_code == 200, "the champion loaded")
        registry.stop()
        registry.start(forward=False)  # the registry now accepts and never answers
        reload_answers: list[Any] = []

        def reload() -> None:
            try:
                answer = httpx.post(
                    f"{app.base}/admin/reload",
                    headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                    timeout=EXIT_SECONDS,
                )
                reload_answers.append(answer.status_code)
            except httpx.HTTPError as exc:
                reload_answers.append(type(exc).__name__)

        caller = threading.Thread(target=reload)
        caller.start()
        deadline = time.monotonic() + DEADLINE_SECONDS
        while registry.held < 1:  # a registry call of the app is waiting on the silent registry
            assert time.monotonic() < deadline, "the app never called the registry again"
            time.sleep(0.1)
        answered = app.predict(TRIP)  # the event loop is free while the registry hangs
        code = app.terminate()
        caller.join(timeout=EXIT_SECONDS)

    assert answered.status_code == 200 and answered.json()["version"] == versions[0]
    assert code == 0, app.log.read_text()[-3000:]
    assert reload_answers  # answered (503 naming the registry) or cut at shutdown, never hanging
