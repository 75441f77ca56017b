"""
# `<use case>_monitor`: production compared with the champion's promise, and the loop closed

One DAG per use case.

**What it does.** For one window (a month) it measures:

- *performance on delayed ground truth*: batch predictions joined on `row_index` to the
  target of the snapshot they scored, and real-time predictions from the serving log
  joined on the trip key to the snapshot of the month the trip began. Overall, per slice
  (`promotion.slices`) and per variant (`batch`, `champion`, `challenger`). Outcomes that
  have not arrived (no validated snapshot yet) leave the metric **pending**: no alarm.
- *drift* of every feature against a sample of the champion's training months (normed
  Wasserstein for numeric, Jensen-Shannon for categorical, via Evidently), the share of
  drifted features and drift of the champion's predictions;
- *data quality* (contract result, quarantined share) and *serving health* (error rate,
  p99 latency per request, as the serving app measured them).

Each window gets two verdicts: the **model status** (`ok`, `breach`, `pending`: performance,
drift, data quality) and the **serving status** (`ok`, `breach`, `unmeasured`: error rate,
latency). Latency depends on how busy the machine is, not on the model: a serving breach
never makes the model breach.

**Produces.** `monitoring/<use case>/history/window=YYYY-MM/metrics.json` (what the MLOps
page shows), a row per metric in `monitoring/<use case>/history.parquet`, the Evidently
HTML drift report under `monitoring/<use case>/reports/`, and an MLflow run per window in
the experiment `<use case>-monitoring` (metrics, the record, the report).

**Closing the loop.** Thresholds are the spec's `monitoring` section. A model breach
(`decide`) sends a Slack alert: what breached, value against threshold, links to the
report, this run and the champion in MLflow. A serving breach (`alert_operations`) sends a
separate operations alert naming the endpoint and its figures, and never retrains. Alerts
are queued in the lake's outbox first (`alerts/outbox/`) and delivered from there: Slack
being down delays an alert, never loses it; each alert task flushes what an earlier run
left queued. A performance or drift breach also triggers `<use case>_train`
with conf `{"reason", "triggered_by": "monitor", "window", "since"}` (`since` is the
breached window: the retrain learns the changed data from there on), unless a train run is
already queued or running, or the monitor triggered one less than
`retrain_cooldown_hours` ago (`monitoring/<use case>/retrain_state.json`). Data-quality and
serving breaches are alerted only: a new model would not fix them.

**Production truth decides.** Once a window is labelled, the `challenger` alias is scored
in shadow on the trips the champion scored and the paired evidence of every labelled window
so far decides (`promote`, `retire`, `keep`, `insufficient`, with the interval and the
trips): level 4 moves the aliases, level 3 asks, level 2 records it. For
`monitoring.shadow_previous_windows` windows after a promotion the previous champion is
scored the same way, and a champion worse with confidence is rolled back (level 4) or
asked about (level 3), under the promotion cooldown. At level 3 `ask_approval` reads the
decisions that wait for a person and `trigger_approval` starts `<use case>_promote` with
conf `{"action": "promote" | "retire" | "rollback", "version", "reason", "evidence"
(interval, trips, windows), "triggered_by": "monitor", "window"}` and the run id
`live__<action>__v<version>`: the promote DAG asks in its approval form and acts on the
answer. One run per version and action: a re-run of the window, or the next window with
the same verdict, asks nothing new. A window without labels gets
`estimated_rmse` (direct loss estimation): an estimated breach warns, only a measured one
acts. All of it is in the record's `details.live` and `details.estimate`.

**Triggers.** Every update of the Asset `<use case>_predictions`: batch scoring published a
month's predictions, and the run evaluates that month (each month, when several arrived
together; the newest decides on alerts and retrains). Every update of the validated-data
Asset too: a window recorded **pending** for want of the month's ground truth is evaluated
again once that month is validated (a run with no pending window to revisit is skipped).
Trigger it by hand with the `window` param to evaluate any month. Re-running a window
replaces its record, history rows and report.

**Backfills.** A run of `airflow backfill create` (or the UI's backfill), a run with the
`backfill` param, and a run started by predictions that a backfill of batch scoring
published recompute history: records, history rows, reports and MLflow runs are written
as usual, but nothing is alerted, no retrain is triggered and no alias moves (live decisions
are recorded only).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import DAG, task

from mlplatform.airflow import dagkit
from mlplatform.core.records import MonitoringRecord
from mlplatform.core.spec import UseCase

if TYPE_CHECKING:
    from mlplatform.stages import monitoring

STAGE = Path(__file__).stem
PARAMS = {
    "window": dagkit.month_param(
        "Month to evaluate, YYYY-MM. Empty: the month(s) of the predictions that "
        "started the run, else the last full month before the run was due.",
        "Window",
    ),
    "backfill": dagkit.backfill_param(),
}


def build(use_case: UseCase) -> DAG:
    """The monitor DAG of one use case."""
    train_dag_id = dagkit.dag_id(use_case, "train")
    # New predictions, or ground truth arriving for a window recorded pending.
    schedule = dagkit.follows(dagkit.predictions_asset(use_case), dagkit.validated_asset(use_case))
    # One run at a time: runs share the history file and the retrain state.
    with dagkit.stage_dag(use_case, STAGE, schedule=schedule, doc_md=__doc__, params=PARAMS) as dag:

        @task
        @dagkit.records
        def evaluate(**context: Any) -> monitoring.decision.WindowSummary:
            """Measure the window(s) and write each record, history rows, report and MLflow run."""
            return _summary(*_evaluate(use_case, context))

        @task.short_circuit
        @dagkit.records
        def decide(summary: monitoring.decision.WindowSummary, ti: Any = None) -> bool:
            """Alert on a model breach; retrain only past the cooldown and with no train run active."""
            return _alert_and_retrain(use_case, summary, ti, train_dag_id)

        @task
        @dagkit.records
        def alert_operations(summary: monitoring.decision.WindowSummary) -> bool:
            """Alert operations when the endpoint breached (error rate, latency): never a retrain."""
            return _alert_operations(use_case, summary)

        @task
        @dagkit.records
        def record_retrain(
            summary: monitoring.decision.WindowSummary, ti: Any = None, run_id: str | None = None
        ) -> dict:
            """Note the triggered run in the retrain state, which the cooldown reads."""
            return _record_retrain(use_case, summary, ti, run_id)

        @task
        @dagkit.records
        def ask_approval(summary: monitoring.decision.WindowSummary) -> list[monitoring.decision.ApprovalRun]:
            """Level 3: the window's live decisions that wait for a person, as promote runs to trigger."""
            return _approval_runs(use_case, summary)

        summary = evaluate()
        decide(summary) >> _retrain_trigger(train_dag_id) >> record_retrain(summary)
        alert_operations(summary)
        _approval_trigger(dagkit.dag_id(use_case, "promote")).expand_kwargs(ask_approval(summary))
    return dag


def _alert_and_retrain(
    use_case: UseCase, summary: monitoring.decision.WindowSummary, ti: Any, train_dag_id: str
) -> bool:
    """Alert on the window's model breach (unless a backfill); whether to retrain (its reason in XCom)."""
    from datetime import UTC, datetime

    from mlplatform.adapters import alerts
    from mlplatform.adapters.lake import Lake
    from mlplatform.stages import monitoring

    alerts.flush()  # alerts an earlier run could not deliver go first
    if not summary.breaches:
        return False
    if summary.backfill:
        print(f"backfill of {summary.window}: {list(summary.breaches)} recorded, not alerted")
        return False
    lake, record = Lake(), _window_record(use_case, summary)
    active = ti.get_dr_count(dag_id=train_dag_id, states=["queued", "running"])
    decision = monitoring.retrain_decision(lake, use_case, record, active, datetime.now(UTC))
    monitoring.send_alert(use_case, record, decision)
    ti.xcom_push(key="reason", value=decision.reason)
    return decision.retrain


def _alert_operations(use_case: UseCase, summary: monitoring.decision.WindowSummary) -> bool:
    """Send the operations alert of a serving breach (unless a backfill); whether one was sent."""
    from mlplatform.adapters import alerts
    from mlplatform.stages import monitoring

    alerts.flush()
    if not summary.serving_breaches or summary.backfill:
        return False
    monitoring.send_operations_alert(use_case, _window_record(use_case, summary))
    return True


def _record_retrain(
    use_case: UseCase, summary: monitoring.decision.WindowSummary, ti: Any, run_id: str | None
) -> dict:
    """The retrain state with the train run `trigger_retrain` started for the window."""
    from datetime import UTC, datetime

    from mlplatform.adapters.lake import Lake
    from mlplatform.stages import monitoring

    train_run = ti.xcom_pull(task_ids="trigger_retrain", key="trigger_run_id")
    reason = ti.xcom_pull(task_ids="decide", key="reason")
    return monitoring.record_trigger(
        Lake(), use_case.name, summary.window, reason, train_run, run_id, datetime.now(UTC)
    )


def _approval_runs(
    use_case: UseCase, summary: monitoring.decision.WindowSummary
) -> list[monitoring.decision.ApprovalRun]:
    """The promote runs (run id and conf) that ask about the window's live decisions, at level 3."""
    from mlplatform.stages import monitoring

    if use_case.maturity_level != 3 or summary.backfill:
        return []
    return monitoring.decision.approval_runs(_window_record(use_case, summary))


def _evaluate(use_case: UseCase, context: Mapping[str, Any]) -> tuple[MonitoringRecord, bool]:
    """Monitor the run's window(s), oldest first: the newest record, and whether the run is a backfill."""
    from airflow.sdk.exceptions import AirflowSkipException

    from mlplatform.adapters.lake import Lake
    from mlplatform.stages import monitoring

    params, events, ti = context.get("params") or {}, context.get("triggering_asset_events"), context["ti"]
    lake = Lake()
    try:
        windows = monitoring.windows_for_run(
            lake,
            use_case,
            params.get("window"),
            dagkit.event_months(events, dagkit.predictions_asset(use_case)),
            dagkit.event_months(events, dagkit.validated_asset(use_case)),
        )
    except monitoring.NothingPending as nothing:
        raise AirflowSkipException(str(nothing)) from None
    run_url = ti.log_url.split("/tasks/")[0] if ti is not None else None
    backfill = dagkit.is_backfill(params, context.get("dag_run"), dagkit.event_extras(events))
    for wanted in windows:
        window = monitoring.window_of_run(wanted, context.get("data_interval_end"))
        # A backfill records the live decisions and acts on none of them.
        record = monitoring.monitor(lake, use_case, window, airflow_run_url=run_url, act=not backfill)
    return record, backfill


def _summary(record: MonitoringRecord, backfill: bool) -> monitoring.decision.WindowSummary:
    """The window's verdict as `evaluate` hands it on (XCom): later tasks and the retrain trigger read it."""
    from mlplatform.stages import monitoring

    return monitoring.decision.WindowSummary.of(record, backfill)


def _window_record(use_case: UseCase, summary: monitoring.decision.WindowSummary) -> MonitoringRecord:
    """The monitoring record `evaluate` wrote for the summary's window."""
    from mlplatform.adapters.lake import Lake
    from mlplatform.stages import monitoring

    record = monitoring.read_record(Lake(), use_case.name, summary.window)
    if record is None:
        raise RuntimeError(f"no monitoring record of {summary.window}: re-run `evaluate`")
    return record


def _retrain_trigger(train_dag_id: str) -> TriggerDagRunOperator:
    """Start the train DAG for the breached window, once per window and run."""
    return TriggerDagRunOperator(
        task_id="trigger_retrain",
        trigger_dag_id=train_dag_id,
        # Runs triggered from the UI or the API have no logical date: key on run_after.
        trigger_run_id="monitor__{{ ti.xcom_pull(task_ids='evaluate')['window'] }}__"
        "{{ dag_run.run_after.strftime('%Y%m%dT%H%M%S') }}",
        conf={
            "reason": "{{ ti.xcom_pull(task_ids='decide', key='reason') }}",
            "triggered_by": "monitor",
            "window": "{{ ti.xcom_pull(task_ids='evaluate')['window'] }}",
            "since": "{{ ti.xcom_pull(task_ids='evaluate')['window'] }}",
            "monitor_run_id": "{{ run_id }}",
        },
        skip_when_already_exists=True,
        wait_for_completion=False,
    )


def _approval_trigger(promote_dag_id: str) -> Any:
    """Start the promote DAG's approval for a live decision, once per version and action: a
    re-run of the window, or a later window with the same verdict, finds the run and asks nothing."""
    return TriggerDagRunOperator.partial(
        task_id="trigger_approval",
        trigger_dag_id=promote_dag_id,
        skip_when_already_exists=True,
        wait_for_completion=False,
    )


for _use_case in dagkit.use_cases():
    globals()[dagkit.dag_id(_use_case, STAGE)] = build(_use_case)
