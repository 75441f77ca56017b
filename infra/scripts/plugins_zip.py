"""Build the plugins.zip that MWAA loads the bundle's Airflow plugins from.

MWAA reads plugins only from a zip file in the DAG bucket. This script zips ``plugins/``
reproducibly (sorted entries, fixed timestamps and permissions, so unchanged plugins give
a byte-identical zip and Terraform uploads nothing), skipping what the orchestration
module never ships (bytecode, ``README.md`` files). Next to the zip it writes
``plugins.zip.sources.sha256``, the digest of the files it zipped; the orchestration
module computes the same digest from ``plugins/`` and refuses to plan with a missing or
stale zip.

    make plugins-zip                        # or:
    python3 infra/scripts/plugins_zip.py    # writes infra/.build/plugins.zip

Only the standard library is needed.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUTPUT = REPO / "infra" / ".build" / "plugins.zip"

# The same pattern as local.excluded in infra/modules/orchestration/main.tf, matched
# against "plugins/<relative path>".
EXCLUDED = re.compile(
    r"(__pycache__/|\.py[co]$|\.egg-info/|\.DS_Store$|/README\.md$"
    r"|^great_expectations/uncommitted/|^dags/\.airflowignore$)"
)
# 1980-01-01, the earliest time a zip entry can carry.
FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def plugin_files(plugins_dir: Path) -> list[str]:
    """Relative POSIX paths of the files that ship, sorted as Terraform's ``sort`` does."""
    relatives = (
        path.relative_to(plugins_dir).as_posix() for path in plugins_dir.rglob("*") if path.is_file()
    )
    return sorted(relative for relative in relatives if not EXCLUDED.search(f"plugins/{relative}"))


def sources_digest(plugins_dir: Path, relatives: list[str]) -> str:
    """sha256 over "<relative> <sha256 of the file>\\n" lines, as the orchestration module computes it."""
    lines = "".join(
        f"{relative} {hashlib.sha256((plugins_dir / relative).read_bytes()).hexdigest()}\n"
        for relative in relatives
    )
    return hashlib.sha256(lines.encode()).hexdigest()


def build(plugins_dir: Path, output: Path) -> tuple[Path, list[str]]:
    """Write ``output`` and its ``.sources.sha256`` file; return the zip's path and its entries."""
    relatives = plugin_files(plugins_dir)
    if not relatives:
        raise SystemExit(f"{plugins_dir} holds no plugin file; the orchestration module uploads no zip then")
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.name}.partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for relative in relatives:
            entry = zipfile.ZipInfo(relative, date_time=FIXED_TIME)
            entry.external_attr = 0o100644 << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, (plugins_dir / relative).read_bytes(), compresslevel=9)
    partial.replace(output)
    digest_file = output.with_name(f"{output.name}.sources.sha256")
    digest_file.write_text(sources_digest(plugins_dir, relatives) + "\n")
    return output, relatives


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--plugins-dir", type=Path, default=REPO / "plugins", help="default: plugins/")
    parser.add_argument(
        "--output", type=Path, default=DEFAULT_OUTPUT, help="default: infra/.build/plugins.zip"
    )
    args = parser.parse_args(argv)
    output, relatives = build(args.plugins_dir, args.output)
    print(f"wrote {output} ({len(relatives)} files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
