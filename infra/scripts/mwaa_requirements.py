"""The requirements Amazon MWAA installs for the bundle, and the checks that MWAA will install them.

MWAA installs the ``requirements.txt`` in the DAG bucket with ``safe-pip-install``, i.e.
``pip3 install --constraint mwaa_essential_constraints.txt -r requirements.txt`` (plus
``-c airflow_constraints.txt`` when the file names no constraints of its own), on top of an
image that already holds Airflow, its executor and some 200 packages, within 9 minutes, and
without PyPI in a private network. MWAA's own files for each Airflow version it runs are
committed under ``infra/mwaa/<airflow version>/`` (see the README there).

One source, three products:

- ``requirements.txt`` names what the bundle imports at run time (exact pins, for the local
  platform on Python 3.11);
- ``constraints-mwaa.txt`` (``make lock``, the ``lock`` command) is the whole environment on
  MWAA, its image's packages plus that set, resolved for MWAA's Python with MWAA's essential
  constraints *and* the versions of its image as hard pins, so the install changes nothing
  MWAA already has; its run-time part comes first, the test tooling (``make test-mwaa``
  only) after a marker line;
- ``infra/mwaa/requirements.txt`` (the ``render`` command, run by ``make lock``) is what
  Terraform uploads and ``make test-mwaa`` installs: offline from the wheelhouse in
  ``plugins.zip``, pinned by ``constraints-mwaa.txt`` (uploaded as ``dags/constraints.txt``),
  naming only the packages of ``requirements.txt`` that MWAA's image does not hold, at the
  lock's versions. Its header carries a digest of the files it was rendered from; the
  orchestration module computes the same digest and refuses to plan with a stale file.

    python infra/scripts/mwaa_requirements.py lock --uv .venv/bin/uv   # make lock
    python infra/scripts/mwaa_requirements.py render                   # rewrite the upload
    python infra/scripts/mwaa_requirements.py check                    # what the tests check
    python infra/scripts/mwaa_requirements.py wheels                   # the wheelhouse's pins
    python infra/scripts/mwaa_requirements.py install --python .venv-mwaa/bin/python \\
        --plugins-zip infra/.build/plugins.zip --root .local/mwaa-home # make test-mwaa

Only the standard library is needed (``lock`` runs uv, ``install`` runs the target's pip).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
REQUIREMENTS = REPO / "requirements.txt"
LOCK = REPO / "constraints-mwaa.txt"
RENDERED = REPO / "infra" / "mwaa" / "requirements.txt"
PYPROJECT = REPO / "pyproject.toml"

# Where MWAA puts what it syncs from the DAG bucket (the orchestration module's dags_path).
MWAA_HOME = "/usr/local/airflow"
MWAA_CONSTRAINTS = f"{MWAA_HOME}/dags/constraints.txt"
MWAA_WHEELS = f"{MWAA_HOME}/plugins/wheels"
# user_requirements.py abandons the install after this long (USER_REQUIREMENTS_MAX_INSTALL_TIME).
INSTALL_LIMIT_SECONDS = 9 * 60

# What runs Airflow's tasks and talks to its metadata database: MWAA's image brings its own,
# and a bundle that re-pins one of them breaks the environment (or fails to install).
EXECUTOR_PACKAGES = frozenset(
    {
        "apache-airflow",
        "apache-airflow-core",
        "apache-airflow-task-sdk",
        "apache-airflow-providers-celery",
        "celery",
        "kombu",
        "billiard",
        "vine",
        "amqp",
        "flower",
        "psycopg2",
        "psycopg2-binary",
        "psycopg",
        "psycopg-binary",
        "asyncpg",
        "sqlalchemy",
    }
)

# Pins of requirements.txt that MWAA's image overrides without holding the package itself:
# s3fs releases in lockstep with fsspec (s3fs==X needs fsspec==X), and the image holds fsspec.
FOLLOWS_IMAGE = {"s3fs": "fsspec"}

# The line of constraints-mwaa.txt after which the pins are the test extra's only.
TEST_TOOLING_MARKER = "# Test tooling only"
SOURCES_PATTERN = re.compile(r"(?m)^# sources-sha256: ([0-9a-f]{64})$")
PYTHON_PATTERN = re.compile(r"(?m)^# python-version: (\d+\.\d+)$")
INSTALLED = re.compile(r"(?m)^Successfully installed (.+)$")
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;#]+)")


class MwaaError(Exception):
    """Something MWAA would refuse, or that would fail on MWAA; the message says what to do."""


def canonical(name: str) -> str:
    """PEP 503 name: the one spelling pip compares."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(path: Path) -> dict[str, str]:
    """``name==version`` lines of a requirements or constraints file, by canonical name."""
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        match = PIN.match(line.strip())
        if match:
            pins[canonical(match[1])] = match[2]
    return pins


def read_names(path: Path) -> list[str]:
    """The packages a requirements file names (pinned or not), in order, options skipped."""
    names = []
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            names.append(canonical(re.split(r"[\s\[=<>!~;]", line, maxsplit=1)[0]))
    return names


@dataclass(frozen=True)
class Mwaa:
    """MWAA's files for one Airflow version: ``infra/mwaa/<version>/``."""

    folder: Path

    @property
    def versions(self) -> dict[str, str]:
        pairs = re.findall(r"(?m)^ENV (\w+)=(\S+)$", (self.folder / "versions.txt").read_text())
        return dict(pairs)

    @property
    def airflow(self) -> str:
        return self.versions["AIRFLOW_VERSION"]

    @property
    def python(self) -> str:
        """Major.minor of the image's Python, e.g. ``3.12``."""
        return ".".join(self.versions["PYTHON_VERSION"].split(".")[:2])

    @property
    def essential_constraints(self) -> Path:
        return self.folder / "mwaa_essential_constraints.txt"

    @property
    def airflow_constraints(self) -> Path:
        return self.folder / "airflow_constraints.txt"

    @property
    def essential(self) -> dict[str, str]:
        return read_pins(self.essential_constraints)

    @property
    def image(self) -> dict[str, str]:
        """What the image holds before any requirement is installed."""
        return read_pins(self.folder / "preinstalled.txt")

    def pinned(self, name: str) -> tuple[str, str] | None:
        """MWAA's version of a package and the file that says so, or None if MWAA has none."""
        if name in self.essential:
            return self.essential[name], self.essential_constraints.name
        if name in self.image:
            return self.image[name], "preinstalled.txt"
        return None

    def owns(self, name: str) -> bool:
        """A package the bundle's requirements must never name: MWAA brings its own."""
        return name in EXECUTOR_PACKAGES or self.pinned(name) is not None


def terraform_airflow_version() -> str:
    """The orchestration module's default ``airflow_version``: the one place the platform names it."""
    variables = (REPO / "infra" / "modules" / "orchestration" / "variables.tf").read_text()
    block = variables[variables.index('variable "airflow_version"') :]
    return re.search(r'default\s*=\s*"([^"]+)"', block)[1]


def mwaa_files(airflow: str) -> Mwaa:
    folder = REPO / "infra" / "mwaa" / airflow
    if not (folder / "versions.txt").is_file():
        raise MwaaError(
            f"infra/mwaa/{airflow}/ holds no MWAA files for Airflow {airflow}: copy them from "
            "aws/amazon-mwaa-docker-images (see infra/mwaa/README.md)"
        )
    return Mwaa(folder)


def mwaa_for(lock: Path = LOCK) -> Mwaa:
    """MWAA's files for the Airflow version the lock pins."""
    airflow = read_pins(lock).get("apache-airflow")
    if airflow is None:
        raise MwaaError(f"{lock.name} pins no apache-airflow: run `make lock`")
    return mwaa_files(airflow)


# --------------------------------------------------------------------------- checks


def conflicts(pins: dict[str, str], mwaa: Mwaa, source: str) -> list[str]:
    """Every pin of ``pins`` that differs from MWAA's own version of the package."""
    messages = []
    for name, version in sorted(pins.items()):
        theirs = mwaa.pinned(name)
        if theirs and theirs[0] != version:
            messages.append(
                f"{source} pins {name} {version}, but MWAA {mwaa.airflow} pins {name} {theirs[0]} "
                f"({theirs[1]}): MWAA refuses to install another version"
            )
    return messages


def repinned(names: list[str], mwaa: Mwaa, source: str) -> list[str]:
    """Every package of the uploaded requirements that MWAA's image brings itself."""
    return [
        f"{source} names {name}, which MWAA {mwaa.airflow} brings itself: leave it out"
        for name in names
        if mwaa.owns(name)
    ]


def lock_python(lock: Path = LOCK) -> str | None:
    match = PYTHON_PATTERN.search(lock.read_text())
    return match[1] if match else None


def runtime_pins(lock: Path = LOCK) -> dict[str, str]:
    """The lock's run-time part: what MWAA may install (the test tooling after the marker is not)."""
    text = lock.read_text()
    runtime, _, _ = text.partition(TEST_TOOLING_MARKER)
    pins = {}
    for line in runtime.splitlines():
        match = PIN.match(line)
        if match:
            pins[canonical(match[1])] = match[2]
    return pins


def wheel_pins(lock: Path = LOCK) -> dict[str, str]:
    """The run-time pins MWAA's image does not already hold: the wheels plugins.zip must carry."""
    image = mwaa_for(lock).image
    return {name: v for name, v in runtime_pins(lock).items() if image.get(name) != v}


def check(requirements: Path = REQUIREMENTS, lock: Path = LOCK, rendered: Path = RENDERED) -> list[str]:
    """Everything that would fail on MWAA, as messages; empty when the bundle installs there."""
    mwaa = mwaa_for(lock)
    problems = conflicts(read_pins(lock), mwaa, lock.name)
    problems += [
        message
        for message in conflicts(read_pins(requirements), mwaa, requirements.name)
        if "(preinstalled.txt)" not in message  # local pins may be newer than the image's
    ]
    if lock_python(lock) != mwaa.python:
        problems.append(
            f"{lock.name} is resolved for Python {lock_python(lock)}, but MWAA {mwaa.airflow} runs "
            f"Python {mwaa.python}: run `make lock`"
        )
    uploaded = read_names(rendered) if rendered.is_file() else []
    problems += repinned(uploaded, mwaa, rendered.name)
    problems += conflicts(read_pins(rendered), mwaa, rendered.name) if rendered.is_file() else []
    if not rendered.is_file() or rendered.read_text() != render(requirements, lock):
        problems.append(
            f"{rel(rendered)} is not what {requirements.name} and {lock.name} give: run `make lock`"
        )
    return problems


# --------------------------------------------------------------------------- rendering


def rel(path: Path) -> str:
    return path.resolve().relative_to(REPO).as_posix() if path.resolve().is_relative_to(REPO) else str(path)


def source_files(mwaa: Mwaa, requirements: Path = REQUIREMENTS, lock: Path = LOCK) -> list[Path]:
    """The files the upload is rendered from, in the order the digest lists them."""
    return [requirements, lock, mwaa.folder / "preinstalled.txt", mwaa.essential_constraints]


def sources_digest(files: list[Path], names: list[str]) -> str:
    """sha256 over "<name> <sha256 of the file>\\n" lines, as the orchestration module computes it."""
    lines = "".join(
        f"{name} {hashlib.sha256(path.read_bytes()).hexdigest()}\n"
        for name, path in zip(names, files, strict=True)
    )
    return hashlib.sha256(lines.encode()).hexdigest()


def digest_names(mwaa: Mwaa, lock: Path = LOCK) -> list[str]:
    """The names the digest gives the source files: their paths relative to the repository, as
    the orchestration module names them (``var.constraints_file`` for the lock)."""
    folder = f"infra/mwaa/{mwaa.airflow}"
    return [
        "requirements.txt",
        rel(lock),
        f"{folder}/preinstalled.txt",
        f"{folder}/mwaa_essential_constraints.txt",
    ]


def render(requirements: Path = REQUIREMENTS, lock: Path = LOCK) -> str:
    """The requirements.txt MWAA installs: the bundle's packages MWAA lacks, at the lock's versions."""
    mwaa = mwaa_for(lock)
    locked = read_pins(lock)
    lines = []
    for name in read_names(requirements):
        if mwaa.owns(name):
            continue
        if name not in locked:
            raise MwaaError(
                f"{lock.name} does not pin {name}, which {requirements.name} names: run `make lock`"
            )
        lines.append(f"{name}=={locked[name]}")
    digest = sources_digest(source_files(mwaa, requirements, lock), digest_names(mwaa, lock))
    return (
        f"# What Amazon MWAA {mwaa.airflow} (Python {mwaa.python}) installs for the bundle; the\n"
        "# orchestration module uploads this file as requirements.txt. Generated by `make lock`\n"
        "# (infra/scripts/mwaa_requirements.py render) from requirements.txt, leaving out what\n"
        "# MWAA's image already holds, at the versions of constraints-mwaa.txt. Do not edit.\n"
        f"# sources-sha256: {digest}\n"
        "# Offline, from the wheels plugins.zip carries (`make plugins-zip`), as MWAA advises for\n"
        "# environments without internet access.\n"
        "--no-index\n"
        f"--find-links {MWAA_WHEELS}\n"
        f"--constraint {MWAA_CONSTRAINTS}\n" + "".join(f"{line}\n" for line in lines)
    )


def write_rendered(requirements: Path = REQUIREMENTS, lock: Path = LOCK, rendered: Path = RENDERED) -> Path:
    rendered.parent.mkdir(parents=True, exist_ok=True)
    rendered.write_text(render(requirements, lock))
    return rendered


# --------------------------------------------------------------------------- the lock


def lock_inputs(mwaa: Mwaa, requirements: Path = REQUIREMENTS) -> list[str]:
    """The run-time requirements to resolve for MWAA: everything MWAA's image holds (so the lock
    is the whole environment, executor included), then requirements.txt with the pins MWAA's
    image overrides dropped (the image's version is a hard constraint)."""
    pins = read_pins(requirements)
    lines = [f"apache-airflow=={mwaa.airflow}"]
    # (Not the essential constraints' gevent, which the image does not hold.)
    lines += sorted(set(mwaa.image) - {"apache-airflow", *read_names(requirements)})
    for name in read_names(requirements):
        follows = FOLLOWS_IMAGE.get(name)
        if mwaa.pinned(name) or (follows and mwaa.pinned(follows)) or name not in pins:
            lines.append(name)
        else:
            lines.append(f"{name}=={pins[name]}")
    return lines


def uv_compile(
    uv: str,
    inputs: list[Path],
    constraints: list[Path],
    mwaa: Mwaa,
    seed: Path | None,
    out: Path,
    extra: bool,
) -> list[str]:
    if seed is not None and seed.is_file():
        # Seeded with the previous lock's pins, so a new requirement moves nothing else.
        out.write_text("".join(line + "\n" for line in seed.read_text().splitlines() if PIN.match(line)))
    command = [
        uv,
        "pip",
        "compile",
        *map(str, inputs),
        "--python-version",
        mwaa.python,
        "--no-header",
        "--no-annotate",
        "--no-emit-package",
        "mlplatform",
        "-o",
        str(out),
    ]
    if extra:
        command += ["--extra", "test"]
    for constraint in constraints:
        command += ["-c", str(constraint)]
    result = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    )
    if result.returncode != 0:
        raise MwaaError(f"uv could not resolve the bundle for MWAA {mwaa.airflow}:\n{result.stderr.strip()}")
    return [line for line in out.read_text().splitlines() if PIN.match(line)]


def lock(uv: str, requirements: Path = REQUIREMENTS, output: Path = LOCK) -> Path:
    """Resolve constraints-mwaa.txt for MWAA's Python, with MWAA's pins hard, and render the upload.

    For the Airflow version the orchestration module deploys, whatever the previous lock pinned."""
    mwaa = mwaa_files(terraform_airflow_version())
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        (work / "runtime.in").write_text("\n".join(lock_inputs(mwaa, requirements)) + "\n")
        # The image as constraints: pip names like Flask_Login become flask-login.
        (work / "image.txt").write_text("".join(f"{n}=={v}\n" for n, v in sorted(mwaa.image.items())))
        hard = [mwaa.essential_constraints, work / "image.txt"]
        everything = uv_compile(
            uv, [work / "runtime.in", PYPROJECT], hard, mwaa, output, work / "all.txt", extra=True
        )
        (work / "all-pins.txt").write_text("\n".join(everything) + "\n")
        # The run-time part: the same versions, without the test extra.
        runtime = uv_compile(
            uv,
            [work / "runtime.in"],
            [*hard, work / "all-pins.txt"],
            mwaa,
            None,
            work / "runtime.txt",
            extra=False,
        )
    test_only = [line for line in everything if line not in runtime]
    output.write_text(
        f"# The bundle's lock for Amazon MWAA: Airflow {mwaa.airflow} on Python {mwaa.python}. Generated by\n"
        "# `make lock` (infra/scripts/mwaa_requirements.py lock) from requirements.txt and the test\n"
        f"# extra in pyproject.toml, with MWAA's essential constraints and the versions its image\n"
        f"# holds (infra/mwaa/{mwaa.airflow}/) as hard pins, so installing changes nothing MWAA has.\n"
        "# Uploaded as dags/constraints.txt; the requirements MWAA installs with it are\n"
        "# infra/mwaa/requirements.txt. Do not edit by hand.\n"
        f"# python-version: {mwaa.python}\n"
        + "".join(f"{line}\n" for line in runtime)
        + f"{TEST_TOOLING_MARKER}: the test extra, for `make test-mwaa`; MWAA installs none of it.\n"
        + "".join(f"{line}\n" for line in test_only)
    )
    write_rendered(requirements, output)
    return output


# --------------------------------------------------------------------------- installing as MWAA does


def wheel_name_version(filename: str) -> tuple[str, str]:
    name, version = filename.split("-")[:2]
    return canonical(name), version


def missing_wheels(wheels: Path, wanted: dict[str, str]) -> list[str]:
    """The ``name==version`` pins the wheelhouse holds no wheel for."""
    present = {wheel_name_version(p.name) for p in wheels.glob("*.whl")} if wheels.is_dir() else set()
    return [f"{n}=={v}" for n, v in sorted(wanted.items()) if (n, v) not in present]


def stage(root: Path, plugins_zip: Path, rendered: Path = RENDERED, lock: Path = LOCK) -> Path:
    """Lay out MWAA's home under ``root`` as MWAA syncs it; return the requirements file to install."""
    if not plugins_zip.is_file():
        raise MwaaError(f"{plugins_zip} is missing: run `make plugins-zip`")
    shutil.rmtree(root, ignore_errors=True)
    (root / "dags").mkdir(parents=True)
    (root / "requirements").mkdir()
    shutil.copyfile(lock, root / "dags" / "constraints.txt")
    with zipfile.ZipFile(plugins_zip) as archive:
        archive.extractall(root / "plugins")
    # The file Terraform uploads, byte for byte, with MWAA's home moved to root.
    staged = root / "requirements" / "requirements.txt"
    staged.write_text(rendered.read_text().replace(MWAA_HOME, str(root.resolve())))
    return staged


def has_constraints(requirements: Path) -> bool:
    """user_requirements.py's own test: any line with "-c " or "--constraint " (comments too)."""
    return any(re.search(r"-c |--constraint ", line) for line in requirements.read_text().splitlines())


def child_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def safe_pip_install(python: str, requirements: Path, mwaa: Mwaa, dry_run: bool = False) -> tuple[float, str]:
    """safe-pip-install's command as user_requirements.py calls it; (seconds, pip's output)."""
    command = [
        python,
        "-m",
        "pip",
        "install",
        "--constraint",
        str(mwaa.essential_constraints),
        "-r",
        str(requirements),
    ]
    if not has_constraints(requirements):
        command += ["-c", str(mwaa.airflow_constraints)]
    if dry_run:
        command.append("--dry-run")
    # MWAA's pip reads no configuration of this machine (indexes, find-links, constraints).
    env = {name: value for name, value in os.environ.items() if not name.startswith("PIP_")}
    env |= {"PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    started, cpu_before = time.monotonic(), child_cpu_seconds()
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    seconds = time.monotonic() - started
    # The wall time depends on how busy the machine is; pip's own CPU time much less so.
    print(f"pip used {child_cpu_seconds() - cpu_before:.0f} s of CPU", file=sys.stderr)
    output = result.stdout + result.stderr
    if result.returncode != 0:
        missing = re.findall(r"No matching distribution found for (\S+)", output)
        reason = f"no wheel for {', '.join(missing)} in the wheelhouse" if missing else "pip failed"
        raise MwaaError(f"MWAA's install of {requirements} fails: {reason}\n{output.strip()[-3000:]}")
    return seconds, output


def install(
    python: str, root: Path, plugins_zip: Path, rendered: Path = RENDERED, lock: Path = LOCK
) -> float:
    """Install the upload into ``python``'s environment offline, as MWAA does; return the seconds it took."""
    mwaa = mwaa_for(lock)
    staged = stage(root, plugins_zip, rendered, lock)
    missing = missing_wheels(root / "plugins" / "wheels", wheel_pins(lock))
    if missing:
        raise MwaaError(
            f"{plugins_zip} lacks the wheels of {', '.join(missing)}, which MWAA's image does not hold: "
            "run `make plugins-zip`"
        )
    seconds, output = safe_pip_install(python, staged, mwaa)
    installed = [canonical(item.rsplit("-", 1)[0]) for item in " ".join(INSTALLED.findall(output)).split()]
    replaced = sorted(name for name in installed if name in mwaa.image)
    if replaced:
        raise MwaaError(f"the install replaced {', '.join(replaced)} of MWAA's image: run `make lock`")
    print(f"installed {len(installed)} packages, none of them replacing one of MWAA's image")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("lock", help="resolve constraints-mwaa.txt and render the upload").add_argument(
        "--uv", default="uv"
    )
    commands.add_parser("render", help=f"rewrite {rel(RENDERED)}")
    commands.add_parser("check", help="list what would fail on MWAA")
    commands.add_parser("wheels", help="print the pins the wheelhouse must hold")
    installing = commands.add_parser("install", help="install the upload offline as MWAA does")
    installing.add_argument(
        "--python", required=True, help="interpreter of the environment standing for MWAA's image"
    )
    installing.add_argument("--plugins-zip", type=Path, default=REPO / "infra" / ".build" / "plugins.zip")
    installing.add_argument("--root", type=Path, required=True, help="folder standing for /usr/local/airflow")
    args = parser.parse_args(argv)
    try:
        if args.command == "lock":
            print(f"wrote {rel(lock(args.uv))} and {rel(RENDERED)}")
        elif args.command == "render":
            print(f"wrote {rel(write_rendered())}")
        elif args.command == "check":
            problems = check()
            for problem in problems:
                print(problem, file=sys.stderr)
            if problems:
                return 1
            print(f"{rel(RENDERED)} and {LOCK.name} install on MWAA {mwaa_for().airflow}")
        elif args.command == "wheels":
            print("\n".join(f"{n}=={v}" for n, v in sorted(wheel_pins().items())))
        else:
            seconds = install(args.python, args.root, args.plugins_zip)
            print(
                f"MWAA install: {seconds:.0f} s of the {INSTALL_LIMIT_SECONDS} s MWAA allows "
                f"({seconds / INSTALL_LIMIT_SECONDS:.0%}), offline from plugins.zip's wheels"
            )
            if seconds > INSTALL_LIMIT_SECONDS:
                print("MWAA would abandon this install: it took longer than 9 minutes", file=sys.stderr)
    except MwaaError as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
