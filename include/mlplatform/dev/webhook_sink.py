"""A local Slack incoming-webhook sink: keeps every message it is sent, and shows them.

The embedded default has no Slack workspace, so alerts go here instead. The sink accepts
Slack webhook POSTs on any path (JSON bodies, or the form-encoded ``payload=`` Slack also
accepts), answers ``ok`` like Slack does, keeps every message in memory and appends it as
one JSON line to a file, and serves them back::

    GET /messages      every message received, oldest first (JSON list)
    DELETE /messages   forget them
    GET /health        ok

Each stored message is the JSON object that was posted (``text``, ``blocks``, ...) plus
``path`` (where it was posted) and ``received_at``. A restarted sink reloads the file, so
``/messages`` shows the whole history. Run it with::

    python -m mlplatform.dev.webhook_sink --port 8765 --store .local/alerts/messages.jsonl

Tests start it in a thread (:class:`WebhookSink`) and read the messages over HTTP.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from pydantic import ConfigDict, TypeAdapter, ValidationError, with_config
from typing_extensions import TypedDict

from mlplatform.adapters.alerts import Block

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1 << 20  # Slack itself refuses messages far smaller than this


@with_config(ConfigDict(extra="allow"))  # other keys Slack accepts are kept as posted
class PostedMessage(TypedDict, total=False):
    """A webhook's body: the platform posts an :class:`~mlplatform.adapters.alerts.SlackMessage`;
    Slack also takes the text alone. Blocks are the shapes the platform sends: anything else
    is refused, so a malformed alert shows in the sink as it would in Slack."""

    text: str
    blocks: list[Block]


@with_config(ConfigDict(extra="allow"))
class KeptMessage(PostedMessage):
    """A message as the sink keeps it: as posted, with where and when it arrived."""

    path: str
    received_at: str


_POSTED: TypeAdapter[PostedMessage] = TypeAdapter(PostedMessage)
_KEPT: TypeAdapter[KeptMessage] = TypeAdapter(KeptMessage)


class WebhookSink:
    """The sink as an object: start it in a thread, or serve forever from ``main``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, store: Path | None = None) -> None:
        self.store = Path(store) if store else None
        self._lock = threading.Lock()
        self._messages = self._load()
        self._server = ThreadingHTTPServer((host, port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:8765``."""
        host, port = self._server.socket.getsockname()[:2]
        return f"http://{host}:{port}"

    @property
    def hook_url(self) -> str:
        """The URL to configure as the Slack webhook (``MLPLATFORM_SLACK_WEBHOOK_URL``)."""
        return f"{self.url}/hooks/alerts"

    def messages(self) -> list[KeptMessage]:
        with self._lock:
            return list(self._messages)

    def clear(self) -> None:
        """Forget every message (the store file too)."""
        with self._lock:
            self._messages.clear()
            if self.store is not None and self.store.exists():
                self.store.write_text("")

    def keep(self, path: str, body: PostedMessage) -> None:
        """Keep a posted message: in memory, and as one JSON line in the store file."""
        message = KeptMessage(**body, path=path, received_at=datetime.now(UTC).isoformat())
        with self._lock:
            self._messages.append(message)
            if self.store is not None:
                self.store.parent.mkdir(parents=True, exist_ok=True)
                with self.store.open("a", encoding="utf-8") as handle:
                    handle.write(json.dumps(message, sort_keys=True) + "\n")

    def _load(self) -> list[KeptMessage]:
        if self.store is None or not self.store.exists():
            return []
        kept = []
        for line in self.store.read_text(encoding="utf-8").splitlines():
            try:
                kept.append(_KEPT.validate_json(line))
            except ValidationError:
                log.warning("skipping a damaged line in %s", self.store)
        return kept

    def start(self) -> WebhookSink:
        """Serve in a daemon thread; returns self."""
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook-sink", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


def _parse_body(raw: bytes, content_type: str) -> PostedMessage:
    """The posted message; raises ``ValueError`` when it is not a JSON object of that shape."""
    text = raw.decode("utf-8")
    if content_type.startswith("application/x-www-form-urlencoded"):
        payload = parse_qs(text).get("payload")
        if not payload:
            raise ValueError("form body without a payload field")
        text = payload[0]
    return _POSTED.validate_json(text)  # a ValidationError is a ValueError


def _handler_for(sink: WebhookSink) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "mlplatform-webhook-sink"

        def _answer(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                self._answer(413, b"payload_too_large")
                return
            raw = self.rfile.read(length)
            try:
                body = _parse_body(raw, self.headers.get("Content-Type", "application/json"))
            except (ValueError, UnicodeDecodeError):
                self._answer(400, b"invalid_payload")  # what Slack answers to a malformed body
                return
            sink.keep(urlsplit(self.path).path, body)
            self._answer(200, b"ok")

        def do_GET(self) -> None:
            path = urlsplit(self.path).path.rstrip("/")
            if path == "/messages":
                self._answer(200, json.dumps(sink.messages()).encode(), "application/json")
            elif path in ("", "/health"):
                self._answer(200, b"ok")
            else:
                self._answer(404, b"not found: GET /messages lists what the sink received")

        def do_DELETE(self) -> None:
            if urlsplit(self.path).path.rstrip("/") == "/messages":
                sink.clear()
                self._answer(200, b"ok")
            else:
                self._answer(404, b"not found: DELETE /messages forgets every message")

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s %s", self.address_string(), format % args)

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mlplatform.dev.webhook_sink", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port to listen on (default 8765)")
    parser.add_argument("--store", type=Path, help="JSON Lines file every message is appended to")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    sink = WebhookSink(args.host, args.port, args.store)
    log.info("webhook sink on %s (post to %s, read %s/messages)", sink.url, sink.hook_url, sink.url)
    with contextlib.suppress(KeyboardInterrupt):
        sink.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
