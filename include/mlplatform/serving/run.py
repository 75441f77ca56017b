"""Starting the serving app: from the environment, and the ``python -m mlplatform.serving`` command.

:func:`app_from_env` is the uvicorn factory the serving image runs
(``mlplatform.serving:app_from_env``); :func:`main` is the command line, where the
optional ``serve`` word (what SageMaker passes to a container) means port 8080.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence

from fastapi import FastAPI

from mlplatform.core.spec import load_spec
from mlplatform.serving.routes import create_app

REFERENCE_USE_CASE = "taxi_trip_duration"
DEFAULT_PORT = 8000
SAGEMAKER_PORT = 8080  # SageMaker sends /ping and /invocations to this port
DESCRIPTION = "The real-time endpoint: the registry's ``champion`` behind a small HTTP service."


def app_from_env() -> FastAPI:
    """The app configured from the environment (what the serving image runs).

    Without ``MLPLATFORM_USE_CASE`` it serves the reference use case.
    """
    name = os.getenv("MLPLATFORM_USE_CASE") or REFERENCE_USE_CASE
    return create_app(
        load_spec(name),
        poll_seconds=float(os.getenv("MLPLATFORM_SERVING_POLL_SECONDS", "30")),
        model_uri=os.getenv("MLPLATFORM_MODEL_URI") or None,
        model_version=os.getenv("MLPLATFORM_MODEL_VERSION") or None,
        log_predictions=os.getenv("MLPLATFORM_SERVING_LOG_PREDICTIONS", "1") == "1",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mlplatform.serving", description=DESCRIPTION)
    parser.add_argument("command", nargs="?", choices=["serve"], help="SageMaker passes it: listen on 8080")
    parser.add_argument(
        "--use-case", help=f"use case (default: MLPLATFORM_USE_CASE, else {REFERENCE_USE_CASE})"
    )
    parser.add_argument("--host", default=os.getenv("HOST", "0.0.0.0"), help="address (default 0.0.0.0)")
    parser.add_argument("--port", type=int, help="port (default: PORT, else 8000; 8080 with `serve`)")
    parser.add_argument("--poll-seconds", type=float, help="alias poll interval (default 30)")
    parser.add_argument(
        "--access-log", action="store_true", help="log every request (off: /metrics counts them)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> None:
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
    default = SAGEMAKER_PORT if args.command == "serve" else DEFAULT_PORT
    port = args.port or int(os.getenv("PORT") or default)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(
        "mlplatform.serving:app_from_env",
        factory=True,
        host=args.host,
        port=port,
        access_log=args.access_log,
        timeout_graceful_shutdown=30,
    )
