"""Starting the serving app: from the environment, and the ``python -m mlplatform.serving`` command.

:func:`app_from_env` is the uvicorn factory the serving image runs
(``mlplatform.serving:app_from_env``); :func:`main` is the command line, where the
optional ``serve`` word (what SageMaker passes to a container) means SageMaker's contract:
all interfaces, port 8080 (or ``SAGEMAKER_BIND_TO_PORT``), and the model in
``SM_MODEL_DIR`` (default ``/opt/ml/model``) when ``MLPLATFORM_MODEL_URI`` names none.
Without it the app listens on 127.0.0.1 only, unless ``--host`` or ``HOST`` say otherwise.

The serving process bounds MLflow's own HTTP retries (:data:`REGISTRY_CALL_LIMITS`, each
a default the environment can override): the model loader retries with its own capped
backoff, so a registry call must fail in seconds, not after MLflow's minutes of retries.
SIGTERM drains: requests in flight get ``MLPLATFORM_SERVING_SHUTDOWN_SECONDS`` (default
:data:`GRACEFUL_SHUTDOWN_SECONDS`) to finish, the background threads never hold the exit
up, and the process exits 0 in every state.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import tempfile
from collections.abc import Sequence
from pathlib import Path

from fastapi import FastAPI

from mlplatform.core.spec import load_spec
from mlplatform.serving.bodies import max_body_bytes
from mlplatform.serving.routes import ADMIN_TOKEN_VARIABLE, create_app
from mlplatform.serving.workers import MARKS_VARIABLE, WORKERS_VARIABLE, worker_count

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


def app_from_env() -> FastAPI:
    """The app configured from the environment (what the serving image runs).

    Without ``MLPLATFORM_USE_CASE`` it serves the reference use case. MLflow's HTTP calls
    in this process are bounded by :data:`REGISTRY_CALL_LIMITS` unless the environment
    sets them.
    """
    for variable, value in REGISTRY_CALL_LIMITS.items():
        os.environ.setdefault(variable, value)
    # A worker process of its own (several workers) has not configured logging yet: no-op otherwise.
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    name = os.getenv("MLPLATFORM_USE_CASE") or REFERENCE_USE_CASE
    return create_app(
        load_spec(name),
        poll_seconds=float(os.getenv("MLPLATFORM_SERVING_POLL_SECONDS", "30")),
        model_uri=os.getenv("MLPLATFORM_MODEL_URI") or None,
        model_version=os.getenv("MLPLATFORM_MODEL_VERSION") or None,
        log_predictions=os.getenv("MLPLATFORM_SERVING_LOG_PREDICTIONS", "1") == "1",
        admin_token=os.getenv(ADMIN_TOKEN_VARIABLE, "").strip() or None,
        max_body_bytes=max_body_bytes(),
    )


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
            "mlplatform.serving:app_from_env",
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
