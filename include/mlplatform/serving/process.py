"""How the serving process runs: ``python -m mlplatform.serving``, its workers, SIGTERM.

:func:`main` is the command line, where the optional ``serve`` word (what SageMaker passes
to a container) means SageMaker's contract: all interfaces, port 8080 (or
``SAGEMAKER_BIND_TO_PORT``), and the model in ``SM_MODEL_DIR`` (default ``/opt/ml/model``)
when ``MLPLATFORM_MODEL_URI`` names none. Without it the app listens on 127.0.0.1 only,
unless ``--host`` or ``HOST`` say otherwise. Each worker builds the app with
:func:`~mlplatform.serving.routes.app_from_env`.

The serving process bounds MLflow's own HTTP retries (:data:`REGISTRY_CALL_LIMITS`, each
a default the environment can override): the model loader retries with its own capped
backoff, so a registry call must fail in seconds, not after MLflow's minutes of retries.
SIGTERM drains: requests in flight get ``MLPLATFORM_SERVING_SHUTDOWN_SECONDS`` (default
:data:`GRACEFUL_SHUTDOWN_SECONDS`) to finish, the background threads never hold the exit
up, and the process exits 0 in every state.

Workers. A request is Python work (parsing, validation, the lean predict of
:mod:`mlplatform.serving.lean`): one process uses one core. :func:`main` therefore starts
one uvicorn worker per core the process may run on (``os.sched_getaffinity``), as many as
the memory budget allows (:data:`WORKER_MEMORY_MB` each, the resident size of a worker
serving a champion and a challenger, measured by ``bench/bench_serving.py``), unless
``MLPLATFORM_SERVING_WORKERS`` (or ``--workers``) names a number. Each worker loads its own
copy of the models and follows the registry aliases itself, so a promotion reaches every
worker by its own poll, swapped in without dropping a request; ``POST /admin/reload``
reaches one worker, which leaves a mark that ends the others' wait for their next poll
within a second.

Readiness spans the workers: the supervisor gives them a folder (``MLPLATFORM_SERVING_WORKER_MARKS``)
where each one leaves a mark once it serves a model (:class:`Marks`), and ``/ready`` and
``/ping`` answer 200 only when every worker has, so a load balancer never sends a request
to a worker still loading its model during start-up.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

REFERENCE_USE_CASE = "taxi_trip_duration"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
SAGEMAKER_HOST = "0.0.0.0"
SAGEMAKER_PORT = 8080  # SageMaker sends /ping and /invocations to this port
SAGEMAKER_MODEL_DIR = "/opt/ml/model"
GRACEFUL_SHUTDOWN_SECONDS = 3  # requests take milliseconds; SIGTERM to exit stays under 5 s
# MLflow retries a failed call 7 times with backoff factor 2 and waits 120 s for an answer:
# minutes per call against a registry that is down or hangs. Here one try, ten seconds.
REGISTRY_CALL_LIMITS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0",
    # No usage reports from a server: no outbound call, nothing to flush at exit.
    "MLFLOW_DISABLE_TELEMETRY": "true",
}
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
DESCRIPTION = "The real-time endpoint: the registry's ``champion`` behind a small HTTP service."
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


def sagemaker_model_dir() -> str | None:
    """The model SageMaker copied into the container (``SM_MODEL_DIR``, else ``/opt/ml/model``),
    if there is one."""
    folder = Path(os.getenv("SM_MODEL_DIR") or SAGEMAKER_MODEL_DIR)
    return str(folder) if (folder / "MLmodel").is_file() else None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mlplatform.serving", description=DESCRIPTION)
    parser.add_argument(
        "command", nargs="?", choices=["serve"], help="SageMaker passes it: listen on 0.0.0.0:8080"
    )
    parser.add_argument(
        "--use-case", help=f"use case (default: MLPLATFORM_USE_CASE, else {REFERENCE_USE_CASE})"
    )
    parser.add_argument("--host", help=f"address (default: HOST, else {DEFAULT_HOST}; 0.0.0.0 with `serve`)")
    parser.add_argument(
        "--port",
        type=int,
        help="port (default: PORT, else 8000; with `serve` SAGEMAKER_BIND_TO_PORT, else 8080)",
    )
    parser.add_argument("--poll-seconds", type=float, help="alias poll interval (default 30)")
    parser.add_argument(
        "--workers",
        help="worker processes, or auto (default: MLPLATFORM_SERVING_WORKERS, else auto: one per core)",
    )
    parser.add_argument(
        "--access-log", action="store_true", help="log every request (off: /metrics counts them)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m mlplatform.serving [serve] [--use-case NAME] [--host H] [--port P]``.

    The optional ``serve`` word is what SageMaker passes to a container.
    """
    import uvicorn

    args = _parser().parse_args(argv)
    # The app is built by uvicorn's factory from the environment, so the options go there.
    if args.use_case:
        os.environ["MLPLATFORM_USE_CASE"] = args.use_case
    if args.poll_seconds is not None:
        os.environ["MLPLATFORM_SERVING_POLL_SECONDS"] = str(args.poll_seconds)
    if args.command == "serve":
        host = args.host or SAGEMAKER_HOST
        port = args.port or int(os.getenv("SAGEMAKER_BIND_TO_PORT") or SAGEMAKER_PORT)
        if not os.getenv("MLPLATFORM_MODEL_URI") and (model_dir := sagemaker_model_dir()):
            os.environ["MLPLATFORM_MODEL_URI"] = model_dir
    else:
        host = args.host or os.getenv("HOST") or DEFAULT_HOST
        port = args.port or int(os.getenv("PORT") or DEFAULT_PORT)
    try:
        workers = worker_count(args.workers)
    except ValueError as exc:
        _parser().error(str(exc))
    # Each worker builds the app from the environment: it learns the count and, with several,
    # the folder where each marks that it serves (readiness waits for all of them).
    os.environ[WORKERS_VARIABLE] = str(workers)
    marks = tempfile.mkdtemp(prefix="mlplatform-serving-workers-") if workers > 1 else None
    if marks:
        os.environ[MARKS_VARIABLE] = marks
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    # uvicorn handles SIGTERM while it serves, then restores this handler and raises the
    # signal again: exit 0, a normal stop (also for a SIGTERM before it serves).
    previous = signal.signal(signal.SIGTERM, _exit_normally)
    try:
        uvicorn.run(
            "mlplatform.serving.routes:app_from_env",
            factory=True,
            host=host,
            port=port,
            access_log=args.access_log,
            workers=workers,
            timeout_graceful_shutdown=int(
                os.getenv("MLPLATFORM_SERVING_SHUTDOWN_SECONDS") or GRACEFUL_SHUTDOWN_SECONDS
            ),
        )
    except SystemExit as stop:  # our handler once uvicorn has drained (0), or uvicorn's own exit
        return stop.code if isinstance(stop.code, int) else 0 if stop.code is None else 1
    finally:
        signal.signal(signal.SIGTERM, previous)
        if marks:
            shutil.rmtree(marks, ignore_errors=True)
    return 0


def _exit_normally(signum: int, frame: object) -> None:
    raise SystemExit(0)
