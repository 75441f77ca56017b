"""
# `<use case>_train`: a tracked, registered challenger from the validated data

One DAG per use case.

**Triggers.** Every update of the Asset `<use case>_validated` (a month's validated snapshot
became current); the monitor DAG when production breaches its thresholds (with a `reason`
and `since` in the run conf); or by hand from the trigger form, with these params:

- `window_months`: months of validated data to use, the newest `training.validation_months`
  of them held out for validation (default: the spec's `training.window_months`);
- `since`: optional first month to train on (the monitor passes the breached window, so
  the retrain learns the changed data alone; with too few months, their last days are
  held out for validation);
- `family`: the spec's default model family, or its baseline;
- `reason`: why this model is trained, recorded with the run.

**What it does.**

0. `needs_training`: runs started by new data go on only with enough validated months and,
   when the spec's `training.on_new_data` is `first_model`, only while there is no
   champion (level 4: monitoring decides retrains). Other runs always go on.
1. `assemble`: reads the current validated snapshots of the window, keeps the rows the
   spec models and their target, splits by time (train on the older months, validate on
   the newest) and writes both sets to `features/<use case>/training/<run id>/` in the lake.
2. `fit_and_log`: fits the baseline and the chosen family (with the spec's small,
   bounded hyperparameter search) and logs one MLflow run in the experiment `<use case>`:
   params, validation metrics overall and per slice, the baseline's metrics, the snapshots
   as dataset inputs with their digests, plots, code version and this run's id, and the
   model (a `TripModel` in its MLflow pyfunc wrapper, with signature and input example), and the DAG bundle
   version this code ran from (`airflow.bundle_version`: the Git commit with `GitDagBundle`).
3. `register_challenger`: registers the model as a new version of `<use case>` and points
   the alias `challenger` at it, which updates the Asset `<use case>_challenger` and so
   starts `<use case>_promote`.

**Where it runs.** Locally (`MLPLATFORM_ENV=local`) `fit_and_log` runs in the task. On AWS
(`MLPLATFORM_ENV=aws`, unless the spec pins `serving.target`) the fit runs as a SageMaker
Training job on the release's platform image (task group `sagemaker_training`): `job_config`
builds the request (the assembled sets as the channels `train`, `validation`, `lineage`; the
params as hyperparameters), `train` starts it and waits deferred in the triggerer, and
`collect` reads the run id and model URI the job left in its `model.tar.gz`. A failed job
fails `train` once, with SageMaker's `FailureReason` in the alert.

**Operate.** Re-running a run retrains on the same snapshots and registers a new version.
The MLflow run links back here through the `airflow.run_id` tag. Outside Airflow the same
code runs as `mlplatform train --use-case <name> --train FILE... --valid FILE...`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import DAG, Param, task

from mlplatform.adapters import settings
from mlplatform.airflow import dagkit
from mlplatform.core.records import TrainedRun
from mlplatform.core.spec import UseCase, serving_target

if TYPE_CHECKING:
    from mypy_boto3_sagemaker.type_defs import CreateTrainingJobRequestTypeDef

    from mlplatform.airflow.sagemaker_operators import TrainingResult
    from mlplatform.stages import training

STAGE = Path(__file__).stem
TRAINING_CHECK_SECONDS = 60
_REASONS = {"asset_triggered": "new validated data", "scheduled": "schedule", "manual": "manual run"}


def _params(use_case: UseCase) -> dict[str, Param]:
    """The trigger form: the window, the first month, the model family and the reason."""
    training_spec = use_case.training
    return {
        "window_months": Param(
            training_spec.window_months,
            type="integer",
            minimum=training_spec.validation_months + 1,
            maximum=36,
            title="Training window (months)",
            description="Newest months of validated data to use; the newest "
            f"{training_spec.validation_months} are held out for validation.",
        ),
        "since": dagkit.month_param(
            "Optional YYYY-MM: train on this and later months only (empty: whole window).",
            "Train from month",
            default="",
        ),
        "family": Param(
            use_case.model.family,
            type="string",
            enum=sorted({use_case.model.family, use_case.model.baseline}),
            title="Model family",
            description="Which estimator of the use case's model module to train (the baseline is "
            "always fitted too, for comparison).",
        ),
        "reason": Param(
            "",
            type="string",
            maxLength=500,
            title="Reason",
            description="Why this model is trained; recorded as the MLflow run's mlplatform.reason tag.",
        ),
    }


def build(use_case: UseCase, job_check_seconds: int = TRAINING_CHECK_SECONDS) -> DAG:
    """The train DAG of one use case."""
    with dagkit.stage_dag(
        use_case, STAGE, schedule=[dagkit.validated_asset(use_case)], doc_md=__doc__, params=_params(use_case)
    ) as dag:

        @task.short_circuit
        def needs_training(dag_run: Any = None) -> bool:
            """Skip a run started by new data when the spec's `training.on_new_data` says so."""
            if _run_type(dag_run) != "asset_triggered":
                return True
            from mlplatform.adapters.lake import Lake
            from mlplatform.stages import training

            decision = training.on_new_data(Lake(), use_case)
            print(f"{'training' if decision.retrain else 'not training'}: {decision.explanation}")
            return decision.retrain

        @task
        @dagkit.records
        def assemble(**context: Any) -> training.TrainingSet:
            """Write the training and validation sets of the window to the lake; return their URIs."""
            from mlplatform.adapters.lake import Lake
            from mlplatform.stages import training

            given, key = context["params"], context["run_id"]
            window = int(given.get("window_months") or use_case.training.window_months)
            return training.assemble_training_set(
                Lake(), use_case, key=key, window_months=window, since=given.get("since") or None
            )

        @task
        @dagkit.records
        def fit_and_log(sets: training.TrainingSet, **context: Any) -> TrainedRun:
            """Fit the baseline and the chosen family, log the MLflow run; return its id and model URI."""
            from mlplatform.adapters.lake import Lake
            from mlplatform.stages import training

            family, reason = _family_and_reason(use_case, context)
            run_id, tags = context["run_id"], training.bundle_tags(context["ti"])
            return training.fit_and_log(
                Lake(), use_case, sets, family=family, reason=reason, airflow_run_id=run_id, extra_tags=tags
            )

        @task(outlets=[dagkit.model_asset(use_case, "challenger")])
        @dagkit.records
        def register_challenger(trained: TrainedRun) -> TrainedRun:
            """Register the logged model as a new version and point `challenger` at it."""
            from mlplatform.adapters import registry

            version = registry.register_challenger(use_case, trained.run_id, trained.model_uri)
            return trained.registered(version)

        needs_training() >> (assembled := assemble())
        if serving_target(use_case, settings.environment()) == "local":
            register_challenger(fit_and_log(assembled))
        else:
            register_challenger(_fit_on_sagemaker(use_case, assembled, job_check_seconds))
    return dag


# A task group's task definitions stay together, like a DAG's `build` (dags/README.md).
def _fit_on_sagemaker(use_case: UseCase, assembled: Any, check_seconds: int) -> Any:
    from airflow.providers.amazon.aws.operators.sagemaker import SageMakerTrainingOperator
    from airflow.sdk import TaskGroup

    from mlplatform.airflow.sagemaker_operators import clear_operator, release_image_and_role

    with TaskGroup(
        group_id="sagemaker_training", tooltip="Fit and log the model in a SageMaker Training job"
    ):

        @task
        @dagkit.records
        def job_config(assembled: training.TrainingSet, **context: Any) -> CreateTrainingJobRequestTypeDef:
            """The Training job: the release's image, the assembled sets as channels, the params."""
            from mlplatform.adapters.lake import Lake
            from mlplatform.stages import training

            image, role = release_image_and_role()
            family, reason = _family_and_reason(use_case, context)
            return training.job_request(
                Lake(),
                use_case,
                assembled,
                image=image,
                role=role,
                family=family,
                reason=reason,
                airflow_run_id=context["run_id"],
                tags=training.bundle_tags(context["ti"]),
            )

        # deferrable: the wait for the job runs in the triggerer, not in a worker slot.
        job = clear_operator(SageMakerTrainingOperator)(
            task_id="train",
            config=job_config(assembled),
            aws_conn_id=None,  # the default credential chain: the MWAA execution role in AWS
            wait_for_completion=True,
            deferrable=True,
            check_interval=check_seconds,
            print_log=False,  # the job's log is in CloudWatch; the task log links nothing to tail
        )

        @task
        @dagkit.records
        def collect(job: TrainingResult) -> TrainedRun:
            """The MLflow run and model the job logged, from its `model.tar.gz`."""
            from mlplatform.adapters.lake import Lake
            from mlplatform.stages import training

            return training.read_job_output(Lake(), job["Training"]["ModelArtifacts"]["S3ModelArtifacts"])

        return collect(job.output)


def _run_type(dag_run: Any) -> str:
    return str(getattr(getattr(dag_run, "run_type", None), "value", "manual"))


def _family_and_reason(use_case: UseCase, context: Mapping[str, Any]) -> tuple[str, str]:
    """The family to train and why: the trigger form's, else the spec's family and the run's type."""
    given, run_type = context.get("params") or {}, _run_type(context.get("dag_run"))
    family = given.get("family") or use_case.model.family
    return family, given.get("reason") or _REASONS.get(run_type, run_type)


for _use_case in dagkit.use_cases():
    globals()[dagkit.dag_id(_use_case, STAGE)] = build(_use_case)
