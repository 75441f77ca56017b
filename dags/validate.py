"""
# `<use case>_validate`: a raw month checked against its data contract

One DAG per use case, generated from its spec.

**What it does.** Reads the month's raw TLC files, one per taxi type the spec lists in
`data.taxi_types` that has landed (`raw/<dataset>/month=M/<green|yellow>_tripdata_M.parquet`),
normalises them into one table (the `taxi_type` column keeps each row's kind) and runs the
use case's Great Expectations checkpoint (suite `contract.suite`, see `great_expectations/`).
Then, by verdict:

- **pass**: writes the validated snapshot `validated/<use case>/month=M/<digest>/`
  (immutable; its manifest names the raw file's digest and the contract result) and
  points `CURRENT.json` at it;
- **rows quarantined** (fewer bad rows than `contract.max_bad_row_share`): the same, plus
  the bad rows with their reasons under `quarantine/<use case>/month=M/<raw digest>/`.
  Real TLC months quarantine 4-6% (zero distances, idle meters, refunds, trips begun the
  evening before the month); the share of each rule and fare reading stays in the
  manifest's contract block (the MLOps page charts it, `mlplatform contracts report`
  prints it) and Slack hears nothing, unless a rule's share jumps above
  `contract.trend_jump_factor` times its trailing median: then one warning names it;
- **breach** (unreadable or empty file, wrong taxi type, broken schema, volume far off
  the recent median, too many bad rows): nothing is validated, a breach record
  (`breach.json`: what broke, the raw digest, the time) is written to the quarantine
  folder, Slack is alerted, and the run fails with a message saying what broke.

The raw file is only ever read. Data Docs are rebuilt on every run; the task log and the
alert link the page of this validation.

**Triggers.** Every update of the Asset `<use case>_raw`: `<use case>_ingest` landed a new
raw month, and the run validates that month (extra `month`). Trigger it by hand with the
`month` param to validate any month, e.g. after landing a corrected file with
`mlplatform ingest --replace`; without it, a run validates the month of its logical date.

**Where it runs.** Locally (`MLPLATFORM_ENV=local`) `check_contract` runs in the task. On AWS
(`MLPLATFORM_ENV=aws`, unless the spec pins `serving.target`) the month is validated by a
SageMaker Processing job on the release's platform image (task group `sagemaker_validation`:
`job_config`, `validate_month` waiting deferred in the triggerer, then `read_outcome`), so a
3M-row month never loads into a worker; the job writes the same snapshot, quarantine or
breach record to the lake and the outcome beside its output. A job that fails (not a
breach: a crash) fails `validate_month` once, with SageMaker's `FailureReason`.

**Produces.** The Asset `<use case>_validated` (extra: `month`, `digest`) when a new
snapshot becomes current; training follows it. Re-running a month whose raw file did not
change is a no-op: the identical snapshot stays current and no Asset event is emitted.

**Operating it.** A failed run names what broke. Fix the delivery (land the corrected
file with `--replace`; the old one is kept under `superseded/`) and re-run the month. The
same check runs outside Airflow: `mlplatform validate FILE [FILE...] --use-case <name>`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import DAG, task
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from mlplatform.adapters import alerts, settings
from mlplatform.airflow import dagkit
from mlplatform.core.spec import UseCase, serving_target

if TYPE_CHECKING:
    from mypy_boto3_sagemaker.type_defs import CreateProcessingJobRequestTypeDef

    from mlplatform.stages import contracts

STAGE = Path(__file__).stem
VALIDATION_CHECK_SECONDS = 30
PARAMS = {
    "month": dagkit.month_param(
        "Month to validate, YYYY-MM. Empty: the month the ingest DAG landed, "
        "else the month of the run's logical date."
    ),
}


def build(use_case: UseCase, job_check_seconds: int = VALIDATION_CHECK_SECONDS) -> DAG:
    """The validate DAG of one use case."""
    validated = dagkit.validated_asset(use_case)
    # One run at a time: two runs of one month would race for its CURRENT.json.
    with dagkit.stage_dag(
        use_case,
        STAGE,
        # Raw months arrive when TLC publishes them, not on a calendar: ingest says when.
        schedule=dagkit.follows(dagkit.raw_asset(use_case)),
        doc_md=__doc__,
        params=PARAMS,
    ) as dag:

        @task
        def resolve_month(**context: Any) -> str:
            """The month this run validates: the `month` param, the landed month, or the logical date's."""
            return dagkit.requested_month(context)

        @task
        @dagkit.records
        def check_contract(month: str) -> contracts.ContractOutcome:
            """Run the checkpoint on the raw month and write the snapshot, quarantine or breach record."""
            from mlplatform.adapters.lake import Lake
            from mlplatform.stages import contracts

            try:
                outcome = contracts.validate_month(Lake(), use_case, month)
            except contracts.RawFileMissing as exc:
                raise AirflowFailException(str(exc)) from None  # retrying will not land the file
            print(f"{outcome.summary}\nData Docs: {outcome.data_docs_url}")
            return outcome

        @task
        @dagkit.records
        def report(outcome: contracts.ContractOutcome, ti: Any = None) -> contracts.ContractOutcome:
            """Alert Slack on a breach (and fail the run) or a rule share jump; a usual month only logs."""
            from mlplatform.stages import contracts

            if (alert := contracts.alert_for(outcome, log_url=getattr(ti, "log_url", None))) is not None:
                alerts.send(alert)
            if not outcome.success:
                raise ContractBreach(outcome.breach_message())
            return outcome

        @task(outlets=[validated])
        @dagkit.records
        def announce(outcome: contracts.ContractOutcome, *, outlet_events: Any = None) -> Any:
            """Emit the validated-data Asset when a new snapshot became current; return the snapshot."""
            if (snapshot := outcome.new_snapshot()) is None:
                raise AirflowSkipException(outcome.nothing_new())
            outlet_events[validated].extra = {"month": outcome.month, "digest": snapshot.digest}
            return snapshot

        month = resolve_month()
        if serving_target(use_case, settings.environment()) == "local":
            announce(report(check_contract(month)))
        else:
            announce(report(_validate_on_sagemaker(use_case, month, job_check_seconds)))
    return dag


# A task group's task definitions stay together, like a DAG's `build` (dags/README.md).
def _validate_on_sagemaker(use_case: UseCase, month: Any, check_seconds: int) -> Any:
    from airflow.providers.amazon.aws.operators.sagemaker import SageMakerProcessingOperator
    from airflow.sdk import TaskGroup

    from mlplatform.airflow.sagemaker_operators import clear_operator, release_image_and_role

    with TaskGroup(
        group_id="sagemaker_validation", tooltip="Validate the month in a SageMaker Processing job"
    ):

        @task
        def job_config(month: str, run_id: str | None = None) -> CreateProcessingJobRequestTypeDef:
            """The Processing job: `python -m mlplatform.jobs validate` on the release's image."""
            from mlplatform.adapters import sagemaker
            from mlplatform.adapters.lake import Lake

            image, role = release_image_and_role()
            output = Lake().uri(sagemaker.job_output_folder(use_case.name, "validate", f"{month}-{run_id}"))
            arguments = ["validate", "--use-case", use_case.name, "--month", month]
            return sagemaker.processing_job_request(use_case, image, role, arguments, output)

        config = job_config(month)
        # deferrable: the wait for the job runs in the triggerer, not in a worker slot.
        job = clear_operator(SageMakerProcessingOperator)(
            task_id="validate_month",
            config=config,
            aws_conn_id=None,  # the default credential chain: the MWAA execution role in AWS
            wait_for_completion=True,
            deferrable=True,
            check_interval=check_seconds,
        )

        @task
        @dagkit.records
        def read_outcome(config: CreateProcessingJobRequestTypeDef) -> contracts.ContractOutcome:
            """The outcome the job wrote beside its output: what `check_contract` returns locally."""
            from mlplatform.adapters.lake import Lake
            from mlplatform.stages import contracts

            lake = Lake()
            output = config["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"]
            stored = lake.read_json(f"{lake.relative(output)}/outcome.json")
            outcome = contracts.ContractOutcome.from_dict(stored)
            print(outcome.summary)
            return outcome

        outcome = read_outcome(config)
        job >> outcome
    return outcome


class ContractBreach(AirflowFailException, alerts.AlertedFailure):
    """The month breached its contract: fail without retrying; `report` has already alerted."""


for _use_case in dagkit.use_cases():
    globals()[dagkit.dag_id(_use_case, STAGE)] = build(_use_case)
