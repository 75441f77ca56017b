"""Level-3 approvals: who is asked, how they hear of it, and the path where HITL is missing.

A promotion at maturity level 3 waits for a person, and so does a live decision of the
monitor at level 3 (promote, or a :class:`LiveCase`: retire the challenger, roll back the
champion). :func:`approval_tasks` adds the tasks that ask to the promote DAG:
`request_approval` posts :func:`request_alert` to Slack (what is decided: the gate table or
the live evidence; where: the link to the UI's form; until when), `approval` waits
for the answer, and `remind` posts :func:`reminder_alert` a quarter of the way before the
deadline if nobody has answered. Who decided is recorded by the promotion itself
(``decision.by``).

Airflow's human-in-the-loop ``ApprovalOperator`` needs Airflow >= 3.1
(:func:`hitl_supported`); `approval` is then :func:`recorded_approval_operator`. On older
Airflow the promote DAG says so in its docs and a warning at parse time
(:func:`approval_doc`), and `approval` waits instead for an answer left in the Airflow
Variable :func:`variable_key` (``airflow variables set <dag id>__approval
'{"version": "7", "answer": "Approve", "by": "alice"}'``), read by :func:`variable_answer`.
Both paths hand ``decide`` the same answer (:func:`answer`, in XCom under the key `answer`),
an :class:`ApprovalResponse`, which it reads with :func:`decision_answer`; :func:`live_case` is
what `ask_live` shows.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import PokeReturnValue, task

from mlplatform.adapters import alerts
from mlplatform.airflow import dagkit
from mlplatform.core.records import Approval, Assessment, LiveAsk, Record
from mlplatform.core.spec import UseCase

log = logging.getLogger(__name__)

HITL_MIN_AIRFLOW = "3.1"
ANSWERS = ("Approve", "Reject")
# The reminder goes out when this share of the waiting time has passed.
REMIND_AT_SHARE = 0.75
FINISHED_STATES = frozenset({"success", "failed", "skipped", "upstream_failed", "removed"})


def airflow_version() -> str:
    import airflow

    return str(airflow.__version__)


def hitl_supported() -> bool:
    """Whether this Airflow has the human-in-the-loop operators (3.1 or later)."""
    from packaging.version import Version

    return Version(airflow_version()).release >= Version(HITL_MIN_AIRFLOW).release


def approval_doc(dag_id: str, doc_md: str) -> str:
    """The promote DAG's docs: as written with HITL, else after a warning (also logged)."""
    if hitl_supported():
        return doc_md
    log.warning(
        "%s: Airflow %s has no HITL approval; level 3 waits for the Variable %s",
        dag_id,
        airflow_version(),
        variable_key(dag_id),
    )
    return fallback_notice(dag_id) + doc_md


def fallback_notice(dag_id: str) -> str:
    """The DAG docs' warning when approvals fall back to the Airflow Variable."""
    return (
        f"> **Warning: Airflow {airflow_version()} has no human-in-the-loop approval** (it needs "
        f"Airflow >= {HITL_MIN_AIRFLOW}). Level 3 approvals wait instead for the Airflow Variable "
        f"`{variable_key(dag_id)}`: approve with `airflow variables set {variable_key(dag_id)} "
        '\'{"version": "<version>", "answer": "Approve", "by": "<your name>"}\'` '
        '(or `"answer": "Reject"`). No answer before the timeout means rejected.\n\n'
    )


def variable_key(dag_id: str) -> str:
    return f"{dag_id}__approval"


@dataclass(frozen=True)
class ApprovalRequest(Record):
    """One version waiting for a person: what is decided, where, and until when.

    A request asked before ``improvement`` existed reads back with ``-``.
    """

    dag_id: str
    run_id: str
    model_name: str
    version: str
    summary_md: str
    requested_at: str  # ISO 8601, UTC
    deadline: str  # ISO 8601, UTC
    form_url: str | None  # the UI's form; None on the Variable path
    how: str  # how to answer
    improvement: str = "-"  # the improvement over the champion with its interval
    question: str = ""  # what is asked, the form's subject

    @property
    def remind_at(self) -> datetime:
        start, end = datetime.fromisoformat(self.requested_at), datetime.fromisoformat(self.deadline)
        return start + (end - start) * REMIND_AT_SHARE


def request(
    *,
    dag_id: str,
    run_id: str,
    assessment: Assessment | None,
    summary_md: str,
    now: datetime,
    timeout: timedelta,
    log_url: str | None,
    hitl: bool,
    case: LiveCase | None = None,
) -> ApprovalRequest:
    """The request for the assessed version, or for a live ``case`` (a retire or rollback
    the monitor asks about), answered in the UI (``hitl``) or by the Variable."""
    if assessment is not None:
        model_name, version, improvement = (
            assessment.model_name,
            assessment.version,
            improvement_text(assessment),
        )
        question = f"Promote {model_name} version {version} to champion?"
    elif case is not None:
        model_name, version, question = case.model_name, case.ask.version, case.question
        improvement = case.ask.evidence.text()
    else:
        raise ValueError("an approval request needs an assessment or a live case")
    if hitl:
        base = log_url.split("/dags/", 1)[0] if log_url and "/dags/" in log_url else None
        form = f"{base}/dags/{dag_id}/runs/{run_id}/tasks/approval/required_actions" if base else None
        how = "Approve or reject it in the Airflow UI (Required actions)."
    else:
        form = None
        value = json.dumps({"version": version, "answer": "Approve", "by": "<your name>"})
        how = f"Approve with `airflow variables set {variable_key(dag_id)} '{value}'` (or answer Reject)."
    return ApprovalRequest(
        dag_id=dag_id,
        run_id=run_id,
        model_name=model_name,
        version=version,
        summary_md=summary_md,
        requested_at=now.isoformat(),
        deadline=(now + timeout).isoformat(),
        form_url=form,
        how=how,
        improvement=improvement,
        question=question,
    )


@dataclass(frozen=True)
class AssessedCase(Assessment):
    """An assessed version as the approval shows it: the assessment, and ``summary_md`` (its
    gate table, after the live evidence when the monitor asked) for the form and Slack."""

    summary_md: str = ""

    @classmethod
    def of(cls, assessment: Assessment, summary_md: str) -> AssessedCase:
        fields = {item.name: getattr(assessment, item.name) for item in dataclasses.fields(assessment)}
        return cls(**fields, summary_md=summary_md)


@dataclass(frozen=True)
class LiveCase(Record):
    """A live retire or rollback the monitor asks about (no gates), as the approval shows it."""

    model_name: str
    ask: LiveAsk
    summary_md: str

    @property
    def question(self) -> str:
        if self.ask.action == "retire":
            return f"Retire {self.model_name} challenger version {self.ask.version} on live evidence?"
        return f"Roll {self.model_name} champion version {self.ask.version} back to the previous champion?"


def live_case(use_case: UseCase, params: Mapping[str, Any]) -> LiveCase:
    """The live retire or rollback the monitor asks about in a promote run's params, with its evidence."""
    from mlplatform.stages import promotion

    ask = LiveAsk.from_params(params)
    if ask is None:
        raise ValueError("a live retire or rollback needs the monitor's evidence in the conf")
    return LiveCase(use_case.model_name, ask, promotion.live_summary(ask))


def decision_answer(params: Mapping[str, Any], live: LiveAsk | None, by: str, ti: Any) -> Approval | None:
    """The answer ``decide`` acts on: a manual ``promote`` approves as ``by``; else `approval`'s, if any."""
    if params.get("action") == "promote" and not live:
        return Approval(True, by)
    response = ti.xcom_pull(task_ids="approval", key="answer")
    return None if response is None else Approval.from_response(response)


def improvement_text(assessment: Assessment) -> str:
    """The improvement the gates measured, with its interval (``-`` when none was measured)."""
    from mlplatform.core.evidence import Interval

    measured = (assessment.evidence or {}).get("improvement")
    if measured:
        return Interval.from_dict(measured).percent()
    point = assessment.improvement
    return f"{point:+.2%} (point estimate)" if isinstance(point, int | float) else "-"


def _facts(req: ApprovalRequest) -> dict[str, str]:
    """What every approval message says about the request."""
    return {
        "Model": req.model_name,
        "Version": req.version,
        "Improvement": req.improvement,
        "Answer by": req.deadline,
        "Run": req.run_id,
    }


def request_alert(req: ApprovalRequest) -> alerts.Alert:
    """Slack's message when an approval starts waiting."""
    return alerts.Alert(
        title=f"{req.model_name} version {req.version} waits for approval",
        severity="info",
        lines=(req.how, req.summary_md),
        fields=_facts(req),
        links={"Approve or reject": req.form_url},
    )


def reminder_alert(req: ApprovalRequest) -> alerts.Alert:
    """Slack's reminder, sent when nobody answered by :attr:`ApprovalRequest.remind_at`."""
    return alerts.Alert(
        title=f"Reminder: {req.model_name} version {req.version} still waits for approval",
        severity="warning",
        lines=(f"No answer yet; without one by {req.deadline} it is rejected.", req.how),
        fields=_facts(req),
        links={"Approve or reject": req.form_url},
    )


@dataclass(frozen=True)
class ApprovalResponse(Record):
    """An answer in the shape Airflow's HITL approval records it, as `decide` reads it from XCom
    (key `answer`): the options chosen, and who chose them (``None`` after a timeout)."""

    chosen_options: tuple[str, ...]
    responded_by_user: Mapping[str, str] | None = None


def answer(chosen: str, by: str | None) -> ApprovalResponse:
    """An answer as the HITL operator records it (``by`` is ``None`` after a timeout)."""
    return ApprovalResponse((chosen,), {"name": by} if by else None)


def variable_answer(value: Any, version: str) -> ApprovalResponse | None:
    """The answer the Variable holds for ``version``, or ``None`` while there is none.

    A malformed value is logged with what to fix and waited past (never taken as an answer).
    """
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            value = None
    if not isinstance(value, dict) or value.get("answer") not in ANSWERS or not value.get("by"):
        log.error(
            "the approval Variable holds %r; set it to JSON like "
            '{"version": "%s", "answer": "Approve", "by": "<your name>"} (answer Approve or Reject)',
            value,
            version,
        )
        return None
    if str(value.get("version")) != version:
        return None  # an answer about another version: not this request's
    return answer(str(value["answer"]), str(value["by"]))


def approval_finished(task_states: Any, run_id: str) -> bool:
    """Whether the run's ``approval`` task is done, from ``get_task_states``'s answer."""
    states = task_states.get(run_id, task_states)
    state = states.get("approval") if isinstance(states, dict) else None
    return str(getattr(state, "value", state)) in FINISHED_STATES


# -- the tasks that ask ------------------------------------------------------------------------


def poke_seconds(timeout: timedelta) -> float:
    """Check often enough to remind in time, at most every 5 minutes."""
    return max(1.0, min(300.0, timeout.total_seconds() / 8))


def sensor_timeout(timeout: timedelta) -> float:
    """Longer than the approval may wait: the sensors end themselves at its deadline."""
    return timeout.total_seconds() + 3600


def approval_tasks(use_case: UseCase, dag_id: str) -> tuple[Any, Any]:
    """Ask a person about the assessed version (XCom of `assess`) or the live case (of
    `ask_live`): `request_approval`, `approval`, `remind`, `approved`.

    Returns the first task (the route to it) and the last (which ``decide`` follows: the
    approval skips its direct downstream on "Reject", and `decide` must still run then).
    """
    timeout = timedelta(hours=use_case.promotion.approval_timeout_hours)
    hitl = hitl_supported()

    # After `route` (an assessed version) or `ask_live` (a live retire or rollback): one of them ran.
    @task(trigger_rule="none_failed_min_one_success")
    @dagkit.records
    def request_approval(run_id: str | None = None, ti: Any = None) -> ApprovalRequest:
        """Post to Slack what waits for approval: the gate table or the live evidence, and where to answer."""
        assessed, live_case = ti.xcom_pull(task_ids="assess"), ti.xcom_pull(task_ids="ask_live")
        asked = request(
            dag_id=dag_id,
            run_id=str(run_id),
            assessment=Assessment.from_dict(assessed) if assessed else None,
            case=LiveCase.from_dict(live_case) if live_case else None,
            summary_md=str((assessed or live_case)["summary_md"]),
            now=datetime.now(UTC),
            timeout=timeout,
            log_url=getattr(ti, "log_url", None),
            hitl=hitl,
        )
        alerts.send(request_alert(asked))
        return asked

    @task.sensor(poke_interval=poke_seconds(timeout), timeout=sensor_timeout(timeout), mode="reschedule")
    @dagkit.records
    def remind(asked: ApprovalRequest, run_id: str | None = None, ti: Any = None) -> PokeReturnValue:
        """Remind Slack once if the approval is still unanswered late in its waiting time."""
        states = ti.get_task_states(dag_id=dag_id, task_ids=["approval"], run_ids=[run_id])
        if approval_finished(states, str(run_id)):
            return PokeReturnValue(is_done=True, xcom_value="answered")
        if datetime.now(UTC) < asked.remind_at:
            return PokeReturnValue(is_done=False)
        alerts.send(reminder_alert(asked))
        return PokeReturnValue(is_done=True, xcom_value="reminded")

    asked = request_approval()
    waiting = _wait_for_answer(hitl, timeout, asked)
    asked >> waiting  # the HITL operator takes no input from it, but must wait for it
    remind(asked)  # type: ignore[arg-type]  # an XComArg: `dagkit.records` reads the request from it
    approved = EmptyOperator(task_id="approved")
    waiting >> approved
    return asked, approved


def _wait_for_answer(hitl: bool, timeout: timedelta, asked: Any) -> Any:
    """The task that waits for the answer: Airflow's HITL form, or the Variable on Airflow < 3.1."""
    if hitl:
        return recorded_approval_operator()(
            task_id="approval",
            subject="{{ ti.xcom_pull(task_ids='request_approval')['question'] }}",
            body="{{ ti.xcom_pull(task_ids='request_approval')['summary_md'] }}",
            defaults="Reject",
            response_timeout=timeout,
        )

    @task.sensor(
        task_id="approval",
        poke_interval=poke_seconds(timeout),
        timeout=sensor_timeout(timeout),
        mode="reschedule",
    )
    @dagkit.records
    def wait_for_variable(asked: ApprovalRequest, ti: Any = None) -> PokeReturnValue:
        """Wait for the answer in the Airflow Variable `<dag id>__approval`; none by the deadline rejects."""
        from airflow.sdk import Variable

        value = Variable.get(variable_key(asked.dag_id), default=None)
        found = variable_answer(value, asked.version)
        if found is None and datetime.now(UTC) >= datetime.fromisoformat(asked.deadline):
            found = answer("Reject", None)
        if found is None:
            return PokeReturnValue(is_done=False)
        ti.xcom_push(key="answer", value=found.to_dict())
        return PokeReturnValue(is_done=True, xcom_value=found.to_dict())

    return wait_for_variable(asked)


def recorded_approval_operator() -> type:
    """Airflow's `ApprovalOperator` that also keeps the answer in XCom (key `answer`).

    Only for Airflow >= 3.1 (:func:`hitl_supported`): older Airflow has no such operator.
    On "Reject" (or the default after a timeout) the operator skips its downstream tasks,
    which ends it before its return value is stored; `decide` still needs to know who
    answered what.
    """
    from airflow.providers.standard.operators.hitl import ApprovalOperator

    class RecordedApprovalOperator(ApprovalOperator):
        __doc__ = recorded_approval_operator.__doc__

        def execute_complete(self, context: Any, event: Mapping[str, Any]) -> Any:
            if "error" not in event:
                found = {
                    "chosen_options": list(event.get("chosen_options") or []),
                    "responded_by_user": event.get("responded_by_user"),
                }
                context["ti"].xcom_push(key="answer", value=found)
            return super().execute_complete(context, dict(event))

    return RecordedApprovalOperator
