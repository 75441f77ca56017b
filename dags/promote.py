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

**Live evidence (level 3).** The monitor DAG triggers this DAG (run id
`live__<action>__v<version>`) when a labelled window's live decision calls for an action,
with conf `{"action": "promote" | "retire" | "rollback", "version", "reason", "evidence"}`
(the live interval, labelled trips, windows). `promote` is assessed as above and, if every
gate passes, asked in `approval` with the live evidence above the gate table; `retire` and
`rollback` go to `ask_live`, which shows the evidence in the same approval. Approved,
`decide` promotes (through the gates: a bad model is never promoted), removes the
`challenger` alias, or rolls back under the cooldown, each recorded in the alias history
with the evidence and who approved; rejected or timed out, nothing moves and the decision
is recorded (`decision` tags, or `live_decision` tags for a retire or rollback). A
`retire` triggered by hand without evidence removes the alias at once (`retire`).

**Rollback.** Trigger with `action=rollback` (and a `reason`), or run
`mlplatform rollback --use-case <name> --reason "..."`; monitoring calls
`mlplatform.stages.promotion.rollback(use_case, reason, evidence)`. Each is recorded in the
alias history and starts a cooldown during which another rollback is refused unless forced.
A refused rollback (within the cooldown, or no previous champion) fails the task at once with
the reason, without retries: trying again would get the same answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import DAG, Param, task

from mlplatform.airflow import approval, dagkit
from mlplatform.core.records import Assessment, LiveAsk
from mlplatform.core.spec import UseCase

if TYPE_CHECKING:
    from mlplatform.stages import promotion

STAGE = Path(__file__).stem
PARAMS = {
    "action": Param(
        "evaluate",
        type="string",
        enum=["evaluate", "promote", "retire", "rollback"],
        title="Action",
        description="evaluate: gates, then the maturity level decides. promote: gates, then promote "
        "with you as approver. retire: remove the challenger alias (asked on live evidence). "
        "rollback: champion back to previous_champion.",
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
    "evidence": Param(
        None,
        type=["null", "object"],
        title="Live evidence",
        description="Set by the monitor at level 3: the live comparison (interval, trips, windows) "
        "the action rests on. With it, promote, retire and rollback wait for a person's approval.",
    ),
    "force": Param(
        False,
        type="boolean",
        title="Force the rollback",
        description="rollback: go ahead within the cooldown after the last rollback.",
    ),
}


def build(use_case: UseCase) -> DAG:
    """The promote DAG of one use case."""
    doc_md = approval.approval_doc(dagkit.dag_id(use_case, STAGE), __doc__ or "")
    schedule = [dagkit.model_asset(use_case, "challenger")]
    with dagkit.stage_dag(use_case, STAGE, schedule=schedule, doc_md=doc_md, params=PARAMS) as dag:

        @task.branch
        def choose_action(params: Mapping[str, Any] | None = None) -> str:
            """Roll back, ask about a live retire or rollback, or assess a version."""
            return _first_task(use_case, params or {})

        @task
        def retire(**context: Any) -> str:
            """Remove the `challenger` alias from the version, recorded in the alias history first."""
            return _retire(use_case, context)

        @task
        @dagkit.records
        def ask_live(params: Mapping[str, Any] | None = None) -> approval.LiveCase:
            """The live retire or rollback the monitor asks about, with its evidence, for the approval."""
            return approval.live_case(use_case, params or {})

        @task(outlets=[dagkit.model_asset(use_case, "champion")])
        @dagkit.records
        def rollback(**context: Any) -> Any:
            """Put `champion` back on `previous_champion`, recorded in the alias history first."""
            return _rollback(use_case, context)

        @task
        @dagkit.records
        def assess(params: Mapping[str, Any] | None = None) -> approval.AssessedCase:
            """Evaluate the version and the champion on the same held-out rows against every gate."""
            return _assess(use_case, params or {})

        @task.branch
        @dagkit.records
        def route(assessment: Assessment, params: Mapping[str, Any] | None = None) -> str:
            """Ask a person only at maturity level 3, only for a version that passed every gate."""
            return "request_approval" if assessment.passed and _asks(use_case, params or {}) else "decide"

        @task(trigger_rule="none_failed_min_one_success")  # also after an approval that rejected
        @dagkit.records
        def decide(**context: Any) -> Any:
            """Record the outcome on the version, act if decided, and post it to Slack."""
            return _decide(use_case, context)

        @task(outlets=[dagkit.model_asset(use_case, "champion")])
        @dagkit.records
        def champion_moved(result: promotion.PromotionOutcome) -> promotion.PromotionOutcome:
            """Update the champion Asset, only when this run promoted."""
            return _champion_moved(result)

        assessment, live_case = assess(), ask_live()
        choose_action() >> [rollback(), retire(), assessment, live_case]
        decided = decide()
        asked, answered = approval.approval_tasks(use_case, dag.dag_id)
        route(assessment) >> [asked, decided]
        live_case >> asked
        [assessment, live_case, answered] >> decided
        champion_moved(decided)
    return dag


def _first_task(use_case: UseCase, params: Mapping[str, Any]) -> str:
    """The task `choose_action` follows: the rollback or retire, its approval when live, else assess."""
    if params.get("action") in ("retire", "rollback"):
        return "ask_live" if _asks_live(use_case, params) else str(params["action"])
    return "assess"


def _asks_live(use_case: UseCase, params: Mapping[str, Any]) -> bool:
    """Whether the run is the monitor's live decision at level 3: a person approves it first."""
    return use_case.maturity_level == 3 and bool(params.get("evidence"))


def _asks(use_case: UseCase, params: Mapping[str, Any]) -> bool:
    """Whether a version that passed every gate waits for a person: level 3's evaluation, or live."""
    evaluates = params.get("action", "evaluate") == "evaluate" and use_case.maturity_level == 3
    return evaluates or _asks_live(use_case, params)


def _by(context: Mapping[str, Any], default: str) -> str:
    """Who triggered the run, else ``default``."""
    return getattr(context.get("dag_run"), "triggering_user_name", None) or default


def _retire(use_case: UseCase, context: Mapping[str, Any]) -> str:
    """Remove the `challenger` alias from the version; what happened, in words."""
    from mlplatform.adapters import registry

    params, by, run_id = context.get("params") or {}, _by(context, "airflow"), context.get("run_id")
    version = str(params.get("version") or "")
    why = {"by": by, "run_id": run_id, "reason": str(params.get("reason") or "retired from the Airflow UI")}
    moved = registry.retire_challenger(registry.client(), use_case.model_name, version, why)
    return f"version {version} {'retired' if moved else 'is not the challenger: nothing moved'}"


def _rollback(use_case: UseCase, context: Mapping[str, Any]) -> Any:
    """Put `champion` back on `previous_champion` for the reason the run was given."""
    from airflow.sdk.exceptions import AirflowFailException

    from mlplatform.adapters.registry import RollbackRefused
    from mlplatform.stages import promotion

    params, by, run_id = context.get("params") or {}, _by(context, "airflow"), context.get("run_id")
    reason = str(params.get("reason") or "rolled back from the Airflow UI")
    evidence = {"requested_by": by, "dag_run": run_id}
    try:
        return promotion.rollback(
            use_case, reason, evidence, by=by, run_id=run_id, force=bool(params.get("force"))
        )
    except RollbackRefused as refused:  # the registry's answer: retrying would not change it
        raise AirflowFailException(str(refused)) from refused


def _assess(use_case: UseCase, params: Mapping[str, Any]) -> approval.AssessedCase:
    """The assessment with the gate table (`summary_md`) the approval shows, live evidence first."""
    from mlplatform.adapters.lake import Lake
    from mlplatform.stages import promotion

    version = params.get("version")
    assessment = promotion.assess(Lake(), use_case, None if version is None else str(version))
    summary = promotion.summary_markdown(assessment)
    if (ask := LiveAsk.from_params(params)) is not None:
        summary = promotion.live_summary(ask) + "\n\n" + summary
    return approval.AssessedCase.of(assessment, summary)


def _decide(use_case: UseCase, context: Mapping[str, Any]) -> Any:
    """Act on the run's answer: a live retire or rollback, else the assessed version's decision."""
    from mlplatform.stages import promotion

    params, run_id, ti = context.get("params") or {}, context.get("run_id"), context["ti"]
    live = LiveAsk.from_params(params)
    answer = approval.decision_answer(params, live, _by(context, "manual trigger"), ti)
    if (case := ti.xcom_pull(task_ids="ask_live")) is not None:
        return promotion.act_on_live(use_case, approval.LiveCase.from_dict(case).ask, answer, str(run_id))
    assessment = Assessment.from_dict(ti.xcom_pull(task_ids="assess"))
    return promotion.apply(use_case, assessment, promotion.decide(use_case, assessment, answer), run_id, live)


def _champion_moved(result: promotion.PromotionOutcome) -> promotion.PromotionOutcome:
    """The decision, when the champion moved; skipped otherwise."""
    from airflow.sdk.exceptions import AirflowSkipException

    if result.outcome not in ("promoted", "rolled_back"):
        raise AirflowSkipException(f"champion unchanged: version {result.version} {result.outcome}")
    return result


for _use_case in dagkit.use_cases():
    globals()[dagkit.dag_id(_use_case, STAGE)] = build(_use_case)
