"""The amazon provider's SageMaker operators as the DAGs use them.

Two habits on top of the provider's operators (:func:`clear_operator`):

- a step whose rendered ``config`` is empty skips itself: what it would create exists already
  (the plans in :mod:`mlplatform.stages.deployment` leave such steps empty);
- a job or endpoint wait that fails ends the task once, without retries (a retry would only
  start the same failing job again), with the reason SageMaker recorded (``FailureReason``,
  and a processing job's ``ExitMessage``) in the message. The DAGs' failure notifier
  (:class:`mlplatform.airflow.dagkit.FailureNotifier`) posts that message to Slack once.

For an endpoint that never reaches ``InService`` the message also names the configuration
the endpoint stays on: SageMaker keeps the previous fleet until the new one is healthy, so
a failed update never leaves a half-updated endpoint.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypedDict

if TYPE_CHECKING:
    from mypy_boto3_sagemaker.type_defs import DescribeTrainingJobResponseTypeDef

# Which SageMaker resource each operator waits for, and where its config names it.
_WAITS = {
    "SageMakerTrainingOperator": ("Training", "TrainingJobName"),
    "SageMakerProcessingOperator": ("Processing", "ProcessingJobName"),
    "SageMakerTransformOperator": ("Transform", "TransformJobName"),
    "SageMakerEndpointOperator": ("endpoint", "EndpointName"),
}


class TrainingResult(TypedDict):
    """What SageMakerTrainingOperator returns (its XCom): the job's DescribeTrainingJob answer,
    made JSON-able (its times become strings)."""

    Training: DescribeTrainingJobResponseTypeDef


def clear_operator(operator: type) -> type:
    """``operator``, skipping itself on an empty config and failing once with SageMaker's reason."""

    class Clear(operator):  # type: ignore[misc]  # a class built at run time
        def execute(self, context: Any) -> Any:
            from airflow.sdk.exceptions import AirflowSkipException

            if not self.config:
                raise AirflowSkipException("nothing to do: what this step creates exists already")
            try:
                return super().execute(context)
            except Exception as exc:
                self._fail(exc, None)

        def execute_complete(self, context: Any, event: Mapping[str, Any] | None = None) -> Any:
            try:
                return super().execute_complete(context, event)
            except Exception as exc:
                self._fail(exc, (event or {}).get("job_name"))

        def _fail(self, exc: Exception, name: str | None) -> Any:
            from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException

            if (
                isinstance(exc, (AirflowSkipException, AirflowFailException))
                or operator.__name__ not in _WAITS
            ):
                raise exc
            if not isinstance(exc, (AirflowException, RuntimeError)):
                raise exc  # a client error before anything ran: retrying may help
            kind, key = _WAITS[operator.__name__]
            config = self.config.get("Endpoint", self.config) if kind == "endpoint" else self.config
            name = name or str(config.get(key))
            raise AirflowFailException(failure_message(self.hook.conn, kind, name, config, exc)) from None

    Clear.__name__ = Clear.__qualname__ = operator.__name__
    return Clear


def failure_message(client: Any, kind: str, name: str, config: Mapping[str, Any], error: Exception) -> str:
    """What went wrong, in SageMaker's words, and what state it left."""
    from mlplatform.adapters import sagemaker

    try:
        reason = sagemaker.failure_reason(client, kind, name)
    except Exception as exc:  # the message must still go out when SageMaker cannot be asked
        reason = f"could not be described ({exc}); the wait ended with: {error}"
    if kind != "endpoint":
        return (
            f"SageMaker {kind.lower()} job {name} failed: {reason}. Its logs are in CloudWatch "
            f"(/aws/sagemaker/{kind}Jobs, stream {name}/...); fix the cause, then clear this task"
        )
    wanted = config.get("EndpointConfigName")
    try:
        current = client.describe_endpoint(EndpointName=name).get("EndpointConfigName")
    except Exception:
        current = "unknown"
    state = (
        f"It stays on configuration {current}, which keeps serving: the new fleet never took all traffic"
        if current != wanted
        else "SageMaker left it on that configuration and nothing served before it (a new endpoint)"
    )
    return (
        f"endpoint {name} did not reach InService on configuration {wanted} ({reason}; the wait ended "
        f"with: {error}). {state}. Check the endpoint's events, its container's logs in CloudWatch and "
        "its alarms before deploying again"
    )


def release_image_and_role() -> tuple[str, str]:
    """The release's platform image (checked to be in ECR) and the execution role SageMaker jobs run as.

    Either missing fails the task without retrying: a retry would not change the answer.
    """
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
    from airflow.sdk.exceptions import AirflowFailException

    from mlplatform.adapters import sagemaker

    try:
        image = sagemaker.released_image(AwsBaseHook(aws_conn_id=None, client_type="ecr").conn)
        return image, sagemaker.execution_role()
    except (sagemaker.ImageNotReleased, sagemaker.NotConfigured) as exc:
        raise AirflowFailException(str(exc)) from None
