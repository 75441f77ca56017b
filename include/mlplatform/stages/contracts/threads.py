"""Work the contract step runs alongside itself, and the seconds each step takes.

Hashing the raw files, finding duplicate rows, encoding the snapshot and rendering Data
Docs are done in Arrow, numpy, hashlib or GX's renderer while Python carries on with the
next step: :func:`in_thread` starts each in a thread of its own. :class:`Clock` records
the seconds per step that the outcome's ``timings`` report.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def in_thread(fn: Callable[..., T], *args: Any) -> Future[T]:
    """Start ``fn(*args)`` in a thread of its own and return its future at once.

    Worth it for work done in Arrow, numpy or hashlib, which release the GIL: the thread
    gets the second core while Python carries on.
    """
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlplatform-contracts")
    try:
        return executor.submit(fn, *args)
    finally:
        executor.shutdown(wait=False)


def timed(fn: Callable[..., Any]) -> Callable[..., tuple[Any, float]]:
    """``fn`` returning its result and the seconds it took."""

    @functools.wraps(fn)
    def timed(*args: Any) -> tuple[Any, float]:
        started = time.perf_counter()
        return fn(*args), time.perf_counter() - started

    return timed


class Clock:
    """Seconds per step, for logs and the benchmark."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, step: str) -> None:
        now = time.perf_counter()
        self.laps[step] = round(now - self._last, 3)
        self._last = now
