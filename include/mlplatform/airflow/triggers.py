"""Triggers the triggerer runs for deferred tasks: waits that hold no worker slot.

:class:`RawMonthTrigger` waits for TLC to publish a month's raw files. TLC publishes with a
lag of weeks; a worker slot held that long, or a task rescheduled hundreds of times, would
be waste. The triggerer checks the source every few hours and wakes the ingest task when
every file is there, or when the month is past its deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent


class RawMonthTrigger(BaseTrigger):
    """Fires once every taxi type's file of ``month`` is published at ``prefix``, or at ``due``.

    The event is ``{"month", "found", "late"}``: ``late`` is true when the deadline passed
    first, ``found`` lists the taxi types published by then.
    """

    def __init__(self, prefix: str, taxi_types: list[str], month: str, due: str, poke_seconds: float) -> None:
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
