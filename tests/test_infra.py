"""Static checks of the Terraform in infra/, without Terraform or a network.

Every file parses and every name it refers to exists; modules follow the house style
(typed, described variables, described outputs, generated README tables, version bounds,
IAM policies from policy documents); checkov finds nothing; the SSM parameters Terraform
publishes are exactly the settings the code reads; and the environments differ only in
values.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import hcl2
import pytest
import yaml

from mlplatform import settings
from mlplatform.settings import SETTINGS

REPO = Path(__file__).resolve().parents[1]
INFRA = REPO / "infra"
MODULES = INFRA / "modules"
ENVS = INFRA / "envs"
CHECKOV = REPO / ".venv-checkov" / "bin" / "checkov"

MODULE_DIRS = sorted(path for path in MODULES.iterdir() if path.is_dir())
ENV_DIRS = sorted(path for path in ENVS.iterdir() if path.is_dir())
TF_FILES = sorted(
    path for path in INFRA.rglob("*.tf") if not {".terraform", ".build"} & set(path.relative_to(INFRA).parts)
)

_OPTIONS = hcl2.SerializationOptions(
    with_comments=False, explicit_blocks=False, strip_string_quotes=True, preserve_heredocs=False
)


@functools.cache
def parse(path: Path) -> dict[str, Any]:
    with path.open() as handle:
        return hcl2.load(handle, serialization_options=_OPTIONS)


def blocks(directory: Path, kind: str) -> dict[str, dict[str, Any]]:
    """Every named ``kind`` block (variable, output, module, locals) in a directory."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.glob("*.tf")):
        for block in parse(path).get(kind, []):
            found.update(block)
    return found


def typed_blocks(directory: Path, kind: str) -> dict[str, dict[str, Any]]:
    """Every ``resource`` or ``data`` block in a directory, keyed ``type.name``."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.glob("*.tf")):
        for block in parse(path).get(kind, []):
            for type_, bodies in block.items():
                found.update({f"{type_}.{name}": body for name, body in bodies.items()})
    return found


def rel(path: Path) -> str:
    return str(path.relative_to(REPO))


def load_tfdocs():
    spec = importlib.util.spec_from_file_location("tfdocs", INFRA / "scripts" / "tfdocs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------- syntax and style


@pytest.mark.parametrize("path", TF_FILES, ids=rel)
def test_tf_file_parses(path):
    assert isinstance(parse(path), dict)


@pytest.mark.parametrize("directory", MODULE_DIRS + ENV_DIRS, ids=rel)
def test_variables_are_typed_and_described(directory):
    variables = blocks(directory, "variable")
    untyped = [name for name, body in variables.items() if not body.get("type")]
    undescribed = [name for name, body in variables.items() if not str(body.get("description", "")).strip()]
    assert not untyped, f"{rel(directory)}: variables without a type: {untyped}"
    assert not undescribed, f"{rel(directory)}: variables without a description: {undescribed}"


@pytest.mark.parametrize("directory", MODULE_DIRS + ENV_DIRS, ids=rel)
def test_outputs_are_described(directory):
    outputs = blocks(directory, "output")
    undescribed = [name for name, body in outputs.items() if not str(body.get("description", "")).strip()]
    assert not undescribed, f"{rel(directory)}: outputs without a description: {undescribed}"


@pytest.mark.parametrize("module_dir", MODULE_DIRS, ids=rel)
def test_module_has_standard_files_and_a_primary_resource(module_dir):
    for name in ("main.tf", "variables.tf", "outputs.tf", "versions.tf", "README.md"):
        assert (module_dir / name).is_file(), f"{rel(module_dir)} has no {name}"
    names = {key.split(".")[1] for key in typed_blocks(module_dir, "resource")}
    assert "this" in names, f"{rel(module_dir)}: name the module's primary resource `this`"


@pytest.mark.parametrize("module_dir", MODULE_DIRS, ids=rel)
def test_readme_tables_are_generated_from_the_code(module_dir):
    current, wanted = load_tfdocs().updated_readme(module_dir)
    assert current == wanted, (
        f"{rel(module_dir / 'README.md')} is stale: run `.venv/bin/python infra/scripts/tfdocs.py`"
    )


@pytest.mark.parametrize("directory", MODULE_DIRS + ENV_DIRS, ids=rel)
def test_versions_pin_terraform_and_provider_lower_bounds(directory):
    (terraform,) = parse(directory / "versions.tf")["terraform"]
    assert terraform["required_version"] == ">= 1.10", "S3 state locking (use_lockfile) needs Terraform 1.10"
    providers = {name: spec for block in terraform["required_providers"] for name, spec in block.items()}
    assert "aws" in providers
    for name, spec in providers.items():
        assert re.match(r"^(>=|~>) ?\d", spec.get("version", "")), f"{name} needs a lower version bound"
    used = {
        key.split("_")[0] for key in typed_blocks(directory, "resource") | typed_blocks(directory, "data")
    }
    assert used <= set(providers), (
        f"{rel(directory)} uses providers it does not declare: {used - set(providers)}"
    )


@pytest.mark.parametrize("directory", MODULE_DIRS + ENV_DIRS, ids=rel)
def test_references_resolve(directory):
    """What `terraform validate` would catch first: dangling names and module arguments."""
    code = "\n".join(re.sub(r"(?m)^\s*#.*$", "", path.read_text()) for path in sorted(directory.glob("*.tf")))
    variables = blocks(directory, "variable")
    local_values = {
        name for path in directory.glob("*.tf") for block in parse(path).get("locals", []) for name in block
    }
    resources, data, modules = (
        typed_blocks(directory, "resource"),
        typed_blocks(directory, "data"),
        blocks(directory, "module"),
    )
    dangling = [f"var.{name}" for name in re.findall(r"\bvar\.(\w+)", code) if name not in variables]
    dangling += [f"local.{name}" for name in re.findall(r"\blocal\.(\w+)", code) if name not in local_values]
    dangling += [
        f"{type_}.{name}"
        for type_, name in re.findall(r"(?<![\w.])((?:aws|archive)_\w+)\.(\w+)", code)
        if f"{type_}.{name}" not in resources
    ]
    dangling += [
        f"data.{type_}.{name}"
        for type_, name in re.findall(r"\bdata\.(\w+)\.(\w+)", code)
        if f"{type_}.{name}" not in data
    ]
    for module_name, output in re.findall(r"\bmodule\.(\w+)\.(\w+)", code):
        source = (directory / modules[module_name]["source"]).resolve() if module_name in modules else None
        if source is None or output not in blocks(source, "output"):
            dangling.append(f"module.{module_name}.{output}")
    assert not dangling, f"{rel(directory)} refers to undefined {sorted(set(dangling))}"
    unused = [name for name in variables if f"var.{name}" not in code]
    assert not unused, f"{rel(directory)} declares unused variables {unused}"

    meta_arguments = {"source", "version", "count", "for_each", "providers", "depends_on"}
    for module_name, call in modules.items():
        callee = blocks((directory / call["source"]).resolve(), "variable")
        unknown = set(call) - meta_arguments - set(callee)
        missing = {name for name, body in callee.items() if "default" not in body} - set(call)
        assert not unknown, f"{rel(directory)}: module {module_name} has no variables {sorted(unknown)}"
        assert not missing, f"{rel(directory)}: module {module_name} needs {sorted(missing)}"


@pytest.mark.parametrize("env_dir", ENV_DIRS, ids=rel)
def test_tfvars_set_known_variables_and_every_required_one(env_dir):
    variables = blocks(env_dir, "variable")
    values = parse(env_dir / "terraform.tfvars")
    assert set(values) <= set(variables), (
        f"unknown variables in tfvars: {sorted(set(values) - set(variables))}"
    )
    required = {name for name, body in variables.items() if "default" not in body}
    assert required <= set(values), f"tfvars misses required variables {sorted(required - set(values))}"


POLICY_ATTRIBUTES = {
    "aws_iam_role": "assume_role_policy",
    "aws_iam_role_policy": "policy",
    "aws_iam_policy": "policy",
    "aws_kms_key": "policy",
    "aws_s3_bucket_policy": "policy",
    "aws_sns_topic_policy": "policy",
}


@pytest.mark.parametrize("module_dir", MODULE_DIRS, ids=rel)
def test_policies_come_from_policy_documents(module_dir):
    for key, body in typed_blocks(module_dir, "resource").items():
        attribute = POLICY_ATTRIBUTES.get(key.split(".")[0])
        if attribute and attribute in body:
            assert str(body[attribute]).startswith("${data.aws_iam_policy_document."), (
                f"{rel(module_dir)}: {key}.{attribute} must come from a data.aws_iam_policy_document"
            )


def test_checkov_skips_give_reasons():
    pattern = re.compile(r"#\s*checkov:skip=([A-Z0-9_]+)(:?)(.*)")
    for path in TF_FILES:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if match := pattern.search(line):
                check, colon, reason = match.groups()
                assert re.fullmatch(r"CKV2?_[A-Z]+_\d+", check), f"{rel(path)}:{number}: bad check id {check}"
                assert colon and len(reason.strip()) >= 20, f"{rel(path)}:{number}: give the skip a reason"


def test_every_lifecycle_rule_aborts_incomplete_uploads():
    """What CKV_AWS_300 cannot check on rules computed from the use-case specs."""
    module = MODULES / "secure_bucket"
    (lifecycle,) = [
        body
        for key, body in typed_blocks(module, "resource").items()
        if key.startswith("aws_s3_bucket_lifecycle")
    ]
    assert "rule" not in lifecycle, "keep every lifecycle rule in the one dynamic block"
    (rule,) = [block["rule"] for block in lifecycle["dynamic"] if "rule" in block]
    assert rule["for_each"] == "${local.lifecycle_rules}"
    (content,) = rule["content"]
    assert content["abort_incomplete_multipart_upload"][0]["days_after_initiation"] <= 7
    # The first rule has an empty prefix: it covers the whole bucket.
    (module_locals,) = parse(module / "main.tf")["locals"]
    assert module_locals["lifecycle_rules"].startswith(
        '${concat([{id = "all-objects-housekeeping", prefix = ""'
    )


# --------------------------------------------------------------------------- checkov


def test_checkov_finds_no_failed_checks():
    if not CHECKOV.exists():
        pytest.fail("checkov is not installed: run `make test` (it builds .venv-checkov)")
    env = {
        **os.environ,
        # Never reach the network: no platform mapping, no package update check.
        "BC_SKIP_MAPPING": "TRUE",
        "CKV_SKIP_PACKAGE_UPDATE_CHECK": "TRUE",
        "CHECKOV_RUN_SCA_PACKAGE_SCAN": "false",
    }
    command = [
        str(CHECKOV),
        "-d",
        "infra",
        "--quiet",
        "--compact",
        "--framework",
        "terraform",
        "--download-external-modules",
        "false",
        "--skip-download",
    ]
    try:
        result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        pytest.fail("checkov did not finish within 300 s (is it trying to reach the network?)")
    output = result.stdout + result.stderr
    summary = re.search(r"Passed checks: (\d+), Failed checks: (\d+)", output)
    assert summary, f"checkov printed no summary (exit {result.returncode}):\n{output[-3000:]}"
    assert int(summary.group(1)) > 0, "checkov evaluated nothing"
    assert result.returncode == 0 and summary.group(2) == "0", f"checkov failed:\n{output[-6000:]}"


# --------------------------------------------------------------------------- wiring


def wiring_parameters() -> dict[str, str]:
    (parameters,) = [body["parameters"] for body in parse(MODULES / "wiring" / "main.tf")["locals"]]
    return parameters


def test_published_parameters_are_exactly_the_settings_the_code_reads():
    wanted = {setting.parameter for setting in SETTINGS if setting.parameter is not None}
    published = set(wiring_parameters())
    assert published == wanted, (
        f"settings without a parameter: {sorted(wanted - published)}; "
        f"parameters no setting reads: {sorted(published - wanted)}"
    )


def test_each_parameter_is_named_after_its_setting_under_the_prefix():
    (parameter,) = [
        body
        for key, body in typed_blocks(MODULES / "wiring", "resource").items()
        if key.startswith("aws_ssm")
    ]
    assert parameter["for_each"] == "${local.parameters}"
    assert parameter["name"] == "${var.ssm_prefix}/${each.key}"


@pytest.mark.parametrize("env_dir", ENV_DIRS, ids=rel)
def test_each_parameter_value_comes_from_an_existing_module_output(env_dir):
    modules = blocks(env_dir, "module")
    (wiring_call,) = [body for body in modules.values() if body["source"].endswith("/modules/wiring")]
    for parameter, expression in wiring_parameters().items():
        variables = re.findall(r"\bvar\.(\w+)", expression)
        assert variables, f"parameter {parameter} must be fed from a wiring variable, not {expression}"
        for variable in variables:
            argument = str(wiring_call.get(variable, ""))
            references = re.findall(r"\bmodule\.(\w+)\.(\w+)", argument)
            assert references, (
                f"{rel(env_dir)}: wiring.{variable} must come from a module output, got {argument!r}"
            )
            for module_name, output in references:
                assert module_name in modules, f"{rel(env_dir)}: no module {module_name}"
                source = (env_dir / modules[module_name]["source"]).resolve()
                assert output in blocks(source, "output"), f"module {module_name} has no output {output}"


@pytest.mark.parametrize("env_dir", ENV_DIRS, ids=rel)
def test_airflow_reads_the_prefix_the_environment_publishes_under(env_dir, monkeypatch):
    (root_locals,) = parse(env_dir / "main.tf")["locals"]
    assert root_locals["ssm_prefix"] == "/${var.project}/${var.environment}"
    modules = blocks(env_dir, "module")
    assert modules["wiring"]["ssm_prefix"] == "${local.ssm_prefix}"
    assert modules["orchestration"]["ssm_prefix"] == "${local.ssm_prefix}"
    project = blocks(env_dir, "variable")["project"]["default"]
    environment = parse(env_dir / "terraform.tfvars")["environment"]
    assert environment == env_dir.name
    if environment == "dev":  # the code's built-in default must match dev without any setup
        monkeypatch.delenv("MLPLATFORM_SSM_PREFIX", raising=False)
        assert settings.ssm_prefix() == f"/{project}/{environment}"


def test_airflow_is_told_to_read_the_published_settings():
    (orchestration_locals,) = parse(MODULES / "orchestration" / "main.tf")["locals"]
    variables = orchestration_locals["environment_variables"]
    assert variables["MLPLATFORM_ENV"] == "aws"
    assert variables["MLPLATFORM_SSM_PREFIX"] == "${var.ssm_prefix}"
    startup = (MODULES / "orchestration" / "startup.sh.tftpl").read_text()
    assert "export PYTHONPATH=" in startup and "${include_path}" in startup
    assert orchestration_locals["include_path"] == "${local.dags_path}/include"
    options = orchestration_locals["airflow_configuration_options"]
    assert "airflow.providers.amazon.aws.secrets.secrets_manager.SecretsManagerBackend" in str(options)


def test_bundle_files_the_orchestration_module_uploads_exist():
    requirements = (REPO / "requirements.txt").read_text().splitlines()
    # The module rewrites this line to point at the constraints file MWAA syncs.
    assert "-c constraints.txt" in requirements
    assert (REPO / "constraints.txt").is_file()
    for folder in ("dags", "include", "plugins", "great_expectations"):
        assert (REPO / folder).is_dir(), f"the bundle has no {folder}/ folder"


# --------------------------------------------------------------------------- environments


def test_environments_differ_only_in_values():
    dev, prod = ENVS / "dev", ENVS / "prod"
    assert {p.name for p in dev.iterdir() if p.is_file()} == {p.name for p in prod.iterdir() if p.is_file()}
    for name in ("main.tf", "versions.tf", "variables.tf", "outputs.tf"):
        assert (dev / name).read_text() == (prod / name).read_text(), (
            f"envs/dev/{name} and envs/prod/{name} differ"
        )
    assert (dev / "backend.tf").read_text().replace("/dev/", "/prod/") == (prod / "backend.tf").read_text()
    assert parse(dev / "terraform.tfvars").keys() == parse(prod / "terraform.tfvars").keys()


@pytest.mark.parametrize("env_dir", ENV_DIRS, ids=rel)
def test_backend_is_s3_with_lockfile_and_a_per_env_key(env_dir):
    (terraform,) = parse(env_dir / "backend.tf")["terraform"]
    (backend,) = [block["s3"] for block in terraform["backend"]]
    assert backend["use_lockfile"] is True
    assert backend["encrypt"] is True
    assert f"/{env_dir.name}/" in backend["key"]


def test_github_workflow_checks_every_environment():
    workflow_path = REPO / ".github" / "workflows" / "terraform.yml"
    workflow = yaml.safe_load(workflow_path.read_text())
    text = workflow_path.read_text()
    for command in ("terraform fmt -check -recursive", "init -backend=false", "validate", "plan"):
        assert command in text, f"the workflow does not run `{command}`"
    environments = {
        env
        for job in workflow["jobs"].values()
        for env in job.get("strategy", {}).get("matrix", {}).get("env", [])
    }
    assert environments == {path.name for path in ENV_DIRS}
