"""Whole `<use case>_deploy` runs with dag.test(): the local serving app reloads and answers
with the new champion (or keeps the old one and alerts), and the SageMaker deployment builds
the right requests: moto for creation, botocore's Stubber for the blue/green update."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_scoring import USE_CASE, load_dag_module, registered_versions, run_dag, set_alias, with_serving
from test_serving import TRIP, running_app

from mlplatform.core.records import ModelRef
from mlplatform.stages import deployment

pytestmark = pytest.mark.slow

ALARMS = ["mlplatform-dev-serving-5xx", "mlplatform-dev-serving-p99-latency"]
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlplatform-dev-serving"
ROLE = "arn:aws:iam::123456789012:role/mlplatform-dev-sagemaker"


@pytest.fixture(scope="module")
def versions(mlflow_server: str) -> list[str]:
    return registered_versions(mlflow_server)


@pytest.fixture
def alerts(webhook_sink: Any, airflow_db: Path) -> Any:
    webhook_sink.clear()
    return webhook_sink.messages


def broken_version(name: str) -> str:
    """A registered version whose artifact cannot be loaded (it fails in ``load_context``)."""
    import mlflow

    class Unloadable(mlflow.pyfunc.PythonModel):
        def load_context(self, context: Any) -> None:
            raise RuntimeError("this model artifact is damaged")

        def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
            return model_input

    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(
            name="model", python_model=Unloadable(), registered_model_name=name, pip_requirements=[]
        )
    return str(info.registered_model_version)


def test_local_deploy_switches_the_serving_app_and_smoke_tests_it(
    versions: list[str], alerts: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlplatform.adapters.lake import Lake

    set_alias(USE_CASE.model_name, "champion", versions[0])
    dag = load_dag_module("deploy").build(USE_CASE)
    # poll_seconds=0: the app follows the registry only when the deploy DAG asks it to.
    with running_app(USE_CASE, lake=Lake(tmp_path.as_uri()), poll_seconds=0, challenger_share=0) as (
        base,
        http,
    ):
        monkeypatch.setenv("MLPLATFORM_SERVING_URL", base)
        set_alias(USE_CASE.model_name, "champion", versions[1])  # a promotion
        assert http.post(f"{base}/predict", json=TRIP).json()["version"] == versions[0]

        states = run_dag(dag)

        assert set(states.values()) == {"success"}, states
        assert http.get(f"{base}/health").json()["champion"]["version"] == versions[1]
        assert http.post(f"{base}/predict", json=TRIP).json()["version"] == versions[1]

        # A promotion whose artifact cannot be loaded: the app keeps serving, Slack hears of it.
        set_alias(USE_CASE.model_name, "champion", broken_version(USE_CASE.model_name))

        states = run_dag(dag)

        assert states["reload_and_smoke_test"] == "failed"
        assert http.get(f"{base}/health").json()["champion"]["version"] == versions[1]
        answer = http.post(f"{base}/predict", json=TRIP)
        assert answer.status_code == 200 and answer.json()["version"] == versions[1]
    set_alias(USE_CASE.model_name, "champion", versions[0])
    [alert] = alerts()  # the failed task's, through the DAG's failure callback
    assert "reload_and_smoke_test" in alert["text"]
    assert "keeps serving the previous version" in json.dumps(alert)


# -- SageMaker ---------------------------------------------------------------------------------------
@pytest.fixture
def sagemaker(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A SageMaker client on moto with nothing of this use case in it, and the settings AWS has."""
    import boto3

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("MLPLATFORM_SAGEMAKER_ROLE_ARN", ROLE)
    monkeypatch.setenv("MLPLATFORM_SERVING_IMAGE_URI", IMAGE)
    monkeypatch.setenv("MLPLATFORM_SERVING_ALARM_NAMES", ",".join(ALARMS))
    monkeypatch.setenv("MLPLATFORM_SERVING_KMS_KEY_ARN", "")
    client = boto3.client("sagemaker", endpoint_url=moto_endpoint)
    prefix = deployment.endpoint_name(USE_CASE)
    for endpoint in client.list_endpoints(NameContains=prefix)["Endpoints"]:
        client.delete_endpoint(EndpointName=endpoint["EndpointName"])
    for config in client.list_endpoint_configs(NameContains=prefix)["EndpointConfigs"]:
        client.delete_endpoint_config(EndpointConfigName=config["EndpointConfigName"])
    for model in client.list_models(NameContains=prefix)["Models"]:
        client.delete_model(ModelName=model["ModelName"])
    return client


def expected_deployment_config(canary: int, bake_seconds: int) -> dict[str, Any]:
    """What the update must ask for, written out by hand from the AWS API reference."""
    return {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "CANARY",
                "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": canary},
                "WaitIntervalInSeconds": bake_seconds,
            },
            "TerminationWaitInSeconds": bake_seconds,
            "MaximumExecutionTimeoutInSeconds": 3 * 3600,
        },
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": name} for name in ALARMS]},
    }


def test_sagemaker_deploy_creates_then_updates_blue_green(
    versions: list[str], alerts: Any, sagemaker: Any, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3
    from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook
    from botocore.stub import ANY, Stubber

    use_case = with_serving(USE_CASE, target="sagemaker", challenger_share=0.1)
    dag = load_dag_module("deploy").build(use_case, endpoint_check_seconds=1)
    name = deployment.endpoint_name(use_case)
    set_alias(USE_CASE.model_name, "champion", versions[0])
    set_alias(USE_CASE.model_name, "challenger", versions[1])

    # First deployment: everything is created (moto implements these calls).
    states = run_dag(dag)

    assert states == {**dict.fromkeys(states, "success"), "sagemaker.update_endpoint": "skipped"}, states
    endpoint = sagemaker.describe_endpoint(EndpointName=name)
    assert endpoint["EndpointStatus"] == "InService"
    config = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    variants = {v["VariantName"]: v for v in config["ProductionVariants"]}
    assert variants["champion"]["InitialVariantWeight"] == pytest.approx(0.9)
    assert variants["challenger"]["InitialVariantWeight"] == pytest.approx(0.1)
    assert {v["InstanceType"] for v in variants.values()} == {use_case.serving.instance_type}
    for variant, version in (("champion", versions[0]), ("challenger", versions[1])):
        model = sagemaker.describe_model(ModelName=variants[variant]["ModelName"])
        container = model["PrimaryContainer"]
        assert container["Image"] == f"{IMAGE}:latest" and model["ExecutionRoleArn"] == ROLE
        assert container["Environment"]["MLPLATFORM_MODEL_URI"] == f"models:/{USE_CASE.model_name}/{version}"
        assert container["Environment"]["MLPLATFORM_MODEL_VERSION"] == version

    # The challenger is promoted. moto has no UpdateEndpoint: the request goes through a
    # Stubber, which checks every parameter against the AWS API model, and the endpoint is
    # then rebuilt on moto on the new configuration, as a successful update leaves it.
    set_alias(USE_CASE.model_name, "champion", versions[1])
    set_alias(USE_CASE.model_name, "challenger", None)
    stubbed = boto3.client("sagemaker", endpoint_url=moto_endpoint)
    stubber = Stubber(stubbed)
    stubber.add_response(
        "update_endpoint",
        {"EndpointArn": endpoint["EndpointArn"], "ResponseMetadata": {"HTTPStatusCode": 200}},
        {
            "EndpointName": name,
            "EndpointConfigName": ANY,
            "RetainAllVariantProperties": False,
            "DeploymentConfig": expected_deployment_config(canary=10, bake_seconds=600),
        },
    )
    updates: list[dict[str, Any]] = []

    def update_endpoint(hook: Any, request: dict[str, Any], **options: Any) -> dict[str, Any]:
        with stubber:
            response = stubbed.update_endpoint(**request)
        sagemaker.delete_endpoint(EndpointName=request["EndpointName"])
        sagemaker.create_endpoint(
            EndpointName=request["EndpointName"], EndpointConfigName=request["EndpointConfigName"]
        )
        updates.append(request)
        return response

    monkeypatch.setattr(SageMakerHook, "update_endpoint", update_endpoint)

    states = run_dag(dag)

    stubber.assert_no_pending_responses()
    skipped = ["create_champion_model", "create_challenger_model", "create_endpoint"]  # v2's model exists
    skipped = [f"sagemaker.{task_id}" for task_id in skipped]
    assert states == {**dict.fromkeys(states, "success"), **dict.fromkeys(skipped, "skipped")}, states
    [update] = updates
    config = sagemaker.describe_endpoint_config(EndpointConfigName=update["EndpointConfigName"])
    models = {v["VariantName"]: v["ModelName"] for v in config["ProductionVariants"]}
    assert models["champion"] == models["challenger"] == variants["challenger"]["ModelName"]
    assert (
        sagemaker.describe_endpoint(EndpointName=name)["EndpointConfigName"] == update["EndpointConfigName"]
    )
    set_alias(USE_CASE.model_name, "champion", versions[0])
    assert alerts() == []


def test_a_rolled_back_update_is_a_failed_deployment(sagemaker: Any) -> None:
    use_case = with_serving(USE_CASE, target="sagemaker")
    champion = ModelRef(USE_CASE.model_name, "7")
    plan = deployment.plan_sagemaker(sagemaker, use_case, champion, None)
    assert plan["steps"] == ["create_champion_model", "create_endpoint_config", "create_endpoint"]
    sagemaker.create_model(**plan["create_champion_model"])
    sagemaker.create_endpoint_config(**plan["create_endpoint_config"])
    sagemaker.create_endpoint(**plan["create_endpoint"])
    assert deployment.verify_sagemaker(sagemaker, plan)["status"] == "InService"
    assert deployment.plan_sagemaker(sagemaker, use_case, champion, None)["steps"] == []  # nothing twice

    newer = deployment.plan_sagemaker(sagemaker, use_case, ModelRef(USE_CASE.model_name, "8"), None)
    assert newer["steps"] == ["create_champion_model", "create_endpoint_config", "update_endpoint"]
    # SageMaker rolled the update back: the endpoint serves the old configuration.
    with pytest.raises(deployment.DeploymentFailed, match="previous deployment keeps serving"):
        deployment.verify_sagemaker(sagemaker, newer)
