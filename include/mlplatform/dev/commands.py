"""``mlplatform run`` and ``mlplatform stop``: the embedded platform's commands.

They live with the dev tools they drive, which Airflow workers and the serving image do not
install; :mod:`mlplatform.cli` adds them to the command line when this package is there.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mlplatform.cli import output
from mlplatform.cli.arguments import CannotCheck, Subparsers, input_folder, month


def cmd_run(args: argparse.Namespace) -> int:
    from mlplatform.dev import closed_loop

    scenario = closed_loop.Scenario(
        months=args.months,
        rows=args.rows,
        start=args.start,
        drift_from=args.drift_from,
        congestion=args.congestion,
        outer_borough_shift=args.outer_borough_shift,
        data=args.data,
    )
    if args.data is not None:
        try:
            closed_loop.real_files(input_folder(args.data))
        except FileNotFoundError as exc:
            raise CannotCheck(str(exc)) from None
    with output.working(args, "starting ...") as status:
        return closed_loop.run(scenario, status)


def cmd_stop(args: argparse.Namespace) -> int:
    from mlplatform.dev import embedded

    return embedded.stop()


def register(sub: Subparsers) -> None:
    """Add ``run`` and ``stop`` to ``sub``."""
    from mlplatform.dev.closed_loop import Scenario

    p = sub.add_parser("run", help="run the closed loop on the embedded default")
    p.description = (
        "Start (or reuse) the embedded default (local lake, MLflow, Airflow, serving app, Slack "
        "sink) and simulate months through the real scheduler: contracts, training, promotion, "
        "deployment, scoring, monitoring, drift and automatic retraining. A previous run's lake "
        "and registered models are set aside first."
    )
    defaults = Scenario()
    p.add_argument(
        "--months", type=int, default=defaults.months, help=f"months to simulate ({defaults.months})"
    )
    p.add_argument("--rows", type=int, default=defaults.rows, help=f"trips per month ({defaults.rows})")
    p.add_argument("--start", type=month, default=defaults.start, help=f"first month ({defaults.start})")
    p.add_argument(
        "--drift-from",
        type=int,
        default=defaults.drift_from,
        help=f"first drifted month, 1-based ({defaults.drift_from})",
    )
    p.add_argument(
        "--congestion",
        type=float,
        default=defaults.congestion,
        help=f"drift: trips take this much longer ({defaults.congestion})",
    )
    p.add_argument(
        "--outer-borough-shift",
        type=float,
        default=defaults.outer_borough_shift,
        help=f"drift: share of pickups moved to the outer boroughs ({defaults.outer_borough_shift})",
    )
    p.add_argument(
        "--data",
        type=Path,
        default=None,
        metavar="DIR",
        help="replay a folder of real TLC monthly files (green_tripdata_2021-01.parquet, ...) "
        "through the loop instead of generated months; the month, row and drift knobs are ignored",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no live status on stderr")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("stop", help="stop every process `mlplatform run` started")
    p.description = "Stop the processes the embedded default started, by process id."
    p.set_defaults(func=cmd_stop)
