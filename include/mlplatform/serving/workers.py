"""How many serving processes run, and when all of them can serve.

A request is Python work (parsing, validation, the lean predict of
:mod:`mlplatform.serving.lean`): one process uses one core. ``python -m mlplatform.serving``
therefore starts one uvicorn worker per core the process may run on
(``os.sched_getaffinity``), as many as the memory budget allows
(:data:`WORKER_MEMORY_MB` each, the resident size of a worker serving a champion and a
challenger, measured by ``bench/bench_serving.py``), unless ``MLPLATFORM_SERVING_WORKERS``
(or ``--workers``) names a number. Each worker loads its own copy of the models and follows
the registry aliases itself, so a promotion reaches every worker by its own poll, swapped in
without dropping a request; ``POST /admin/reload`` reaches one worker, which leaves a mark
that ends the others' wait for their next poll within a second.

Readiness spans the workers: the supervisor gives them a folder (``MLPLATFORM_SERVING_WORKER_MARKS``)
where each one leaves a mark once it serves a model, and ``/ready`` and ``/ping`` answer 200
only when every worker has, so a load balancer never sends a request to a worker still
loading its model during start-up.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path

WORKERS_VARIABLE = "MLPLATFORM_SERVING_WORKERS"
MARKS_VARIABLE = "MLPLATFORM_SERVING_WORKER_MARKS"
MEMORY_VARIABLE = "MLPLATFORM_SERVING_WORKER_MEMORY_MB"
WORKER_MEMORY_MB = 700
"""Memory budget of one worker: a champion and a challenger of the reference use case, the
app and its libraries (about 400 MB resident with one model, measured)."""
RELOAD_MARK = "reload"  # written by the worker POST /admin/reload reached
RELOAD_CHECK_SECONDS = 1.0
MEMORY_SHARE = 0.8  # of the machine's memory, the rest for the supervisor and the system


def cores() -> int:
    """The cores this process may run on (its CPU affinity, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def memory_mb() -> int:
    """The machine's physical memory in MB."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20)
    except (ValueError, OSError, AttributeError):
        return 0


def worker_count(setting: str | None = None) -> int:
    """The number of workers: ``setting`` (else ``MLPLATFORM_SERVING_WORKERS``) when it is a
    positive number; ``auto`` or nothing: one per core, within the memory budget."""
    value = (setting if setting is not None else os.getenv(WORKERS_VARIABLE, "auto")).strip().lower()
    if value not in ("", "auto"):
        try:
            count = int(value)
        except ValueError:
            raise ValueError(f"{WORKERS_VARIABLE}={value!r}: a number of workers, or 'auto'") from None
        if count < 1:
            raise ValueError(f"{WORKERS_VARIABLE}={value!r}: at least one worker")
        return count
    budget = int(os.getenv(MEMORY_VARIABLE) or WORKER_MEMORY_MB)
    memory = memory_mb()
    by_memory = max(1, int(memory * MEMORY_SHARE) // budget) if memory and budget > 0 else cores()
    return max(1, min(cores(), by_memory))


class Marks:
    """The workers' marks: which of them serve a model (no folder: one worker, nothing to wait for)."""

    def __init__(self) -> None:
        folder = os.getenv(MARKS_VARIABLE)
        self.folder = Path(folder) if folder else None
        self.expected = worker_count() if folder else 1
        self._marked = False
        self._reload_seen = self._reload_mark()

    def _reload_mark(self) -> str:
        try:
            return (self.folder / RELOAD_MARK).read_text() if self.folder else ""
        except OSError:
            return ""

    def waiting_for(self, serving: bool) -> str | None:
        """``None`` once every worker serves (marking this one when it does); else how many do."""
        if self.folder is None:
            return None
        if serving and not self._marked:
            try:
                (self.folder / str(os.getpid())).touch()
                self._marked = True
            except OSError:  # the folder is gone: the supervisor is stopping
                return None
        try:
            ready = sum(1 for mark in self.folder.iterdir() if mark.name.isdigit())
        except OSError:
            return None
        if ready >= self.expected:
            return None
        return f"{ready} of {self.expected} workers have loaded the model"

    def ask_reload(self) -> None:
        """Tell the other workers that ``POST /admin/reload`` reached this one."""
        if self.folder is not None:
            with contextlib.suppress(OSError):
                (self.folder / RELOAD_MARK).write_text(str(time.time_ns()))

    def wait(self, stop: threading.Event, seconds: float) -> bool:
        """Wait ``seconds`` or until ``stop`` is set (``True``); with several workers, end the
        wait early (``False``) when another worker was asked to reload."""
        if self.folder is None:
            return stop.wait(seconds)
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if stop.wait(min(left, RELOAD_CHECK_SECONDS)):
                return True
            if self._reload_asked():
                return False
        return False

    def _reload_asked(self) -> bool:
        try:
            asked = (self.folder / RELOAD_MARK).read_text() if self.folder else ""
        except OSError:
            return False
        if asked and asked != self._reload_seen:
            self._reload_seen = asked
            return True
        return False
