"""Whole `<use case>_deploy` runs with dag.test(): the local serving app reloads and answers
with the new champion (or keeps the old one and alerts), and the SageMaker deployment builds
the right requests: moto for creation, botocore's Stubber for the blue/green update. Model
data comes from S3 (versions registered with their artifacts in moto's S3), endpoints
capture their traffic to the lake, endpoint waits are deferred to the triggerer (which
dag.test() runs in process), and an update whose new fleet fails its health checks leaves
the previous configuration serving and alerts. The image is the release's tag, checked in
moto's ECR before anything is touched; each endpoint's update rolls back on its own
CloudWatch alarms only; an endpoint that never reaches InService fails with a clear
message and keeps its configuration."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_sagemaker_container import release_image, version_in_s3
from test_scoring import USE_CASE, registered_versions, run_dag, set_alias, with_serving
from test_serving import TRIP, running_app

from mlplatform.core.records import ModelRef
from mlplatform.stages import deployment

from conftest import load_dag_module

pytestmark = pytest.mark.slow

ALARM_KINDS = ("5xx", "p99-latency")
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlplatform-dev-serving"
RELEASE = "2026.12.1-3f2a9c1"
ROLE = "arn:aws:iam::123456789012:role/mlplatform-dev-sagemaker"
ADMIN_TOKEN = "deploy-token"


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


@pytest.mark.airflow_compat
def test_local_deploy_switches_the_serving_app_and_smoke_tests_it(
    versions: list[str], alerts: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlplatform.adapters.lake import Lake

    set_alias(USE_CASE.model_name, "champion", versions[0])
    dag = load_dag_module("deploy").build(USE_CASE)
    # poll_seconds=0: the app follows the registry only when the deploy DAG asks it to.
    with running_app(
        USE_CASE, lake=Lake(tmp_path.as_uri()), poll_seconds=0, challenger_share=0, admin_token=ADMIN_TOKEN
    ) as (base, http):
        monkeypatch.setenv("MLPLATFORM_SERVING_URL", base)
        monkeypatch.setenv("MLPLATFORM_SERVING_ADMIN_TOKEN", ADMIN_TOKEN)
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


def test_the_reload_call_carries_the_admin_token(
    versions: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlplatform.adapters.lake import Lake

    monkeypatch.delenv("MLPLATFORM_SERVING_ADMIN_TOKEN", raising=False)
    assert deployment.admin_headers() == {}
    set_alias(USE_CASE.model_name, "champion", versions[0])
    champion = ModelRef(USE_CASE.model_name, versions[0])
    with running_app(USE_CASE, lake=Lake(tmp_path.as_uri()), poll_seconds=0, admin_token=ADMIN_TOKEN) as (
        base,
        _,
    ):
        monkeypatch.setenv("MLPLATFORM_SERVING_ADMIN_TOKEN", "not-the-token")
        with pytest.raises(
            deployment.DeploymentFailed, match=r"refused the reload .*MLPLATFORM_SERVING_ADMIN"
        ):
            deployment.deploy_local(base, USE_CASE, champion, wait_seconds=5)
        monkeypatch.setenv("MLPLATFORM_SERVING_ADMIN_TOKEN", ADMIN_TOKEN)
        assert deployment.admin_headers() == {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        assert (
            deployment.deploy_local(base, USE_CASE, champion, wait_seconds=5)["smoke"]["version"]
            == versions[0]
        )


# -- SageMaker ---------------------------------------------------------------------------------------
@pytest.fixture
def sagemaker(s3_bucket: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A SageMaker client on moto with nothing of this use case in it, the lake in moto's S3,
    and the settings AWS has."""
    import boto3

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("MLPLATFORM_LAKE_URI", f"s3://{s3_bucket}/lake")
    monkeypatch.delenv("MLPLATFORM_SERVING_CAPTURE_PERCENT", raising=False)
    monkeypatch.setenv("MLPLATFORM_SAGEMAKER_ROLE_ARN", ROLE)
    monkeypatch.setenv("MLPLATFORM_SERVING_IMAGE_URI", IMAGE)
    monkeypatch.setenv("MLPLATFORM_SERVING_IMAGE_TAG", RELEASE)
    monkeypatch.setenv("MLPLATFORM_SERVING_KMS_KEY_ARN", "")
    release_image(moto_endpoint, IMAGE, RELEASE)
    client = boto3.client("sagemaker", endpoint_url=moto_endpoint)
    prefix = deployment.endpoint_name(USE_CASE)
    endpoint_alarms_on(moto_endpoint, prefix)
    for endpoint in client.list_endpoints(NameContains=prefix)["Endpoints"]:
        client.delete_endpoint(EndpointName=endpoint["EndpointName"])
    for config in client.list_endpoint_configs(NameContains=prefix)["EndpointConfigs"]:
        client.delete_endpoint_config(EndpointConfigName=config["EndpointConfigName"])
    for model in client.list_models(NameContains=prefix)["Models"]:
        client.delete_model(ModelName=model["ModelName"])
    return client


def aws_clients() -> dict[str, Any]:
    """The ECR and CloudWatch clients a deployment plan asks (moto, through AWS_ENDPOINT_URL)."""
    import boto3

    return {"ecr": boto3.client("ecr"), "cloudwatch": boto3.client("cloudwatch")}


def endpoint_alarms_on(moto_endpoint: str, endpoint: str) -> list[str]:
    """The alarms Terraform creates for one endpoint: named ``<endpoint>-...``, dimension
    ``EndpointName=<endpoint>`` (and per variant, as SageMaker's metrics are)."""
    import boto3

    cloudwatch = boto3.client("cloudwatch", endpoint_url=moto_endpoint)
    names = [f"{endpoint}-{kind}" for kind in ALARM_KINDS]
    for name, metric in zip(names, ("Invocation5XXErrors", "ModelLatency"), strict=True):
        cloudwatch.put_metric_alarm(
            AlarmName=name,
            Namespace="AWS/SageMaker",
            MetricName=metric,
            Dimensions=[
                {"Name": "EndpointName", "Value": endpoint},
                {"Name": "VariantName", "Value": "champion"},
            ],
            Statistic="Maximum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=1.0,
            ComparisonOperator="GreaterThanOrEqualToThreshold",
        )
    return names


def expected_deployment_config(canary: int, bake_seconds: int, endpoint: str) -> dict[str, Any]:
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
        "AutoRollbackConfiguration": {
            "Alarms": [{"AlarmName": f"{endpoint}-{kind}"} for kind in sorted(ALARM_KINDS)]
        },
    }


@pytest.fixture
def deferred_waits(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every SageMaker trigger the triggerer runs (dag.test() runs them in process)."""
    from airflow.providers.amazon.aws.triggers.sagemaker import SageMakerTrigger

    runs: list[dict[str, Any]] = []
    run = SageMakerTrigger.run

    async def recorded(trigger: Any) -> Any:
        runs.append(trigger.serialize()[1])
        async for event in run(trigger):
            yield event

    monkeypatch.setattr(SageMakerTrigger, "run", recorded)
    return runs


def update_with(monkeypatch: pytest.MonkeyPatch, client: Any, *, healthy: bool) -> list[dict[str, Any]]:
    """SageMaker's UpdateEndpoint, which moto lacks. The request goes through a Stubber, which
    checks every parameter against the AWS API model. A healthy new fleet leaves the endpoint
    on the new configuration; one that fails its health checks never takes traffic, and the
    endpoint stays in service on the previous configuration."""
    from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook
    from botocore.stub import ANY, Stubber

    updates: list[dict[str, Any]] = []

    def update_endpoint(hook: Any, request: dict[str, Any], **options: Any) -> dict[str, Any]:
        name = request["EndpointName"]
        stubber = Stubber(client)
        response = {"EndpointArn": f"arn:aws:sagemaker:us-east-1:123456789012:endpoint/{name}"}
        stubber.add_response(
            "update_endpoint",
            {**response, "ResponseMetadata": {"HTTPStatusCode": 200}},
            {
                "EndpointName": name,
                "EndpointConfigName": ANY,
                "RetainAllVariantProperties": False,
                "DeploymentConfig": expected_deployment_config(canary=10, bake_seconds=600, endpoint=name),
            },
        )
        with stubber:
            answer = client.update_endpoint(**request)
        stubber.assert_no_pending_responses()
        if healthy:
            client.delete_endpoint(EndpointName=name)
            client.create_endpoint(EndpointName=name, EndpointConfigName=request["EndpointConfigName"])
        updates.append(request)
        return answer

    monkeypatch.setattr(SageMakerHook, "update_endpoint", update_endpoint)
    return updates


def test_sagemaker_deploy_creates_then_updates_blue_green(
    versions: list[str],
    alerts: Any,
    sagemaker: Any,
    s3_bucket: str,
    deferred_waits: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import boto3
    from mlflow import MlflowClient

    use_case = with_serving(USE_CASE, target="sagemaker", challenger_share=0.1)
    dag = load_dag_module("deploy").build(use_case, endpoint_check_seconds=1)
    name = deployment.endpoint_name(use_case)
    champion, challenger, newer = (version_in_s3(s3_bucket, v) for v in versions)
    set_alias(USE_CASE.model_name, "champion", champion.version)
    set_alias(USE_CASE.model_name, "challenger", challenger.version)

    # First deployment: everything is created (moto implements these calls); the wait for
    # the endpoint is deferred to the triggerer and the task resumes when it is in service.
    states = run_dag(dag)

    assert states == {**dict.fromkeys(states, "success"), "sagemaker.update_endpoint": "skipped"}, states
    assert [run["job_name"] for run in deferred_waits] == [name]
    assert deferred_waits[0]["job_type"] == "endpoint"
    endpoint = sagemaker.describe_endpoint(EndpointName=name)
    assert endpoint["EndpointStatus"] == "InService"
    config = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    variants = {v["VariantName"]: v for v in config["ProductionVariants"]}
    assert variants["champion"]["InitialVariantWeight"] == pytest.approx(0.9)
    assert variants["challenger"]["InitialVariantWeight"] == pytest.approx(0.1)
    assert {v["InstanceType"] for v in variants.values()} == {use_case.serving.instance_type}
    capture = config["DataCaptureConfig"]
    assert capture["EnableCapture"] and capture["InitialSamplingPercentage"] == 100
    assert capture["DestinationS3Uri"] == f"s3://{s3_bucket}/lake/predictions/{USE_CASE.name}/capture"
    assert {o["CaptureMode"] for o in capture["CaptureOptions"]} == {"Input", "Output"}
    assert "text/csv" in capture["CaptureContentTypeHeader"]["CsvContentTypes"]
    assert "application/jsonlines" in capture["CaptureContentTypeHeader"]["JsonContentTypes"]
    registry = MlflowClient()
    for variant, ref in (("champion", champion), ("challenger", challenger)):
        model = sagemaker.describe_model(ModelName=variants[variant]["ModelName"])
        container = model["PrimaryContainer"]
        assert container["Image"] == f"{IMAGE}:{RELEASE}" and model["ExecutionRoleArn"] == ROLE
        assert container["Environment"]["MLPLATFORM_MODEL_URI"] == "/opt/ml/model"
        assert container["Environment"]["MLPLATFORM_MODEL_VERSION"] == ref.version
        logged = registry.get_logged_model(ref.source.removeprefix("models:/"))
        data = container["ModelDataSource"]["S3DataSource"]
        assert data["S3Uri"] == logged.artifact_location.rstrip("/") + "/"
        assert (data["S3DataType"], data["CompressionType"]) == ("S3Prefix", "None")

    # A newer champion whose fleet fails its health checks: the update never takes traffic,
    # the endpoint keeps serving the previous configuration, and Slack hears of it.
    set_alias(USE_CASE.model_name, "champion", newer.version)
    set_alias(USE_CASE.model_name, "challenger", None)
    client = boto3.client("sagemaker")
    failed = update_with(monkeypatch, client, healthy=False)

    states = run_dag(dag)

    assert states["sagemaker.update_endpoint"] == "success" and states["sagemaker.verify"] == "failed", states
    assert len(failed) == 1
    assert (
        sagemaker.describe_endpoint(EndpointName=name)["EndpointConfigName"] == config["EndpointConfigName"]
    )
    [alert] = alerts()
    assert "verify" in alert["text"] and "previous deployment keeps serving" in json.dumps(alert)

    # The challenger is promoted instead and its fleet is healthy: the update goes through.
    set_alias(USE_CASE.model_name, "champion", challenger.version)
    updates = update_with(monkeypatch, client, healthy=True)

    states = run_dag(dag)

    skipped = ["create_champion_model", "create_challenger_model", "create_endpoint"]  # its model exists
    skipped = [f"sagemaker.{task_id}" for task_id in skipped]
    assert states == {**dict.fromkeys(states, "success"), **dict.fromkeys(skipped, "skipped")}, states
    [update] = updates
    config = sagemaker.describe_endpoint_config(EndpointConfigName=update["EndpointConfigName"])
    models = {v["VariantName"]: v["ModelName"] for v in config["ProductionVariants"]}
    assert models["champion"] == models["challenger"] == variants["challenger"]["ModelName"]
    assert (
        sagemaker.describe_endpoint(EndpointName=name)["EndpointConfigName"] == update["EndpointConfigName"]
    )
    assert [run["job_name"] for run in deferred_waits] == [name] * 3  # every wait was deferred
    set_alias(USE_CASE.model_name, "champion", versions[0])
    assert len(alerts()) == 1


def test_a_rolled_back_update_is_a_failed_deployment(sagemaker: Any) -> None:
    use_case = with_serving(USE_CASE, target="sagemaker")
    champion = ModelRef(USE_CASE.model_name, "7", source="s3://models/mlflow/models/m-7/artifacts")
    plan = deployment.plan_sagemaker(sagemaker, use_case, champion, None, **aws_clients())
    assert plan["steps"] == ["create_champion_model", "create_endpoint_config", "create_endpoint"]
    sagemaker.create_model(**plan["create_champion_model"])
    sagemaker.create_endpoint_config(**plan["create_endpoint_config"])
    sagemaker.create_endpoint(**plan["create_endpoint"])
    assert deployment.verify_sagemaker(sagemaker, plan)["status"] == "InService"
    assert (
        deployment.plan_sagemaker(sagemaker, use_case, champion, None, **aws_clients())["steps"] == []
    )  # nothing twice

    newer = ModelRef(USE_CASE.model_name, "8", source="s3://models/mlflow/models/m-8/artifacts")
    newer_plan = deployment.plan_sagemaker(sagemaker, use_case, newer, None, **aws_clients())
    assert newer_plan["steps"] == ["create_champion_model", "create_endpoint_config", "update_endpoint"]
    # SageMaker rolled the update back: the endpoint serves the old configuration.
    with pytest.raises(deployment.DeploymentFailed, match="previous deployment keeps serving"):
        deployment.verify_sagemaker(sagemaker, newer_plan)


def test_a_lake_outside_s3_cannot_take_data_capture(sagemaker: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlplatform.adapters.sagemaker import NotConfigured

    use_case = with_serving(USE_CASE, target="sagemaker")
    champion = ModelRef(USE_CASE.model_name, "7", source="s3://models/mlflow/models/m-7/artifacts")
    monkeypatch.setenv("MLPLATFORM_SERVING_CAPTURE_PERCENT", "250")
    with pytest.raises(ValueError, match="MLPLATFORM_SERVING_CAPTURE_PERCENT must be a whole percent"):
        deployment.plan_sagemaker(sagemaker, use_case, champion, None, **aws_clients())
    monkeypatch.setenv("MLPLATFORM_SERVING_CAPTURE_PERCENT", "20")
    monkeypatch.setenv("MLPLATFORM_LAKE_URI", "file:///tmp/lake")
    with pytest.raises(NotConfigured, match="set MLPLATFORM_LAKE_URI to the lake bucket"):
        deployment.plan_sagemaker(sagemaker, use_case, champion, None, **aws_clients())


def test_each_endpoint_update_rolls_back_on_its_own_alarms_only(
    sagemaker: Any, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlplatform.core.spec import load_spec

    tip = load_spec("taxi_generous_tip")
    duration = with_serving(USE_CASE, target="sagemaker")
    tip = tip.model_copy(update={"serving": tip.serving.model_copy(update={"target": "sagemaker"})})
    own = {u.name: endpoint_alarms_on(moto_endpoint, deployment.endpoint_name(u)) for u in (duration, tip)}
    # A lookalike: named like this endpoint's alarms, but watching another endpoint.
    endpoint_alarms_on(moto_endpoint, f"{deployment.endpoint_name(duration)}-shadow")
    plans = {}
    for use_case in (duration, tip):
        name = deployment.endpoint_name(use_case)
        for endpoint in sagemaker.list_endpoints(NameContains=name)["Endpoints"]:
            sagemaker.delete_endpoint(EndpointName=endpoint["EndpointName"])
        for config in sagemaker.list_endpoint_configs(NameContains=name)["EndpointConfigs"]:
            sagemaker.delete_endpoint_config(EndpointConfigName=config["EndpointConfigName"])
        for model in sagemaker.list_models(NameContains=name)["Models"]:
            sagemaker.delete_model(ModelName=model["ModelName"])
        first = ModelRef(use_case.model_name, "1", source=f"s3://models/mlflow/{name}/m-1/artifacts")
        plan = deployment.plan_sagemaker(sagemaker, use_case, first, None, **aws_clients())
        sagemaker.create_model(**plan["create_champion_model"])
        sagemaker.create_endpoint_config(**plan["create_endpoint_config"])
        sagemaker.create_endpoint(**plan["create_endpoint"])
        second = ModelRef(use_case.model_name, "2", source=f"s3://models/mlflow/{name}/m-2/artifacts")
        plans[use_case.name] = deployment.plan_sagemaker(sagemaker, use_case, second, None, **aws_clients())

    for use_case in (duration, tip):
        update = plans[use_case.name]["update_endpoint"]
        rollback = update["DeploymentConfig"]["AutoRollbackConfiguration"]["Alarms"]
        assert [a["AlarmName"] for a in rollback] == sorted(own[use_case.name])
        assert update["EndpointName"] == deployment.endpoint_name(use_case)
    assert set(own[duration.name]).isdisjoint(own[tip.name])


def test_an_image_tag_missing_from_ecr_stops_the_deploy_before_the_endpoint(
    versions: list[str], alerts: Any, sagemaker: Any, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlplatform.adapters.sagemaker import ImageNotReleased

    use_case = with_serving(USE_CASE, target="sagemaker")
    champion = version_in_s3(s3_bucket, versions[0])
    monkeypatch.setenv("MLPLATFORM_SERVING_IMAGE_TAG", "2026.12.2-never-pushed")
    with pytest.raises(ImageNotReleased, match=r"2026\.12\.2-never-pushed is not in the ECR repository "):
        deployment.plan_sagemaker(sagemaker, use_case, champion, None, **aws_clients())

    set_alias(USE_CASE.model_name, "champion", champion.version)
    try:
        states = run_dag(load_dag_module("deploy").build(use_case, endpoint_check_seconds=1))
    finally:
        set_alias(USE_CASE.model_name, "champion", versions[0])

    assert states["sagemaker.plan"] == "failed", states
    assert {s for t, s in states.items() if t.startswith("sagemaker.") and t != "sagemaker.plan"} == {
        "upstream_failed"
    }
    name = deployment.endpoint_name(use_case)
    assert sagemaker.list_models(NameContains=name)["Models"] == []
    assert sagemaker.list_endpoints(NameContains=name)["Endpoints"] == []
    [alert] = alerts()
    text = json.dumps(alert)
    assert "mlplatform-dev-serving" in text and "2026.12.2-never-pushed" in text


def test_an_endpoint_that_never_reaches_in_service_fails_clearly_and_keeps_its_configuration(
    versions: list[str], alerts: Any, sagemaker: Any, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3
    from airflow.providers.amazon.aws.triggers.sagemaker import SageMakerTrigger
    from airflow.triggers.base import TriggerEvent

    use_case = with_serving(USE_CASE, target="sagemaker")
    dag = load_dag_module("deploy").build(use_case, endpoint_check_seconds=1)
    name = deployment.endpoint_name(use_case)
    first, second = (version_in_s3(s3_bucket, v) for v in versions[:2])
    set_alias(USE_CASE.model_name, "challenger", None)
    set_alias(USE_CASE.model_name, "champion", first.version)
    try:
        assert set(run_dag(dag).values()) <= {"success", "skipped"}
        serving = sagemaker.describe_endpoint(EndpointName=name)["EndpointConfigName"]

        # The new fleet never becomes healthy: the triggerer's waiter runs out of attempts.
        async def never_in_service(trigger: Any) -> Any:
            yield TriggerEvent(
                {
                    "status": "timeout",
                    "job_name": trigger.job_name,
                    "message": "Waiter endpoint_in_service failed: Max attempts exceeded",
                }
            )

        monkeypatch.setattr(SageMakerTrigger, "run", never_in_service)
        update_with(monkeypatch, boto3.client("sagemaker"), healthy=False)
        set_alias(USE_CASE.model_name, "champion", second.version)
        states = run_dag(dag)
    finally:
        set_alias(USE_CASE.model_name, "champion", versions[0])

    assert states["sagemaker.update_endpoint"] == "failed", states
    assert states["sagemaker.verify"] == "upstream_failed"
    assert sagemaker.describe_endpoint(EndpointName=name)["EndpointConfigName"] == serving
    [alert] = alerts()
    text = json.dumps(alert)
    assert f"endpoint {name} did not reach InService" in text
    assert f"It stays on configuration {serving}" in text and "Max attempts exceeded" in text
