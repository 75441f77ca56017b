"""The model registry: the one client, versions by alias, the promotion lock and rollback.

Versions are addressed by MLflow aliases, never stages:

- ``challenger``: the newest trained version waiting for a decision (set by training);
- ``champion``: the version that scores and serves;
- ``previous_champion``: the champion before the last promotion, what a rollback restores.

:func:`client` is the platform's one ``MlflowClient``; :func:`resolve` pins an alias to a
:class:`~mlplatform.core.records.ModelRef`. :func:`promote` moves the aliases under
:func:`promotion_lock`; deciding *whether* to promote (the gates, the maturity levels) is
:mod:`mlplatform.stages.promotion`'s. :func:`rollback` puts the previous champion back in
one step. Registry events are posted to Slack through :mod:`mlplatform.adapters.alerts`.

Every alias move is recorded before it happens: :func:`record` writes one
:class:`~mlplatform.core.records.AliasEvent` per alias to the lake's append-only history
(``registry/history/<model>/``, one file per event, so concurrent writers never collide),
and a move whose record cannot be written does not happen (:class:`PromotionError`). After
the move the registered model's tag ``alias_history.last`` summarises the events.
:func:`alias_events` reads the history back; :func:`applied` keeps the moves that happened,
:func:`serving_at` says which version an alias held at a given time ("what served production
on date X, and why": who moved it, the reason and the evidence) and :func:`until` when that
tenure ended. A process killed between the record and the
move leaves an event the registry never followed; the next event on that alias names
where the alias really was (``from_version``), so a reader sees it.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import socket
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from mlplatform.adapters import settings
from mlplatform.core.records import AliasEvent, Gate, ModelRef, Record
from mlplatform.core.spec import UseCase

if TYPE_CHECKING:
    from mlplatform.adapters.lake import Lake

CHALLENGER, CHAMPION, PREVIOUS = "challenger", "champion", "previous_champion"
HISTORY_TAG = "champion_history"
"""Registered-model tag: comma-separated versions that were champion, oldest first."""
LAST_EVENTS_TAG = "alias_history.last"
"""Registered-model tag: the alias events of the latest move, in short (the lake has them whole)."""
REGISTRATION_TAG, INCOMPLETE = "registration", "incomplete"
"""Version tag: ``incomplete`` from registration until ``challenger`` and its history are
written, then ``complete``; a retry finishes an incomplete version of the same training run."""


class PromotionError(RuntimeError):
    """A promotion or rollback cannot go ahead; the message says why and what to do."""


class RollbackRefused(PromotionError):
    """A rollback the registry's state refuses (no previous champion, or within the cooldown):
    trying again minutes later gives the same answer, unlike a history that could not be
    written."""


class ModelNotFound(LookupError):
    """The registry has no version under the requested name and alias."""


def client() -> Any:
    """An ``MlflowClient`` on the platform's tracking server and registry."""
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(settings.tracking_uri())
    return MlflowClient()


def _not_found(exc: Exception) -> bool:
    return getattr(exc, "error_code", "") in (
        "RESOURCE_DOES_NOT_EXIST",
        "NOT_FOUND",
        "INVALID_PARAMETER_VALUE",
    )


def alias_version(registry: Any, name: str, alias: str) -> str | None:
    """The version ``alias`` points at, or ``None`` when it is not set (or no model exists)."""
    from mlflow.exceptions import MlflowException

    try:
        return str(registry.get_model_version_by_alias(name, alias).version)
    except MlflowException as exc:
        if _not_found(exc):
            return None
        raise


def resolve(model_name: str, alias: str = CHAMPION, registry: Any = None) -> ModelRef:
    """The version ``alias`` points at now; raises :class:`ModelNotFound` naming what to do."""
    from mlflow.exceptions import MlflowException

    registry = registry or client()
    try:
        version = registry.get_model_version_by_alias(model_name, alias)
    except MlflowException as exc:
        if not _not_found(exc):
            raise
        raise ModelNotFound(
            f"registered model {model_name!r} has no version with alias {alias!r} in the registry at "
            f"{registry.tracking_uri}: promote a version first (the {model_name}_promote DAG), or set the "
            f"alias by hand with MlflowClient().set_registered_model_alias({model_name!r}, {alias!r}, <v>)"
        ) from None
    return ModelRef(model_name, str(version.version), alias, version.run_id, version.source)


def model_url(name: str, version: str) -> str:
    return f"{settings.tracking_uri().rstrip('/')}/#/models/{name}/versions/{version}"


def register_challenger(use_case: UseCase, run_id: str, model_uri: str) -> ModelRef:
    """Register the model a training run logged as a new version and point ``challenger`` at it.

    Returns the version (a retry of a registration returns the version the first attempt made).
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    registry = client()
    name = use_case.model_name
    try:
        registry.get_registered_model(name)
    except MlflowException as exc:
        if not _not_found(exc):
            raise
        with contextlib.suppress(MlflowException):  # created meanwhile by a concurrent run
            registry.create_registered_model(name, description=use_case.description)
    run_tags = registry.get_run(run_id).data.tags
    earlier = registry.search_model_versions(f"name = '{name}' and tags.training_run_id = '{run_id}'")
    finished = [v for v in earlier if v.tags.get(REGISTRATION_TAG) != INCOMPLETE]
    if finished:  # an earlier attempt registered this run's model whole
        return ModelRef(name, str(finished[0].version), CHALLENGER, run_id)
    if earlier:  # an earlier attempt died half-way: finish that version, register no second one
        version = str(min(int(v.version) for v in earlier))
    else:
        tags = {"training_run_id": run_id, REGISTRATION_TAG: INCOMPLETE}
        for key in ("mlplatform.code_version", "airflow.bundle_version", "airflow.run_id"):
            if key in run_tags:  # where the model came from, on the version itself
                tags[key] = run_tags[key]
        version = str(mlflow.register_model(model_uri, name, tags=tags).version)
    before = alias_version(registry, name, CHALLENGER)
    if before != version:
        why = {
            "by": run_tags.get("airflow.run_id") or who(),
            "run_id": run_id,
            "reason": "a new trained version",
        }
        event = alias_event(name, CHALLENGER, "register", version, before, why)
        record([event])
        registry.set_registered_model_alias(name, CHALLENGER, version)
        _tag_events(registry, name, [event])
    else:  # the alias moved, its summary may not have been written: the lake has the event
        moved = [e for e in alias_events(name) if e.alias == CHALLENGER and e.version == version]
        if moved:
            _tag_events(registry, name, moved[-1:])
    registry.set_model_version_tag(name, version, REGISTRATION_TAG, "complete")
    return ModelRef(name, version, CHALLENGER, run_id)


# -- the alias history --------------------------------------------------------------------------
def alias_event(
    model_name: str,
    alias: str,
    action: str,
    version: str | None,
    from_version: str | None,
    why: Mapping[str, Any],
) -> AliasEvent:
    """The event of moving ``alias`` from ``from_version`` to ``version`` (``None``: removed).

    ``why`` holds ``by``, ``run_id``, ``reason``, ``evidence``, ``gates`` (gate dicts) and
    ``cooldown_until``, each optional.
    """
    now = datetime.now(UTC)
    event_id = f"{now:%Y%m%dT%H%M%S%fZ}-{alias}-{version or 'none'}-{uuid.uuid4().hex[:8]}"
    cooldown = why.get("cooldown_until")
    return AliasEvent(
        event_id=event_id,
        at=now.isoformat(),
        model_name=model_name,
        alias=alias,
        action=action,
        version=version,
        from_version=from_version,
        by=str(why.get("by") or who()),
        run_id=None if why.get("run_id") is None else str(why["run_id"]),
        reason=str(why.get("reason") or ""),
        evidence=dict(why.get("evidence") or {}),
        gates=tuple(g if isinstance(g, Gate) else Gate.from_dict(g) for g in why.get("gates") or ()),
        cooldown_until=None if cooldown is None else str(cooldown),
    )


def record(events: Sequence[AliasEvent], lake: Lake | None = None) -> None:
    """Write ``events`` to the lake's alias history, before their aliases move.

    Raises :class:`PromotionError` naming the lake when it cannot: the caller then moves
    nothing, so no alias moves without its record.
    """
    from mlplatform.adapters.lake import Lake

    try:
        lake = lake or Lake()
        for event in events:
            lake.write_json(Lake.alias_history_path(event.model_name, event.event_id), event.to_dict())
    except OSError as exc:
        where = lake.root_uri if lake is not None else "the lake"
        raise PromotionError(
            f"the alias history could not be written to {where} ({exc}); no alias moved. Make the lake "
            "writable (MLPLATFORM_LAKE_URI) and try again"
        ) from exc


def alias_events(model_name: str, lake: Lake | None = None) -> list[AliasEvent]:
    """Every recorded alias event of ``model_name``, oldest first (damaged files are skipped)."""
    from mlplatform.adapters.lake import Lake

    lake = lake or Lake()
    found = []
    for entry in lake.list(Lake.alias_history_path(model_name)):
        if not entry.path.endswith(".json"):
            continue
        try:
            found.append(AliasEvent.from_dict(lake.read_json(entry.path)))
        except (ValueError, TypeError, AttributeError):
            continue
    return sorted(found, key=lambda e: (e.at, e.event_id))


def applied(found: Sequence[AliasEvent]) -> list[AliasEvent]:
    """The events whose move happened: each one the next event on its alias starts from
    (the last event on an alias is taken as applied)."""
    kept = []
    for i, event in enumerate(found):
        following = next((e for e in found[i + 1 :] if e.alias == event.alias), None)
        if following is None or following.from_version == event.version:
            kept.append(event)
    return kept


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


def _tag_events(registry: Any, name: str, events: Sequence[AliasEvent]) -> None:
    """Summarise the move's events on the registered model (the lake keeps them whole)."""
    short = [
        {
            k: e.to_dict()[k]
            for k in ("at", "alias", "action", "from_version", "version", "by", "run_id", "event_id")
        }
        for e in events
    ]
    text = json.dumps(short, sort_keys=True)
    while len(text) > 4900 and short:
        short = short[1:]
        text = json.dumps(short, sort_keys=True)
    registry.set_registered_model_tag(name, LAST_EVENTS_TAG, text)


def retire_challenger(registry: Any, name: str, version: str, why: Mapping[str, Any]) -> bool:
    """Remove ``challenger`` from ``version`` (decided and rejected), recorded first; false when
    the alias points elsewhere already."""
    if alias_version(registry, name, CHALLENGER) != version:
        return False
    event = alias_event(name, CHALLENGER, "retire", None, version, why)
    record([event])
    registry.delete_registered_model_alias(name, CHALLENGER)
    _tag_events(registry, name, [event])
    return True


def cooldown_refusal(model_name: str, now: datetime, lake: Lake | None = None) -> str | None:
    """Why a rollback is refused now (the last one's cooldown still runs), or ``None``."""
    rollbacks = [e for e in alias_events(model_name, lake) if e.action == "rollback" and e.alias == CHAMPION]
    if not rollbacks or rollbacks[-1].cooldown_until is None:
        return None
    last = rollbacks[-1]
    until = datetime.fromisoformat(str(last.cooldown_until))
    if now >= until:
        return None
    return (
        f"{model_name} was rolled back at {last.at} by {last.by} (to version {last.version}); another "
        f"rollback is refused until {until.isoformat()} so the champion does not flap. A person can "
        "force it: mlplatform rollback --force"
    )


# -- the lock ---------------------------------------------------------------------------------
def lock_name(model_name: str) -> str:
    return f"{model_name}.promotion-lock"


@contextlib.contextmanager
def promotion_lock(
    registry: Any, model_name: str, holder: str, wait_s: float = 120.0, stale_after_s: float = 600.0
) -> Iterator[None]:
    """Hold the promotion lock of ``model_name`` for the duration of the block.

    Why a registered model: moving ``champion`` and ``previous_champion`` is a
    read-modify-write of several aliases and tags, and MLflow offers no transaction or
    compare-and-set over them. Creating a registered model is atomic in every registry
    backend (SQLite, PostgreSQL, MySQL or a managed server): the name is a unique key, so of
    two concurrent creations exactly one succeeds. The lock is therefore the registered
    model ``<model>.promotion-lock``, created to acquire and deleted to release. It lives
    where the aliases live, so Airflow workers, the command line and any other host
    serialise on the same thing, whatever the lake is (a folder or S3) and whichever
    database is behind Airflow.

    A holder that died leaves the lock behind: one older than ``stale_after_s`` (an alias
    move takes well under a second) is broken by renaming it away, which only one contender
    can do. The lock records its holder (host, pid and the process's start time): one whose
    holder ran on this host and is gone (no such pid, or the pid now names a later process)
    is broken at once, without waiting for it to go stale. Waiting longer than ``wait_s``
    raises :class:`PromotionError` naming the holder.
    """
    from mlflow.exceptions import MlflowException

    name = lock_name(model_name)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            registry.create_registered_model(
                name,
                tags={"holder": holder, "acquired_at": datetime.now(UTC).isoformat(), **_this_process()},
                description=f"Promotion lock of {model_name}: held while its aliases move.",
            )
            break
        except MlflowException as exc:
            # Taken; or taken and released during our request (the server then fails to read
            # the lock it collided with): either way our create did not happen, so try again.
            if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "RESOURCE_DOES_NOT_EXIST"):
                raise
        _break_if_stale(registry, name, stale_after_s)
        if time.monotonic() > deadline:
            held_by = _lock_holder(registry, name)
            raise PromotionError(
                f"another promotion of {model_name} holds the lock ({held_by}); wait for it to finish, "
                f"or if no promotion is running delete the registered model {name!r} in MLflow"
            )
        time.sleep(0.2)
    try:
        yield
    finally:
        with contextlib.suppress(MlflowException):
            registry.delete_registered_model(name)


def _lock_holder(registry: Any, name: str) -> str:
    from mlflow.exceptions import MlflowException

    try:
        tags = registry.get_registered_model(name).tags
    except MlflowException:
        return "released just now"
    where = f"pid {tags.get('pid', '?')} on {tags.get('host', '?')}"
    return f"held by {tags.get('holder', '?')} ({where}) since {tags.get('acquired_at', '?')}"


def _this_process() -> dict[str, str]:
    """Who holds a lock: this host, this pid and when this process started."""
    return {"host": socket.gethostname(), "pid": str(os.getpid()), "process_started": _started(os.getpid())}


def _started(pid: int) -> str:
    """When process ``pid`` started (clock ticks after boot, Linux's /proc); "" where unknown."""
    try:
        with open(f"/proc/{pid}/stat") as proc:
            stat = proc.read()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]  # field 22; the command name may hold spaces


def _holder_gone(tags: Mapping[str, str]) -> bool:
    """The lock's holder ran on this host and its process is gone (or its pid was reused)."""
    pid = tags.get("pid", "")
    if tags.get("host") != socket.gethostname() or not pid.isdigit():
        return False  # another host's process, or a lock of an older release: wait for staleness
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, another user's
    recorded = tags.get("process_started", "")
    return bool(recorded) and _started(int(pid)) not in ("", recorded)


def _break_if_stale(registry: Any, name: str, stale_after_s: float) -> None:
    from mlflow.exceptions import MlflowException

    try:
        lock = registry.get_registered_model(name)
    except MlflowException:
        return
    age_s = time.time() - (lock.creation_timestamp or 0) / 1000
    if age_s < stale_after_s and not _holder_gone(lock.tags):
        return
    stale = f"{name}.stale-{uuid.uuid4().hex[:8]}"
    try:
        registry.rename_registered_model(name, stale)  # atomic: one contender wins
        registry.delete_registered_model(stale)
    except MlflowException:
        return  # another contender broke it first


# -- moving aliases ---------------------------------------------------------------------------
def _history(registry: Any, name: str) -> list[str]:
    raw = registry.get_registered_model(name).tags.get(HISTORY_TAG, "")
    return [v for v in raw.split(",") if v]


def _set_history(registry: Any, name: str, history: list[str]) -> None:
    # A registered-model tag holds 5000 characters: keep the most recent champions.
    while len(",".join(history)) > 4900:
        history = history[1:]
    registry.set_registered_model_tag(name, HISTORY_TAG, ",".join(history))


def tag_version(registry: Any, name: str, version: str, tags: dict[str, Any]) -> None:
    """Set ``tags`` on a model version; values that are not text are stored as JSON."""
    for key, value in tags.items():
        text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
        registry.set_model_version_tag(name, version, key, text)


def decision_tags(outcome: str, reason: str, by: str, run_id: str, **details: Any) -> dict[str, Any]:
    """The audit trail a decision leaves on a model version, the one shape of its tags:
    ``decision`` (the outcome), ``decision.reason``, ``decision.by``, ``decision.run_id``,
    ``decision.at`` and ``decision.<key>`` for each of ``details`` (a promotion's metrics,
    evidence and gates)."""
    return {
        "decision": outcome,
        "decision.reason": reason,
        "decision.by": by,
        "decision.run_id": run_id,
        "decision.at": datetime.now(UTC).isoformat(),
        **{f"decision.{key}": value for key, value in details.items()},
    }


@dataclass(frozen=True)
class AliasMove(Record):
    """What :func:`promote` did: the champion after it, the one before, and whether it moved."""

    champion: str
    previous_champion: str | None
    moved: bool


def promote(
    model_name: str, version: str, decision: dict[str, Any], registry: Any = None, history: Lake | None = None
) -> AliasMove:
    """Make ``version`` the champion, keeping the old one as ``previous_champion``.

    The moves are recorded first in the lake's alias history (``history``, default the
    settings' lake) with ``decision``'s ``by``, ``run_id``, ``reason``, ``evidence`` and
    ``gates``: when that fails nothing moves (:class:`PromotionError`).

    Runs under :func:`promotion_lock`, held by ``decision["run_id"]``. Idempotent: when
    ``version`` already is the champion nothing changes and ``moved`` is false (what the
    losers of concurrent promotions of one version see). Otherwise, when
    ``decision["expected_champion"]`` is given (the champion the gates compared against;
    ``None`` for none), the aliases only move if the champion is still that one: a version
    judged against an older champion is never put over a newer one (:class:`PromotionError`).
    """
    registry = registry or client()
    version = str(version)
    holder = str(decision.get("run_id") or who())
    with promotion_lock(registry, model_name, holder):
        before = alias_version(registry, model_name, CHAMPION)
        if before == version:
            return AliasMove(before, alias_version(registry, model_name, PREVIOUS), moved=False)
        if "expected_champion" in decision and before != decision["expected_champion"]:
            raise PromotionError(
                f"the champion of {model_name} moved from version {decision['expected_champion']} to "
                f"{before} since version {version} was assessed; promote again to assess it against "
                "the new champion"
            )
        challenger = alias_version(registry, model_name, CHALLENGER)
        events = []  # in the order the aliases move
        if before is not None:
            previous = alias_version(registry, model_name, PREVIOUS)
            events.append(alias_event(model_name, PREVIOUS, "promote", before, previous, decision))
        events.append(alias_event(model_name, CHAMPION, "promote", version, before, decision))
        if challenger == version:
            events.append(alias_event(model_name, CHALLENGER, "promote", None, version, decision))
        record(events, history)  # raises before anything moves when it cannot be written
        moves = _history(registry, model_name)
        if before is not None:
            registry.set_registered_model_alias(model_name, PREVIOUS, before)
            if not moves or moves[-1] != before:
                moves.append(before)
        registry.set_registered_model_alias(model_name, CHAMPION, version)
        _set_history(registry, model_name, [*moves, version])
        if challenger == version:
            registry.delete_registered_model_alias(model_name, CHALLENGER)
        tag_version(registry, model_name, version, {"champion_since": datetime.now(UTC).isoformat()})
        _tag_events(registry, model_name, events)
    return AliasMove(version, before, moved=True)


def rollback(
    model_name: str,
    by: str | None = None,
    run_id: str | None = None,
    *,
    reason: str = "",
    evidence: Mapping[str, Any] | None = None,
    cooldown_days: float = 0.0,
    force: bool = False,
    history: Lake | None = None,
) -> dict[str, Any]:
    """Put ``champion`` back on ``previous_champion`` in one step (under the promotion lock).

    The version rolled back from is tagged with who, when and the run id; the version
    before the restored one (from the champion history) becomes ``previous_champion``, so
    rolling back again goes one more step back. The moves are recorded first in the alias
    history with ``reason`` and ``evidence`` and, with ``cooldown_days``, the time until
    which another rollback is refused unless ``force`` (:func:`cooldown_refusal`).
    """
    registry = client()
    by = by or who()
    with promotion_lock(registry, model_name, str(run_id or by)):
        current = alias_version(registry, model_name, CHAMPION)
        previous = alias_version(registry, model_name, PREVIOUS)
        if previous is None:
            raise RollbackRefused(
                f"{model_name} has no previous_champion to roll back to (champion: {current or 'none'}); "
                f"promote a specific version instead: mlplatform promote --use-case {model_name} "
                "--version N --approve"
            )
        now = datetime.now(UTC)
        if not force and (refusal := cooldown_refusal(model_name, now, history)):
            raise RollbackRefused(refusal)
        moves = [v for v in _history(registry, model_name) if v != current]
        if not moves or moves[-1] != previous:
            moves.append(previous)
        earlier = moves[-2] if len(moves) >= 2 else None
        why = {
            "by": by,
            "run_id": run_id or who(),
            "reason": reason or f"rolled back from version {current} to version {previous}",
            "evidence": dict(evidence or {}),
            "cooldown_until": (now + timedelta(days=cooldown_days)).isoformat() if cooldown_days else None,
        }
        events = [
            alias_event(model_name, CHAMPION, "rollback", previous, current, why),
            alias_event(model_name, PREVIOUS, "rollback", earlier, previous, why),
        ]
        record(events, history)  # raises before anything moves when it cannot be written
        registry.set_registered_model_alias(model_name, CHAMPION, previous)
        if earlier is not None:
            registry.set_registered_model_alias(model_name, PREVIOUS, earlier)
        else:
            registry.delete_registered_model_alias(model_name, PREVIOUS)
        _set_history(registry, model_name, moves)
        _tag_events(registry, model_name, events)
        if current is not None:
            back = f"rolled back to version {previous}: {why['reason']}"
            tags = decision_tags("rolled_back", back, by, run_id or who())
            tag_version(registry, model_name, current, tags)
    result = {
        "champion": previous,
        "rolled_back_from": current,
        "previous_champion": earlier,
        "reason": why["reason"],
        "cooldown_until": why["cooldown_until"],
    }
    notify(
        "warning",
        f"{model_name}: rolled back to version {previous}",
        [f"`champion` moved from version {current} back to version {previous} by {by}: {why['reason']}."],
        {"Model": model_name, "Champion": previous, "Rolled back": current, "Run": run_id or "-"},
        {"Model version": model_url(model_name, previous)},
    )
    return result


def who() -> str:
    """Who runs this: user@host, for audit records."""
    try:
        return f"{getpass.getuser()}@{socket.gethostname()}"
    except (KeyError, OSError):
        return "unknown"


def notify(
    severity: str, title: str, lines: list[str], fields: dict[str, Any], links: dict[str, str]
) -> bool:
    """Post a registry event to Slack (through :mod:`mlplatform.adapters.alerts`); never raises."""
    from mlplatform.adapters import alerts

    return alerts.send(alerts.Alert(title, severity, tuple(lines), fields, links))  # type: ignore[arg-type]
