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
  the bad rows with their reasons under `quarantine/<use case>/month=M/<raw digest>/`,
  and a Slack summary with the share of rows each rule quarantined. Real TLC months
  quarantine about 4% (zero distances, idle meters, refunds, trips begun the evening
  before the month);
- **breach** (unreadable or empty file, wrong taxi type, broken schema, volume far off
  the recent median, too many bad rows): nothing is validated, a breach record
  (`breach.json`: what broke, the raw digest, the time) is written to the quarantine
  folder, Slack is alerted, and the run fails with a message saying what broke.

The raw file is only ever read. Data Docs are rebuilt on every run; the task log and the
alert link the page of this validation.

**Triggers.** The spec's `schedules.validate`: a run validates the month of its data
interval (the run due on 1 April validates March). Trigger it by hand with the `month`
param to validate any month, e.g. after landing a corrected file with
`mlplatform ingest --replace`.

**Produces.** The Asset `<use case>_validated` (extra: `month`, `digest`) when a new
snapshot becomes current; training follows it. Re-running a month whose raw file did not
change is a no-op: the identical snapshot stays current and no Asset event is emitted.

**Operating it.** A failed run names what broke. Fix the delivery (land the corrected
file with `--replace`; the old one is kept under `superseded/`) and re-run the month. The
same check runs outside Airflow: `mlplatform validate FILE [FILE...] --use-case <name>`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airflow.sdk import DAG, CronDataIntervalTimetable, Param, task
from airflow.sdk.exceptions import AirflowFailException

from mlplatform.adapters import alerts
from mlplatform.airflow import dagkit
from mlplatform.core.spec import UseCase

STAGE = Path(__file__).stem


def build(use_case: UseCase) -> DAG:
    """The validate DAG of one use case."""
    cron = dagkit.schedule(use_case, "validate")
    with DAG(
        dag_id=dagkit.dag_id(use_case, STAGE),
        # Data intervals, not trigger times: the run due on 1 April covers March.
        schedule=CronDataIntervalTimetable(cron, timezone="UTC") if cron else None,
        start_date=dagkit.start_date(use_case),
        catchup=False,
        max_active_runs=1,  # two runs of one month would race for its CURRENT.json
        tags=dagkit.tags(use_case, STAGE),
        default_args=dagkit.default_args(
            use_case, on_failure_callback=alerts.on_failure(use_case.name, STAGE)
        ),
        doc_md=__doc__,
        params={
            "month": Param(
                None,
                type=["null", "string"],
                pattern=r"^\d{4}-(0[1-9]|1[0-2])$",
                title="Month",
                description="Month to validate, YYYY-MM. Empty: the month of the run's data interval.",
            ),
        },
    ) as dag:

        @task
        def resolve_month(params: dict[str, Any] | None = None, data_interval_start: Any = None) -> str:
            """The month this run validates: the `month` param, else its data interval's month."""
            month = (params or {}).get("month")
            return month or data_interval_start.strftime("%Y-%m")

        @task
        def check_contract(month: str) -> dict[str, Any]:
            """Run the checkpoint on the raw month and write the snapshot, quarantine or breach record."""
            from mlplatform.adapters.lake import Lake
            from mlplatform.stages import contracts

            try:
                outcome = contracts.validate_month(Lake(), use_case, month)
            except contracts.RawFileMissing as exc:
                raise AirflowFailException(str(exc)) from None  # retrying will not land the file
            print(outcome["summary"])
            print(f"Data Docs: {outcome['data_docs_url']}")
            return outcome

        @task
        def report(outcome: dict[str, Any], ti: Any = None) -> dict[str, Any]:
            """Alert Slack on a breach (and fail the run) or a quarantine; a clean pass only logs."""
            from mlplatform.stages import contracts

            if (alert := contracts.alert_for(outcome, log_url=getattr(ti, "log_url", None))) is not None:
                alerts.send(alert)
            if not outcome["success"]:
                raise ContractBreach(
                    f"{use_case.name} {outcome['month']} breached contract {outcome['suite']}: "
                    + "; ".join(outcome["breaches"])
                    + f". Nothing was validated; the raw file {outcome['source']['uri']} is kept. "
                    f"Breach record: {outcome['breach_record']}. Data Docs: {outcome['data_docs_url']}"
                )
            return outcome

        @task(outlets=[dagkit.validated_asset(use_case)])
        def announce(outcome: dict[str, Any], *, outlet_events: Any = None) -> dict[str, Any]:
            """Emit the validated-data Asset when a new snapshot became current."""
            from airflow.sdk.exceptions import AirflowSkipException

            snapshot = outcome["snapshot"]
            if not snapshot["created"]:
                raise AirflowSkipException(
                    f"snapshot {snapshot['digest'][:12]} of {outcome['month']} was already current: "
                    "nothing new to announce"
                )
            outlet_events[dagkit.validated_asset(use_case)].extra = {
                "month": outcome["month"],
                "digest": snapshot["digest"],
            }
            return snapshot

        announce(report(check_contract(resolve_month())))
    return dag


class ContractBreach(AirflowFailException, alerts.AlertedFailure):
    """The month breached its contract: fail without retrying; `report` has already alerted."""


for _use_case in dagkit.use_cases():
    globals()[dagkit.dag_id(_use_case, STAGE)] = build(_use_case)
