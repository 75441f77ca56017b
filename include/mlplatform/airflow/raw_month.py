"""The wait for a raw month: TLC publishes a month's files weeks after it ends.

The ingest DAG's `wait_for_month` is :class:`WaitForRawMonth`. It checks once; then it
defers to :class:`RawMonthTrigger`, which the triggerer runs: a worker slot held for weeks,
or a task rescheduled hundreds of times, would be waste. The triggerer checks the source
every few hours and wakes the task when every file is there, or when the month is past its
deadline; the task then alerts that the month is late (:class:`MonthLate`) and fails.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException
from airflow.triggers.base import BaseTrigger, TriggerEvent

from mlplatform.adapters import alerts
from mlplatform.core.spec import UseCase

# Airflow's own limit, past any deadline a run can have: the wait alerts at the deadline.
WAIT_TIMEOUT = timedelta(days=400)


class RawMonthTrigger(BaseTrigger):
    """Fires once every taxi type's file of ``month`` is published at ``prefix``, or at ``due``.

    The event is ``{"month", "found", "late"}``: ``late`` is true when the deadline passed
    first, ``found`` lists the taxi types published by then.
    """

    def __init__(
        self, prefix: str, taxi_types: Sequence[str], month: str, due: str, poke_seconds: float
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.prefix, self.taxi_types, self.month = prefix, list(taxi_types), month
        self.due, self.poke_seconds = due, float(poke_seconds)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "prefix": self.prefix,
                "taxi_types": self.taxi_types,
                "month": self.month,
                "due": self.due,
                "poke_seconds": self.poke_seconds,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from mlplatform.stages import ingest

        due = datetime.fromisoformat(self.due)
        while True:
            # The source is a file system or object store: look in a thread, never on the loop.
            found = await asyncio.to_thread(ingest.published, self.prefix, self.taxi_types, self.month)  # type: ignore[arg-type]
            complete = len(found) == len(self.taxi_types)
            if complete or datetime.now(UTC) >= due:
                event = {"month": self.month, "found": list(found), "late": not complete}
                yield TriggerEvent(event)  # type: ignore[no-untyped-call]
                return
            self.log.info("%s: published %s of %s; due by %s", self.month, found, self.taxi_types, due)
            await asyncio.sleep(self.poke_seconds)


class MonthLate(AirflowFailException, alerts.AlertedFailure):
    """The month's raw data is past its deadline; the wait has alerted."""


class WaitForRawMonth(BaseOperator):
    """Wait, deferred to the triggerer, until TLC has published every file of the month.

    Checks once right away; then :class:`RawMonthTrigger` checks every
    ``MLPLATFORM_RAW_POKE_MINUTES`` without holding a worker slot. Past the month's deadline
    (``MLPLATFORM_RAW_DEADLINE_DAYS`` after it ends) it alerts once and fails; clear it once
    the data is published.
    """

    template_fields = ("month",)

    def __init__(self, *, use_case: UseCase, month: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.use_case, self.month = use_case, month

    def execute(self, context: Any) -> str:
        from mlplatform.adapters import settings
        from mlplatform.stages import ingest

        taxi_types = list(self.use_case.data.taxi_types)
        prefix, due = ingest.source_prefix(), ingest.deadline(self.month, ingest.deadline_days())
        found = ingest.published(prefix, taxi_types, self.month)
        if len(found) < len(taxi_types) and datetime.now(UTC) < due:
            poke = 60 * float(settings.get("MLPLATFORM_RAW_POKE_MINUTES") or 360)
            self.defer(
                trigger=RawMonthTrigger(prefix, taxi_types, self.month, due.isoformat(), poke),
                method_name="execute_complete",
                timeout=WAIT_TIMEOUT,
            )
        return self.execute_complete(context, {"month": self.month, "found": found, "late": False})

    def execute_complete(self, context: Any, event: Mapping[str, Any]) -> str:
        """Resume: the month is here, or alert that it is late."""
        from mlplatform.stages import ingest

        taxi_types = list(self.use_case.data.taxi_types)
        missing = [t for t in taxi_types if t not in event["found"]]
        if not missing:
            return self.month
        prefix, due = ingest.source_prefix(), ingest.deadline(self.month, ingest.deadline_days())
        message = (
            f"{self.use_case.name}: raw data of {self.month} ({', '.join(missing)}) is not published at "
            f"{prefix} and was due by {due:%Y-%m-%d %H:%M} UTC. Once it is, clear this task to land it."
        )
        alerts.send(
            alerts.Alert(
                f"{self.use_case.name} {self.month}: raw data is late",
                "warning",
                (message,),
                {"Use case": self.use_case.name, "Month": self.month, "Missing": ", ".join(missing)},
                {"Task log": getattr(context.get("ti"), "log_url", None)},
            )
        )
        raise MonthLate(message)
