"""Operating commands: monitor a window of production, deliver queued alerts, run the serving
app, show the settings."""

from __future__ import annotations

import argparse
import os
import sys

from mlplatform.cli import output
from mlplatform.cli.arguments import (
    FAILED_CHECK,
    LAKE_HELP,
    PASSED,
    CannotCheck,
    Subparsers,
    add_output_options,
    load_use_case,
    month,
    use_case_help,
)


def cmd_monitor(args: argparse.Namespace) -> int:
    from mlplatform.adapters.lake import Lake
    from mlplatform.stages import monitoring

    use_case = load_use_case(args.use_case)
    record = monitoring.monitor(Lake(args.lake), use_case, args.window)
    if args.json:
        output.print_json(record.to_dict())
    else:
        print(monitoring.summary(record))
    return FAILED_CHECK if record.model_status == "breach" else PASSED


def cmd_alerts(args: argparse.Namespace) -> int:
    """``flush``: deliver the queued alerts; ``list``: show what is queued and what Slack refused.

    Exits 1 when alerts remain queued (Slack unreachable) or were refused (4xx).
    """
    from mlplatform.adapters import alerts
    from mlplatform.adapters.lake import Lake

    lake = Lake(args.lake)
    if args.action == "flush":
        report = alerts.flush(lake)
        counts = [[state, len(ids)] for state, ids in report.to_dict().items()]
        output.show(
            args, report.to_dict(), lambda: output.rows_table("alerts flushed", ("", "alerts"), counts)
        )
        return FAILED_CHECK if report.queued or report.failed else PASSED
    found = [{**e, "state": state} for state in ("outbox", "failed") for e in alerts.queued(lake, state)]
    rows = [
        [
            e["state"],
            e["id"],
            e["alert"]["title"],
            e.get("attempts", 0),
            e.get("reason") or e.get("last_error", ""),
        ]
        for e in found
    ]
    columns = ("state", "id", "title", "attempts", "why")
    output.show(args, found, lambda: output.rows_table("alerts not delivered", columns, rows))
    return FAILED_CHECK if found else PASSED


def cmd_config(args: argparse.Namespace) -> int:
    """Print every setting's effective value (secrets masked) and where it came from."""
    try:  # imported here: the settings module reads the environment when it loads
        from mlplatform.adapters.settings import effective_settings
    except ImportError as exc:
        raise CannotCheck(f"this installation cannot list its settings: {exc}") from None
    found = effective_settings()
    records = [{"name": s.name, "value": s.value, "source": s.source} for s in found]
    rows = [[r["name"], r["value"], r["source"]] for r in records]
    output.show(
        args, records, lambda: output.rows_table("effective settings", ("name", "value", "source"), rows)
    )
    return PASSED


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
    return PASSED  # not reached: the process is the serving app now


def register(sub: Subparsers) -> None:
    """Add the operating commands to ``sub``."""
    p = sub.add_parser("monitor", help="measure one window of production against the thresholds")
    p.description = (
        "Compute a window's performance on ground truth, drift, data quality and serving health, "
        "write its record, history rows, drift report and MLflow run, and print it. Exits 1 on a "
        "breach. Alerts and retraining are the monitor DAG's."
    )
    p.add_argument("--use-case", required=True, help=use_case_help("use case to monitor"))
    p.add_argument("--window", type=month, required=True, help="month to evaluate, YYYY-MM")
    p.add_argument("--lake", help=LAKE_HELP)
    add_output_options(p)
    p.set_defaults(func=cmd_monitor)

    p = sub.add_parser("alerts", help="deliver the alerts queued in the lake's outbox, or list them")
    p.description = (
        "Alerts are queued in the lake (alerts/outbox/) before they are sent to Slack. `flush` "
        "delivers every queued alert once, oldest first (delivered ones move to alerts/sent/, "
        "ones Slack refuses with a 4xx to alerts/failed/ with the reason); `list` shows the queued "
        "and refused ones. Exits 1 when some remain undelivered."
    )
    p.add_argument("action", choices=("flush", "list"), help="flush: deliver what is queued; list: show it")
    p.add_argument("--lake", help=LAKE_HELP)
    add_output_options(p)
    p.set_defaults(func=cmd_alerts)

    p = sub.add_parser("config", help="show the effective settings and where each came from")
    p.description = (
        "Print every setting the platform reads, its effective value (secrets masked) and its "
        "source (environment, .env, SSM parameter, default)."
    )
    add_output_options(p)
    p.set_defaults(func=cmd_config)

    p = sub.add_parser("serve", help="run the real-time serving app (the champion behind HTTP)")
    p.description = (
        "Run the serving app in the foreground, as `python -m mlplatform.serving` does: the "
        "registry's champion (and challenger) of a use case behind /predict, /health and /metrics."
    )
    p.add_argument(
        "--use-case", help=use_case_help("use case (default: MLPLATFORM_USE_CASE, else the reference one)")
    )
    p.add_argument("--host", help="address to listen on (default: HOST, else the serving app's default)")
    p.add_argument("--port", type=int, help="port (default: PORT, else 8000; 8080 with --sagemaker)")
    p.add_argument("--poll-seconds", type=float, help="how often to check the registry aliases (default 30)")
    p.add_argument("--access-log", action="store_true", help="log every request (off: /metrics counts them)")
    p.add_argument(
        "--sagemaker", action="store_true", help="listen as a SageMaker container does (port 8080)"
    )
    p.set_defaults(func=cmd_serve)
