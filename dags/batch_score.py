"""
# `<use case>_batch_score`: a month of trips scored by the champion model

One DAG per use case whose spec says `serving.mode: batch` or `both`.

**What it does.** Resolves the registry alias `champion` to a version once, at the start
(the version is recorded in XCom and in every prediction row, so a promotion during the
run changes nothing). Waits for the month's validated snapshot (its validate run may still
be going; after 6 hours without one it stops), then checks the snapshot against its data
contract: a snapshot that failed the contract, or lacks a column the model needs, stops
scoring with a message saying what to do and a Slack alert. Then scores the snapshot in
record batches of `serving.batch_rows` (memory stays bounded whatever the month's size)
and publishes the predictions:

    predictions/<use case>/month=YYYY-MM/v<version>-<digest12>/predictions.parquet
    predictions/<use case>/month=YYYY-MM/CURRENT.json

Each row has a stable `row_id` (snapshot digest prefix and row index), the prediction,
the model version and the snapshot digest, so predictions join to ground truth later.

On AWS (`MLPLATFORM_ENV=aws`, unless the spec pins `serving.target`) the same DAG hands
the scoring to SageMaker Batch Transform (the release's serving image, checked to be in
ECR, answers JSON Lines staged next to the output) and collects its answers into the same
layout: the task group `sagemaker_transform` in the graph. A failed job fails `transform`
once, with SageMaker's `FailureReason` in the alert.

**Triggers.** The spec's `schedules.batch_score`. A run scores the last full month before
its data interval ends (a run due on 1 April scores March). Catchup is off; to score past
months, trigger with the `month` param or backfill a date range from the UI or with
`airflow backfill create`.

**Produces.** The Asset `<use case>_predictions` (extra: month, model version, path, and
`backfill`), which the monitoring DAG follows. A backfill (`airflow backfill create`, the
UI's backfill, or the `backfill` param) scores history the same way and marks its events
`backfill: true`, so the monitor runs they start record history without alerting or
retraining.

**Operating it.** Every failure alerts Slack. Re-running a month is safe: the data file
is replaced atomically and `CURRENT.json` only moves when the new file is complete, so a
failed run leaves the previous predictions in force. A breach is fixed upstream: repair the delivery, re-run
`<use case>_validate` for the month, then re-run this DAG with the month.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.sdk import DAG, PokeReturnValue, TaskGroup, task
from airflow.sdk.exceptions import AirflowFailException

from mlplatform.adapters import alerts, settings
from mlplatform.airflow import dagkit
from mlplatform.core.records import ModelRef, ScoredOutput
from mlplatform.core.spec import UseCase, serving_target

if TYPE_CHECKING:
    from mlplatform.stages import scoring

STAGE = Path(__file__).stem
# SageMaker job status polling; the transform itself takes minutes.
TRANSFORM_CHECK_SECONDS = 30
# The month's validate run may still be going when this run is due.
SNAPSHOT_POKE_SECONDS = 300
SNAPSHOT_WAIT_SECONDS = 6 * 3600
SNAPSHOT_TIMEOUT = SNAPSHOT_WAIT_SECONDS + 3600  # a backstop: the wait stops itself, with an alert
PARAMS = {
    "month": dagkit.month_param("Month to score, YYYY-MM. Empty: the month that ended when the run was due."),
    "backfill": dagkit.backfill_param(),
}


class ScoringStopped(AirflowFailException, alerts.AlertedFailure):
    """Scoring may not go on (no champion, no snapshot, a contract breach); the task has alerted."""


def _stop(use_case: UseCase, title: str, message: str, severity: alerts.Severity = "failure") -> NoReturn:
    """Alert Slack that scoring stopped, and why; then fail the task without retrying."""
    facts = {"Use case": use_case.name, "Stage": STAGE}
    alerts.send(alerts.Alert(f"{use_case.name} {STAGE}: {title}", severity, (message,), facts))
    raise ScoringStopped(message)


def _snapshot_ready(use_case: UseCase, month: str, dag_run: Any) -> bool:
    """Whether the month has a validated snapshot; after `SNAPSHOT_WAIT_SECONDS` without one, stop
    (with an alert saying where to look)."""
    from mlplatform.adapters import snapshots
    from mlplatform.adapters.lake import Lake

    if snapshots.current_snapshot(Lake(), use_case.name, month) is not None:
        return True
    waited = (datetime.now(UTC) - dag_run.start_date).total_seconds() if dag_run else 0.0
    if waited > SNAPSHOT_WAIT_SECONDS:
        _stop(
            use_case,
            f"no validated snapshot for {month}",
            f"{use_case.name} has no validated snapshot for {month} after {waited / 3600:.1f} h: "
            f"see why the {use_case.name}_validate run for {month} failed or did not run, fix it, "
            "then re-run this month",
        )
    return False


def build(use_case: UseCase, transform_check_seconds: int = TRANSFORM_CHECK_SECONDS) -> DAG:
    """The batch-score DAG of one use case."""
    predictions = dagkit.predictions_asset(use_case)
    # One run at a time: two runs of one month would race for its CURRENT.json.
    with dagkit.stage_dag(
        use_case, STAGE, schedule=dagkit.schedule(use_case, STAGE), doc_md=__doc__, params=PARAMS
    ) as dag:

        @task
        def resolve_month(params: Mapping[str, Any] | None = None, data_interval_end: Any = None) -> str:
            """The month this run scores: the `month` param, else the last full month before the run."""
            from mlplatform.stages import scoring

            return scoring.month_of_run((params or {}).get("month"), data_interval_end)

        @task.sensor(poke_interval=SNAPSHOT_POKE_SECONDS, timeout=SNAPSHOT_TIMEOUT, mode="reschedule")
        def wait_for_snapshot(month: str, dag_run: Any = None) -> PokeReturnValue:
            """Wait, holding no worker slot, until the month has a validated snapshot."""
            return PokeReturnValue(is_done=_snapshot_ready(use_case, month, dag_run), xcom_value=month)

        @task
        @dagkit.records
        def resolve_champion() -> ModelRef:
            """Resolve `champion` to a version, once: every later task uses that version."""
            from mlplatform.adapters import registry

            try:
                return registry.resolve(use_case.model_name, "champion")
            except registry.ModelNotFound as exc:
                _stop(use_case, "no champion to score with", str(exc))

        @task
        @dagkit.records
        def check_contract(month: str, model: ModelRef) -> scoring.CheckedSnapshot:
            """Stop, with an alert, unless the month's snapshot passed its data contract."""
            from mlplatform.adapters.lake import Lake
            from mlplatform.stages import scoring

            try:
                return scoring.check_month(Lake(), use_case, month, model)
            except scoring.InputRejected as exc:
                _stop(use_case, f"scoring of {month} stopped", str(exc), severity="breach")

        @task(outlets=[predictions])
        @dagkit.records
        def publish(output: ScoredOutput, **context: Any) -> ScoredOutput:
            """Point the month's `CURRENT.json` at the new predictions once they are complete."""
            from mlplatform.adapters.lake import Lake
            from mlplatform.stages import scoring

            record = scoring.publish(Lake(), output)
            context["outlet_events"][predictions].extra = dagkit.predictions_event(record, context)
            return record

        checked = check_contract(wait_for_snapshot(resolve_month()), model := resolve_champion())
        if serving_target(use_case, settings.environment()) == "local":
            publish(_score_locally(use_case, checked, model))
        else:
            publish(_score_on_sagemaker(use_case, checked, model, transform_check_seconds))
    return dag


def _score_locally(use_case: UseCase, checked: Any, model: Any) -> Any:
    @task
    @dagkit.records
    def score(checked: scoring.CheckedSnapshot, model: ModelRef) -> ScoredOutput:
        """Stream the snapshot through the model, batch by batch, into one parquet file."""
        from mlplatform.adapters.lake import Lake
        from mlplatform.stages import scoring

        lake = Lake()
        return scoring.score_snapshot(lake, use_case, checked.read(lake, use_case), model)

    return score(checked, model)


# A task group's task definitions stay together, like a DAG's `build` (dags/README.md).
def _score_on_sagemaker(use_case: UseCase, checked: Any, model: Any, check_seconds: int) -> Any:
    from airflow.providers.amazon.aws.operators.sagemaker import SageMakerTransformOperator

    from mlplatform.airflow.sagemaker_operators import clear_operator

    with TaskGroup(
        group_id="sagemaker_transform", tooltip="Score the month with a SageMaker Batch Transform job"
    ):

        @task
        @dagkit.records
        def stage_input(checked: scoring.CheckedSnapshot, model: ModelRef) -> scoring.StagedTransform:
            """Write the snapshot's model inputs as JSON Lines parts next to the month's output."""
            from mlplatform.adapters.lake import Lake
            from mlplatform.stages import scoring

            lake = Lake()
            return scoring.stage_transform_input(lake, use_case, checked.read(lake, use_case), model)

        @task
        @dagkit.records
        def transform_config(
            checked: scoring.CheckedSnapshot, model: ModelRef, staged: scoring.StagedTransform
        ) -> dict[str, Any]:
            """The transform job (and the SageMaker model, unless it exists) for this version."""
            from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
            from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook

            from mlplatform.adapters import sagemaker
            from mlplatform.adapters.lake import Lake
            from mlplatform.stages import scoring

            snapshot = checked.read(Lake(), use_case)
            client = SageMakerHook(aws_conn_id=None).conn
            ecr = AwsBaseHook(aws_conn_id=None, client_type="ecr").conn
            try:
                return scoring.transform_request(use_case, model, snapshot, staged, client, ecr)
            except (sagemaker.ModelDataNotInS3, sagemaker.NotConfigured, sagemaker.ImageNotReleased) as exc:
                raise AirflowFailException(str(exc)) from exc  # retrying would not change the answer

        @task
        @dagkit.records
        def collect(
            checked: scoring.CheckedSnapshot, model: ModelRef, staged: scoring.StagedTransform
        ) -> ScoredOutput:
            """Turn the job's JSON Lines answers into the month's predictions file."""
            from mlplatform.adapters.lake import Lake
            from mlplatform.stages import scoring

            lake = Lake()
            return scoring.collect_transform_output(
                lake, use_case, checked.read(lake, use_case), model, staged
            )

        staged = stage_input(checked, model)
        transform = clear_operator(SageMakerTransformOperator)(
            task_id="transform",
            config=transform_config(checked, model, staged),
            aws_conn_id=None,  # the default credential chain: the MWAA execution role in AWS
            wait_for_completion=True,
            deferrable=True,  # the wait runs in the triggerer: no worker slot held for the job
            check_interval=check_seconds,
            check_if_model_exists=False,  # transform_config only asks for a model that is missing
        )
        collected = collect(checked, model, staged)
        transform >> collected
    return collected


for _use_case in dagkit.use_cases():
    if _use_case.serving.mode in ("batch", "both"):
        globals()[dagkit.dag_id(_use_case, STAGE)] = build(_use_case)
