"""What every command shares: argument types, help texts and the command signature."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeAlias

from mlplatform.core import months

CommandFn: TypeAlias = Callable[[argparse.Namespace], int]
"""A command: parsed arguments in, exit code out."""
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
"""What each area's ``register`` adds its commands to."""

LAKE_HELP = "lake root URI (default: MLPLATFORM_LAKE_URI or the embedded default)"


def month(value: str) -> str:
    """An argparse type: a month as ``YYYY-MM``."""
    if not months.is_month(value):
        raise argparse.ArgumentTypeError(f"month must be YYYY-MM, got {value!r}")
    return value
