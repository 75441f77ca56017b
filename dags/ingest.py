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

**Publishing lag.** TLC publishes a month weeks after it ends. `wait_for_month` checks
every `MLPLATFORM_RAW_POKE_MINUTES` (default 360) in reschedule mode, so no worker slot is
held between checks. A month not published `MLPLATFORM_RAW_DEADLINE_DAYS` (default 75)
days after its end is late: Slack gets an alert naming the month, the source and the
deadline, and the run fails. Once the month is published, clear the task to land it.

**Triggers.** The spec's `schedules.validate` (the run due on 1 April lands March). Trigger
it by hand with the `month` param to land any month.

**Produces.** The Asset `<use case>_raw` (extra: `month`, the landed files) when at least one
new file landed; `<use case>_validate` follows it. Re-running a landed month emits nothing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, CronDataIntervalTimetable, Param, PokeReturnValue, task
from airflow.sdk.exceptions import AirflowFailException

from mlplatform.adapters import alerts
from mlplatform.airflow import dagkit
from mlplatform.core.spec import UseCase

STAGE = Path(__file__).stem
POKE_SECONDS = 60 * float(os.getenv("MLPLATFORM_RAW_POKE_MINUTES", "360"))
# Airflow's own limit, past any deadline a run can have: the sensor alerts at the deadline.
SENSOR_TIMEOUT_SECONDS = 400 * 86400


class MonthLate(AirflowFailException, alerts.AlertedFailure):
    """The month's raw data is past its deadline; the sensor has alerted."""


def build(use_case: UseCase) -> DAG:
    """The ingest DAG of one use case."""
    cron = dagkit.schedule(use_case, STAGE)
    taxi_types = use_case.data.taxi_types
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

        @task.sensor(poke_interval=POKE_SECONDS, timeout=SENSOR_TIMEOUT_SECONDS, mode="reschedule")
        def wait_for_month(month: str, ti: Any = None) -> PokeReturnValue:
            """Wait until every listed taxi type's file is published; alert once the month is late."""
            from datetime import UTC, datetime

            from mlplatform.stages import ingest

            prefix = ingest.source_prefix()
            found = ingest.published(prefix, taxi_types, month)
            if len(found) == len(taxi_types):
                return PokeReturnValue(is_done=True, xcom_value=month)
            due = ingest.deadline(month, ingest.deadline_days())
            if datetime.now(UTC) < due:
                print(f"{month}: published {found or 'nothing'} of {list(taxi_types)}; due by {due}")
                return PokeReturnValue(is_done=False)
            missing = [t for t in taxi_types if t not in found]
            message = (
                f"{use_case.name}: raw data of {month} ({', '.join(missing)}) is not published at {prefix} "
                f"and was due by {due:%Y-%m-%d %H:%M} UTC. Once it is, clear this task to land it."
            )
            alerts.send(
                alerts.Alert(
                    f"{use_case.name} {month}: raw data is late",
                    "warning",
                    (message,),
                    {"Use case": use_case.name, "Month": month, "Missing": ", ".join(missing)},
                    {"Task log": getattr(ti, "log_url", None)},
                )
            )
            raise MonthLate(message)

        @task
        def land(month: str) -> list[dict[str, Any]]:
            """Land the month's published files in the raw zone; never replaces a landed file."""
            from mlplatform.adapters.lake import Lake
            from mlplatform.stages import ingest

            try:
                landed = ingest.land_from_source(
                    Lake(), use_case.data.dataset, ingest.source_prefix(), taxi_types, month
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

        month = wait_for_month(resolve_month())
        announce(month, land(month))
    return dag


for _use_case in dagkit.use_cases():
    globals()[dagkit.dag_id(_use_case, STAGE)] = build(_use_case)
