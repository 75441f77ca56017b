"""Checks of the Terraform in infra/.

Without Terraform or a network: every file parses and every name it refers to exists;
modules follow the house style (typed, described variables, described outputs, generated
README tables, version bounds, IAM policies from policy documents); checkov finds nothing;
the SSM parameters Terraform publishes are exactly the settings the code reads; the
environment roots are thin calls of the platform module and differ only in values; the
plugins zip is built the way the orchestration module expects.

With a Terraform binary and the AWS provider in a local filesystem mirror (searched where
Terraform looks for one): `terraform fmt -check` and, on a copy of the tree, `terraform init
-backend=false` and `terraform validate` for every module and environment root. Without
them those tests skip with the reason, or fail where MLPLATFORM_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import hcl2
import pytest
import yaml

from mlplatform.adapters import settings
from mlplatform.adapters.settings import SETTINGS

from conftest import REQUIRE_SERVICES

REPO = Path(__file__).resolve().parents[1]
INFRA = REPO / "infra"
MODULES = INFRA / "modules"
ENVS = INFRA / "envs"
PLATFORM = MODULES / "platform"
ORCHESTRATION = MODULES / "orchestration"
CHECKOV = REPO / ".venv-checkov" / "bin" / "checkov"

# The AWS provider release the configuration is validated against (from an offline mirror)
# and locked to in the environment roots.
VALIDATED_AWS_PROVIDER = (5, 100, 0)

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


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, INFRA / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_tfdocs():
    return load_script("tfdocs")


def expression(value: Any) -> str:
    """``${var.x}`` -> ``var.x``: an attribute as written in HCL."""
    text = str(value)
    return text[2:-1] if text.startswith("${") and text.endswith("}") else text


def satisfies(version: tuple[int, ...], constraint: str) -> bool:
    """Whether a version meets a Terraform constraint such as ``>= 5.100, < 7.0`` or ``~> 5.100``."""
    for part in constraint.split(","):
        operator, _, wanted = part.strip().partition(" ")
        if not wanted:  # ">=5.1" without a space
            operator, wanted = re.match(r"([<>=!~]*)(.*)", part.strip()).groups()
        bound = tuple(int(number) for number in wanted.strip().split("."))
        padded = bound + (0,) * (3 - len(bound))
        if operator == "~>":
            upper = (*bound[:-2], bound[-2] + 1) if len(bound) > 1 else (bound[0] + 1,)
            ok = padded <= version < upper + (0,) * (3 - len(upper))
        else:
            ok = {
                ">=": version >= padded,
                ">": version > padded,
                "<=": version <= padded,
                "<": version < padded,
                "!=": version != padded,
                "=": version == padded,
                "": version == padded,
            }[operator]
        if not ok:
            return False
    return True


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
    calls = blocks(module_dir, "module")
    # A module whose primary objects are other modules' (the platform module, the data
    # lake's two buckets) has no single primary resource to name.
    assert "this" in names or calls, f"{rel(module_dir)}: name the module's primary resource `this`"


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
    # Only the AWS provider: it is the one the configuration is validated against offline,
    # and anything built locally (the plugins zip) is built outside Terraform.
    assert set(providers) == {"aws"}, f"{rel(directory)} requires providers besides aws: {sorted(providers)}"
    for name, spec in providers.items():
        assert re.match(r"^(>=|~>) ?\d", spec.get("version", "")), f"{name} needs a lower version bound"
    assert satisfies(VALIDATED_AWS_PROVIDER, providers["aws"]["version"]), (
        f"{rel(directory)}: the aws constraint {providers['aws']['version']!r} excludes "
        f"the validated provider {'.'.join(map(str, VALIDATED_AWS_PROVIDER))}"
    )
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
    # `moved` blocks name addresses of the past on purpose.
    code = re.sub(r"(?ms)^moved\s*\{.*?^\}", "", code)
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
        for type_, name in re.findall(r"(?<![\w.])(aws_\w+)\.(\w+)", code)
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


def wiring_resources() -> dict[str, dict[str, Any]]:
    return {
        key: body
        for key, body in typed_blocks(MODULES / "wiring", "resource").items()
        if key.startswith("aws_ssm")
    }


# Published by the release push, not by Terraform: created once with a placeholder.
RELEASE_PARAMETERS = {"serving_image_tag"}


def test_published_parameters_are_exactly_the_settings_the_code_reads():
    wanted = {setting.parameter for setting in SETTINGS if setting.parameter is not None}
    published = set(wiring_parameters()) | RELEASE_PARAMETERS
    assert published == wanted, (
        f"settings without a parameter: {sorted(wanted - published)}; "
        f"parameters no setting reads: {sorted(published - wanted)}"
    )
    # The deploy code finds an endpoint's alarms in CloudWatch by name and dimension.
    assert "serving_alarm_names" not in published


def test_each_parameter_is_named_after_its_setting_under_the_prefix():
    resources = wiring_resources()
    assert set(resources) == {"aws_ssm_parameter.this"} | {
        f"aws_ssm_parameter.{name}" for name in RELEASE_PARAMETERS
    }
    parameter = resources["aws_ssm_parameter.this"]
    assert parameter["for_each"] == "${local.parameters}"
    assert parameter["name"] == "${var.ssm_prefix}/${each.key}"
    assert not set(wiring_parameters()) & RELEASE_PARAMETERS


@pytest.mark.parametrize("name", sorted(RELEASE_PARAMETERS))
def test_release_parameters_are_created_once_and_left_to_the_release(name):
    parameter = wiring_resources()[f"aws_ssm_parameter.{name}"]
    assert parameter["name"] == f"${{var.ssm_prefix}}/{name}"
    (lifecycle,) = parameter["lifecycle"]
    assert lifecycle["ignore_changes"] == ["${value}"] or lifecycle["ignore_changes"] == ["value"], lifecycle
    readme = (INFRA / "README.md").read_text()
    assert f"{name}" in readme and "put-parameter" in readme, (
        f"infra/README.md must say how the release push writes {name}"
    )


def test_each_parameter_value_comes_from_an_existing_module_output():
    env_dir = PLATFORM
    modules = blocks(env_dir, "module")
    (wiring_call,) = [
        body for body in modules.values() if (env_dir / body["source"]).resolve() == MODULES / "wiring"
    ]
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
    (platform_locals,) = parse(PLATFORM / "main.tf")["locals"]
    assert platform_locals["ssm_prefix"] == "/${var.project}/${var.environment}"
    modules = blocks(PLATFORM, "module")
    assert modules["wiring"]["ssm_prefix"] == "${local.ssm_prefix}"
    assert modules["orchestration"]["ssm_prefix"] == "${local.ssm_prefix}"
    values = parse(env_dir / "terraform.tfvars")
    project, environment = values["project"], values["environment"]
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
    names = {p.name for p in dev.iterdir() if p.is_file()}
    assert names == {p.name for p in prod.iterdir() if p.is_file()}
    assert {"main.tf", "variables.tf", "outputs.tf", "versions.tf", ".terraform.lock.hcl"} <= names
    for name in sorted(names - {"backend.tf", "terraform.tfvars"}):
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


@pytest.mark.parametrize("env_dir", ENV_DIRS, ids=rel)
def test_env_root_is_one_call_of_the_platform_module(env_dir):
    """The provider, one `module "platform"` passing each variable through, its outputs, nothing else."""
    for path in env_dir.glob("*.tf"):
        kinds = set(parse(path)) - {"moved"}
        assert kinds <= {"provider", "module", "variable", "output", "terraform"}, (
            f"{rel(path)} declares {sorted(kinds)}: "
            "resources, data sources and locals belong in modules/platform"
        )
    modules = blocks(env_dir, "module")
    assert set(modules) == {"platform"}, (
        f"{rel(env_dir)} calls {sorted(modules)}; call only the platform module"
    )
    call = modules["platform"]
    assert (env_dir / call["source"]).resolve() == PLATFORM
    platform_variables = blocks(PLATFORM, "variable")
    arguments = {name: value for name, value in call.items() if name != "source"}
    assert set(arguments) == set(platform_variables), (
        f"pass every platform variable: missing {sorted(set(platform_variables) - set(arguments))}"
    )
    assert all(value == f"${{var.{name}}}" for name, value in arguments.items()), (
        "each argument is the environment variable of the same name; values live in terraform.tfvars"
    )

    # Each variable declared again with the platform's type and description; optional ones
    # default to null so that the platform module's default is the only one.
    root_variables = blocks(env_dir, "variable")
    assert set(root_variables) - set(platform_variables) == {"region"}
    for name, body in platform_variables.items():
        root = root_variables[name]
        assert (root["type"], root["description"]) == (body["type"], body["description"]), (
            f"{rel(env_dir)}: variable {name} must have the platform module's type and description"
        )
        if "default" in body:
            assert root.get("default", "missing") is None, (
                f"{rel(env_dir)}: variable {name} must default to null"
            )
            assert body["default"] is None or body.get("nullable") is False, (
                f"modules/platform: variable {name} needs `nullable = false` so that null takes its default"
            )
        else:
            assert "default" not in root, (
                f"{rel(env_dir)}: variable {name} is required by the platform module"
            )

    outputs = blocks(env_dir, "output")
    platform_outputs = blocks(PLATFORM, "output")
    assert set(outputs) == set(platform_outputs)
    for name, body in outputs.items():
        assert body["value"] == f"${{module.platform.{name}}}"
        assert body["description"] == platform_outputs[name]["description"]


@pytest.mark.parametrize(
    "module_dir", [MODULES / name for name in ("alerts", "data_lake", "orchestration", "serving")], ids=rel
)
def test_keys_come_from_the_kms_module(module_dir):
    resources = typed_blocks(module_dir, "resource")
    assert not [key for key in resources if key.startswith("aws_kms_")], f"{rel(module_dir)}: use modules/kms"
    (kms,) = [body for body in blocks(module_dir, "module").values() if body["source"] == "../kms"]
    assert kms["deletion_window_in_days"] == "${var.kms_deletion_window_in_days}"
    # Existing keys move into the module instead of being replaced (a replaced key loses its data).
    moves = {
        (move["from"], move["to"])
        for path in module_dir.glob("*.tf")
        for move in parse(path).get("moved", [])
    }
    assert ("${aws_kms_key.this}", "${module.kms.aws_kms_key.this}") in moves


@pytest.mark.parametrize("env_dir", ENV_DIRS, ids=rel)
def test_env_root_lock_file_selects_the_validated_provider(env_dir):
    lock = (env_dir / ".terraform.lock.hcl").read_text()
    providers = re.findall(r'provider "([^"]+)" \{\s*version\s*=\s*"([^"]+)"', lock)
    assert providers == [("registry.terraform.io/hashicorp/aws", ".".join(map(str, VALIDATED_AWS_PROVIDER)))]
    # zh: hashes are the registry's per-platform zip checksums, so that `terraform init`
    # works on every platform, not only on the one the lock file was made on.
    assert len(re.findall(r'"zh:[0-9a-f]{64}"', lock)) >= 10
    assert re.search(r'"h1:[A-Za-z0-9+/=]{44}"', lock)


# --------------------------------------------------------------------------- Airflow version


def test_mwaa_airflow_version_is_one_documented_value():
    (orchestration,) = [
        body for name, body in blocks(ORCHESTRATION, "variable").items() if name == "airflow_version"
    ]
    default = orchestration["default"]
    assert orchestration["nullable"] is False, "null from the callers must take this default"
    (validation,) = orchestration["validation"]
    supported = re.findall(r'"(\d+\.\d+\.\d+)"', validation["condition"])
    assert validation["condition"].startswith("${contains(["), "restrict airflow_version to a list"
    assert default in supported and all(version.startswith("3.") for version in supported)
    # No other default anywhere: the platform module and the roots pass null through.
    assert blocks(PLATFORM, "variable")["airflow_version"]["default"] is None
    for env_dir in ENV_DIRS:
        assert blocks(env_dir, "variable")["airflow_version"]["default"] is None
        assert "airflow_version" not in parse(env_dir / "terraform.tfvars"), (
            f"{rel(env_dir)}/terraform.tfvars sets airflow_version; "
            "the orchestration module's default is the one value"
        )
    readme = (INFRA / "README.md").read_text()
    assert f"Airflow {default}" in readme, "infra/README.md must name the MWAA Airflow version"
    assert "5.100.0" in readme, (
        "infra/README.md must name the AWS provider version the code is validated against"
    )


def test_mwaa_constraints_must_pin_the_mwaa_airflow_version():
    """The orchestration module refuses to plan when the constraints pin another Airflow."""
    (constraints,) = [
        body
        for key, body in typed_blocks(ORCHESTRATION, "resource").items()
        if key == "aws_s3_object.constraints"
    ]
    (precondition,) = constraints["lifecycle"][0]["precondition"]
    assert precondition["condition"] == "${local.constraints_airflow_version == var.airflow_version}"


def test_the_default_mwaa_constraints_are_the_tested_lock_for_the_default_version():
    """MWAA gets constraints-mwaa.txt, the lock `make test-mwaa` installs and tests on."""
    variables = blocks(ORCHESTRATION, "variable")
    constraints = REPO / variables["constraints_file"]["default"]
    assert constraints.name == "constraints-mwaa.txt"
    pins = re.findall(r"(?m)^apache-airflow==(\S+)$", constraints.read_text())
    assert pins == [variables["airflow_version"]["default"]]
    makefile = (REPO / "Makefile").read_text()
    assert "MWAA_AIRFLOW := $(shell sed -n 's/^apache-airflow==//p' constraints-mwaa.txt)" in makefile
    assert "test-mwaa" in makefile
    # MWAA's own files for that version, which the lock is resolved against and make test-mwaa
    # installs with (tests/test_mwaa_install.py checks the rest).
    versions = (INFRA / "mwaa" / variables["airflow_version"]["default"] / "versions.txt").read_text()
    assert f"ENV AIRFLOW_VERSION={variables['airflow_version']['default']}\n" in versions
    assert "MWAA_FILES := infra/mwaa/$(MWAA_AIRFLOW)" in makefile and "PYTHON_MWAA ?= python3.12" in makefile


# --------------------------------------------------------------------------- plugins zip


def test_plugins_zip_is_reproducible_and_ships_what_the_module_expects(tmp_path):
    script = load_script("plugins_zip")
    (orchestration_locals,) = parse(ORCHESTRATION / "main.tf")["locals"]
    # One exclusion pattern on both sides (python-hcl2 returns the string unescaped).
    assert script.EXCLUDED.pattern == orchestration_locals["excluded"]
    first, entries = script.build(REPO / "plugins", tmp_path / "a" / "plugins.zip")
    second, _ = script.build(REPO / "plugins", tmp_path / "b" / "plugins.zip")
    assert first.read_bytes() == second.read_bytes(), "the zip must not change while plugins/ does not"
    files = sorted(
        path.relative_to(REPO / "plugins").as_posix()
        for path in (REPO / "plugins").rglob("*")
        if path.is_file()
    )
    assert entries == [f for f in files if not re.search(script.EXCLUDED, f"plugins/{f}")]
    assert "README.md" not in entries and entries
    with zipfile.ZipFile(first) as archive:
        assert archive.namelist() == entries
        for entry in entries:
            assert archive.read(entry) == (REPO / "plugins" / entry).read_bytes()
    lines = "".join(
        f"{entry} {hashlib.sha256((REPO / 'plugins' / entry).read_bytes()).hexdigest()}\n"
        for entry in entries
    )
    digest_file = first.with_name("plugins.zip.sources.sha256")
    assert digest_file.read_text().strip() == hashlib.sha256(lines.encode()).hexdigest()
    assert orchestration_locals["plugins_digest_file"] == "${local.plugins_zip}.sources.sha256"


# --------------------------------------------------------------------------- network


NETWORK = MODULES / "network"


def test_the_platform_creates_the_network_or_takes_an_existing_one():
    variables = blocks(PLATFORM, "variable")
    assert variables["create_network"]["default"] is True
    assert variables["subnet_ids"]["default"] == [] and variables["security_group_ids"]["default"] == []
    call = blocks(PLATFORM, "module")["network"]
    assert call["source"] == "../network" and call["count"] == "${var.create_network ? 1 : 0}"
    (platform_locals,) = [block for block in parse(PLATFORM / "main.tf")["locals"] if "subnet_ids" in block]
    assert platform_locals["subnet_ids"] == (
        "${var.create_network ? module.network[0].private_subnet_ids : var.subnet_ids}"
    )
    orchestration = blocks(PLATFORM, "module")["orchestration"]
    assert orchestration["subnet_ids"] == "${local.subnet_ids}"
    assert orchestration["security_group_ids"] == "${local.security_group_ids}"
    # Both environments start from an empty account.
    for env_dir in ENV_DIRS:
        values = parse(env_dir / "terraform.tfvars")
        assert values["create_network"] is True and "subnet_ids" not in values


def test_network_has_two_private_subnets_egress_and_the_mwaa_security_group():
    resources = typed_blocks(NETWORK, "resource")
    assert resources["aws_subnet.private"]["count"] == 2
    ingress = resources["aws_vpc_security_group_ingress_rule.self"]
    assert ingress["referenced_security_group_id"] == "${aws_security_group.this.id}"
    assert ingress["ip_protocol"] == "-1"
    assert resources["aws_nat_gateway.this"]["count"] == "${local.use_nat ? 1 : 0}"
    assert resources["aws_vpc_endpoint.interface"]["for_each"] == "${local.services}"
    assert resources["aws_vpc_endpoint.s3"]["vpc_endpoint_type"] == "Gateway"
    services = blocks(NETWORK, "variable")["interface_endpoint_services"]["default"]
    for service in (
        "s3",
        "ecr.api",
        "ecr.dkr",
        "sagemaker.api",
        "ssm",
        "logs",
        "monitoring",
        "sts",
        "secretsmanager",
    ):
        assert service == "s3" or service in services, f"no interface endpoint for {service}"
    # The bastion has no way in but Session Manager.
    bastion = resources["aws_instance.bastion"]
    assert bastion["associate_public_ip_address"] is False
    assert bastion["metadata_options"][0]["http_tokens"] == "required"
    assert "key_name" not in bastion


def test_readmes_say_how_an_approver_reaches_the_private_airflow_ui():
    network = (NETWORK / "README.md").read_text()
    assert "AWS-StartPortForwardingSessionToRemoteHost" in network
    assert "create-web-login-token" in network
    infra = (INFRA / "README.md").read_text()
    assert "PRIVATE_ONLY" in infra and "modules/network" in infra


# --------------------------------------------------------------------------- alarms and alerts


SERVING = MODULES / "serving"
ALERTS = MODULES / "alerts"


def test_every_use_case_endpoint_has_its_own_alarms():
    """Named `<endpoint>-<variant>-<what>` with the dimension EndpointName=<endpoint>: the
    convention mlplatform.adapters.sagemaker.endpoint_alarms finds them by."""
    assert blocks(PLATFORM, "module")["serving"]["endpoint_names"] == "${local.sagemaker_names}"
    (platform_locals,) = [block for block in parse(PLATFORM / "main.tf")["locals"] if "use_cases" in block]
    assert (
        platform_locals["sagemaker_names"]
        == '${[for use_case in local.use_cases : replace(use_case, "_", "-")]}'
    )
    alarms = {key: body for key, body in typed_blocks(SERVING, "resource").items() if "metric_alarm" in key}
    assert set(alarms) == {"aws_cloudwatch_metric_alarm.this"}, "one alarm resource, keyed by alarm name"
    alarm = alarms["aws_cloudwatch_metric_alarm.this"]
    assert alarm["for_each"] == "${local.alarms}" and alarm["alarm_name"] == "${each.key}"
    assert alarm["dimensions"] == {
        "EndpointName": "${each.value.endpoint}",
        "VariantName": "${each.value.variant}",
    }
    assert alarm["alarm_actions"] == alarm["ok_actions"] == "${var.alarm_actions}"
    assert blocks(PLATFORM, "module")["serving"]["alarm_actions"] == ["${module.alerts.topic_arn}"]
    (serving_locals,) = parse(SERVING / "main.tf")["locals"]
    alarm_key = '"${combination[0]}-${combination[1]}-${combination[2]}"'
    assert "setproduct(var.endpoint_names, var.variant_names" in str(serving_locals["alarms"])
    assert alarm_key in str(serving_locals["alarms"]), "alarm names: <endpoint>-<variant>-<what>"
    metrics = {kind["metric"] for kind in serving_locals["alarm_kinds"].values()}
    assert metrics == {"ModelLatency", "Invocation5XXErrors", "InvocationModelErrors", "Invocations"}


def test_the_alerts_topic_delivers_to_slack_and_email():
    resources = typed_blocks(ALERTS, "resource")
    email = resources["aws_sns_topic_subscription.email"]
    assert email["for_each"] == "${toset(var.alert_emails)}" and email["protocol"] == "email"
    slack = resources["aws_sns_topic_subscription.slack"]
    assert slack["protocol"] == "lambda" and slack["topic_arn"] == "${aws_sns_topic.this.arn}"
    function = resources["aws_lambda_function.forwarder"]
    assert function["handler"] == "slack_forwarder.handler"
    assert (
        function["environment"][0]["variables"]["SLACK_SECRET_ARN"]
        == "${aws_secretsmanager_secret.slack.arn}"
    )
    assert blocks(PLATFORM, "module")["alerts"]["create_slack_forwarder"] == "${var.create_slack_forwarder}"


def test_the_slack_forwarder_zip_is_its_source():
    script = load_script("slack_forwarder_zip")
    assert script.ZIP.read_bytes() == script.build(), (
        "infra/modules/alerts/slack_forwarder.zip is stale: "
        "run `python3 infra/scripts/slack_forwarder_zip.py`"
    )
    with zipfile.ZipFile(script.ZIP) as archive:
        assert archive.namelist() == ["slack_forwarder.py"]


def _forwarder():
    spec = importlib.util.spec_from_file_location("slack_forwarder", ALERTS / "slack_forwarder.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_slack_forwarder_reads_the_airflow_connection_and_formats_alarms():
    forwarder = _forwarder()
    url = "https://hooks.slack.com/services/T0/B0/x"
    assert forwarder.webhook_url('{"conn_type": "slackwebhook", "password": "' + url + '"}') == url
    assert forwarder.webhook_url('{"conn_type": "slackwebhook", "password": "T0/B0/x"}') == url
    assert forwarder.webhook_url(url) == url
    assert forwarder.webhook_url('{"conn_type": "slackwebhook"}') is None
    assert forwarder.webhook_url("not a url") is None
    alarm = {
        "AlarmName": "taxi-trip-duration-champion-invocation-5xx",
        "NewStateValue": "ALARM",
        "NewStateReason": "Threshold Crossed",
        "Trigger": {"Dimensions": [{"name": "EndpointName", "value": "taxi-trip-duration"}]},
    }
    text = forwarder.text("ALARM", json.dumps(alarm))
    assert "*taxi-trip-duration-champion-invocation-5xx* is ALARM" in text
    assert "Threshold Crossed" in text and "EndpointName=taxi-trip-duration" in text
    budget = forwarder.text("AWS Budgets: mlplatform-dev-monthly", "You have exceeded 80%")
    assert budget == "*AWS Budgets: mlplatform-dev-monthly*\nYou have exceeded 80%"
    assert forwarder.text(None, "{not json") == "{not json"


# --------------------------------------------------------------------------- terraform itself

# Where Terraform looks for a local provider mirror by default, and a mirror a machine may
# provide for offline work.
MIRROR_CANDIDATES = [
    Path("/opt/tf-plugins"),
    Path.home() / ".terraform.d" / "plugins",
    Path.home() / ".local" / "share" / "terraform" / "plugins",
    Path("/usr/local/share/terraform/plugins"),
    Path("/usr/share/terraform/plugins"),
]


def _terraform_or_skip() -> tuple[str, Path]:
    binary = shutil.which("terraform")
    version = ".".join(map(str, VALIDATED_AWS_PROVIDER))
    mirror = next(
        (
            candidate
            for candidate in MIRROR_CANDIDATES
            if (candidate / "registry.terraform.io" / "hashicorp" / "aws" / version).is_dir()
        ),
        None,
    )
    if binary and mirror:
        return binary, mirror
    missing = (
        "no terraform binary on PATH"
        if not binary
        else f"no AWS provider {version} in a filesystem mirror ({', '.join(map(str, MIRROR_CANDIDATES))})"
    )
    if REQUIRE_SERVICES:
        pytest.fail(f"{missing}, and MLPLATFORM_REQUIRE_SERVICES=1 requires the Terraform checks")
    pytest.skip(f"{missing}; install Terraform >= 1.10 and mirror the provider to run the Terraform checks")


@pytest.fixture(scope="module")
def terraform(tmp_path_factory) -> dict[str, Any]:
    """The terraform binary with an offline CLI configuration and a copy of the tree to init in."""
    binary, mirror = _terraform_or_skip()
    home = tmp_path_factory.mktemp("terraform")
    config = home / "terraform.rc"
    config.write_text(
        "provider_installation {\n"
        "  filesystem_mirror {\n"
        f'    path    = "{mirror}"\n'
        '    include = ["registry.terraform.io/hashicorp/*"]\n'
        "  }\n"
        '  direct {\n    exclude = ["registry.terraform.io/*/*"]\n  }\n'
        "}\n"
    )
    # init writes .terraform.lock.hcl next to the configuration: work on a copy of infra/,
    # with the bundle the configuration reads linked in.
    copy = home / "repo"
    shutil.copytree(INFRA, copy / "infra", ignore=shutil.ignore_patterns(".terraform", ".build"))
    for name in (
        "dags",
        "include",
        "plugins",
        "great_expectations",
        "requirements.txt",
        "constraints.txt",
        "constraints-mwaa.txt",
    ):
        (copy / name).symlink_to(REPO / name)
    env = {
        **os.environ,
        "TF_CLI_CONFIG_FILE": str(config),
        "TF_IN_AUTOMATION": "1",
        "TF_INPUT": "0",
        "CHECKPOINT_DISABLE": "1",  # no version check against checkpoint.hashicorp.com
        "TF_PLUGIN_CACHE_DIR": "",
    }
    return {"binary": binary, "env": env, "copy": copy, "home": home}


def run_terraform(terraform: dict[str, Any], directory: Path, *args: str) -> subprocess.CompletedProcess:
    data_dir = (
        terraform["home"] / "data" / directory.relative_to(terraform["copy"]).as_posix().replace("/", "-")
    )
    return subprocess.run(
        [terraform["binary"], f"-chdir={directory}", *args, "-no-color"],
        env={**terraform["env"], "TF_DATA_DIR": str(data_dir)},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_terraform_fmt(terraform):
    result = run_terraform(terraform, terraform["copy"] / "infra", "fmt", "-check", "-recursive", "-diff")
    assert result.returncode == 0, f"run `terraform fmt -recursive infra`:\n{result.stdout}{result.stderr}"


def _init_and_validate(terraform: dict[str, Any], directory: Path) -> str | None:
    """None when `init -backend=false` and `validate` pass in the copy of ``directory``, else why not."""
    copy = terraform["copy"] / directory.relative_to(REPO)
    locked = (directory / ".terraform.lock.hcl").exists()
    # The committed lock file of an environment root must select the mirrored provider as is.
    init = run_terraform(
        terraform, copy, "init", "-backend=false", *(["-lockfile=readonly"] if locked else [])
    )
    if init.returncode != 0:
        return f"terraform init failed in {rel(directory)}:\n{init.stdout}{init.stderr}"
    validate = run_terraform(terraform, copy, "validate")
    if validate.returncode != 0:
        return f"terraform validate failed in {rel(directory)}:\n{validate.stdout}{validate.stderr}"
    if (
        locked
        and (copy / ".terraform.lock.hcl").read_text() != (directory / ".terraform.lock.hcl").read_text()
    ):
        return f"terraform init changed {rel(directory)}/.terraform.lock.hcl"
    return None


@pytest.fixture(scope="module")
def validation_errors(terraform) -> dict[Path, str | None]:
    """Every module and environment root validated at once: loading the provider's schema
    takes seconds per directory, so the directories run side by side."""
    directories = MODULE_DIRS + ENV_DIRS
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        return dict(
            zip(directories, pool.map(lambda d: _init_and_validate(terraform, d), directories), strict=True)
        )


@pytest.mark.parametrize("directory", MODULE_DIRS + ENV_DIRS, ids=rel)
def test_terraform_validate(validation_errors, directory):
    error = validation_errors[directory]
    assert error is None, error


def test_terraform_computes_the_plugins_digest_as_the_script_does(terraform, tmp_path):
    """Evaluate the orchestration module's own expressions in `terraform console`."""
    (orchestration_locals,) = parse(ORCHESTRATION / "main.tf")["locals"]
    names = ("plugin_files", "plugins_source_digest")
    hcl_escaped = orchestration_locals["excluded"].replace("\\", "\\\\")
    config = (
        'variable "bundle_root" {\n  type = string\n}\n\nlocals {\n'
        f'  excluded = "{hcl_escaped}"\n'
        + "".join(f"  {name} = {expression(orchestration_locals[name])}\n" for name in names)
        + "}\n"
    )
    root = terraform["copy"] / "digest"
    root.mkdir()
    (root / "main.tf").write_text(config)
    result = subprocess.run(
        [terraform["binary"], f"-chdir={root}", "console", f"-var=bundle_root={REPO}"],
        input="local.plugins_source_digest\n",
        env={**terraform["env"], "TF_DATA_DIR": str(tmp_path / "data")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    script = load_script("plugins_zip")
    plugins = REPO / "plugins"
    assert result.stdout.strip().strip('"') == script.sources_digest(plugins, script.plugin_files(plugins))
