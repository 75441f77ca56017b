"""Build infra/modules/alerts/slack_forwarder.zip, the Lambda package of the Slack forwarder.

The zip is committed next to its one source file (Terraform's AWS provider cannot zip, and
the configuration uses no other provider). It is reproducible: a fixed timestamp and mode,
so an unchanged ``slack_forwarder.py`` gives a byte-identical zip; ``tests/test_infra.py``
fails when the two disagree.

    python3 infra/scripts/slack_forwarder_zip.py           # rewrite the zip
    python3 infra/scripts/slack_forwarder_zip.py --check   # exit 1 if it is stale
"""

from __future__ import annotations

import argparse
import io
import sys
import zipfile
from pathlib import Path

ALERTS = Path(__file__).resolve().parents[1] / "modules" / "alerts"
SOURCE = ALERTS / "slack_forwarder.py"
ZIP = ALERTS / "slack_forwarder.zip"


def build(source: Path = SOURCE) -> bytes:
    """The zip's bytes: ``source`` as the one entry, at 1980-01-01, mode 0644."""
    info = zipfile.ZipInfo(source.name, date_time=(1980, 1, 1, 0, 0, 0))
    info.external_attr = 0o644 << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(info, source.read_bytes())
    return buffer.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report whether the zip is current")
    args = parser.parse_args()
    wanted = build()
    current = ZIP.read_bytes() if ZIP.exists() else b""
    if args.check:
        print(f"{ZIP.name} is {'current' if current == wanted else 'stale'}")
        return 0 if current == wanted else 1
    ZIP.write_bytes(wanted)
    print(f"wrote {ZIP}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
