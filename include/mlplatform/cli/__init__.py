"""The ``mlplatform`` command line: the same functions the DAGs run, outside Airflow.

Every command has ``--help``; results print as tables, or as JSON with ``--json``; long
work (``run``, ``score``, ``train``, ``generate``) shows progress on stderr when it is a
terminal (``--quiet`` turns it off). Exit codes (:mod:`mlplatform.cli.arguments`): 0
passed, 1 the data or model failed a check, 2 the command could not check (bad usage, a
path that is missing, a folder, unreadable or not a regular file, a spec that does not
load), always with a one-line ``error:`` message and never a traceback for those.

The commands are in :mod:`mlplatform.cli.commands`, what they share (argument types, input
checks, exit codes, the ``completion`` script) in :mod:`mlplatform.cli.arguments`, how they
print in :mod:`mlplatform.cli.output`; ``run`` and ``stop`` come from
:mod:`mlplatform.dev.commands` where the dev tools are installed (a repository checkout),
and are absent from an installed wheel.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Sequence

from mlplatform import __version__
from mlplatform.cli import commands
from mlplatform.cli.arguments import CANNOT_CHECK, CannotCheck, register_completion

# Imported by name, not statically: the dev tools sit above the command line in the
# package's layers (pyproject.toml) and are not installed with the wheel.
DEV_COMMANDS = "mlplatform.dev.commands"

EXIT_CODES = "exit codes: 0 passed, 1 the data or model failed a check, 2 could not check (bad input)"


def _use_cases_epilog() -> str:
    """The use cases and the model families each offers, for the top-level help."""
    from mlplatform.core import spec

    try:
        listing = [f"  {u.name}: families {', '.join(spec.model_families(u))}" for u in spec.load_all()]
    except spec.SpecError as exc:
        listing = [f"  (the specs do not load: {str(exc).splitlines()[0]})"]
    return "\n".join(["use cases:", *listing, "", EXIT_CODES])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlplatform",
        description="Run the ML platform's steps outside Airflow, on any TLC files.",
        epilog=_use_cases_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.register(sub)
    if importlib.util.find_spec("mlplatform.dev") is not None:
        importlib.import_module(DEV_COMMANDS).register(sub)
    register_completion(sub, parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; what it cannot check (and a read that fails midway) is exit 2 with one line."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (CannotCheck, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return CANNOT_CHECK
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


__all__ = ["CannotCheck", "build_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
