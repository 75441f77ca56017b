"""
# `<use case>_promote`: gates, a decision by maturity level, and rollback

One DAG per use case. One run at a time (`max_active_runs=1`), and the alias moves
themselves hold a lock in the registry, so promotions of a model never interleave.

**Triggers.** Every update of the Asset `<use case>_challenger` (the train DAG registered a
new version), or by hand with these params:

- `action`: `evaluate` (default) assesses a version and lets the maturity level decide;
  `promote` assesses it and promotes it if every gate passes, with the person who triggered
  the run as approver (the manual path of level 2); `rollback` puts `champion` back on
  `previous_champion` in one step, no gates.
- `version`: the model version to assess or promote (empty: the `challenger`).
- `reason`, `force`: for `rollback`, why (recorded in the alias history) and whether to
  roll back within the cooldown after the last rollback (`promotion.rollback_cooldown_days`).

**What it does.**

1. `assess` evaluates the version and the current `champion` on the same held-out rows
   (the validation snapshots the version was held out from, read back by digest) against
   the spec's `promotion` gates, with confidence: a paired bootstrap of the relative
   improvement over the champion must have its lower bound at least
   `min_relative_improvement` (the first model: over the baseline, a point estimate), no
   slice's degradation interval may reach beyond `max_slice_regression`, latency and size
   budgets, and a passed data contract for every snapshot it learned from. The gate table
   shows each interval (`promotion.confidence`).
2. `route` decides who acts, by the spec's `maturity_level`: **4** promotes automatically;
   **3** asks a person in the Airflow UI (`approval`, under *Required actions*: approve or
   reject; no answer within `promotion.approval_timeout_hours` means rejected). Slack hears
   of it when it starts waiting (`request_approval`: the gate table and the link to the
   form) and again, from `remind`, when three quarters of the time passed unanswered.
   Airflow before 3.1 has no such form: there the DAG's docs start with a warning and
   `approval` waits for the Airflow Variable `<dag id>__approval` instead
   (`{"version": "7", "answer": "Approve", "by": "alice"}`). **2**
   records the decision and posts it to Slack, where the message gives the command that
   promotes the version (`mlplatform promote --use-case <name> --version N --approve`, or
   this DAG with `action=promote`).
3. `decide` records the outcome on the model version as tags (decision, reason, who
   decided (`decision.by`: the approver, or "approval timeout"),
   metrics, evidence, gates, this run's id), moves `champion` (keeping `previous_champion`)
   when promoted, and posts it to Slack. Every alias move is first written to the lake's
   alias history (`registry/history/<use case>/`, one file per event, with the decision,
   its intervals, the gate table and this run); a move whose record cannot be written
   does not happen. `mlplatform history <use case> --at DATE` reads it. Failed gates
   always reject: a bad model is never promoted, approved or not.
4. `champion_moved` updates the Asset `<use case>_champion` when the champion changed.

**Rollback.** Trigger with `action=rollback` (and a `reason`), or run
`mlplatform rollback --use-case <name> --reason "..."`; monitoring calls
`mlplatform.stages.promotion.rollback(use_case, reason, evidence)`. Each is recorded in the
alias history and starts a cooldown during which another rollback is refused unless forced.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, Param, PokeReturnValue, task

from mlplatform.airflow import approval, dagkit
from mlplatform.core.spec import UseCase

STAGE = Path(__file__).stem
log = logging.getLogger(__name__)


def build(use_case: UseCase) -> DAG:
    """The promote DAG of one use case."""
    dag_id = dagkit.dag_id(use_case, STAGE)
    hitl = approval.hitl_supported()
    if not hitl:
        log.warning(
            "%s: Airflow %s has no HITL approval; level 3 waits for the Variable %s",
            dag_id,
            approval.airflow_version(),
            approval.variable_key(dag_id),
        )
    timeout = timedelta(hours=use_case.promotion.approval_timeout_hours)
    with DAG(
        dag_id=dag_id,
        schedule=[dagkit.model_asset(use_case, "challenger")],
        start_date=dagkit.start_date(use_case),
        catchup=False,
        max_active_runs=1,
        tags=dagkit.tags(use_case, STAGE),
        default_args=dagkit.default_args(use_case),
        doc_md=__doc__ if hitl else approval.fallback_notice(dag_id) + (__doc__ or ""),
        params={
            "action": Param(
                "evaluate",
                type="string",
                enum=["evaluate", "promote", "rollback"],
                title="Action",
                description="evaluate: gates, then the maturity level decides. promote: gates, then promote "
                "with you as approver. rollback: champion back to previous_champion.",
            ),
            "version": Param(
                None,
                type=["null", "integer"],
                minimum=1,
                title="Model version",
                description="Version to evaluate or promote; empty means the current challenger.",
            ),
            "reason": Param(
                "rolled back from the Airflow UI",
                type="string",
                minLength=1,
                maxLength=500,
                title="Rollback reason",
                description="rollback: why, recorded in the alias history.",
            ),
            "force": Param(
                False,
                type="boolean",
                title="Force the rollback",
                description="rollback: go ahead within the cooldown after the last rollback.",
            ),
        },
    ) as dag:

        @task.branch
        def choose_action(params: dict[str, Any] | None = None) -> str:
            """Roll back, or assess a version."""
            return "rollback" if (params or {}).get("action") == "rollback" else "assess"

        @task(outlets=[dagkit.model_asset(use_case, "champion")])
        def rollback(
            params: dict[str, Any] | None = None, run_id: str | None = None, dag_run: Any = None
        ) -> dict[str, Any]:
            """Put `champion` back on `previous_champion`, recorded in the alias history first."""
            from mlplatform.stages import promotion

            given = params or {}
            by = getattr(dag_run, "triggering_user_name", None) or "airflow"
            reason = str(given.get("reason") or "rolled back from the Airflow UI")
            evidence = {"requested_by": by, "dag_run": run_id}
            return promotion.rollback(
                use_case, reason, evidence, by=by, run_id=run_id, force=bool(given.get("force"))
            )

        @task
        def assess(params: dict[str, Any] | None = None) -> dict[str, Any]:
            """Evaluate the version and the champion on the same held-out rows against every gate."""
            from mlplatform.adapters.lake import Lake
            from mlplatform.stages import promotion

            version = (params or {}).get("version")
            assessment = promotion.assess(Lake(), use_case, None if version is None else str(version))
            return {**assessment.to_dict(), "summary_md": promotion.summary_markdown(assessment)}

        @task.branch
        def route(assessment: dict[str, Any], params: dict[str, Any] | None = None) -> str:
            """Ask a person only at maturity level 3, only for a version that passed every gate."""
            asks = use_case.maturity_level == 3 and (params or {}).get("action", "evaluate") == "evaluate"
            return "request_approval" if asks and assessment["passed"] else "decide"

        @task
        def request_approval(
            assessment: dict[str, Any], run_id: str | None = None, ti: Any = None
        ) -> dict[str, Any]:
            """Post to Slack that a version waits for approval: the gate table and where to answer."""
            from datetime import UTC, datetime

            from mlplatform.adapters import alerts

            asked = approval.request(
                dag_id=dag_id,
                run_id=str(run_id),
                assessment=assessment,
                now=datetime.now(UTC),
                timeout=timeout,
                log_url=getattr(ti, "log_url", None),
                hitl=hitl,
            )
            alerts.send(approval.request_alert(asked))
            return asked.to_dict()

        @task.sensor(
            poke_interval=_poke_seconds(timeout), timeout=_sensor_timeout(timeout), mode="reschedule"
        )
        def remind(asked: dict[str, Any], run_id: str | None = None, ti: Any = None) -> PokeReturnValue:
            """Remind Slack once if the approval is still unanswered late in its waiting time."""
            from datetime import UTC, datetime

            from mlplatform.adapters import alerts

            states = ti.get_task_states(dag_id=dag_id, task_ids=["approval"], run_ids=[run_id])
            if approval.approval_finished(states, str(run_id)):
                return PokeReturnValue(is_done=True, xcom_value="answered")
            request = approval.ApprovalRequest.from_dict(asked)
            if datetime.now(UTC) < request.remind_at:
                return PokeReturnValue(is_done=False)
            alerts.send(approval.reminder_alert(request))
            return PokeReturnValue(is_done=True, xcom_value="reminded")

        # The approval skips its direct downstream on "Reject"; `decide` must still run then.
        approved = EmptyOperator(task_id="approved")

        @task(trigger_rule="none_failed_min_one_success")
        def decide(
            assessment: dict[str, Any],
            params: dict[str, Any] | None = None,
            run_id: str | None = None,
            dag_run: Any = None,
            ti: Any = None,
        ) -> dict[str, Any]:
            """Record the outcome on the version, promote if decided, and post it to Slack."""
            from mlplatform.core.records import Assessment
            from mlplatform.stages import promotion

            answer = None
            if (params or {}).get("action") == "promote":
                by = getattr(dag_run, "triggering_user_name", None) or "manual trigger"
                answer = {"approved": True, "by": by}
            elif (response := ti.xcom_pull(task_ids="approval", key="answer")) is not None:
                answer = promotion.approval_answer(response)
            assessed = Assessment.from_dict(assessment)
            return promotion.apply(use_case, assessed, promotion.decide(use_case, assessed, answer), run_id)

        @task(outlets=[dagkit.model_asset(use_case, "champion")])
        def champion_moved(result: dict[str, Any]) -> dict[str, Any]:
            """Update the champion Asset, only when this run promoted."""
            from airflow.sdk.exceptions import AirflowSkipException

            if result["outcome"] != "promoted":
                outcome = f"version {result['version']} {result['outcome']}"
                raise AirflowSkipException(f"champion unchanged: {outcome}")
            return result

        assessment = assess()
        choose_action() >> [rollback(), assessment]
        routed = route(assessment)
        decided = decide(assessment)
        asked = request_approval(assessment)
        waiting = _approval_task(use_case, hitl, timeout, asked)
        asked >> waiting  # the HITL operator takes no input from it, but must wait for it
        remind(asked)
        routed >> [asked, decided]
        waiting >> approved >> decided
        champion_moved(decided)
    return dag


def _poke_seconds(timeout: timedelta) -> float:
    """Check often enough to remind in time, at most every 5 minutes."""
    return max(1.0, min(300.0, timeout.total_seconds() / 8))


def _sensor_timeout(timeout: timedelta) -> float:
    """Longer than the approval may wait: the sensors end themselves at its deadline."""
    return timeout.total_seconds() + 3600


def _approval_task(use_case: UseCase, hitl: bool, timeout: timedelta, asked: Any) -> Any:
    """The task that waits for the answer: Airflow's HITL form, or the Variable on Airflow < 3.1."""
    if hitl:
        from mlplatform.airflow.hitl import RecordedApprovalOperator

        return RecordedApprovalOperator(
            task_id="approval",
            subject=f"Promote {use_case.model_name} version "
            "{{ ti.xcom_pull(task_ids='assess')['version'] }} to champion?",
            body="{{ ti.xcom_pull(task_ids='assess')['summary_md'] }}",
            defaults="Reject",
            response_timeout=timeout,
        )

    @task.sensor(
        task_id="approval",
        poke_interval=_poke_seconds(timeout),
        timeout=_sensor_timeout(timeout),
        mode="reschedule",
    )
    def wait_for_variable(asked: dict[str, Any], ti: Any = None) -> PokeReturnValue:
        """Wait for the answer in the Airflow Variable `<dag id>__approval`; none by the deadline rejects."""
        from datetime import UTC, datetime

        from airflow.sdk import Variable

        request = approval.ApprovalRequest.from_dict(asked)
        value = Variable.get(approval.variable_key(request.dag_id), default=None)
        answer = approval.variable_answer(value, request.version)
        if answer is None and datetime.now(UTC) >= datetime.fromisoformat(request.deadline):
            answer = approval.answer("Reject", None)
        if answer is None:
            return PokeReturnValue(is_done=False)
        ti.xcom_push(key="answer", value=answer)
        return PokeReturnValue(is_done=True, xcom_value=answer)

    return wait_for_variable(asked)


for _use_case in dagkit.use_cases():
    globals()[dagkit.dag_id(_use_case, STAGE)] = build(_use_case)
