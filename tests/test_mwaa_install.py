"""The bundle installs on Amazon MWAA the way MWAA installs it, checked against MWAA's own files.

MWAA installs the uploaded ``requirements.txt`` with ``safe-pip-install`` under its essential
constraints, on top of an image that already holds Airflow and its executor; a pin that
disagrees with either, or a wheel the offline install cannot find, stops the environment
from starting. These checks read the files committed under ``infra/mwaa/<version>/`` and
need no network; ``make test-mwaa`` does the install itself.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import hcl2
import pytest
from packaging.specifiers import SpecifierSet

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "infra" / "scripts"
ORCHESTRATION = REPO / "infra" / "modules" / "orchestration"


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(name, module)
    spec.loader.exec_module(module)
    return module


mr = load_script("mwaa_requirements")
MWAA = mr.mwaa_for()


def orchestration() -> tuple[dict, dict]:
    """The orchestration module's locals and its aws_s3_object.requirements."""
    options = hcl2.SerializationOptions(
        with_comments=False, explicit_blocks=False, strip_string_quotes=True, preserve_heredocs=False
    )
    with (ORCHESTRATION / "main.tf").open() as handle:
        parsed = hcl2.load(handle, serialization_options=options)
    (module_locals,) = parsed["locals"]
    (requirements,) = [
        body
        for block in parsed["resource"]
        for kind, named in block.items()
        if kind == "aws_s3_object"
        for name, body in named.items()
        if name == "requirements"
    ]
    return module_locals, requirements


# --------------------------------------------------------------------------- MWAA's files


def test_mwaas_files_are_committed_with_their_provenance():
    names = {path.name for path in MWAA.folder.iterdir()}
    assert {
        "README.md",
        "LICENSE",
        "versions.txt",
        "mwaa_essential_constraints.txt",
        "airflow_constraints.txt",
        "safe-pip-install",
        "preinstalled.txt",
    } <= names
    readme = (MWAA.folder / "README.md").read_text()
    assert "aws/amazon-mwaa-docker-images" in readme and re.search(r"commit `[0-9a-f]{40}`", readme)
    assert MWAA.airflow == MWAA.folder.name == "3.3.1"
    assert (
        'pip3 install --constraint "${MWAA_ESSENTIAL_CONSTRAINTS_FILE}" "$@"'
        in (MWAA.folder / "safe-pip-install").read_text()
    )
    # What the install is checked against: the executor and the SQLAlchemy MWAA pins.
    assert MWAA.essential["kombu"] == "5.6.2" and MWAA.essential["sqlalchemy"] == "2.0.51"


# --------------------------------------------------------------------------- the lock


def test_the_lock_agrees_with_every_pin_mwaa_makes():
    locked = mr.read_pins(mr.LOCK)
    assert mr.conflicts(locked, MWAA, mr.LOCK.name) == []
    for name, version in MWAA.essential.items():
        assert locked.get(name, version) == version, name
    for name in ("kombu", "sqlalchemy", "billiard", "greenlet", "gunicorn", "celery", "flask"):
        assert locked[name] == MWAA.essential[name], f"{name} must be MWAA's"
    assert locked["apache-airflow"] == MWAA.airflow


def test_the_lock_is_resolved_for_mwaas_python():
    assert mr.lock_python() == MWAA.python == "3.12"
    requires = re.search(r'(?m)^requires-python = "([^"]+)"', (REPO / "pyproject.toml").read_text())[1]
    assert MWAA.versions["PYTHON_VERSION"] in SpecifierSet(requires), (
        "pyproject.toml must admit MWAA's Python"
    )
    assert "3.11.7" in SpecifierSet(requires), "and the local default"


def test_nothing_mwaa_installs_is_test_tooling():
    runtime = mr.runtime_pins()
    assert "pytest" not in runtime and "moto" not in runtime and "mlflow" in runtime
    assert set(mr.wheel_pins()) <= set(runtime)
    # Every wheel the install needs is one the image lacks (at that version).
    assert not [name for name, version in mr.wheel_pins().items() if MWAA.image.get(name) == version]


# --------------------------------------------------------------------------- the upload


def test_the_upload_never_repins_what_mwaa_brings():
    names = mr.read_names(mr.RENDERED)
    assert names, "the bundle needs packages MWAA's image lacks"
    assert mr.repinned(names, MWAA, mr.RENDERED.name) == []
    executor = {
        "celery",
        "kombu",
        "billiard",
        "apache-airflow-providers-celery",
        "psycopg2",
        "psycopg2-binary",
    }
    assert not executor & set(names)
    assert not [name for name in names if name.startswith("apache-airflow") and MWAA.owns(name)]
    # Every pin equals the lock's, and the lock agrees with MWAA.
    locked = mr.read_pins(mr.LOCK)
    assert {name: locked[name] for name in names} == mr.read_pins(mr.RENDERED)


def test_the_upload_installs_offline_from_plugins_zip_with_the_lock():
    lines = mr.RENDERED.read_text().splitlines()
    assert "--no-index" in lines
    assert "--find-links /usr/local/airflow/plugins/wheels" in lines
    # MWAA syncs dags/ to /usr/local/airflow/dags, where the module uploads the lock.
    assert "--constraint /usr/local/airflow/dags/constraints.txt" in lines
    assert mr.has_constraints(mr.RENDERED), "with constraints of its own MWAA adds Airflow's on top of none"


def test_the_upload_is_rendered_from_requirements_txt():
    assert mr.RENDERED.read_text() == mr.render(), "run `make lock`"
    expected = [name for name in mr.read_names(mr.REQUIREMENTS) if not MWAA.owns(name)]
    assert mr.read_names(mr.RENDERED) == expected
    assert mr.check() == []


def test_terraform_uploads_the_file_make_test_mwaa_installs():
    module_locals, requirements = orchestration()
    assert module_locals["requirements_path"] == "${var.bundle_root}/infra/mwaa/requirements.txt"
    assert module_locals["requirements"] == "${file(local.requirements_path)}"
    assert requirements["content"] == "${local.requirements}"
    assert mr.RENDERED == REPO / "infra" / "mwaa" / "requirements.txt"
    # The module names the digest's files as the script does, and refuses a stale file.
    sources = [
        source.replace("${var.constraints_file}", "constraints-mwaa.txt").replace(
            "${var.airflow_version}", MWAA.airflow
        )
        for source in module_locals["requirements_sources"]
    ]
    assert sources == mr.digest_names(MWAA)
    (precondition,) = requirements["lifecycle"][0]["precondition"]
    assert precondition["condition"] == (
        "${local.requirements_recorded_digest == local.requirements_sources_digest}"
    )
    recorded = re.search(mr.SOURCES_PATTERN, mr.RENDERED.read_text())[1]
    assert recorded == mr.sources_digest(mr.source_files(MWAA), mr.digest_names(MWAA))
    # make test-mwaa installs that file (the script's default) from the zip Terraform uploads.
    makefile = (REPO / "Makefile").read_text()
    assert "infra/scripts/mwaa_requirements.py install" in makefile
    assert "PLUGINS_ZIP := infra/.build/plugins.zip" in makefile
    assert (
        module_locals["plugins_zip"]
        == '${coalesce(var.plugins_zip, "${var.bundle_root}/infra/.build/plugins.zip")}'
    )


def test_terraform_computes_the_recorded_digest(tmp_path):
    """The module's own expressions, evaluated by `terraform console`, accept today's file."""
    binary = shutil.which("terraform")
    if not binary:
        pytest.skip("no terraform binary on PATH")
    main = (ORCHESTRATION / "main.tf").read_text()
    start = main.index("  requirements_path = ")
    end = main.index("  # The wheels travel in plugins.zip")
    (tmp_path / "main.tf").write_text(
        'variable "bundle_root" {\n  type = string\n}\n\n'
        'variable "constraints_file" {\n  type    = string\n  default = "constraints-mwaa.txt"\n}\n\n'
        f'variable "airflow_version" {{\n  type    = string\n  default = "{MWAA.airflow}"\n}}\n\n'
        f"locals {{\n{main[start:end]}}}\n"
    )
    result = subprocess.run(
        [binary, f"-chdir={tmp_path}", "console", f"-var=bundle_root={REPO}"],
        input='"${local.requirements_sources_digest} ${local.requirements_recorded_digest}"\n',
        env={**os.environ, "TF_DATA_DIR": str(tmp_path / "data"), "CHECKPOINT_DISABLE": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    computed, recorded = result.stdout.strip().strip('"').split()
    assert computed == recorded == re.search(mr.SOURCES_PATTERN, mr.RENDERED.read_text())[1]


# --------------------------------------------------------------------------- bad input


def test_a_pin_that_conflicts_with_mwaa_names_the_package_and_both_versions(tmp_path):
    lock = tmp_path / "constraints-mwaa.txt"
    lock.write_text(mr.LOCK.read_text().replace("kombu==5.6.2", "kombu==5.7.0"))
    problems = mr.check(mr.REQUIREMENTS, lock, mr.RENDERED)
    assert (
        "constraints-mwaa.txt pins kombu 5.7.0, but MWAA 3.3.1 pins kombu 5.6.2 "
        "(mwaa_essential_constraints.txt): MWAA refuses to install another version"
    ) in problems
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(mr.REQUIREMENTS.read_text() + "celery==5.7.0\n")
    problems = mr.check(requirements, mr.LOCK, mr.RENDERED)
    assert any("pins celery 5.7.0, but MWAA 3.3.1 pins celery 5.6.3" in problem for problem in problems)
    # Whatever requirements.txt says, the executor never reaches the upload.
    rendered = tmp_path / "rendered.txt"
    rendered.write_text(mr.render(requirements, mr.LOCK))
    assert "celery" not in mr.read_names(rendered)


def test_a_stale_upload_is_reported(tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(mr.REQUIREMENTS.read_text().replace("matplotlib==3.11.2\n", ""))
    problems = mr.check(requirements, mr.LOCK, mr.RENDERED)
    assert problems == [
        "infra/mwaa/requirements.txt is not what requirements.txt and constraints-mwaa.txt give: "
        "run `make lock`"
    ]


def test_a_lock_for_another_python_is_reported(tmp_path):
    lock = tmp_path / "constraints-mwaa.txt"
    lock.write_text(mr.LOCK.read_text().replace("# python-version: 3.12", "# python-version: 3.11"))
    assert any(
        "resolved for Python 3.11, but MWAA 3.3.1 runs Python 3.12" in problem
        for problem in mr.check(mr.REQUIREMENTS, lock, mr.RENDERED)
    )


def tiny_wheel(folder: Path, name: str, version: str, requires: tuple[str, ...] = ()) -> Path:
    """A pure-Python wheel with nothing but its metadata and an empty module."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-{version}-py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + "".join(
        f"Requires-Dist: {requirement}\n" for requirement in requires
    )
    wheel = "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{name}/__init__.py", "")
        archive.writestr(f"{info}/METADATA", metadata)
        archive.writestr(f"{info}/WHEEL", wheel)
        archive.writestr(f"{info}/RECORD", "")
    return path


def test_a_wheel_missing_from_the_wheelhouse_fails_the_offline_install_naming_it(tmp_path):
    wheelhouse = tmp_path / "wheels"
    tiny_wheel(wheelhouse, "mlp_alpha", "1.0", ("mlp-beta==2.0",))
    tiny_wheel(wheelhouse, "mlp_beta", "2.0")
    pins = {"mlp-alpha": "1.0", "mlp-beta": "2.0"}
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(
        f"--no-index\n--find-links {wheelhouse}\n--constraint {mr.LOCK}\nmlp-alpha==1.0\n"
    )
    # The whole wheelhouse installs (pip's dry run, offline, safe-pip-install's command).
    assert mr.missing_wheels(wheelhouse, pins) == []
    _, output = mr.safe_pip_install(sys.executable, requirements, MWAA, dry_run=True)
    assert re.search(r"Would install mlp[-_]alpha-1\.0 mlp[-_]beta-2\.0", output)
    # A copy without one wheel: the check and pip both name the package.
    copy = tmp_path / "copy"
    shutil.copytree(wheelhouse, copy)
    (copy / "mlp_beta-2.0-py3-none-any.whl").unlink()
    requirements.write_text(requirements.read_text().replace(str(wheelhouse), str(copy)))
    assert mr.missing_wheels(copy, pins) == ["mlp-beta==2.0"]
    with pytest.raises(mr.MwaaError, match=r"no wheel for mlp-beta==2\.0 in the wheelhouse"):
        mr.safe_pip_install(sys.executable, requirements, MWAA, dry_run=True)


def test_a_plugins_zip_without_the_wheels_stops_before_pip(tmp_path):
    plugins_zip = load_script("plugins_zip")
    archive, _ = plugins_zip.build(REPO / "plugins", tmp_path / "plugins.zip")
    with pytest.raises(mr.MwaaError) as raised:
        # The interpreter is never run: the wheelhouse is checked first.
        mr.install("/nonexistent/python", tmp_path / "home", archive)
    message = str(raised.value)
    assert f"mlflow=={mr.read_pins(mr.LOCK)['mlflow']}" in message and "run `make plugins-zip`" in message
    with pytest.raises(mr.MwaaError, match="is missing: run `make plugins-zip`"):
        mr.install("/nonexistent/python", tmp_path / "home", tmp_path / "absent.zip")


def test_without_constraints_of_its_own_mwaa_adds_airflows(tmp_path):
    bare = tmp_path / "requirements.txt"
    bare.write_text("mlflow==3.17.2\n")
    assert not mr.has_constraints(bare)
    # user_requirements.py's test matches commented-out constraints too, on purpose.
    bare.write_text("# -c none\nmlflow==3.17.2\n")
    assert mr.has_constraints(bare)
