"""The Airflow notifier every DAG alerts through: a ``BaseNotifier`` over the one alert path.

:class:`FailureNotifier` is the ``on_failure_callback`` in the shared DAG defaults
(:func:`mlplatform.airflow.dagkit.default_args`), so a task that fails for good in any DAG
(retries exhausted, a sensor past its deadline, a crash) posts one Slack message naming the
DAG, the task, the error and a link to the task's log. It is cheap to build at parse time:
nothing is looked up until a task fails. Delivery is :func:`mlplatform.adapters.alerts.send`
(queued in the lake's outbox, then delivered with whatever earlier alerts are still queued:
a Slack connection, else the webhook URL), and it never raises. Failures whose task has
already sent a detailed alert (:class:`~mlplatform.adapters.alerts.AlertedFailure`) are not
reported twice.

It lives with the DAG conventions: :mod:`mlplatform.adapters.alerts` stays free of
Airflow, so the serving image and the command line can alert without it.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk.bases.notifier import BaseNotifier

from mlplatform.adapters import alerts


class FailureNotifier(BaseNotifier):
    """Alert Slack about a task that failed for good, with a link to its log."""

    def __init__(self, use_case: str, stage: str | None = None) -> None:
        super().__init__()
        self.use_case = use_case
        self.stage = stage

    def __repr__(self) -> str:
        return f"FailureNotifier({self.use_case!r}, {self.stage!r})"

    def notify(self, context: Any) -> None:
        """Send the failure alert; silent for failures that already alerted.

        Either way the outbox is flushed first: alerts an earlier task could not deliver
        (Slack was down) go out before this one.
        """
        alerts.flush()
        if getattr(context.get("exception"), "alerted", False):
            return
        ti = context.get("ti") or context.get("task_instance")
        stage = self.stage or str(getattr(ti, "dag_id", "?")).removeprefix(f"{self.use_case}_")
        alerts.send(alerts.failure_alert(self.use_case, stage, context))
