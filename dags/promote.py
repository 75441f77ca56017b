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

**What it does.**

1. `assess` evaluates the version and the current `champion` on the same held-out rows
   (the validation snapshots the version was held out from, read back by digest) against
   the spec's `promotion` gates: relative improvement over the champion (or, for the first
   model, over the baseline), no slice worse than the champion beyond the tolerance,
   latency and size budgets, and a passed data contract for every snapshot it learned from.
2. `route` decides who acts, by the spec's `maturity_level`: **4** promotes automatically;
   **3** asks a person in the Airflow UI (`approval`, under *Required actions*: approve or
   reject; no answer within `promotion.approval_timeout_hours` means rejected); **2**
   records the decision and posts it to Slack, where the message gives the command that
   promotes the version (`mlplatform promote --use-case <name> --version N --approve`, or
   this DAG with `action=promote`).
3. `decide` records the outcome on the model version as tags (decision, reason, who,
   metrics, gates, this run's id), moves `champion` (keeping `previous_champion`) when
   promoted, and posts it to Slack. Failed gates always reject: a bad model is never
   promoted, approved or not.
4. `champion_moved` updates the Asset `<use case>_champion` when the champion changed.

**Rollback.** Trigger with `action=rollback`, or run `mlplatform rollback --use-case <name>`.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import DAG, Param, task

from mlplatform.airflow import dagkit
from mlplatform.core.spec import UseCase

STAGE = Path(__file__).stem


class RecordedApprovalOperator(ApprovalOperator):
    """Airflow's `ApprovalOperator` that also keeps the answer in XCom (key `answer`).

    On "Reject" (or the default after a timeout) the operator skips its downstream tasks,
    which ends it before its return value is stored; `decide` still needs to know who
    answered what. Kept here, beside the one DAG that uses it.
    """

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        if "error" not in event:
            answer = {
                "chosen_options": list(event.get("chosen_options") or []),
                "responded_by_user": event.get("responded_by_user"),
            }
            context["ti"].xcom_push(key="answer", value=answer)
        return super().execute_complete(context, event)


def build(use_case: UseCase) -> DAG:
    """The promote DAG of one use case."""
    with DAG(
        dag_id=dagkit.dag_id(use_case, STAGE),
        schedule=[dagkit.model_asset(use_case, "challenger")],
        start_date=dagkit.start_date(use_case),
        catchup=False,
        max_active_runs=1,
        tags=dagkit.tags(use_case, STAGE),
        default_args=dagkit.default_args(use_case),
        doc_md=__doc__,
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
        },
    ) as dag:

        @task.branch
        def choose_action(params: dict[str, Any] | None = None) -> str:
            """Roll back, or assess a version."""
            return "rollback" if (params or {}).get("action") == "rollback" else "assess"

        @task(outlets=[dagkit.model_asset(use_case, "champion")])
        def rollback(run_id: str | None = None, dag_run: Any = None) -> dict[str, Any]:
            """Put `champion` back on `previous_champion`."""
            from mlplatform.adapters import registry

            by = getattr(dag_run, "triggering_user_name", None) or "airflow"
            return registry.rollback(use_case.model_name, by=by, run_id=run_id)

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
            return "approval" if asks and assessment["passed"] else "decide"

        approval = RecordedApprovalOperator(
            task_id="approval",
            subject=f"Promote {use_case.model_name} version "
            "{{ ti.xcom_pull(task_ids='assess')['version'] }} to champion?",
            body="{{ ti.xcom_pull(task_ids='assess')['summary_md'] }}",
            defaults="Reject",
            response_timeout=timedelta(hours=use_case.promotion.approval_timeout_hours),
        )
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
        routed >> [approval, decided]
        approval >> approved >> decided
        champion_moved(decided)
    return dag


for _use_case in dagkit.use_cases():
    globals()[dagkit.dag_id(_use_case, STAGE)] = build(_use_case)
