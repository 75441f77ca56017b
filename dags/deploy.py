"""
# `<use case>_deploy`: put the registry's champion (and challenger) in front of users

One DAG per use case whose spec says `serving.mode: endpoint` or `both`.

**What it does.** Resolves the registry aliases `champion` and `challenger` to versions,
then deploys them where the environment serves (`MLPLATFORM_ENV`: `local` → the serving
app, `aws` → SageMaker; a spec's `serving.target` may pin one):

- `local`: asks the serving app (`MLPLATFORM_SERVING_URL`) to reload now, waits until it
  serves the new champion, and sends a smoke request that must be answered by that
  version. The app keeps its previous models until the new ones have loaded.
- `sagemaker` (the task group `sagemaker`): checks the release's image
  (`MLPLATFORM_SERVING_IMAGE_URI`:`MLPLATFORM_SERVING_IMAGE_TAG`) is in ECR before touching
  anything, creates a SageMaker model per version (that image), an endpoint configuration
  with a `champion` and a `challenger` production
  variant weighted by `serving.challenger_share`, and creates the endpoint or updates it
  blue/green: a canary share of capacity first, a baking period, then the rest, rolled
  back automatically when one of the endpoint's own CloudWatch alarms fires (named
  `<endpoint>-...`, dimension `EndpointName=<endpoint>`). Names are
  content-addressed, so a re-run creates nothing twice. Each model's data is its version's
  artifacts in S3, and the endpoint captures every request and answer to the lake for the
  monitor DAG. The waits for the endpoint are deferred to the triggerer (no worker slot is
  held for hours); the last task checks the endpoint really serves the new configuration.

**Triggers.** The Asset `<use case>_champion` (updated by a promotion), and on demand:
trigger it to redeploy what the registry says now (for example after changing the
challenger share in the spec).

**When it fails.** The previous deployment keeps serving, Slack gets an alert naming the
failed task and why, and the run is marked failed. Look at the failed task's log; for
SageMaker, also at the endpoint's events and the alarms in the console. An image tag that
is not in ECR stops `plan` before anything is created; an endpoint that never reaches
InService fails its create or update task with SageMaker's reason, and the endpoint stays
on its previous configuration. Re-running is safe: what already exists is reused.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import DAG, Param, TaskGroup, task

from mlplatform.adapters import settings
from mlplatform.airflow import dagkit
from mlplatform.core.records import ModelRef
from mlplatform.core.spec import UseCase, serving_target

if TYPE_CHECKING:
    from mlplatform.stages import deployment

STAGE = Path(__file__).stem
ENDPOINT_CHECK_SECONDS = 30
# Longer than a blue/green update may take (canary, baking, the rest, baking: at most 3 h).
ENDPOINT_WAIT_SECONDS = 4 * 3600
PARAMS = {
    "wait_seconds": Param(
        300,
        type="integer",
        minimum=5,
        maximum=3600,
        title="Wait (local)",
        description="Target local: seconds the serving app may take to serve the new champion.",
    ),
    "canary_percent": Param(
        10,
        type="integer",
        minimum=1,
        maximum=50,
        title="Canary share (SageMaker)",
        description="Target sagemaker: percent of the new fleet's capacity that takes traffic first.",
    ),
    "bake_minutes": Param(
        10,
        type="integer",
        minimum=0,
        maximum=240,
        title="Baking period (SageMaker)",
        description="Target sagemaker: minutes the canary, then the full fleet, is watched by "
        "the rollback alarms before the old fleet goes.",
    ),
}


def build(use_case: UseCase, endpoint_check_seconds: int = ENDPOINT_CHECK_SECONDS) -> DAG:
    """The deploy DAG of one use case."""
    # One run at a time: deployments of one endpoint never overlap.
    with dagkit.stage_dag(
        use_case,
        STAGE,
        schedule=[dagkit.model_asset(use_case, "champion")],
        doc_md=__doc__,
        params=PARAMS,
    ) as dag:

        @task
        @dagkit.records
        def resolve_versions() -> dict[str, ModelRef | None]:
            """The versions `champion` and `challenger` point at now (no challenger is fine)."""
            from mlplatform.adapters import registry

            client = registry.client()
            champion = registry.resolve(use_case.model_name, "champion", client)
            try:
                challenger = registry.resolve(use_case.model_name, "challenger", client)
            except registry.ModelNotFound:
                challenger = None
            return {"champion": champion, "challenger": challenger}

        versions = resolve_versions()
        if serving_target(use_case, settings.environment()) == "local":
            _deploy_locally(use_case, versions)
        else:
            _deploy_to_sagemaker(use_case, versions, endpoint_check_seconds)
    return dag


def _deploy_locally(use_case: UseCase, versions: Any) -> None:
    @task
    @dagkit.records
    def reload_and_smoke_test(
        versions: dict[str, ModelRef | None], params: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Make the serving app switch to the new champion now, and check it answers with it."""
        from airflow.sdk.exceptions import AirflowFailException

        from mlplatform.adapters import settings
        from mlplatform.stages import deployment

        serving_url, wait_seconds = settings.get("MLPLATFORM_SERVING_URL"), (params or {})["wait_seconds"]
        try:
            return deployment.deploy_local(serving_url, use_case, versions["champion"], wait_seconds)
        except deployment.DeploymentFailed as exc:
            raise AirflowFailException(str(exc)) from None

    reload_and_smoke_test(versions)


# A task group's task definitions stay together, like a DAG's `build` (dags/README.md).
def _deploy_to_sagemaker(use_case: UseCase, versions: Any, check_seconds: int) -> None:
    from airflow.providers.amazon.aws.operators.sagemaker import (
        SageMakerEndpointConfigOperator,
        SageMakerEndpointOperator,
        SageMakerModelOperator,
    )

    from mlplatform.airflow.sagemaker_operators import clear_operator

    # One group in the graph: plan, the SageMaker requests, and the check that the endpoint serves.
    with TaskGroup(group_id="sagemaker", tooltip="Create or update the SageMaker endpoint, blue/green"):

        @task(multiple_outputs=True)
        @dagkit.records
        def plan(
            versions: dict[str, ModelRef | None], params: Mapping[str, Any] | None = None
        ) -> deployment.SageMakerPlan:
            """Every SageMaker request this deployment needs, given what already exists."""
            from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
            from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook
            from airflow.sdk.exceptions import AirflowFailException

            from mlplatform.adapters import sagemaker
            from mlplatform.stages import deployment

            client = SageMakerHook(aws_conn_id=None).conn  # type: ignore[no-untyped-call]
            try:
                return deployment.plan_sagemaker(
                    client,
                    use_case,
                    versions["champion"],
                    versions["challenger"],
                    canary_percent=(params or {})["canary_percent"],
                    bake_minutes=(params or {})["bake_minutes"],
                    ecr=AwsBaseHook(aws_conn_id=None, client_type="ecr").conn,
                    cloudwatch=AwsBaseHook(aws_conn_id=None, client_type="cloudwatch").conn,
                )
            except (sagemaker.ImageNotReleased, sagemaker.NotConfigured) as exc:
                raise AirflowFailException(str(exc)) from None  # retrying would not change the answer

        @task(trigger_rule="none_failed")
        def verify(plan: deployment.SageMakerPlan) -> deployment.EndpointServing:
            """Check the endpoint is in service on the new configuration (a rollback is a failure)."""
            from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook
            from airflow.sdk.exceptions import AirflowFailException

            from mlplatform.stages import deployment

            client = SageMakerHook(aws_conn_id=None).conn  # type: ignore[no-untyped-call]
            try:
                return deployment.verify_sagemaker(client, plan)
            except deployment.DeploymentFailed as exc:
                raise AirflowFailException(str(exc)) from None

        # aws_conn_id=None: the default credential chain, i.e. the MWAA execution role in AWS.
        # A step whose request is empty skips itself: what it would create exists already.
        planned: Any = plan(versions)  # an XComArg: each step's request is one key of it
        aws = {"aws_conn_id": None, "trigger_rule": "none_failed"}
        models = [
            clear_operator(SageMakerModelOperator)(
                task_id=f"create_{role}_model", config=planned[f"create_{role}_model"], **aws
            )
            for role in ("champion", "challenger")
        ]
        create_endpoint_config = clear_operator(SageMakerEndpointConfigOperator)(
            task_id="create_endpoint_config", config=planned["create_endpoint_config"], **aws
        )
        # deferrable: the wait for the endpoint runs in the triggerer, not in a worker slot.
        endpoint = {**aws, "check_interval": check_seconds, "wait_for_completion": True, "deferrable": True}
        create_endpoint = clear_operator(SageMakerEndpointOperator)(
            task_id="create_endpoint", operation="create", config=planned["create_endpoint"], **endpoint
        )
        update_endpoint = clear_operator(SageMakerEndpointOperator)(
            task_id="update_endpoint",
            operation="update",
            config=planned["update_endpoint"],
            max_ingestion_time=ENDPOINT_WAIT_SECONDS,
            **endpoint,
        )
        models >> create_endpoint_config >> [create_endpoint, update_endpoint] >> verify(planned)


for _use_case in dagkit.use_cases():
    if _use_case.serving.mode in ("endpoint", "both"):
        globals()[dagkit.dag_id(_use_case, STAGE)] = build(_use_case)
