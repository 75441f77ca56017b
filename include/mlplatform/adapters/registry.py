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
"""

from __future__ import annotations

import contextlib
import getpass
import json
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from mlplatform.adapters import settings
from mlplatform.core.records import ModelRef
from mlplatform.core.spec import UseCase

CHALLENGER, CHAMPION, PREVIOUS = "challenger", "champion", "previous_champion"
HISTORY_TAG = "champion_history"
"""Registered-model tag: comma-separated versions that were champion, oldest first."""


class PromotionError(RuntimeError):
    """A promotion or rollback cannot go ahead; the message says why and what to do."""


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


def register_challenger(use_case: UseCase, run_id: str, model_uri: str) -> dict[str, Any]:
    """Register the model a training run logged as a new version and point ``challenger`` at it."""
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
    tags = {"training_run_id": run_id}
    for key in ("mlplatform.code_version", "airflow.bundle_version", "airflow.run_id"):
        if key in run_tags:  # where the model came from, on the version itself
            tags[key] = run_tags[key]
    version = mlflow.register_model(model_uri, name, tags=tags)
    registry.set_registered_model_alias(name, CHALLENGER, version.version)
    return {"model_name": name, "version": str(version.version), "run_id": run_id}


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
    can do. Waiting longer than ``wait_s`` raises :class:`PromotionError` naming the holder.
    """
    from mlflow.exceptions import MlflowException

    name = lock_name(model_name)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            registry.create_registered_model(
                name,
                tags={"holder": holder, "acquired_at": datetime.now(UTC).isoformat()},
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
    return f"held by {tags.get('holder', '?')} since {tags.get('acquired_at', '?')}"


def _break_if_stale(registry: Any, name: str, stale_after_s: float) -> None:
    from mlflow.exceptions import MlflowException

    try:
        lock = registry.get_registered_model(name)
    except MlflowException:
        return
    age_s = time.time() - (lock.creation_timestamp or 0) / 1000
    if age_s < stale_after_s:
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


@dataclass(frozen=True)
class AliasMove:
    """What :func:`promote` did: the champion after it, the one before, and whether it moved."""

    champion: str
    previous_champion: str | None
    moved: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def promote(model_name: str, version: str, decision: dict[str, Any], registry: Any = None) -> AliasMove:
    """Make ``version`` the champion, keeping the old one as ``previous_champion``.

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
        history = _history(registry, model_name)
        if before is not None:
            registry.set_registered_model_alias(model_name, PREVIOUS, before)
            if not history or history[-1] != before:
                history.append(before)
        registry.set_registered_model_alias(model_name, CHAMPION, version)
        _set_history(registry, model_name, [*history, version])
        if alias_version(registry, model_name, CHALLENGER) == version:
            registry.delete_registered_model_alias(model_name, CHALLENGER)
        tag_version(registry, model_name, version, {"champion_since": datetime.now(UTC).isoformat()})
    return AliasMove(version, before, moved=True)


def rollback(model_name: str, by: str | None = None, run_id: str | None = None) -> dict[str, Any]:
    """Put ``champion`` back on ``previous_champion`` in one step (under the promotion lock).

    The version rolled back from is tagged with who, when and the run id; the version
    before the restored one (from the champion history) becomes ``previous_champion``, so
    rolling back again goes one more step back.
    """
    registry = client()
    by = by or who()
    with promotion_lock(registry, model_name, str(run_id or by)):
        current = alias_version(registry, model_name, CHAMPION)
        previous = alias_version(registry, model_name, PREVIOUS)
        if previous is None:
            raise PromotionError(
                f"{model_name} has no previous_champion to roll back to (champion: {current or 'none'}); "
                f"promote a specific version instead: mlplatform promote --use-case {model_name} "
                "--version N --approve"
            )
        registry.set_registered_model_alias(model_name, CHAMPION, previous)
        history = [v for v in _history(registry, model_name) if v != current]
        if not history or history[-1] != previous:
            history.append(previous)
        earlier = history[-2] if len(history) >= 2 else None
        if earlier is not None:
            registry.set_registered_model_alias(model_name, PREVIOUS, earlier)
        else:
            registry.delete_registered_model_alias(model_name, PREVIOUS)
        _set_history(registry, model_name, history)
        if current is not None:
            tag_version(
                registry,
                model_name,
                current,
                {
                    "decision": "rolled_back",
                    "decision.reason": f"rolled back to version {previous}",
                    "decision.by": by,
                    "decision.run_id": run_id or who(),
                    "decision.at": datetime.now(UTC).isoformat(),
                },
            )
    result = {"champion": previous, "rolled_back_from": current, "previous_champion": earlier}
    notify(
        "warning",
        f"{model_name}: rolled back to version {previous}",
        [f"`champion` moved from version {current} back to version {previous} by {by}."],
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
