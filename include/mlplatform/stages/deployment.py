"""Deployment: putting the registry's ``champion`` (and ``challenger``) in front of users.

Two targets, chosen by :func:`mlplatform.core.spec.serving_target` (the environment, unless
the spec pins one):

- ``local``: the serving app (:mod:`mlplatform.serving`) follows the registry aliases by
  itself; deploying asks it to reload now (``POST /admin/reload``, with the bearer token
  ``MLPLATFORM_SERVING_ADMIN_TOKEN`` when set), waits until it serves the new version and
  sends a smoke request that must be answered by that version.
- ``sagemaker``: a SageMaker model per registered version (the released serving image,
  ``<repository>:<release tag>``, checked to be in ECR before anything is created, with the
  version's artifacts copied from S3 to ``/opt/ml/model``), an endpoint configuration with
  a ``champion`` and, when the spec gives the challenger a share, a ``challenger``
  production variant weighted by that share, and data capture of every request and answer
  to the lake (read by monitoring); the endpoint is created, or updated with a blue/green
  deployment: a canary share of capacity first, a baking period, then the rest, rolled
  back automatically when one of the endpoint's own CloudWatch alarms fires (named
  ``<endpoint>-...`` with the dimension ``EndpointName=<endpoint>``, read from CloudWatch by
  :func:`~mlplatform.adapters.sagemaker.endpoint_alarms`). An update whose new fleet fails its health
  checks never takes traffic: the endpoint stays on its previous configuration and
  :func:`verify_sagemaker` fails the deployment, which alerts.

Names are content-addressed (``<use case>-v<version>-<hash>``), so re-running a deployment
creates nothing twice and a deployment of what already serves changes nothing. The
variant names never change, which blue/green updates require. A failed deployment leaves
the previous one serving: the serving app keeps its models until new ones have loaded,
and SageMaker keeps the old fleet until the new one has baked.

SageMaker names, requests and look-ups are :mod:`mlplatform.adapters.sagemaker`'s; task
failures reach Slack through the DAGs' failure callback
(:class:`mlplatform.airflow.dagkit.FailureNotifier`).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, TypedDict, cast

from mlplatform.adapters import settings
from mlplatform.adapters.sagemaker import (
    content_digest,
    data_capture_config,
    endpoint_alarms,
    endpoint_name,
    execution_role,
    existing,
    model_request,
    released_image,
    tags,
)
from mlplatform.core.records import ModelRef
from mlplatform.core.spec import UseCase

if TYPE_CHECKING:
    from mypy_boto3_sagemaker.client import SageMakerClient
    from mypy_boto3_sagemaker.literals import ProductionVariantInstanceTypeType
    from mypy_boto3_sagemaker.type_defs import (
        CreateEndpointConfigInputTypeDef,
        CreateEndpointInputTypeDef,
        CreateModelInputTypeDef,
        DeploymentConfigTypeDef,
        ProductionVariantTypeDef,
        UpdateEndpointInputTypeDef,
    )

log = logging.getLogger(__name__)

CANARY_PERCENT = 10
BAKE_MINUTES = 10
VARIANTS = ("champion", "challenger")
MAX_UPDATE_SECONDS = 3 * 3600


class DeploymentFailed(RuntimeError):
    """A deployment did not reach the state it asked for; the previous one still serves."""


# -- local: the serving app --------------------------------------------------------------------
def sample_trip(use_case: UseCase, columns: list[str]) -> dict[str, Any]:
    """A plausible trip with every input column: a weekday-morning Midtown trip.

    Inputs a request may leave out take the value the model assumes for them
    (:func:`~mlplatform.core.modelling.input_defaults`, e.g. the use case's taxi type).
    """
    from mlplatform.core.modelling import input_defaults
    from mlplatform.core.tlc import NORMALISED_SCHEMA

    known = {
        "pickup_datetime": "2024-03-05T08:30:00",
        "pu_location_id": 161,
        "do_location_id": 236,
        "trip_distance": 2.1,
        **input_defaults(use_case),
    }

    def placeholder(column: str) -> Any:
        kind = str(NORMALISED_SCHEMA.field(column).type)
        return 1 if kind.startswith("int") else 0.0 if kind == "double" else ""

    return {column: known[column] if column in known else placeholder(column) for column in columns}


def deploy_local(
    serving_url: str, use_case: UseCase, champion: ModelRef, wait_seconds: float = 120.0
) -> dict[str, Any]:
    """Make the serving app at ``serving_url`` serve ``champion`` and prove it answers.

    Raises :class:`DeploymentFailed` when the app cannot be reached, does not switch in
    ``wait_seconds``, or the smoke request is not answered by ``champion``.
    """
    import httpx

    base = serving_url.rstrip("/")
    deadline = time.monotonic() + wait_seconds
    health: dict[str, Any] = {}
    with httpx.Client(timeout=30) as http:
        try:
            response = http.post(f"{base}/admin/reload", headers=admin_headers())
        except httpx.HTTPError as exc:
            raise DeploymentFailed(
                f"the serving app at {base} cannot be reached ({exc}); start it "
                "(see include/serving/README.md) or set MLPLATFORM_SERVING_URL"
            ) from None
        if response.status_code in (401, 403):
            raise DeploymentFailed(
                f"the serving app at {base} refused the reload ({response.status_code}: "
                f"{response.text[:300]}): set MLPLATFORM_SERVING_ADMIN_TOKEN here to the token the app "
                "was started with"
            )
        if response.status_code != 200:
            raise DeploymentFailed(
                f"the serving app at {base} could not load the new models ({response.status_code}: "
                f"{response.text[:300]}); it keeps serving the previous version"
            )
        while True:
            health = http.get(f"{base}/health").json()
            if str((health.get("champion") or {}).get("version")) == champion.version:
                break
            if time.monotonic() > deadline:
                raise DeploymentFailed(
                    f"the serving app at {base} still serves version {health.get('champion')} of "
                    f"{champion.name} after {wait_seconds:.0f}s, not {champion.version}; is it following "
                    f"the registry at {settings.tracking_uri()}?"
                )
            time.sleep(1)
        trip = sample_trip(use_case, health.get("inputs") or [])
        smoke = http.post(f"{base}/predict", json=trip, headers={"X-Variant": "champion"})
    if smoke.status_code != 200:
        raise DeploymentFailed(
            f"smoke request to {base}/predict failed ({smoke.status_code}: {smoke.text[:300]})"
        )
    answer = smoke.json()
    if str(answer.get("version")) != champion.version:
        raise DeploymentFailed(
            f"smoke request was answered by version {answer.get('version')}, not {champion.version}"
        )
    log.info(
        "serving app at %s answers with %s version %s: %s", base, champion.name, champion.version, answer
    )
    return {"serving_url": base, "health": health, "smoke": answer}


def admin_headers() -> dict[str, str]:
    """The serving app's admin credentials: a bearer token when ``MLPLATFORM_SERVING_ADMIN_TOKEN`` is set."""
    token = settings.get("MLPLATFORM_SERVING_ADMIN_TOKEN").strip()
    return {"Authorization": f"Bearer {token}"} if token else {}


def endpoint_config_request(
    use_case: UseCase, champion_model: str, challenger_model: str | None
) -> CreateEndpointConfigInputTypeDef:
    """The CreateEndpointConfig request: a ``champion`` variant, and a ``challenger`` by share.

    The set of variants depends only on the spec (a challenger share above zero means two
    variants), so it never changes between deployments: blue/green updates need that.
    Without a challenger version the challenger variant serves the champion model. Every
    request and answer is captured to the lake (:func:`data_capture_config`) for monitoring.
    """
    share = use_case.serving.challenger_share
    variants = [("champion", champion_model, 1.0 - share)]
    if share > 0:
        variants.append(("challenger", challenger_model or champion_model, share))
    production_variants: list[ProductionVariantTypeDef] = [
        {
            "VariantName": variant,
            "ModelName": model,
            "InitialInstanceCount": 1,
            # The spec names any instance type; SageMaker refuses one it does not serve on.
            "InstanceType": cast("ProductionVariantInstanceTypeType", use_case.serving.instance_type),
            "InitialVariantWeight": round(weight, 4),
        }
        for variant, model, weight in variants
    ]
    config: CreateEndpointConfigInputTypeDef = {
        "EndpointConfigName": "",  # named after its content, below
        "ProductionVariants": production_variants,
    }
    kms = settings.get("MLPLATFORM_SERVING_KMS_KEY_ARN")
    if kms:
        config["KmsKeyId"] = kms
    config["DataCaptureConfig"] = data_capture_config(use_case, settings.lake_uri(), kms)
    config["Tags"] = tags(use_case)
    config["EndpointConfigName"] = f"{endpoint_name(use_case)}-{content_digest(config, 'EndpointConfigName')}"
    return config


def deployment_config(
    endpoint: str,
    alarms: list[str],
    canary_percent: int = CANARY_PERCENT,
    bake_minutes: int = BAKE_MINUTES,
) -> DeploymentConfigTypeDef:
    """Blue/green with a canary: ``canary_percent`` of capacity first, bake, then the rest.

    Each baking period lasts ``bake_minutes``; any of ``alarms`` (the endpoint's own) firing
    in that time rolls all traffic back to the old fleet.
    """
    config: DeploymentConfigTypeDef = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "CANARY",
                "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": canary_percent},
                "WaitIntervalInSeconds": bake_minutes * 60,
            },
            "TerminationWaitInSeconds": bake_minutes * 60,
            "MaximumExecutionTimeoutInSeconds": MAX_UPDATE_SECONDS,
        }
    }
    if alarms:
        config["AutoRollbackConfiguration"] = {"Alarms": [{"AlarmName": name} for name in alarms]}
    else:
        log.warning(
            "endpoint %s has no CloudWatch alarm named %s-... with the dimension EndpointName=%s: the "
            "blue/green update cannot roll back by itself; run `terraform apply` (it creates them)",
            endpoint,
            endpoint,
            endpoint,
        )
    return config


# The steps of a SageMaker deployment, named as the deploy DAG's tasks are.
STEPS = (
    "create_champion_model",
    "create_challenger_model",
    "create_endpoint_config",
    "create_endpoint",
    "update_endpoint",
)


class NoRequest(TypedDict):
    """A step with nothing to do: what it would create exists already (its task skips itself)."""


class SageMakerPlan(TypedDict):
    """A SageMaker deployment: the endpoint, the configuration and models it will serve, the
    configuration it serves now, one request per step of :data:`STEPS` (empty where the step
    has nothing to do) and ``steps``, the steps with something to do."""

    endpoint: str
    endpoint_config: str
    previous_endpoint_config: str | None
    variants: dict[str, str]
    versions: dict[str, str | None]
    create_champion_model: CreateModelInputTypeDef | NoRequest
    create_challenger_model: CreateModelInputTypeDef | NoRequest
    create_endpoint_config: CreateEndpointConfigInputTypeDef | NoRequest
    create_endpoint: CreateEndpointInputTypeDef | NoRequest
    update_endpoint: UpdateEndpointInputTypeDef | NoRequest
    steps: list[str]


class EndpointServing(TypedDict):
    """A verified deployment: the endpoint in service, its configuration and the versions it serves."""

    endpoint: str
    status: str
    endpoint_config: str
    versions: dict[str, str | None]


def plan_sagemaker(
    client: SageMakerClient,
    use_case: UseCase,
    champion: ModelRef,
    challenger: ModelRef | None,
    canary_percent: int = CANARY_PERCENT,
    bake_minutes: int = BAKE_MINUTES,
    registry_client: Any = None,
    *,
    ecr: Any,
    cloudwatch: Any,
) -> SageMakerPlan:
    """Every SageMaker request a deployment needs, given what already exists.

    A new endpoint is created; a running one is
    updated blue/green, unless it already serves the planned configuration, and rolled back
    by its own alarms (read from ``cloudwatch``). Each model's data is its version's
    artifacts in S3, resolved through ``registry_client``. The release's image must be in
    ``ecr``: otherwise :class:`~mlplatform.adapters.sagemaker.ImageNotReleased`, before any
    request is planned.
    """
    image, role = released_image(ecr), execution_role()
    models = {"champion": model_request(use_case, champion, image, role, registry_client)}
    if challenger is not None and challenger.version != champion.version:
        models["challenger"] = model_request(use_case, challenger, image, role, registry_client)
    config = endpoint_config_request(
        use_case,
        models["champion"]["ModelName"],
        models["challenger"]["ModelName"] if "challenger" in models else None,
    )
    variants = {v["VariantName"]: v["ModelName"] for v in config["ProductionVariants"]}
    new_models: dict[str, CreateModelInputTypeDef | NoRequest] = {"champion": {}, "challenger": {}}
    for role_name, request in models.items():
        if (
            request["ModelName"] in variants.values()
            and existing(client.describe_model, ModelName=request["ModelName"]) is None
        ):
            new_models[role_name] = request
    new_config: CreateEndpointConfigInputTypeDef | NoRequest = {}
    if existing(client.describe_endpoint_config, EndpointConfigName=config["EndpointConfigName"]) is None:
        new_config = config
    name = endpoint_name(use_case)
    endpoint = existing(client.describe_endpoint, EndpointName=name)
    create: CreateEndpointInputTypeDef | NoRequest = {}
    update: UpdateEndpointInputTypeDef | NoRequest = {}
    if endpoint is None:
        create = {
            "EndpointName": name,
            "EndpointConfigName": config["EndpointConfigName"],
            "Tags": tags(use_case),
        }
    elif endpoint["EndpointConfigName"] != config["EndpointConfigName"]:
        update = {
            "EndpointName": name,
            "EndpointConfigName": config["EndpointConfigName"],
            "RetainAllVariantProperties": False,
            "DeploymentConfig": deployment_config(
                name, endpoint_alarms(cloudwatch, name), canary_percent, bake_minutes
            ),
        }
    plan: SageMakerPlan = {
        "endpoint": name,
        "endpoint_config": config["EndpointConfigName"],
        "previous_endpoint_config": endpoint["EndpointConfigName"] if endpoint else None,
        "variants": variants,
        "versions": {"champion": champion.version, "challenger": challenger.version if challenger else None},
        "create_champion_model": new_models["champion"],
        "create_challenger_model": new_models["challenger"],
        "create_endpoint_config": new_config,
        "create_endpoint": create,
        "update_endpoint": update,
        "steps": [],
    }
    plan["steps"] = [step for step in STEPS if plan.get(step)]
    return plan


def verify_sagemaker(client: SageMakerClient, plan: SageMakerPlan) -> EndpointServing:
    """Check the endpoint is in service with the planned configuration.

    A blue/green update that rolled back leaves the endpoint in service on the previous
    configuration: that is a failed deployment (the previous one still serves).
    """
    endpoint = client.describe_endpoint(EndpointName=plan["endpoint"])
    status, config = endpoint["EndpointStatus"], endpoint.get("EndpointConfigName")
    if status != "InService" or config != plan["endpoint_config"]:
        reason = endpoint.get("FailureReason") or "the update was rolled back or has not finished"
        raise DeploymentFailed(
            f"endpoint {plan['endpoint']} is {status} on configuration {config}, "
            f"not {plan['endpoint_config']} ({reason}); the previous deployment keeps serving. "
            "Check the CloudWatch alarms and the endpoint's events in the SageMaker console before "
            "deploying again"
        )
    return {
        "endpoint": plan["endpoint"],
        "status": status,
        "endpoint_config": config,
        "versions": plan["versions"],
    }
