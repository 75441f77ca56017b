"""The alias history: which version served production at a given time, and why.

Every alias move (``champion``, ``challenger``, ``previous_champion``; by a promotion, a
rollback, a rejection that retires the challenger, a new trained version) is written to
the lake before the alias moves (:func:`mlplatform.adapters.registry.record`), one
:class:`~mlplatform.core.records.AliasEvent` per file under
``registry/history/<model>/``. This module reads it back: :func:`events` the timeline,
:func:`serving_at` the move that put the version serving at a given time in place, with
who made it, why and on what evidence.

An event whose move never happened (the writer died between the record and the move)
is recognised by the next event on the same alias, which starts from where the alias
really was: :func:`applied` leaves such events out of the answers, :func:`events` keeps
them all.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from mlplatform.adapters import registry
from mlplatform.adapters.lake import Lake
from mlplatform.adapters.registry import CHAMPION
from mlplatform.core.records import AliasEvent
from mlplatform.core.spec import UseCase


def events(use_case: UseCase, lake: Lake | None = None) -> list[AliasEvent]:
    """Every recorded alias event of the use case's model, oldest first."""
    return registry.alias_events(use_case.model_name, lake)


def applied(found: Sequence[AliasEvent]) -> list[AliasEvent]:
    """The events whose move happened: each one the next event on its alias starts from
    (the last event on an alias is taken as applied)."""
    kept = []
    for i, event in enumerate(found):
        following = next((e for e in found[i + 1 :] if e.alias == event.alias), None)
        if following is None or following.from_version == event.version:
            kept.append(event)
    return kept


def parse_time(text: str) -> datetime:
    """A time given as ISO 8601 (a date means its midnight); without a zone, UTC."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is not a date or time: give ISO 8601, e.g. 2024-05-01 or 2024-05-01T12:00:00Z"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def serving_at(found: Sequence[AliasEvent], at: datetime, alias: str = CHAMPION) -> AliasEvent | None:
    """The applied move that set ``alias`` as it was at ``at`` (``None`` before the first).

    Its ``version`` is what served (``None``: the alias was removed), ``at`` since when,
    ``by``, ``reason``, ``evidence`` and ``gates`` why.
    """
    moment = at if at.tzinfo else at.replace(tzinfo=UTC)
    before = [e for e in applied(found) if e.alias == alias and datetime.fromisoformat(e.at) <= moment]
    return before[-1] if before else None


def until(found: Sequence[AliasEvent], event: AliasEvent) -> str | None:
    """When the tenure ``event`` began ended: the next applied move of the same alias."""
    later = [e for e in applied(found) if e.alias == event.alias and e.at > event.at]
    return later[0].at if later else None
