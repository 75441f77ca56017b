"""The micro-batcher: concurrent requests for the same model are predicted together.

While one prediction runs, new requests queue; the next call takes all of them at once
(up to ``MAX_ROWS_PER_CALL`` rows), so a busy server does one model call for many
requests instead of one each, without ever waiting for a batch to fill. A request of at
most ``LEAN_MAX_ROWS`` trips is answered at once on the event loop by the model's lean
path (:mod:`mlplatform.serving.lean`) when it has one; larger requests, and a model
without one, take the logged model's ``predict`` here.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from mlplatform.serving.schema import frame_of
from mlplatform.serving.store import LoadedModel

log = logging.getLogger(__name__)

MAX_ROWS_PER_CALL = 4096
LEAN_MAX_ROWS = 32  # calls of up to this many trips take the model's lean path (serving.lean), if it has one

# One queued request: the model, its checked columns, its row count, and where its answers go.
Answers = list[dict[str, Any]]
Pending = tuple[LoadedModel, dict[str, list[Any]], int, "asyncio.Future[Answers]"]


class MicroBatcher:
    """Runs predictions on one worker thread, merging requests that queued meanwhile."""

    def __init__(self) -> None:
        self._pending: list[Pending] = []
        self._running = False
        self._task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="predict", initializer=_one_native_thread)

    async def predict(self, model: LoadedModel, columns: dict[str, list[Any]], rows: int) -> Answers:
        """The answers for ``rows`` trips of checked ``columns``, one dict per trip."""
        if model.lean is not None and rows <= LEAN_MAX_ROWS:
            # Sub-millisecond work: answered on the event loop. Handing it to the predict
            # thread would cost more than the work (the GIL changes hands every 5 ms at best).
            answers = _lean_answers(model, columns)
            if answers is not None:
                return answers
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Answers] = loop.create_future()
        self._pending.append((model, columns, rows, future))
        if not self._running:
            self._running = True
            self._task = loop.create_task(self._drain())
        return await future

    def _next_group(self) -> tuple[LoadedModel, list[Pending]]:
        """Take the queued requests for the first one's model, up to a call's rows."""
        group, rows, rest = [], 0, []
        model = self._pending[0][0]
        for item in self._pending:
            if item[0] is model and (rows == 0 or rows + item[2] <= MAX_ROWS_PER_CALL):
                group.append(item)
                rows += item[2]
            else:
                rest.append(item)
        self._pending = rest
        return model, group

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                model, group = self._next_group()
                try:
                    answers = await loop.run_in_executor(self._executor, _predict_group, model, group)
                except Exception as exc:
                    for *_, future in group:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                start = 0
                for _, _, n, future in group:
                    if not future.done():
                        future.set_result(answers[start : start + n])
                    start += n
        finally:
            self._running = False

    def close(self) -> None:
        self._executor.shutdown(wait=True)


def _one_native_thread() -> None:
    """Keep the model's native code (OpenMP, BLAS) on the predict thread alone.

    Requests are small: a pool of spinning OpenMP threads costs more than it saves there,
    and it would compete with the event loop for the same cores.
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)


def _lean_answers(model: LoadedModel, columns: dict[str, list[Any]]) -> Answers | None:
    """The lean path's answers; ``None`` when it declines (or fails: the normal path answers then)."""
    try:
        return model.lean.answers(columns)  # type: ignore[no-any-return]
    except Exception:  # never an error the normal path would not give
        log.exception("the lean path of %s failed; the normal path answers", model.ref.uri)
        return None


def _predict_group(model: LoadedModel, group: list[Pending]) -> Answers:
    merged: dict[str, list[Any]] = {f.name: [] for f in model.fields}
    for _, columns, _, _ in group:
        for name, values in columns.items():
            merged[name].extend(values)
    out = model.predict(frame_of(merged, model.fields))
    if model.task == "regression":
        return [{"prediction": float(v)} for v in out["prediction"].to_numpy()]
    return [
        {"label": str(label), "probability": float(p)}
        for label, p in zip(out["label"].to_numpy(), out["probability"].to_numpy(), strict=True)
    ]
