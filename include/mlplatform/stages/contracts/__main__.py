"""``python -m mlplatform.stages.contracts sync``: regenerate the committed GX context from the specs.

Run it after changing a use case's ``contract:`` or adding a use case, then commit
``great_expectations/`` (see its README).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from mlplatform.stages.contracts.suite import sync_context


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m mlplatform.stages.contracts sync``: regenerate the committed suites from the specs."""
    parser = argparse.ArgumentParser(prog="python -m mlplatform.stages.contracts", description=main.__doc__)
    parser.add_argument("command", choices=["sync"])
    parser.add_argument(
        "--root", type=Path, help="context folder (default: MLPLATFORM_GX_ROOT or the repo's)"
    )
    args = parser.parse_args(argv)
    root = sync_context(args.root)
    print(f"synced the Great Expectations context at {root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
