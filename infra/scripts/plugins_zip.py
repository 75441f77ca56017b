"""Build the plugins.zip that MWAA loads the bundle's Airflow plugins and wheels from.

MWAA reads plugins only from a zip file in the DAG bucket. This script zips ``plugins/``
reproducibly (sorted entries, fixed timestamps and permissions, so unchanged plugins give
a byte-identical zip and Terraform uploads nothing), skipping what the orchestration
module never ships (bytecode, ``README.md`` files). Next to the zip it writes
``plugins.zip.sources.sha256``, the digest of the files it zipped; the orchestration
module computes the same digest from ``plugins/`` and refuses to plan with a missing or
stale zip.

The zip also carries the wheelhouse MWAA installs the bundle's requirements from
(``wheels/``, synced to ``/usr/local/airflow/plugins/wheels``): as MWAA advises for
environments without internet access, ``infra/mwaa/requirements.txt`` installs with
``--no-index --find-links`` that folder. The wheels are those of the run-time pins of
``constraints-mwaa.txt`` that MWAA's image does not already hold
(``mwaa_requirements.py wheels``), for MWAA's platform (manylinux x86_64, CPython of MWAA's
version), downloaded from PyPI once into ``infra/.build/wheels/`` and reused from there.
``plugins.zip.wheels.sha256`` records the sha256 of the requirements file the wheels were
gathered for; a plan stops at the same precondition when it differs.

    make plugins-zip                        # or:
    python3 infra/scripts/plugins_zip.py    # writes infra/.build/plugins.zip

Only the standard library and pip are needed.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import re
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUTPUT = REPO / "infra" / ".build" / "plugins.zip"
WHEEL_CACHE = REPO / "infra" / ".build" / "wheels"
# MWAA runs on x86_64 Amazon Linux 2023 (glibc 2.34); pip takes every manylinux tag listed.
PLATFORMS = (
    "manylinux_2_34_x86_64",
    "manylinux_2_28_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
)

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


def mwaa_requirements():
    """infra/scripts/mwaa_requirements.py, loaded by path (the scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(
        "mwaa_requirements", Path(__file__).with_name("mwaa_requirements.py")
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("mwaa_requirements", module)
    spec.loader.exec_module(module)
    return module


def gather_wheels(pins: dict[str, str], cache: Path, python_version: str) -> list[Path]:
    """The wheel of every ``name==version`` in ``pins`` for MWAA's platform, downloaded into ``cache``
    when missing; fails naming the pins PyPI has no such wheel for."""
    requirements = mwaa_requirements()
    missing = requirements.missing_wheels(cache, pins)
    if missing:
        cache.mkdir(parents=True, exist_ok=True)
        print(f"downloading {len(missing)} wheels for MWAA into {cache}", flush=True)
        abi = f"cp{python_version.replace('.', '')}"
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check"]
        command += [
            "--no-deps",
            "--only-binary=:all:",
            "--dest",
            str(cache),
            "--python-version",
            python_version,
        ]
        command += ["--implementation", "cp", "--abi", abi, "--abi", "abi3", "--abi", "none"]
        for platform in PLATFORMS:
            command += ["--platform", platform]
        result = subprocess.run([*command, *missing], capture_output=True, text=True)
        if result.returncode != 0:
            raise SystemExit(f"pip could not download MWAA's wheels:\n{result.stderr.strip()[-3000:]}")
    still_missing = requirements.missing_wheels(cache, pins)
    if still_missing:
        raise SystemExit(f"no {python_version} manylinux wheel for {', '.join(still_missing)} on PyPI")
    by_pin = {requirements.wheel_name_version(path.name): path for path in sorted(cache.glob("*.whl"))}
    return [by_pin[(name, version)] for name, version in sorted(pins.items())]


def build(
    plugins_dir: Path, output: Path, wheels: list[Path] | tuple[Path, ...] = ()
) -> tuple[Path, list[str]]:
    """Write ``output`` and its ``.sources.sha256`` file; return the zip's path and its entries.

    ``wheels`` go under ``wheels/`` after the plugins, stored as they are (a wheel is a zip)."""
    relatives = plugin_files(plugins_dir)
    if not relatives and not wheels:
        raise SystemExit(f"{plugins_dir} holds no plugin file; the orchestration module uploads no zip then")
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.name}.partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for relative in relatives:
            entry = zipfile.ZipInfo(relative, date_time=FIXED_TIME)
            entry.external_attr = 0o100644 << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, (plugins_dir / relative).read_bytes(), compresslevel=9)
        for wheel in sorted(wheels, key=lambda path: path.name):
            entry = zipfile.ZipInfo(f"wheels/{wheel.name}", date_time=FIXED_TIME)
            entry.external_attr = 0o100644 << 16
            entry.compress_type = zipfile.ZIP_STORED
            archive.writestr(entry, wheel.read_bytes())
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
    parser.add_argument("--wheel-cache", type=Path, default=WHEEL_CACHE, help="default: infra/.build/wheels")
    args = parser.parse_args(argv)
    requirements = mwaa_requirements()
    mwaa = requirements.mwaa_for()
    wheels = gather_wheels(requirements.wheel_pins(), args.wheel_cache, mwaa.python)
    output, relatives = build(args.plugins_dir, args.output, wheels)
    # The requirements file these wheels install: the orchestration module compares it.
    wheels_digest = hashlib.sha256(requirements.RENDERED.read_bytes()).hexdigest()
    output.with_name(f"{output.name}.wheels.sha256").write_text(wheels_digest + "\n")
    size = output.stat().st_size / 2**20
    print(f"wrote {output} ({len(relatives)} plugin files, {len(wheels)} wheels, {size:.0f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
