"""Level-3 approvals: who is asked, how they hear of it, and the path where HITL is missing.

A promotion at maturity level 3 waits for a person. When it starts waiting, Slack gets
:func:`request_alert` (what is decided: the gate table; where: the link to the UI's form;
until when); a quarter of the way before the deadline, :func:`reminder_alert` if nobody has
answered. Who decided is recorded by the promotion itself (``decision.by``).

Airflow's human-in-the-loop ``ApprovalOperator`` needs Airflow >= 3.1
(:func:`hitl_supported`). On older Airflow the promote DAG says so in its docs and a
warning at parse time, and waits instead for an answer left in the Airflow Variable
:func:`variable_key` (``airflow variables set <dag id>__approval
'{"version": "7", "answer": "Approve", "by": "alice"}'``), read by :func:`variable_answer`.
Both paths hand ``decide`` the same answer record (:func:`answer`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from mlplatform.adapters.alerts import Alert

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
class ApprovalRequest:
    """One version waiting for a person: what is decided, where, and until when."""

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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ApprovalRequest:
        """Read a request back (one asked before ``improvement`` existed has none)."""
        return cls(**{k: raw[k] for k in cls.__dataclass_fields__ if k in raw})

    @property
    def remind_at(self) -> datetime:
        start, end = datetime.fromisoformat(self.requested_at), datetime.fromisoformat(self.deadline)
        return start + (end - start) * REMIND_AT_SHARE


def request(
    *,
    dag_id: str,
    run_id: str,
    assessment: dict[str, Any],
    now: datetime,
    timeout: timedelta,
    log_url: str | None,
    hitl: bool,
) -> ApprovalRequest:
    """The request for the assessed version, answered in the UI (``hitl``) or by the Variable."""
    version = str(assessment["version"])
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
        model_name=str(assessment["model_name"]),
        version=version,
        summary_md=str(assessment.get("summary_md") or ""),
        requested_at=now.isoformat(),
        deadline=(now + timeout).isoformat(),
        form_url=form,
        how=how,
        improvement=improvement_text(assessment),
    )


def improvement_text(assessment: dict[str, Any]) -> str:
    """The improvement the gates measured, with its interval (``-`` when none was measured)."""
    from mlplatform.core.evidence import Interval

    measured = (assessment.get("evidence") or {}).get("improvement")
    if measured:
        return Interval.from_dict(measured).percent()
    point = assessment.get("improvement")
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


def request_alert(req: ApprovalRequest) -> Alert:
    """Slack's message when an approval starts waiting."""
    return Alert(
        title=f"{req.model_name} version {req.version} waits for approval",
        severity="info",
        lines=(req.how, req.summary_md),
        fields=_facts(req),
        links={"Approve or reject": req.form_url},
    )


def reminder_alert(req: ApprovalRequest) -> Alert:
    """Slack's reminder, sent when nobody answered by :attr:`ApprovalRequest.remind_at`."""
    return Alert(
        title=f"Reminder: {req.model_name} version {req.version} still waits for approval",
        severity="warning",
        lines=(f"No answer yet; without one by {req.deadline} it is rejected.", req.how),
        fields=_facts(req),
        links={"Approve or reject": req.form_url},
    )


def answer(chosen: str, by: str | None) -> dict[str, Any]:
    """An answer in the shape the HITL operator records (``by`` is ``None`` after a timeout)."""
    return {"chosen_options": [chosen], "responded_by_user": {"name": by} if by else None}


def variable_answer(value: Any, version: str) -> dict[str, Any] | None:
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


def approval_finished(task_states: dict[str, Any], run_id: str) -> bool:
    """Whether the run's ``approval`` task is done, from ``get_task_states``'s answer."""
    states = task_states.get(run_id, task_states)
    state = states.get("approval") if isinstance(states, dict) else None
    return str(getattr(state, "value", state)) in FINISHED_STATES
