"""Rehearse `terraform apply` of an environment root against an emulated AWS account.

What it does, in order:

1. starts moto's server with TLS on 127.0.0.1 (a self-signed certificate made here, which
   the AWS provider trusts through ``custom_ca_bundle`` and boto3 through ``AWS_CA_BUNDLE``),
   so that the buckets' TLS-only policies apply as they do on AWS;
2. copies ``infra/`` to a temporary directory (the bundle the configuration reads is linked
   in) and writes ``rehearsal_override.tf`` into the copy of the root: every service
   endpoint points at the emulator, credential and account checks are off. Nothing is
   written into ``infra/envs/<env>``;
3. ``terraform init`` from the offline provider mirror and ``terraform apply
   -auto-approve`` with the root's ``terraform.tfvars`` plus ``REHEARSAL_VARIABLES``, which
   switch off, through the platform module's variables, what the emulator cannot create
   (``SKIPPED`` says why for each; ``terraform plan`` of the real values still covers them);
4. reads the settings back from SSM the way the code does (``MLPLATFORM_ENV=aws``);
5. runs the loop (``LOOP_STEPS``) on that account in AWS mode, from ingest to a retrained
   model redeployed; where moto stops (it runs no container, no transform job, no data
   capture, no UpdateEndpoint) the script plays SageMaker's part and the step says so;
6. prints one summary: resources created, resources skipped and why, each loop step and its
   result. The exit status is 0 only when every step passed.

    .venv/bin/python infra/scripts/rehearse_aws.py            # or: make rehearse-aws
    .venv/bin/python infra/scripts/rehearse_aws.py --keep     # keep the work directory

Needs Terraform >= 1.10 on PATH and the AWS provider in a filesystem mirror (see
``MIRROR_CANDIDATES``), moto and cryptography (the test extra); no network, no credentials.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import functools
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
PROVIDER_VERSION = "5.100.0"
REGION = "eu-west-1"

# Where Terraform looks for a local provider mirror by default, and a mirror a machine may
# provide for offline work (the same list as tests/test_infra.py).
MIRROR_CANDIDATES = [
    Path("/opt/tf-plugins"),
    Path.home() / ".terraform.d" / "plugins",
    Path.home() / ".local" / "share" / "terraform" / "plugins",
    Path("/usr/local/share/terraform/plugins"),
    Path("/usr/share/terraform/plugins"),
]

# The bundle the configuration reads (use-case specs, the DAG bundle), linked into the copy.
BUNDLE = (
    "dags",
    "include",
    "plugins",
    "great_expectations",
    "requirements.txt",
    "constraints.txt",
    "constraints-mwaa.txt",
)

# Services the provider may call: each is pointed at the emulator.
ENDPOINT_SERVICES = (
    "applicationautoscaling",
    "budgets",
    "cloudwatch",
    "ec2",
    "ecr",
    "events",
    "iam",
    "kms",
    "lambda",
    "logs",
    "mwaa",
    "s3",
    "s3control",
    "sagemaker",
    "secretsmanager",
    "sns",
    "sqs",
    "ssm",
    "sts",
)

# What the emulator cannot create, switched off through the platform module's variables;
# `terraform plan` of the environment's real values still covers each of them.
SKIPPED: dict[str, str] = {
    "module.platform.module.model_registry.aws_sagemaker_mlflow_tracking_server.this": (
        "moto has no SageMaker managed MLflow API and the provider waits for the server forever; "
        "`mlflow_tracking_uri` publishes an MLflow server the rehearsal runs instead"
    ),
    "module.platform.module.alerts.aws_budgets_budget.this": (
        "the provider waits forever for the budget on moto; `create_budget = false`"
    ),
    "module.platform.module.orchestration (MWAA environment, DAG bucket and bundle upload, role)": (
        "moto has no MWAA API; `create_airflow = false` leaves the whole orchestration module out"
    ),
}

# The environment's own terraform.tfvars, then these (a later value wins).
REHEARSAL_VARIABLES: dict[str, Any] = {
    "create_budget": False,
    "create_airflow": False,
    "mlflow_tracking_uri": "http://127.0.0.1:5000",  # replaced by the rehearsal's MLflow server
}


# The same variables put back, for `terraform plan` on the applied account: what each brings
# back must be planned for creation (MWAA needs a plugins.zip with its wheels from PyPI, so
# the orchestration module is left to `terraform validate` and the MWAA tests).
PLAN_LEFT_OUT: dict[str, Any] = {"create_budget": True, "mlflow_tracking_uri": None}
PLANNED_BACK = (
    "module.platform.module.model_registry.aws_sagemaker_mlflow_tracking_server.this[0]",
    "module.platform.module.alerts.aws_budgets_budget.this[0]",
)


@dataclass
class StepResult:
    name: str
    ok: bool
    detail: str


@dataclass
class Rehearsal:
    """What a rehearsal did: the account, the resources, the loop steps."""

    endpoint: str
    ca_bundle: Path
    work: Path
    root: Path
    terraform: str = "terraform"
    created: list[str] = field(default_factory=list)
    apply_seconds: float = 0.0
    outputs: dict[str, Any] = field(default_factory=dict)
    steps: list[StepResult] = field(default_factory=list)
    # What `terraform plan` with PLAN_LEFT_OUT does to each of PLANNED_BACK.
    planned_back: dict[str, list[str]] = field(default_factory=dict)
    # What one loop step hands the next (the registered version, the endpoint's name).
    facts: dict[str, str] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            verify=str(self.ca_bundle),
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )


# --------------------------------------------------------------------------- emulator


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, valid for a day, and its key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "aws-rehearsal")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "emulator.pem", directory / "emulator.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


@contextmanager
def emulator(directory: Path) -> Iterator[tuple[str, Path]]:
    """moto's server over TLS on 127.0.0.1, in a process group of its own."""
    cert, key = self_signed_certificate(directory)
    port = free_port()
    log = (directory / "moto.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "emulator",
            "-H",
            "127.0.0.1",
            "-p",
            str(port),
            "-c",
            str(cert),
            "-k",
            str(key),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        # AWS-managed IAM policies (the bastion attaches AmazonSSMManagedInstanceCore).
        env={**os.environ, "MOTO_IAM_LOAD_MANAGED_POLICIES": "true"},
        start_new_session=True,
    )
    endpoint = f"https://127.0.0.1:{port}"
    try:
        _wait_for(endpoint, cert, process, directory / "moto.log")
        yield endpoint, cert
    finally:
        _stop(process)
        log.close()


# What S3 knows of every request the emulator serves: TLS (the server speaks nothing else),
# version 1.2 or newer (Python's server context refuses older ones).
TLS_REQUEST = {"aws:SecureTransport": "true", "s3:TlsVersion": "1.2"}


def serve_emulator(argv: list[str]) -> None:
    """moto's server, evaluating the conditions of the buckets' TLS-only policies.

    moto enforces a bucket policy's statements but not their conditions as AWS does: a
    statement whose condition it cannot evaluate applies, and one whose condition does not
    hold denies (even a Deny), so ``Deny s3:* if aws:SecureTransport is false`` denies every
    request, TLS or not. Here a statement whose ``Bool`` or ``NumericLessThan`` conditions on
    what the emulator knows of each request (``TLS_REQUEST``) do not hold is dropped before
    moto evaluates the policy: a request the policies let through on AWS passes, one they
    deny is denied.
    """
    from moto.iam.access_control import IAMPolicy, PermissionResult
    from moto.s3.models import FakeBucket
    from moto.server import main as moto_main

    def values(expected: Any) -> list[str]:
        return [str(v) for v in (expected if isinstance(expected, list) else [expected])]

    def holds(statement: dict[str, Any]) -> bool:
        for operator, pairs in (statement.get("Condition") or {}).items():
            for key, expected in pairs.items():
                actual = TLS_REQUEST.get(key)
                if actual is None:
                    continue  # not known here: left to moto
                if operator == "Bool" and actual.lower() not in [v.lower() for v in values(expected)]:
                    return False
                if operator == "NumericLessThan" and not float(actual) < float(values(expected)[0]):
                    return False
        return True

    def get_permission(self: FakeBucket, action: str, resource: str) -> Any:
        if self.policy is None:
            return PermissionResult.NEUTRAL
        policy = json.loads(self.policy.decode())
        statements = policy["Statement"] if isinstance(policy["Statement"], list) else [policy["Statement"]]
        applying = [statement for statement in statements if holds(statement)]
        if not applying:
            return PermissionResult.NEUTRAL
        return IAMPolicy(json.dumps({**policy, "Statement": applying})).is_action_permitted(action, resource)

    FakeBucket.get_permission = get_permission  # type: ignore[method-assign]
    moto_main(argv)


def _wait_for(endpoint: str, cert: Path, process: subprocess.Popen[bytes], log: Path) -> None:
    import ssl
    import urllib.request

    context = ssl.create_default_context(cafile=str(cert))
    deadline = time.monotonic() + 600
    while True:
        try:
            with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2, context=context):
                return
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"moto's server did not start on {endpoint}:\n{log.read_text()[-2000:]}")
        time.sleep(0.3)


def _stop(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


# --------------------------------------------------------------------------- terraform


def find_terraform() -> tuple[str, Path]:
    """The terraform binary and the provider mirror, or a RuntimeError saying what is missing."""
    binary = shutil.which("terraform")
    mirror = next(
        (
            candidate
            for candidate in MIRROR_CANDIDATES
            if (candidate / "registry.terraform.io" / "hashicorp" / "aws" / PROVIDER_VERSION).is_dir()
        ),
        None,
    )
    if not binary:
        raise RuntimeError("no terraform binary on PATH: install Terraform >= 1.10")
    if not mirror:
        raise RuntimeError(
            f"no AWS provider {PROVIDER_VERSION} in a filesystem mirror "
            f"({', '.join(map(str, MIRROR_CANDIDATES))})"
        )
    return binary, mirror


def provider_override(endpoint: str, ca_bundle: Path) -> str:
    """The provider settings that point the root at the emulator (merged into its provider)."""
    endpoints = "".join(f'    {service} = "{endpoint}"\n' for service in ENDPOINT_SERVICES)
    return (
        "# Written by infra/scripts/rehearse_aws.py into a temporary copy of the root; never commit.\n"
        'provider "aws" {\n'
        '  access_key                  = "testing"\n'
        '  secret_key                  = "testing"\n'
        "  skip_credentials_validation = true\n"
        "  skip_metadata_api_check     = true\n"
        "  skip_region_validation      = true\n"
        "  s3_use_path_style           = true\n"
        f'  custom_ca_bundle            = "{ca_bundle}"\n'
        "  endpoints {\n"
        f"{endpoints}"
        "  }\n"
        "}\n"
    )


def prepare_root(work: Path, environment: str, endpoint: str, ca_bundle: Path, mirror: Path) -> Path:
    """A copy of infra/ with the bundle linked in and the override written into the root."""
    copy = work / "repo"
    shutil.copytree(
        INFRA, copy / "infra", ignore=shutil.ignore_patterns(".terraform", ".build", "*.tfstate*")
    )
    for name in BUNDLE:
        (copy / name).symlink_to(REPO / name)
    root = copy / "infra" / "envs" / environment
    (root / "rehearsal_override.tf").write_text(provider_override(endpoint, ca_bundle))
    # Local state: the S3 backend would need a state bucket before the first apply.
    (root / "backend.tf").unlink()
    (work / "terraform.rc").write_text(
        "provider_installation {\n"
        "  filesystem_mirror {\n"
        f'    path    = "{mirror}"\n'
        '    include = ["registry.terraform.io/hashicorp/*"]\n'
        "  }\n"
        '  direct {\n    exclude = ["registry.terraform.io/*/*"]\n  }\n'
        "}\n"
    )
    return root


def terraform_env(work: Path) -> dict[str, str]:
    return {
        **os.environ,
        "TF_CLI_CONFIG_FILE": str(work / "terraform.rc"),
        "TF_IN_AUTOMATION": "1",
        "TF_INPUT": "0",
        "CHECKPOINT_DISABLE": "1",
        "TF_PLUGIN_CACHE_DIR": "",
        "TF_DATA_DIR": str(work / "tfdata"),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": REGION,
        "AWS_CA_BUNDLE": "",
    }


def terraform(binary: str, work: Path, root: Path, *args: str, timeout: int = 1800) -> str:
    result = subprocess.run(
        [binary, f"-chdir={root}", *args, "-no-color"],
        env=terraform_env(work),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise RuntimeError(f"terraform {args[0]} failed:\n{result.stdout[-4000:]}{result.stderr[-6000:]}")
    return result.stdout


def apply(rehearsal: Rehearsal, binary: str, variables: dict[str, Any]) -> None:
    """init from the mirror, apply with the rehearsal's variables, list what was created."""
    work, root = rehearsal.work, rehearsal.root
    (root / "rehearsal.auto.tfvars.json").write_text(json.dumps(variables, indent=2))
    terraform(binary, work, root, "init", "-lockfile=readonly", timeout=300)
    started = time.monotonic()
    terraform(binary, work, root, "apply", "-auto-approve", "-parallelism=20")
    rehearsal.apply_seconds = time.monotonic() - started
    rehearsal.created = [
        line.strip()
        for line in terraform(binary, work, root, "state", "list").splitlines()
        if line.strip() and ".data." not in f".{line}" and not line.startswith("data.")
    ]
    rehearsal.outputs = {
        name: body["value"]
        for name, body in json.loads(terraform(binary, work, root, "output", "-json")).items()
    }


def plan_left_out(rehearsal: Rehearsal) -> None:
    """``terraform plan`` of the applied account with what the rehearsal left out put back."""
    (rehearsal.root / "left_out.tfvars.json").write_text(json.dumps(PLAN_LEFT_OUT))
    run = functools.partial(terraform, rehearsal.terraform, rehearsal.work, rehearsal.root)
    run("plan", "-var-file=left_out.tfvars.json", "-out=left_out.tfplan", "-parallelism=20")
    plan = json.loads(run("show", "-json", "left_out.tfplan"))
    changes = {c["address"]: c["change"]["actions"] for c in plan.get("resource_changes", [])}
    rehearsal.planned_back = {address: changes.get(address, []) for address in PLANNED_BACK}


# --------------------------------------------------------------------------- the account in AWS mode

USE_CASE = "taxi_trip_duration"
MONTH = "2021-01"
VALIDATION_MONTH = "2021-02"
RAW_FILES = REPO / "tests" / "fixtures" / "real_tlc"
RELEASE_TAG = "rehearsal-1"


def aws_mode(rehearsal: Rehearsal) -> dict[str, str]:
    """The process environment of code running in the emulated account: ``MLPLATFORM_ENV=aws``,
    the SSM prefix, the emulator's endpoint and certificate, nothing else of the platform's."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("MLPLATFORM_", "MLFLOW_", "AWS_"))}
    return {
        **inherited,
        "MLPLATFORM_ENV": "aws",
        "MLPLATFORM_SSM_PREFIX": str(rehearsal.outputs["ssm_prefix"]),
        "MLPLATFORM_ENV_FILE": str(rehearsal.work / "no.env"),  # no .env file: SSM or defaults
        "MLPLATFORM_HOME": str(rehearsal.work / "home"),
        # Data Docs are written next to the GX context: a copy, not the repository's.
        "MLPLATFORM_GX_ROOT": str(rehearsal.work / "great_expectations"),
        "AWS_ENDPOINT_URL": rehearsal.endpoint,
        "MLFLOW_S3_ENDPOINT_URL": rehearsal.endpoint,
        "AWS_CA_BUNDLE": str(rehearsal.ca_bundle),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }


def cli(rehearsal: Rehearsal, *args: str) -> Any:
    """Run ``mlplatform <args> --json`` in AWS mode; its parsed output."""
    result = subprocess.run(
        [str(Path(sys.executable).with_name("mlplatform")), *args, "--json"],
        env=aws_mode(rehearsal),
        cwd=rehearsal.work,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0:
        raise RuntimeError(f"mlplatform {args[0]} exited {result.returncode}: {result.stderr[-2000:]}")
    return json.loads(result.stdout)


def step_settings_from_ssm(rehearsal: Rehearsal) -> str:
    """`mlplatform config` in AWS mode: every published setting comes from SSM and says what
    Terraform created."""
    from mlplatform.adapters.settings import SETTINGS

    shown = {row["name"]: row for row in cli(rehearsal, "config")}
    published = [s for s in SETTINGS if s.parameter is not None]
    prefix = rehearsal.outputs["ssm_prefix"]
    wrong = [
        f"{s.env} from {shown[s.env]['source']}"
        for s in published
        if shown[s.env]["source"] != f"ssm ({prefix}/{s.parameter})"
    ]
    if wrong:
        raise RuntimeError(f"settings not read from SSM: {wrong}")
    expected = {
        "MLPLATFORM_LAKE_URI": rehearsal.outputs["lake_uri"],
        "MLFLOW_TRACKING_URI": rehearsal.outputs["mlflow_tracking_uri"],
        "MLPLATFORM_SERVING_IMAGE_URI": rehearsal.outputs["serving_repository_url"],
        "MLPLATFORM_ALERTS_TOPIC_ARN": rehearsal.outputs["alerts_topic_arn"],
    }
    differ = {k: shown[k]["value"] for k, v in expected.items() if shown[k]["value"] != v}
    if differ:
        raise RuntimeError(f"settings differ from Terraform's outputs: {differ}")
    return f"{len(published)} settings from {prefix}/*, matching Terraform's outputs"


def step_raw_month_landed(rehearsal: Rehearsal) -> str:
    """`mlplatform ingest`: a raw month PutObject'd over TLS into the TLS-only lake bucket."""
    source = RAW_FILES / f"green_tripdata_{MONTH}.parquet"
    cli(rehearsal, "ingest", "--use-case", USE_CASE, "--month", MONTH, str(source))
    bucket = str(rehearsal.outputs["lake_uri"]).removeprefix("s3://").split("/", 1)[0]
    keys = [
        o["Key"]
        for o in rehearsal.client("s3").list_objects_v2(Bucket=bucket, Prefix="raw/").get("Contents", [])
    ]
    landed = [k for k in keys if MONTH in k]
    if not landed:
        raise RuntimeError(f"nothing for {MONTH} under s3://{bucket}/raw/ ({keys})")
    return f"s3://{bucket}/{landed[0]}"


def step_month_validated(rehearsal: Rehearsal) -> str:
    """The validate stage on the lake in S3 (what the validate DAG's task calls)."""
    from mlplatform.adapters.lake import Lake
    from mlplatform.core.spec import load_spec
    from mlplatform.stages import contracts

    outcome = contracts.validate_month(Lake(), load_spec(USE_CASE), MONTH)
    # The stage returns the typed record (older versions: its dict form).
    checked = (
        outcome
        if isinstance(outcome, contracts.ContractOutcome)
        else contracts.ContractOutcome.from_dict(outcome)
    )
    if not checked.success or checked.snapshot is None:
        raise RuntimeError(f"{MONTH} was not validated: {checked.summary}")
    snapshot = checked.snapshot.uri
    return f"{MONTH}: {checked.rows} rows, {checked.quarantined_rows} quarantined, snapshot {snapshot}"


def step_model_registered(rehearsal: Rehearsal) -> str:
    """Training tracked on the MLflow server whose artifacts are in the MLflow bucket, then
    registered as the challenger (the training code; the train DAG assembles from the lake)."""
    from mlplatform.adapters import registry
    from mlplatform.core.spec import load_spec
    from mlplatform.stages import training

    use_case = load_spec(USE_CASE)
    result = training.train_files(
        use_case,
        [str(RAW_FILES / f"green_tripdata_{MONTH}.parquet")],
        [str(RAW_FILES / f"green_tripdata_{VALIDATION_MONTH}.parquet")],
        track=True,
        reason="AWS rehearsal",
    )
    assert result.run_id and result.model_uri, "a tracked training names its run and model"
    version = registry.register_challenger(use_case, result.run_id, result.model_uri)
    rehearsal.facts["version"] = version.version
    return f"{version.name} version {version.version}, run {result.run_id[:8]}"


def step_champion_promoted(rehearsal: Rehearsal) -> str:
    """The registry's promotion (aliases, audit tags, lock) of the registered version."""
    from mlplatform.adapters import registry
    from mlplatform.core.spec import load_spec

    use_case = load_spec(USE_CASE)
    version = rehearsal.facts["version"]
    move = registry.promote(
        use_case.model_name,
        version,
        {"run_id": "aws-rehearsal", "expected_champion": None, "reason": "first champion of the rehearsal"},
    )
    return f"champion = version {version} (moved: {move.moved})"


def step_release_pushed(rehearsal: Rehearsal) -> str:
    """The release push (infra/README.md): image tag into ECR, tag into SSM; Terraform then
    plans no change to the parameter it created (ignore_changes)."""
    import hashlib

    repository = str(rehearsal.outputs["serving_repository_url"]).split("/", 1)[1]
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": 1,
            "digest": f"sha256:{hashlib.sha256(RELEASE_TAG.encode()).hexdigest()}",
        },
        "layers": [],
    }
    ecr = rehearsal.client("ecr")
    # An earlier run in this account released it already: tags are immutable.
    with contextlib.suppress(ecr.exceptions.ImageAlreadyExistsException):
        ecr.put_image(repositoryName=repository, imageManifest=json.dumps(manifest), imageTag=RELEASE_TAG)
    name = f"{rehearsal.outputs['ssm_prefix']}/serving_image_tag"
    rehearsal.client("ssm").put_parameter(Name=name, Value=RELEASE_TAG, Type="String", Overwrite=True)
    terraform(
        rehearsal.terraform, rehearsal.work, rehearsal.root, "plan", "-out=release.tfplan", "-parallelism=20"
    )
    plan = json.loads(
        terraform(rehearsal.terraform, rehearsal.work, rehearsal.root, "show", "-json", "release.tfplan")
    )
    changes = {c["address"]: c["change"]["actions"] for c in plan.get("resource_changes", [])}
    address = "module.platform.module.wiring.aws_ssm_parameter.serving_image_tag"
    if changes.get(address) != ["no-op"]:
        raise RuntimeError(f"terraform plans {changes.get(address)} for {address} after the release push")
    # What moto reads back differently from what it was given (not the release's doing).
    drift = sorted(a for a, actions in changes.items() if actions not in (["no-op"], ["read"]))
    return f"{repository}:{RELEASE_TAG}; {name} = {RELEASE_TAG}; terraform plan: no change to it" + (
        f" (emulator drift elsewhere: {', '.join(drift)})" if drift else ""
    )


def deploy_champion(rehearsal: Rehearsal) -> dict[str, Any]:
    """The deploy stage's SageMaker plan for the champion, its requests sent, the endpoint verified."""
    import inspect

    from mlplatform.adapters import registry
    from mlplatform.core.spec import load_spec
    from mlplatform.stages import deployment

    use_case = load_spec(USE_CASE)
    champion = registry.resolve(use_case.model_name)
    sagemaker = rehearsal.client("sagemaker")
    wanted = inspect.signature(deployment.plan_sagemaker).parameters
    clients = {name: rehearsal.client(name) for name in ("ecr", "cloudwatch") if name in wanted}
    plan = deployment.plan_sagemaker(sagemaker, use_case, champion, None, **clients)
    calls = {
        "create_champion_model": sagemaker.create_model,
        "create_challenger_model": sagemaker.create_model,
        "create_endpoint_config": sagemaker.create_endpoint_config,
        "create_endpoint": sagemaker.create_endpoint,
        "update_endpoint": functools.partial(play_update_endpoint, sagemaker),
    }
    for step in plan["steps"]:
        calls[step](**plan[step])
    verified = deployment.verify_sagemaker(sagemaker, plan)
    rehearsal.facts["endpoint"] = plan["endpoint"]
    return {
        "plan": plan,
        "summary": f"{plan['endpoint']} {verified['status']} on {plan['endpoint_config']} "
        f"({', '.join(plan['steps'])})",
    }


def play_update_endpoint(sagemaker: Any, **request: Any) -> dict[str, Any]:
    """SageMaker's UpdateEndpoint, which moto lacks: the request checked against the AWS API
    model (a Stubber validates every parameter), then what a healthy blue/green update leaves,
    the endpoint in service on the new configuration."""
    from botocore.stub import Stubber

    name = request["EndpointName"]
    answer = {"EndpointArn": sagemaker.describe_endpoint(EndpointName=name)["EndpointArn"]}
    with Stubber(sagemaker) as stubber:
        stubber.add_response("update_endpoint", answer, request)
        sagemaker.update_endpoint(**request)
        stubber.assert_no_pending_responses()
    sagemaker.delete_endpoint(EndpointName=name)
    sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=request["EndpointConfigName"])
    return answer


def step_endpoint_deployed(rehearsal: Rehearsal) -> str:
    """The deploy stage's SageMaker plan for the champion, its requests sent, the endpoint verified."""
    return str(deploy_champion(rehearsal)["summary"])


def step_endpoint_alarms(rehearsal: Rehearsal) -> str:
    """The deploy code finds the endpoint's own alarms, the ones Terraform created for it."""
    from mlplatform.adapters.sagemaker import endpoint_alarms

    endpoint = rehearsal.facts["endpoint"]
    found = endpoint_alarms(rehearsal.client("cloudwatch"), endpoint)
    created = sorted(rehearsal.outputs["serving_alarm_names"][endpoint])
    if found != created:
        raise RuntimeError(f"the deploy code finds {found}, Terraform created {created}")
    return f"{len(found)} alarms named {endpoint}-* with EndpointName={endpoint}"


def step_alarm_reaches_slack(rehearsal: Rehearsal) -> str:
    """An alarm of the endpoint, as SNS hands it to the Slack forwarder, posted to the webhook
    in the Slack secret (the forwarder's code run here: moto runs Lambda code only in Docker)."""
    import importlib.util
    import urllib.request

    from mlplatform.dev.webhook_sink import WebhookSink

    endpoint = rehearsal.facts["endpoint"]
    alarm_name = sorted(rehearsal.outputs["serving_alarm_names"][endpoint])[0]
    cloudwatch = rehearsal.client("cloudwatch")
    cloudwatch.set_alarm_state(AlarmName=alarm_name, StateValue="ALARM", StateReason="rehearsal")
    alarm = cloudwatch.describe_alarms(AlarmNames=[alarm_name])["MetricAlarms"][0]
    if rehearsal.outputs["alerts_topic_arn"] not in alarm["AlarmActions"]:
        raise RuntimeError(f"{alarm_name} does not notify the alerts topic: {alarm['AlarmActions']}")
    topic = rehearsal.outputs["alerts_topic_arn"]
    subscriptions = rehearsal.client("sns").list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    if not any(s["Protocol"] == "lambda" for s in subscriptions):
        raise RuntimeError(f"no Lambda subscription on {topic}: {subscriptions}")
    message = {
        "AlarmName": alarm_name,
        "NewStateValue": "ALARM",
        "NewStateReason": "rehearsal",
        "Trigger": {"Dimensions": [{"name": d["Name"], "value": d["Value"]} for d in alarm["Dimensions"]]},
    }
    sink = WebhookSink(port=0, store=rehearsal.work / "slack.jsonl").start()
    try:
        secret = str(rehearsal.outputs["slack_secret_name"])
        rehearsal.client("secretsmanager").put_secret_value(
            SecretId=secret, SecretString=json.dumps({"conn_type": "slackwebhook", "password": sink.hook_url})
        )
        spec = importlib.util.spec_from_file_location(
            "slack_forwarder", INFRA / "modules" / "alerts" / "slack_forwarder.py"
        )
        assert spec is not None and spec.loader is not None
        forwarder = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(forwarder)
        os.environ["SLACK_SECRET_ARN"] = secret
        event = {"Records": [{"Sns": {"Subject": f'ALARM: "{alarm_name}"', "Message": json.dumps(message)}}]}
        posted = forwarder.handler(event)
        with urllib.request.urlopen(f"{sink.url}/messages", timeout=10) as response:
            received = json.loads(response.read())
    finally:
        sink.stop()
    if posted["posted"] != 1 or alarm_name not in json.dumps(received):
        raise RuntimeError(f"the forwarder posted {posted}; the webhook received {received}")
    return f"{alarm_name} (ALARM) posted to the webhook in {secret}"


# --------------------------------------------------------------------------- SageMaker played by the harness
# moto records SageMaker models, endpoints and transform jobs but runs no container: from here
# the rehearsal plays SageMaker's part with the serving image's entrypoint as a process.

NEXT_MONTH = "2021-03"  # the newer data the second version is validated on
CAPTURED_TRIPS = 1_500  # enough for the monitor's drift (MIN_DRIFT_ROWS) on the window
CAPTURE_REQUEST_TRIPS = 250
PLAYED_BY_HARNESS = "moto runs no container: the harness plays SageMaker"


def copy_model_data(rehearsal: Rehearsal, s3_uri: str, model_dir: Path) -> Path:
    """What SageMaker does with an uncompressed ``S3Prefix`` model data source: copy it to the model dir."""
    s3 = rehearsal.client("s3")
    bucket, _, prefix = s3_uri.removeprefix("s3://").partition("/")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    for key in (item["Key"] for page in pages for item in page.get("Contents", [])):
        target = model_dir / key.removeprefix(prefix)
        target.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(bucket, key, str(target))
    if not (model_dir / "MLmodel").exists():
        raise RuntimeError(f"no MLmodel under {s3_uri}: the SageMaker model's data is not an MLflow model")
    return model_dir


@contextmanager
def serving_container(rehearsal: Rehearsal, model_name: str) -> Iterator[str]:
    """``python -m mlplatform.serving serve`` as SageMaker runs the model's container: its
    data copied to a model directory (``SM_MODEL_DIR``), its environment, no registry."""
    import httpx

    container = rehearsal.client("sagemaker").describe_model(ModelName=model_name)["PrimaryContainer"]
    home = rehearsal.work / "containers" / model_name
    model_dir = home / "model"
    if not model_dir.exists():
        copy_model_data(rehearsal, container["ModelDataSource"]["S3DataSource"]["S3Uri"], model_dir)
    port = free_port()
    env = {k: v for k, v in aws_mode(rehearsal).items() if not k.startswith(("MLPLATFORM_", "MLFLOW_"))}
    # The environment names /opt/ml/model; SM_MODEL_DIR says where the data is here.
    env.update({k: v for k, v in container["Environment"].items() if k != "MLPLATFORM_MODEL_URI"})
    env.update(
        SM_MODEL_DIR=str(model_dir),
        SAGEMAKER_BIND_TO_PORT=str(port),
        MLFLOW_TRACKING_URI="http://127.0.0.1:9",  # nothing there: the container needs no registry
    )
    log = (home / "serve.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "mlplatform.serving", "serve"],
        cwd=home,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600
        while True:
            try:
                if httpx.get(f"{base}/ping", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"the container did not answer /ping:\n{(home / 'serve.log').read_text()[-2000:]}"
                )
            time.sleep(0.3)
        yield base
    finally:
        _stop(process)
        log.close()


def invoke(base: str, payload: bytes, content_type: str = "application/jsonlines") -> str:
    """One ``POST /invocations`` as SageMaker forwards it; the answer's text."""
    import httpx

    answer = httpx.post(
        f"{base}/invocations",
        content=payload,
        headers={"Content-Type": content_type, "Accept": content_type},
        timeout=120,
    )
    if answer.status_code != 200:
        raise RuntimeError(f"/invocations answered {answer.status_code}: {answer.text[:500]}")
    return answer.text


def endpoint_variants(rehearsal: Rehearsal) -> dict[str, str]:
    """The endpoint's production variants as SageMaker serves them: variant name to model name."""
    sagemaker = rehearsal.client("sagemaker")
    endpoint = sagemaker.describe_endpoint(EndpointName=rehearsal.facts["endpoint"])
    config = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    return {v["VariantName"]: v["ModelName"] for v in config["ProductionVariants"]}


def champion_variant(rehearsal: Rehearsal) -> tuple[str, str]:
    """The variant that takes the endpoint's traffic for the champion, and its model's name."""
    variants = endpoint_variants(rehearsal)
    if "champion" not in variants:
        raise RuntimeError(f"the endpoint has no champion variant: {variants}")
    return "champion", variants["champion"]


def trips_of_month(month: str, rows: int) -> str:
    """``rows`` complete trips of a raw month as the model's inputs, one JSON object a line."""
    import pandas as pd
    import pyarrow.parquet as pq

    from mlplatform.adapters import registry
    from mlplatform.core.spec import load_spec
    from mlplatform.stages import scoring

    columns = scoring.signature_inputs(registry.resolve(load_spec(USE_CASE).model_name))
    source = pq.ParquetFile(RAW_FILES / f"green_tripdata_{month}.parquet")
    frames = []
    for batch in scoring.normalised_batches(source, columns, batch_rows=10_000):
        frames.append(batch.to_pandas().dropna())
        if sum(map(len, frames)) >= rows:
            break
    if not frames:
        raise RuntimeError(f"no complete trip in the raw file of {month}")
    trips = pd.concat(frames, ignore_index=True).head(rows)
    return str(trips.to_json(orient="records", lines=True, date_format="iso", date_unit="s"))


def step_container_answers(rehearsal: Rehearsal) -> str:
    """The champion variant's container answers the endpoint's invocations: JSON Lines in,
    one answer a trip, from the deployed version."""
    variant, model_name = champion_variant(rehearsal)
    if f"-v{rehearsal.facts['version']}-" not in model_name:
        raise RuntimeError(
            f"the endpoint's {variant} runs {model_name}, not version {rehearsal.facts['version']}"
        )
    trips = trips_of_month(VALIDATION_MONTH, 3)
    with serving_container(rehearsal, model_name) as base:
        answers = [json.loads(line) for line in invoke(base, trips.encode()).splitlines()]
    if len(answers) != 3:
        raise RuntimeError(f"3 trips answered with {answers}")
    return f"{model_name} ({variant}): 3 trips, 3 answers ({PLAYED_BY_HARNESS})"


def mini_batches(lines: list[bytes], max_payload_bytes: int) -> Iterator[bytes]:
    """Whole lines packed into payloads of at most ``max_payload_bytes``, in order: SageMaker's
    ``SplitType=Line`` with ``BatchStrategy=MultiRecord``."""
    batch: list[bytes] = []
    size = 0
    for line in lines:
        if batch and size + len(line) > max_payload_bytes:
            yield b"".join(batch)
            batch, size = [], 0
        batch.append(line)
        size += len(line)
    if batch:
        yield b"".join(batch)


def play_transform_job(rehearsal: Rehearsal, job_name: str) -> int:
    """What SageMaker does for a transform job moto accepted: the job's model in its container,
    every input part sent by line in mini-batches, the answers assembled by line as
    ``<part>.out`` under the output path. Returns the number of requests."""
    from mlplatform.adapters.lake import Lake

    job = rehearsal.client("sagemaker").describe_transform_job(TransformJobName=job_name)
    lake = Lake()
    source = lake.relative(job["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"].rstrip("/"))
    target = lake.relative(job["TransformOutput"]["S3OutputPath"].rstrip("/"))
    content_type = job["TransformInput"]["ContentType"]
    requests = 0
    with serving_container(rehearsal, job["ModelName"]) as base:
        for entry in lake.list(source):
            lines = lake.read_bytes(entry.path).splitlines(keepends=True)
            answers = []
            for payload in mini_batches(lines, job["MaxPayloadInMB"] * 1024 * 1024):
                requests += 1
                answers.extend(invoke(base, payload, content_type).splitlines())
            name = entry.path.rsplit("/", 1)[-1]
            lake.write_bytes(f"{target}/{name}.out", "".join(f"{a}\n" for a in answers).encode())
    return requests


def step_batch_transform(rehearsal: Rehearsal) -> str:
    """The batch-score stage's transform job for a validated month with the champion: input
    staged in the lake, job created on the account, run by the harness, output collected and
    published as the month's predictions."""
    from mlplatform.adapters import registry
    from mlplatform.adapters.lake import Lake
    from mlplatform.core.spec import load_spec
    from mlplatform.stages import scoring

    use_case, lake = load_spec(USE_CASE), Lake()
    champion = registry.resolve(use_case.model_name)
    snapshot = scoring.checked_snapshot(lake, use_case, MONTH, scoring.signature_inputs(champion))
    staged = scoring.stage_transform_input(lake, use_case, snapshot, champion)
    sagemaker = rehearsal.client("sagemaker")
    config = scoring.transform_request(
        use_case, champion, snapshot, staged, sagemaker, rehearsal.client("ecr")
    )
    if "Model" in config:
        sagemaker.create_model(**config["Model"])
    sagemaker.create_transform_job(**config["Transform"])
    job = config["Transform"]["TransformJobName"]
    requests = play_transform_job(rehearsal, job)
    published = scoring.publish(
        lake, scoring.collect_transform_output(lake, use_case, snapshot, champion, staged)
    )
    if published.rows != staged.rows:
        raise RuntimeError(f"{published.rows} predictions for {staged.rows} staged rows")
    return (
        f"{job}: {staged.rows} rows in {len(staged.parts)} parts, {requests} requests; "
        f"predictions of version {champion.version} published ({PLAYED_BY_HARNESS}'s transform job)"
    )


def step_data_captured(rehearsal: Rehearsal) -> str:
    """Endpoint traffic for trips of a later month, each request and answer written to the
    lake's capture prefix as SageMaker's data capture writes them, then read back by monitoring."""
    import uuid

    from mlplatform.adapters.lake import Lake
    from mlplatform.adapters.sagemaker import capture_prefix
    from mlplatform.core.spec import load_spec
    from mlplatform.stages.monitoring import read_capture

    use_case, lake = load_spec(USE_CASE), Lake()
    variant, model_name = champion_variant(rehearsal)
    lines = trips_of_month(VALIDATION_MONTH, CAPTURED_TRIPS).encode().splitlines(keepends=True)
    now = dt.datetime.now(dt.UTC)
    records = []
    with serving_container(rehearsal, model_name) as base:
        for start in range(0, len(lines), CAPTURE_REQUEST_TRIPS):
            payload = b"".join(lines[start : start + CAPTURE_REQUEST_TRIPS])
            answer = invoke(base, payload)
            part = {"observedContentType": "application/jsonlines", "encoding": "JSON"}
            records.append(
                {
                    "captureData": {
                        "endpointInput": {**part, "mode": "INPUT", "data": payload.decode()},
                        "endpointOutput": {**part, "mode": "OUTPUT", "data": answer},
                    },
                    "eventMetadata": {"eventId": str(uuid.uuid4()), "inferenceTime": now.isoformat()},
                    "eventVersion": "0",
                }
            )
    path = (
        f"{capture_prefix(use_case.name)}/{rehearsal.facts['endpoint']}/{variant}/"
        f"{now:%Y/%m/%d/%H}/{now:%M-%S}-{uuid.uuid4().hex[:4]}.jsonl"
    )
    lake.write_bytes(path, "".join(json.dumps(r) + "\n" for r in records).encode())
    captured = read_capture(lake, use_case, VALIDATION_MONTH)
    rows = 0 if captured.rows is None else len(captured.rows)
    if captured.malformed or rows != len(lines):
        raise RuntimeError(
            f"{len(lines)} trips captured; monitoring reads {rows} rows, {captured.malformed} malformed"
        )
    return (
        f"{len(records)} requests, {rows} trips in {lake.uri(path)}; monitoring reads them all "
        f"({PLAYED_BY_HARNESS}'s capture)"
    )


def step_window_monitored(rehearsal: Rehearsal) -> str:
    """The later month arrives and is validated (ground truth of the captured trips); the
    monitoring stage measures the window from the capture."""
    from mlplatform.adapters.lake import Lake
    from mlplatform.core.spec import load_spec
    from mlplatform.stages import contracts
    from mlplatform.stages.monitoring import monitor

    use_case, lake = load_spec(USE_CASE), Lake()
    cli(
        rehearsal,
        "ingest",
        "--use-case",
        USE_CASE,
        "--month",
        VALIDATION_MONTH,
        str(RAW_FILES / f"green_tripdata_{VALIDATION_MONTH}.parquet"),
    )
    outcome = contracts.validate_month(lake, use_case, VALIDATION_MONTH)
    if not outcome.success:
        raise RuntimeError(f"{VALIDATION_MONTH} was not validated: {outcome.summary}")
    record = monitor(lake, use_case, VALIDATION_MONTH)
    metric = use_case.monitoring.performance_metric
    if not record.metrics.get("capture_lines") or metric not in record.metrics:
        raise RuntimeError(f"the window was not measured from the capture: {record.metrics}")
    rehearsal.facts["monitor_status"] = record.model_status
    return (
        f"window {VALIDATION_MONTH}: model {record.model_status}, serving {record.serving_status}, "
        f"{metric} {record.metrics[metric]:.3f} on captured trips, "
        f"{int(record.metrics['capture_lines'])} capture lines; record {record.record_uri}"
    )


def step_retrained(rehearsal: Rehearsal) -> str:
    """A second version trained on the newer month (validated on the one after), registered
    as the challenger, and promoted over the first."""
    from mlplatform.adapters import registry
    from mlplatform.core.spec import load_spec
    from mlplatform.stages import training

    use_case = load_spec(USE_CASE)
    result = training.train_files(
        use_case,
        [str(RAW_FILES / f"green_tripdata_{VALIDATION_MONTH}.parquet")],
        [str(RAW_FILES / f"green_tripdata_{NEXT_MONTH}.parquet")],
        track=True,
        reason="AWS rehearsal: retrain after monitoring",
    )
    assert result.run_id and result.model_uri, "a tracked training names its run and model"
    version = registry.register_challenger(use_case, result.run_id, result.model_uri)
    first, second = rehearsal.facts["version"], version.version
    if second == first:
        raise RuntimeError(f"retraining registered version {second} again")
    registry.promote(
        use_case.model_name,
        second,
        {"run_id": "aws-rehearsal", "expected_champion": first, "reason": "retrained on newer data"},
    )
    rehearsal.facts["version"] = second
    return f"{version.name} version {second} on {VALIDATION_MONTH}, champion over version {first}"


def step_endpoint_updated(rehearsal: Rehearsal) -> str:
    """The deploy code again: the running endpoint updated to the new champion."""
    deployed = deploy_champion(rehearsal)
    if "update_endpoint" not in deployed["plan"]["steps"]:
        raise RuntimeError(f"the deploy code planned {deployed['plan']['steps']}, not an update")
    answered = step_container_answers(rehearsal).rsplit(" (", 1)[0]
    return (
        f"{deployed['summary']}; {answered} "
        f"(moto lacks UpdateEndpoint; {PLAYED_BY_HARNESS}'s blue/green update)"
    )


# The loop on the emulated account, in order. Append steps as the platform's
# AWS mode grows; a step returns what it did and raises when it fails.
LOOP_STEPS: list[tuple[str, Callable[[Rehearsal], str]]] = [
    ("settings read from SSM (mlplatform config)", step_settings_from_ssm),
    ("raw month landed in the lake over TLS (mlplatform ingest)", step_raw_month_landed),
    ("raw month validated into the lake (validate stage)", step_month_validated),
    ("model trained, tracked, registered (artifacts in S3)", step_model_registered),
    ("champion promoted (registry.promote)", step_champion_promoted),
    ("serving image released (ECR tag + SSM serving_image_tag)", step_release_pushed),
    ("SageMaker model, endpoint config, endpoint (deploy stage)", step_endpoint_deployed),
    ("endpoint's alarms found by the deploy code", step_endpoint_alarms),
    ("endpoint alarm posted to Slack by the forwarder", step_alarm_reaches_slack),
    ("endpoint's container answers invocations (serving entrypoint)", step_container_answers),
    ("Batch Transform of a month with the champion (scoring stage)", step_batch_transform),
    ("endpoint traffic captured to the lake, read by monitoring", step_data_captured),
    ("captured window monitored against its ground truth (monitoring stage)", step_window_monitored),
    ("second version retrained on newer data, promoted (training, registry)", step_retrained),
    ("endpoint updated to the new champion (deploy stage)", step_endpoint_updated),
]


# --------------------------------------------------------------------------- run and report


@contextmanager
def mlflow_server(rehearsal: Rehearsal, port: int) -> Iterator[Callable[[], str]]:
    """An MLflow server standing in for the managed one: artifacts straight into the MLflow
    bucket Terraform created (clients write them, as with SageMaker's server).

    Yields as soon as the process is started: calling what it yields waits until the server
    answers and returns its URI, so the caller can work while the server migrates its store."""
    import urllib.request

    uri = f"http://127.0.0.1:{port}"
    parameter = f"{rehearsal.outputs['ssm_prefix']}/mlflow_artifact_uri"
    artifacts = rehearsal.client("ssm").get_parameter(Name=parameter)["Parameter"]["Value"]
    home = rehearsal.work / "mlflow"
    home.mkdir(exist_ok=True)
    log = (home / "server.log").open("wb")
    process = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("mlflow")),
            "server",
            "--backend-store-uri",
            f"sqlite:///{home / 'mlflow.db'}",
            "--default-artifact-root",
            artifacts,
            "--no-serve-artifacts",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**aws_mode(rehearsal), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        start_new_session=True,
    )

    def started() -> str:
        deadline = time.monotonic() + 600
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
                    if response.status == 200:
                        return uri
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"mlflow server did not start:\n{(home / 'server.log').read_text()[-2000:]}"
                )
            time.sleep(0.5)

    try:
        yield started
    finally:
        _stop(process)
        log.close()


def run_loop(rehearsal: Rehearsal, steps: list[tuple[str, Callable[[Rehearsal], str]]]) -> None:
    """Each step in AWS mode, in order; after the first failure the rest are not run."""
    saved = dict(os.environ)
    if not (rehearsal.work / "great_expectations").exists():
        shutil.copytree(
            REPO / "great_expectations",
            rehearsal.work / "great_expectations",
            ignore=shutil.ignore_patterns("uncommitted"),
        )
    os.environ.clear()
    os.environ.update(aws_mode(rehearsal))
    sys.path.insert(0, str(REPO / "include"))
    failed = None
    try:
        for name, step in steps:
            if failed:
                rehearsal.steps.append(StepResult(name, False, f"not run: {failed!r} failed first"))
                continue
            try:
                rehearsal.steps.append(StepResult(name, True, step(rehearsal)))
            except Exception as exc:  # the report names it; the exit status says it failed
                failed = name
                rehearsal.steps.append(StepResult(name, False, f"{type(exc).__name__}: {exc}"[:1500]))
    finally:
        os.environ.clear()
        os.environ.update(saved)


def rehearse(environment: str = "dev", work: Path | None = None) -> Rehearsal:
    """The whole rehearsal in ``work`` (a new temporary directory by default)."""
    binary, mirror = find_terraform()
    work = work or Path(tempfile.mkdtemp(prefix="aws-rehearsal-"))
    with emulator(work) as (endpoint, ca_bundle):
        root = prepare_root(work, environment, endpoint, ca_bundle, mirror)
        rehearsal = Rehearsal(endpoint=endpoint, ca_bundle=ca_bundle, work=work, root=root, terraform=binary)
        port = free_port()
        apply(rehearsal, binary, {**REHEARSAL_VARIABLES, "mlflow_tracking_uri": f"http://127.0.0.1:{port}"})
        with mlflow_server(rehearsal, port) as started:
            plan_left_out(rehearsal)  # while the server migrates its store
            started()
            run_loop(rehearsal, LOOP_STEPS)
    return rehearsal


def summary(rehearsal: Rehearsal) -> str:
    """One table: resources created, resources skipped and why, each loop step and its result."""
    lines = [
        f"terraform apply against moto over TLS ({rehearsal.endpoint}): "
        f"{len(rehearsal.created)} resources in {rehearsal.apply_seconds:.0f} s",
        "",
        "| kind | what | result |",
        "|---|---|---|",
    ]
    lines += [f"| created | `{address}` | ok |" for address in rehearsal.created]
    lines += [f"| skipped | `{address}` | {why} |" for address, why in SKIPPED.items()]
    lines += [
        f"| plan, left-out variables put back | `{address}` | {', '.join(actions) or 'not planned'} |"
        for address, actions in rehearsal.planned_back.items()
    ]
    lines += [
        f"| loop step | {s.name} | {'PASSED' if s.ok else 'FAILED'}: {s.detail} |".replace("\n", " ")
        for s in rehearsal.steps
    ]
    return "\n".join(lines)


def report(rehearsal: Rehearsal) -> dict[str, Any]:
    return {
        "endpoint": rehearsal.endpoint,
        "apply_seconds": round(rehearsal.apply_seconds, 1),
        "created": rehearsal.created,
        "skipped": SKIPPED,
        "planned_back": rehearsal.planned_back,
        "outputs": rehearsal.outputs,
        "steps": [{"name": s.name, "ok": s.ok, "detail": s.detail} for s in rehearsal.steps],
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["emulator"]:  # the emulator's own process, started by `emulator()`
        serve_emulator(argv[1:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="dev", help="environment root under infra/envs (default: dev)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (state, logs)")
    parser.add_argument("--json", type=Path, help="also write the report as JSON to this file")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="aws-rehearsal-"))
    try:
        rehearsal = rehearse(args.env, work)
    except RuntimeError as exc:
        print(f"rehearsal failed before the loop: {exc}", file=sys.stderr)
        print(f"work directory kept: {work}", file=sys.stderr)
        return 2
    print(summary(rehearsal))
    if args.json:
        args.json.write_text(json.dumps(report(rehearsal), indent=2))
    if args.keep:
        print(f"\nwork directory: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if all(s.ok for s in rehearsal.steps) else 1


if __name__ == "__main__":
    sys.exit(main())
