"""`terraform apply` of the dev root against an emulated AWS account, then the loop on it.

Runs ``infra/scripts/rehearse_aws.py`` (what ``make rehearse-aws`` runs) as a process: moto's
server over TLS, the dev root applied from a temporary copy with the provider pointed at it,
the settings read back from SSM in AWS mode, then each step of ``LOOP_STEPS``: from ingest to
the endpoint, then the serving container answering it, a Batch Transform, data capture,
monitoring, retraining and the endpoint updated. Where moto stops (it runs no container,
no transform job, no data capture, no UpdateEndpoint) the script plays SageMaker's part and says so.
The test reads the script's JSON report: what Terraform created, what it left out and why,
and each step.

Needs Terraform and the AWS provider in a filesystem mirror, as the Terraform checks of
``test_infra.py`` do: without them it skips with the reason, or fails where
``MLPLATFORM_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import REQUIRE_SERVICES

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "infra" / "scripts" / "rehearse_aws.py"

pytestmark = pytest.mark.slow


def _script() -> Any:
    spec = importlib.util.spec_from_file_location("rehearse_aws", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    script = _script()
    try:
        script.find_terraform()
    except RuntimeError as exc:
        if REQUIRE_SERVICES:
            pytest.fail(f"{exc}, and MLPLATFORM_REQUIRE_SERVICES=1 requires the rehearsal")
        pytest.skip(f"{exc}; install Terraform >= 1.10 and mirror the provider to rehearse")
    report = tmp_path_factory.mktemp("rehearsal") / "report.json"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--json", str(report)],
        capture_output=True,
        text=True,
        timeout=2400,
    )
    assert result.returncode in (0, 1) and report.exists(), (
        f"the rehearsal stopped before the loop (exit {result.returncode}):\n{result.stderr[-6000:]}"
    )
    print(result.stdout)  # the summary table, shown with -s or on failure
    return {**json.loads(report.read_text()), "stdout": result.stdout}


def test_apply_creates_the_platform_without_what_the_emulator_lacks(rehearsal: dict[str, Any]) -> None:
    created = rehearsal["created"]
    prefix = "module.platform.module."
    for address in (
        "network[0].aws_vpc.this",
        "network[0].aws_nat_gateway.this[0]",
        "network[0].aws_instance.bastion[0]",
        "alerts.aws_lambda_function.forwarder[0]",
        "alerts.aws_sns_topic_subscription.slack[0]",
        "wiring.aws_ssm_parameter.serving_image_tag",
        "data_lake.module.lake.aws_s3_bucket_policy.this",
    ):
        assert f"{prefix}{address}" in created, f"{address} was not created"
    assert [a for a in created if "network[0].aws_subnet.private" in a] == [
        f"{prefix}network[0].aws_subnet.private[0]",
        f"{prefix}network[0].aws_subnet.private[1]",
    ]
    for left_out in ("aws_sagemaker_mlflow_tracking_server", "aws_budgets_budget", "module.orchestration"):
        assert not [a for a in created if left_out in a], f"{left_out} should have been left out"
        assert any(left_out.removeprefix("module.") in skipped for skipped in rehearsal["skipped"])
    # What was left out is still planned once its variables are put back.
    assert rehearsal["planned_back"] == {address: ["create"] for address in _script().PLANNED_BACK}


def test_every_use_case_endpoint_gets_its_alarms(rehearsal: dict[str, Any]) -> None:
    use_cases = sorted(p.stem for p in (REPO / "include" / "mlplatform" / "use_cases").glob("*.yaml"))
    alarms = rehearsal["outputs"]["serving_alarm_names"]
    assert sorted(alarms) == sorted(u.replace("_", "-") for u in use_cases)
    for endpoint, names in alarms.items():
        assert len(names) == 8, f"{endpoint}: 4 alarms for each of champion and challenger, got {names}"
        assert all(name.startswith(f"{endpoint}-") for name in names)


def test_the_loop_runs_on_the_emulated_account(rehearsal: dict[str, Any]) -> None:
    steps = rehearsal["steps"]
    assert [s["name"] for s in steps] == [name for name, _ in _script().LOOP_STEPS]
    failed = [f"{s['name']}: {s['detail']}" for s in steps if not s["ok"]]
    assert not failed, "\n".join(failed) + "\n\n" + rehearsal["stdout"]


def test_where_moto_runs_no_container_the_report_says_the_harness_played_sagemaker(
    rehearsal: dict[str, Any],
) -> None:
    script = _script()
    played = {
        script.step_container_answers,
        script.step_batch_transform,
        script.step_data_captured,
        script.step_endpoint_updated,
    }
    names = [name for name, step in script.LOOP_STEPS if step in played]
    details = {s["name"]: s["detail"] for s in rehearsal["steps"]}
    assert len(names) == 4
    for name in names:
        assert script.PLAYED_BY_HARNESS in details[name], f"{name}: {details[name]}"
