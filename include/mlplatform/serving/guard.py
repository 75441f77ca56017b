"""The outermost layer of the app: every request counted, no exception left unanswered.

:class:`Guard` is an ASGI middleware. It counts every request in ``/metrics`` by route and
status with its latency, and turns an exception nothing else handled into a JSON 500 that
names the request id (also written to the prediction log for the prediction routes). The
500 is a complete answer, so the server keeps the connection open for the client's next
request instead of dropping it.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Collection
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mlplatform.serving.service import PredictionService

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = b"x-request-id"
MAX_REQUEST_ID_CHARS = 128


def request_id_of(headers: Any) -> str:
    """The caller's ``X-Request-Id`` (cut to a sane length), or a new one."""
    given = headers.get("x-request-id") or ""
    return given[:MAX_REQUEST_ID_CHARS] or uuid.uuid4().hex


class Guard:
    """Counts each request by route and status; answers an unhandled exception with a 500."""

    def __init__(self, app: ASGIApp, service: PredictionService, prediction_routes: Collection[str]) -> None:
        self.app, self.service, self.prediction_routes = app, service, prediction_routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status: int | None = None

        async def send_counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_counted)
        except Exception:
            route = _route_of(scope)
            log.exception("unexpected error on %s %s", scope.get("method"), route)
            if status is None:  # nothing sent yet: answer, so the connection stays usable
                status = 500
                await self._unexpected(scope, send, route, started)
        finally:
            self.service.metrics.observe_request(
                _route_of(scope), status or 500, time.perf_counter() - started
            )

    async def _unexpected(self, scope: Scope, send: Send, route: str, started: float) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        request_id = request_id_of(headers)
        if route in self.prediction_routes:
            self.service.log_failure(request_id, 500, started)
        body = json.dumps(
            {
                "detail": f"unexpected error; the server log has it under request {request_id}",
                "request_id": request_id,
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 500,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (REQUEST_ID_HEADER, request_id.encode("latin-1", "replace")),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _route_of(scope: Scope) -> str:
    """The route template that matched (bounded label values), or ``unmatched``."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else "unmatched"
