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

from datetime import timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, BaseOperator, CronDataIntervalTimetable, Param, task
from airflow.sdk.exceptions import AirflowFailException

from mlplatform.adapters import alerts
from mlplatform.airflow import dagkit
from mlplatform.core.spec import UseCase

STAGE = Path(__file__).stem
# Airflow's own limit, past any deadline a run can have: the wait alerts at the deadline.
WAIT_TIMEOUT = timedelta(days=400)


class MonthLate(AirflowFailException, alerts.AlertedFailure):
    """The month's raw data is past its deadline; the wait has alerted."""


class WaitForRawMonth(BaseOperator):
    """Wait, deferred to the triggerer, until TLC has published every file of the month.

    Checks once right away; then :class:`~mlplatform.airflow.triggers.RawMonthTrigger`
    checks every ``MLPLATFORM_RAW_POKE_MINUTES`` without holding a worker slot. Past the
    month's deadline (``MLPLATFORM_RAW_DEADLINE_DAYS`` after it ends) it alerts once and
    fails; clear it once the data is published. Kept here, beside the one DAG that uses it.
    """

    template_fields = ("month",)

    def __init__(self, *, use_case: UseCase, month: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.use_case, self.month = use_case, month

    def execute(self, context: Any) -> str:
        from datetime import UTC, datetime

        from mlplatform.adapters import settings
        from mlplatform.airflow.triggers import RawMonthTrigger
        from mlplatform.stages import ingest

        taxi_types = list(self.use_case.data.taxi_types)
        prefix, due = ingest.source_prefix(), ingest.deadline(self.month, ingest.deadline_days())
        found = ingest.published(prefix, taxi_types, self.month)
        if len(found) < len(taxi_types) and datetime.now(UTC) < due:
            poke = 60 * float(settings.get("MLPLATFORM_RAW_POKE_MINUTES") or 360)
            self.defer(
                trigger=RawMonthTrigger(prefix, taxi_types, self.month, due.isoformat(), poke),
                method_name="execute_complete",
                timeout=WAIT_TIMEOUT,
            )
        return self.execute_complete(context, {"month": self.month, "found": found, "late": False})

    def execute_complete(self, context: Any, event: dict[str, Any]) -> str:
        """Resume: the month is here, or alert that it is late."""
        from mlplatform.stages import ingest

        taxi_types = list(self.use_case.data.taxi_types)
        missing = [t for t in taxi_types if t not in event["found"]]
        if not missing:
            return self.month
        prefix, due = ingest.source_prefix(), ingest.deadline(self.month, ingest.deadline_days())
        message = (
            f"{self.use_case.name}: raw data of {self.month} ({', '.join(missing)}) is not published at "
            f"{prefix} and was due by {due:%Y-%m-%d %H:%M} UTC. Once it is, clear this task to land it."
        )
        alerts.send(
            alerts.Alert(
                f"{self.use_case.name} {self.month}: raw data is late",
                "warning",
                (message,),
                {"Use case": self.use_case.name, "Month": self.month, "Missing": ", ".join(missing)},
                {"Task log": getattr(context.get("ti"), "log_url", None)},
            )
        )
        raise MonthLate(message)


def build(use_case: UseCase) -> DAG:
    """The ingest DAG of one use case."""
    cron = dagkit.schedule(use_case, STAGE)
    with DAG(
        dag_id=dagkit.dag_id(use_case, STAGE),
        # Data intervals: the run due on 1 April lands March.
        schedule=CronDataIntervalTimetable(cron, timezone="UTC") if cron else None,
        start_date=dagkit.start_date(use_case),
        catchup=False,
        max_active_runs=3,  # a late month must not hold up the next ones
        tags=dagkit.tags(use_case, STAGE),
        default_args=dagkit.default_args(use_case),
        doc_md=__doc__,
        params={
            "month": Param(
                None,
                type=["null", "string"],
                pattern=r"^\d{4}-(0[1-9]|1[0-2])$",
                title="Month",
                description="Month to land, YYYY-MM. Empty: the month of the run's data interval.",
            ),
        },
    ) as dag:

        @task
        def resolve_month(params: dict[str, Any] | None = None, data_interval_start: Any = None) -> str:
            """The month this run lands: the `month` param, else its data interval's month."""
            return str((params or {}).get("month") or data_interval_start.strftime("%Y-%m"))

        @task
        def land(month: str) -> list[dict[str, Any]]:
            """Land the month's published files in the raw zone; never replaces a landed file."""
            from mlplatform.adapters.lake import Lake
            from mlplatform.stages import ingest

            try:
                landed = ingest.land_from_source(
                    Lake(), use_case.data.dataset, ingest.source_prefix(), use_case.data.taxi_types, month
                )
            except ingest.LandingError as exc:
                raise AirflowFailException(str(exc)) from None  # retrying will not change the files
            return [item.to_dict() for item in landed]

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
