"""
# `<use case>_ingest`: a new raw month landed from its source, late data alerted

One DAG per use case, generated from its spec.

**What it does.** Waits until the month's files (`<type>_tripdata_YYYY-MM.parquet`, one per
taxi type the spec lists in `data.taxi_types`) are published at the source prefix
`MLPLATFORM_RAW_SOURCE_URI` (TLC's public download location by default; any `s3://`,
`file://` or `https://` folder works), then lands them under
`raw/<dataset>/month=M/` in the lake. A raw file is never replaced: the same file again
is a no-op, a different one stops the run with what to do (land a correction on purpose
with `mlplatform ingest --replace`; the previous file is kept under `superseded/`).

**Publishing lag.** TLC publishes a month weeks after it ends. `wait_for_month` checks once,
then defers to the triggerer, which checks every `MLPLATFORM_RAW_POKE_MINUTES` (default 360)
without holding a worker slot. A month not published `MLPLATFORM_RAW_DEADLINE_DAYS` (default 75)
days after its end is late: Slack gets an alert naming the month, the source and the
deadline, and the run fails. Once the month is published, clear the task to land it.

**Triggers.** The spec's `schedules.ingest` (the run due on 1 April lands March). Trigger
it by hand with the `month` param to land any month.

**Produces.** The Asset `<use case>_raw` (extra: `month`, the landed files) when at least one
new file landed; `<use case>_validate` follows it. Re-running a landed month emits nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import DAG, CronDataIntervalTimetable, task
from airflow.sdk.exceptions import AirflowFailException

from mlplatform.airflow import dagkit
from mlplatform.airflow.raw_month import WaitForRawMonth
from mlplatform.core.spec import UseCase

if TYPE_CHECKING:
    from mlplatform.stages import ingest

STAGE = Path(__file__).stem


def build(use_case: UseCase) -> DAG:
    """The ingest DAG of one use case."""
    cron = dagkit.schedule(use_case, STAGE)
    with dagkit.stage_dag(
        use_case,
        STAGE,
        # Data intervals: the run due on 1 April lands March.
        schedule=CronDataIntervalTimetable(cron, timezone="UTC") if cron else None,
        max_active_runs=3,  # a late month must not hold up the next ones
        doc_md=__doc__,
        params={
            "month": dagkit.month_param(
                "Month to land, YYYY-MM. Empty: the month of the run's data interval."
            ),
        },
    ) as dag:

        @task
        def resolve_month(params: Mapping[str, Any] | None = None, data_interval_start: Any = None) -> str:
            """The month this run lands: the `month` param, else its data interval's month."""
            return str((params or {}).get("month") or data_interval_start.strftime("%Y-%m"))

        @task
        @dagkit.records
        def land(month: str) -> list[ingest.Landed]:
            """Land the month's published files in the raw zone; never replaces a landed file."""
            from mlplatform.adapters.lake import Lake
            from mlplatform.stages import ingest

            try:
                landed = ingest.land_from_source(
                    Lake(), use_case.data.dataset, ingest.source_prefix(), use_case.data.taxi_types, month
                )
            except ingest.LandingError as exc:
                raise AirflowFailException(str(exc)) from None  # retrying will not change the files
            return landed

        @task(outlets=[dagkit.raw_asset(use_case)])
        def announce(month: str, landed: list[dict[str, Any]], *, outlet_events: Any = None) -> None:
            """Emit the raw Asset when a new file landed, which starts validation."""
            from airflow.sdk.exceptions import AirflowSkipException

            new = [item["path"] for item in landed if item["changed"]]
            if not new:
                raise AirflowSkipException(f"{month} was already landed: nothing new to validate")
            outlet_events[dagkit.raw_asset(use_case)].extra = {"month": month, "files": new}

        wait_for_month = WaitForRawMonth(
            task_id="wait_for_month",
            use_case=use_case,
            month="{{ ti.xcom_pull(task_ids='resolve_month') }}",
        )
        resolve_month() >> wait_for_month
        month = wait_for_month.output
        announce(month, land(month))
    return dag


for _use_case in dagkit.use_cases():
    globals()[dagkit.dag_id(_use_case, STAGE)] = build(_use_case)
