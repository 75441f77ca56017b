"""Airflow's `ApprovalOperator`, recording the answer: imported only where Airflow >= 3.1.

:mod:`mlplatform.airflow.approval` decides whether this module may be imported
(``hitl_supported``); on older Airflow the promote DAG never imports it.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator


class RecordedApprovalOperator(ApprovalOperator):
    """Airflow's `ApprovalOperator` that also keeps the answer in XCom (key `answer`).

    On "Reject" (or the default after a timeout) the operator skips its downstream tasks,
    which ends it before its return value is stored; `decide` still needs to know who
    answered what.
    """

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        if "error" not in event:
            answer = {
                "chosen_options": list(event.get("chosen_options") or []),
                "responded_by_user": event.get("responded_by_user"),
            }
            context["ti"].xcom_push(key="answer", value=answer)
        return super().execute_complete(context, event)
