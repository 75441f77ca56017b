"""Operating commands: monitor a window of production, run the serving app."""

from __future__ import annotations

import argparse
import json
import os
import sys

from mlplatform.cli.arguments import LAKE_HELP, Subparsers, month


def cmd_monitor(args: argparse.Namespace) -> int:
    from mlplatform.adapters.lake import Lake
    from mlplatform.core import spec
    from mlplatform.stages import monitoring

    try:
        use_case = spec.load_spec(args.use_case)
    except spec.SpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    record = monitoring.monitor(Lake(args.lake), use_case, args.window)
    print(json.dumps(record, indent=2, default=str) if args.json else monitoring.summary(record), end="\n")
    return 1 if record["status"] == "breach" else 0


def serving_argv(args: argparse.Namespace) -> list[str]:
    """The ``python -m mlplatform.serving`` arguments that ``mlplatform serve`` was given."""
    argv = ["serve"] if args.sagemaker else []
    for flag, value in (
        ("--use-case", args.use_case),
        ("--host", args.host),
        ("--port", args.port),
        ("--poll-seconds", args.poll_seconds),
    ):
        if value is not None:
            argv += [flag, str(value)]
    return [*argv, "--access-log"] if args.access_log else argv


def cmd_serve(args: argparse.Namespace) -> int:
    """Become ``python -m mlplatform.serving`` (its ``main``) with the same options.

    The serving app is a sibling face of the command line, not below it (the layers in
    ``pyproject.toml``), so it is started as its own program rather than imported.
    """
    command = [sys.executable, "-m", "mlplatform.serving", *serving_argv(args)]
    os.execv(command[0], command)
    return 0  # not reached: the process is the serving app now


def register(sub: Subparsers) -> None:
    """Add the operating commands to ``sub``."""
    p = sub.add_parser("monitor", help="measure one window of production against the thresholds")
    p.description = (
        "Compute a window's performance on ground truth, drift, data quality and serving health, "
        "write its record, history rows, drift report and MLflow run, and print it. Exits 1 on a "
        "breach. Alerts and retraining are the monitor DAG's."
    )
    p.add_argument("--use-case", required=True, help="use case to monitor")
    p.add_argument("--window", type=month, required=True, help="month to evaluate, YYYY-MM")
    p.add_argument("--lake", help=LAKE_HELP)
    p.add_argument("--json", action="store_true", help="print the whole record as JSON")
    p.set_defaults(func=cmd_monitor)

    p = sub.add_parser("serve", help="run the real-time serving app (the champion behind HTTP)")
    p.description = (
        "Run the serving app in the foreground, as `python -m mlplatform.serving` does: the "
        "registry's champion (and challenger) of a use case behind /predict, /health and /metrics."
    )
    p.add_argument("--use-case", help="use case (default: MLPLATFORM_USE_CASE, else the reference one)")
    p.add_argument("--host", help="address to listen on (default: HOST, else 0.0.0.0)")
    p.add_argument("--port", type=int, help="port (default: PORT, else 8000; 8080 with --sagemaker)")
    p.add_argument("--poll-seconds", type=float, help="how often to check the registry aliases (default 30)")
    p.add_argument("--access-log", action="store_true", help="log every request (off: /metrics counts them)")
    p.add_argument(
        "--sagemaker", action="store_true", help="listen as a SageMaker container does (port 8080)"
    )
    p.set_defaults(func=cmd_serve)
