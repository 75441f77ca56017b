"""The ``mlplatform`` command line: the same functions the DAGs run, outside Airflow.

Every command has ``--help``. Exit codes: 0 success, 1 the data or model failed a check,
2 bad usage or input. The commands are in :mod:`mlplatform.cli.commands`, one module per
area; ``run`` and ``stop`` come from :mod:`mlplatform.dev.commands` where the dev tools are
installed (a repository checkout), and are absent from an installed wheel.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Sequence

from mlplatform.cli.commands import data, models, operations

# Imported by name, not statically: the dev tools sit above the command line in the
# package's layers (pyproject.toml) and are not installed with the wheel.
DEV_COMMANDS = "mlplatform.dev.commands"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlplatform", description="Run the ML platform's steps outside Airflow, on any TLC files."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for area in (data, models, operations):
        area.register(sub)
    if importlib.util.find_spec("mlplatform.dev") is not None:
        importlib.import_module(DEV_COMMANDS).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
