"""The model registry: challengers, promotion behind gates, rollback, and the promotion lock.

Versions are addressed by MLflow aliases, never stages:

- ``challenger``: the newest trained version waiting for a decision (set by training);
- ``champion``: the version that scores and serves;
- ``previous_champion``: the champion before the last promotion, what a rollback restores.

A promotion has three steps. :func:`assess` evaluates a version against the gates of the
spec's ``promotion`` section; :func:`decide` turns the result into an outcome according to
the spec's ``maturity_level`` (4 promotes, 3 needs a person's approval, 2 records the
decision and a person promotes by hand); :func:`apply` records it and, for ``promoted``,
moves the aliases with :func:`promote`. A bad model is never promoted: every path to the
``champion`` alias other than :func:`rollback` goes through the gates.

The gates:

- **improvement**: the primary metric (``monitoring.performance_metric``) beats the
  champion's by ``min_relative_improvement``, both evaluated on the same rows: the
  validation snapshots the candidate was held out from (read back by digest, so the
  comparison is reproducible). With no champion yet, the candidate must beat the baseline
  its training run fitted and scored on the same rows.
- **slices**: no slice (``promotion.slices``) worse than the champion's by more than
  ``max_slice_regression``.
- **latency** and **size**: per-row prediction time on a batch of 1000 rows and the model's
  artifact size within ``max_latency_ms`` and ``max_model_size_mb``.
- **contract**: every snapshot the candidate trained or was validated on passed its data
  contract (``contract.success`` in the snapshot manifest; a missing record fails).

Every decision is recorded as tags on the model version (``decision``,
``decision.reason``, ``decision.by``, ``decision.run_id``, ``decision.at``,
``decision.metrics``, ``decision.gates``) and posted to Slack through
:mod:`mlplatform.adapters.alerts`. A final decision (promoted or rejected) removes the
``challenger`` alias when it still points at that version, so nothing keeps sending
traffic to a rejected model.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlplatform.adapters import settings, snapshots
from mlplatform.adapters.lake import Lake
from mlplatform.core.modelling import input_columns
from mlplatform.core.spec import UseCase

CHALLENGER, CHAMPION, PREVIOUS = "challenger", "champion", "previous_champion"
HISTORY_TAG = "champion_history"
"""Registered-model tag: comma-separated versions that were champion, oldest first."""
MAX_EVAL_ROWS = 200_000
LATENCY_BATCH = 1000


class PromotionError(RuntimeError):
    """A promotion or rollback cannot go ahead; the message says why and what to do."""


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


def _tag(registry: Any, name: str, version: str, tags: dict[str, Any]) -> None:
    for key, value in tags.items():
        text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
        registry.set_model_version_tag(name, version, key, text)


def promote(model_name: str, version: str, decision: dict[str, Any], registry: Any = None) -> dict[str, Any]:
    """Make ``version`` the champion, keeping the old one as ``previous_champion``.

    Runs under :func:`promotion_lock`, held by ``decision["run_id"]``. When
    ``decision["expected_champion"]`` is given (the champion the gates compared against;
    ``None`` for none), the aliases only move if the champion is still that one: a version
    judged against an older champion is never put over a newer one. Returns the champion
    before and after.
    """
    registry = registry or client()
    holder = str(decision.get("run_id") or who())
    with promotion_lock(registry, model_name, holder):
        before = alias_version(registry, model_name, CHAMPION)
        if "expected_champion" in decision and before != decision["expected_champion"]:
            raise PromotionError(
                f"the champion of {model_name} moved from version {decision['expected_champion']} to "
                f"{before} since version {version} was assessed; promote again to assess it against "
                "the new champion"
            )
        if before == str(version):
            return {"champion": before, "previous_champion": alias_version(registry, model_name, PREVIOUS)}
        history = _history(registry, model_name)
        if before is not None:
            registry.set_registered_model_alias(model_name, PREVIOUS, before)
            if not history or history[-1] != before:
                history.append(before)
        registry.set_registered_model_alias(model_name, CHAMPION, str(version))
        _set_history(registry, model_name, [*history, str(version)])
        if alias_version(registry, model_name, CHALLENGER) == str(version):
            registry.delete_registered_model_alias(model_name, CHALLENGER)
        _tag(registry, model_name, str(version), {"champion_since": datetime.now(UTC).isoformat()})
    return {"champion": str(version), "previous_champion": before}


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
            _tag(
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


# -- assessing a version ----------------------------------------------------------------------
@dataclass
class Gate:
    name: str
    passed: bool
    detail: str


def _lineage(registry: Any, run_id: str) -> list[dict[str, str]]:
    """The snapshots a training run logged as inputs: month, digest, role."""
    run = registry.get_run(run_id)
    found = []
    for item in run.inputs.dataset_inputs if run.inputs else []:
        tags = {t.key: t.value for t in item.tags}
        if "sha256" in tags and "month" in tags:
            found.append(
                {
                    "month": tags["month"],
                    "digest": tags["sha256"],
                    "role": tags.get("mlflow.data.context", ""),
                    "validation_from": tags.get("validation_from"),
                }
            )
    return found


def _contract_gate(lake: Lake, use_case: UseCase, lineage: list[dict[str, str]]) -> Gate:
    if not lineage:
        return Gate("contract", False, "the training run logged no validated snapshots as inputs")
    failed = []
    for ref in lineage:
        try:
            manifest = snapshots.read_snapshot(lake, use_case.name, ref["month"], ref["digest"]).manifest
        except FileNotFoundError:
            failed.append(f"{ref['month']} ({ref['digest'][:12]}): snapshot not found")
            continue
        contract = manifest.get("contract")
        if not isinstance(contract, dict) or "success" not in contract:
            failed.append(f"{ref['month']} ({ref['digest'][:12]}): no contract record")
        elif contract["success"] is not True:
            failed.append(f"{ref['month']} ({ref['digest'][:12]}): contract failed")
    if failed:
        return Gate("contract", False, "; ".join(failed))
    return Gate("contract", True, f"all {len(lineage)} snapshots passed their data contract")


def _relative_gain(metric: str, candidate: float, reference: float) -> float:
    """How much better ``candidate`` is than ``reference`` (positive = better), relatively."""
    from mlplatform.core.metrics import LOWER_IS_BETTER

    if reference == 0:
        return 0.0
    gain = (reference - candidate) / abs(reference)
    return gain if LOWER_IS_BETTER[metric] else -gain


def _load(model_uri: str) -> tuple[Any, float]:
    """The pyfunc at ``model_uri`` and its artifact size in MB."""
    import mlflow

    with tempfile.TemporaryDirectory(prefix="mlplatform-model-") as local:
        path = Path(mlflow.artifacts.download_artifacts(model_uri, dst_path=local))
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        return mlflow.pyfunc.load_model(str(path)), size / 1e6


def _latency_ms(model: Any, rows: Any, columns: list[str]) -> float:
    """Milliseconds per row the pyfunc takes on a batch of normalised trips (best of 5)."""
    batch = rows[columns].head(LATENCY_BATCH)
    model.predict(batch)  # warm-up
    best = float("inf")
    for _ in range(5):  # the best of five: other work on the host only ever adds time
        started = time.perf_counter()
        model.predict(batch)
        best = min(best, time.perf_counter() - started)
    return 1000 * best / max(len(batch), 1)


def _evaluation_rows(lake: Lake, use_case: UseCase, lineage: list[dict[str, str]]) -> tuple[Any, Any]:
    import pandas as pd

    from mlplatform.stages import training

    held_out = [r for r in lineage if r["role"] == "validation"]
    if not held_out:
        raise PromotionError(
            "the training run logged no validation snapshots; retrain it with the train DAG or "
            "`mlplatform train`, which log them"
        )
    columns = training.source_columns(use_case)
    frames = []
    for ref in held_out:
        snap = snapshots.read_snapshot(lake, use_case.name, ref["month"], ref["digest"])
        frame = snapshots.read_table(lake, snap, columns).to_pandas()
        if ref.get("validation_from"):  # a split within the month: only its held-out days
            frame = training.split_within(frame, datetime.fromisoformat(ref["validation_from"]))[1]
        frames.append(frame)
    rows = training.labelled(pd.concat(frames, ignore_index=True), use_case)
    rows = training._sample(rows, MAX_EVAL_ROWS)
    return rows, held_out


def assess(lake: Lake, use_case: UseCase, version: str | None = None) -> dict[str, Any]:
    """Evaluate ``version`` (default: the ``challenger``) against every gate; JSON-able result."""
    from mlplatform.core import features
    from mlplatform.stages import training

    registry = client()
    name = use_case.model_name
    version = str(version) if version is not None else alias_version(registry, name, CHALLENGER)
    if version is None:
        raise PromotionError(
            f"{name} has no challenger to assess: train one first (the {name}_train DAG or "
            "`mlplatform train`), or name a version"
        )
    candidate = registry.get_model_version(name, version)
    champion = alias_version(registry, name, CHAMPION)
    metric = training.primary_metric(use_case)
    gates = use_case.promotion
    lineage = _lineage(registry, candidate.run_id) if candidate.run_id else []
    result: dict[str, Any] = {
        "model_name": name,
        "version": version,
        "run_id": candidate.run_id,
        "champion_version": champion,
        "metric": metric,
        "maturity_level": use_case.maturity_level,
    }
    checks: list[Gate] = [_contract_gate(lake, use_case, lineage)]
    if champion == version:
        checks.append(Gate("not_champion", False, f"version {version} is already the champion"))

    rows, held_out = _evaluation_rows(lake, use_case, lineage)
    featured = features.trip_features(rows)
    y = rows[use_case.target.column]
    model, size_mb = _load(f"models:/{name}/{version}")
    mine = training.evaluate(use_case, model.unwrap_python_model(), featured, y)
    result["evaluated_on"] = [f"{r['month']}:{r['digest'][:12]}" for r in held_out]
    result["rows"] = len(rows)
    result["candidate"] = mine.to_dict()

    own = mine.overall[metric]
    if champion is not None and champion != version:
        champion_model, _ = _load(f"models:/{name}/{champion}")
        theirs = training.evaluate(use_case, champion_model.unwrap_python_model(), featured, y)
        result["champion"] = theirs.to_dict()
        reference, kind = theirs.overall[metric], f"champion (version {champion})"
        regressions = []
        for key, values in mine.slices.items():
            if key in theirs.slices and metric in values and metric in theirs.slices[key]:
                loss = -_relative_gain(metric, values[metric], theirs.slices[key][metric])
                if loss > gates.max_slice_regression:
                    regressions.append(
                        f"{key}: {metric} {values[metric]:.4g} vs {theirs.slices[key][metric]:.4g} "
                        f"({loss:+.1%})"
                    )
        checks.append(
            Gate(
                "slices",
                not regressions,
                "slices worse than the champion beyond "
                f"{gates.max_slice_regression:.0%}: " + "; ".join(regressions)
                if regressions
                else f"no slice worse than the champion by more than {gates.max_slice_regression:.0%} "
                f"({len(mine.slices)} slices)",
            )
        )
    else:
        run = registry.get_run(candidate.run_id) if candidate.run_id else None
        logged = run.data.metrics if run else {}
        base, logged_own = logged.get(f"baseline_val_{metric}"), logged.get(f"val_{metric}")
        if base is None or logged_own is None:
            checks.append(Gate("improvement", False, "the training run logged no baseline metric"))
            result["reference"] = None
            return _finish(result, checks)
        # The baseline was scored at training time on all the held-out rows: compare it with
        # the candidate's score on those same rows.
        reference, kind, own = base, f"baseline ({use_case.model.baseline})", logged_own
    gain = _relative_gain(metric, own, reference)
    result["reference"] = {"kind": kind, metric: reference}
    result["improvement"] = gain
    checks.append(
        Gate(
            "improvement",
            gain >= gates.min_relative_improvement,
            f"{metric} {own:.4g} vs {reference:.4g} of the {kind}: {gain:+.2%} "
            f"(needs {gates.min_relative_improvement:+.2%})",
        )
    )
    latency = _latency_ms(model, rows, input_columns(use_case.features.all))
    result["latency_ms_per_row"] = latency
    result["size_mb"] = size_mb
    checks.append(
        Gate(
            "latency",
            latency <= gates.max_latency_ms,
            f"{latency:.4f} ms per row (budget {gates.max_latency_ms} ms)",
        )
    )
    checks.append(
        Gate(
            "size",
            size_mb <= gates.max_model_size_mb,
            f"{size_mb:.1f} MB (budget {gates.max_model_size_mb} MB)",
        )
    )
    return _finish(result, checks)


def _finish(result: dict[str, Any], checks: list[Gate]) -> dict[str, Any]:
    result["gates"] = [asdict(g) for g in checks]
    result["passed"] = all(g.passed for g in checks)
    return result


def failed_gates(assessment: dict[str, Any]) -> list[str]:
    return [f"{g['name']}: {g['detail']}" for g in assessment["gates"] if not g["passed"]]


def summary_markdown(assessment: dict[str, Any]) -> str:
    """The assessment as markdown, for the person asked to approve it."""
    metric = assessment["metric"]
    value = (assessment.get("candidate") or {}).get("overall", {}).get(metric)
    reference = assessment.get("reference") or {}
    lines = [
        f"**{assessment['model_name']} version {assessment['version']}** "
        f"(current champion: {assessment.get('champion_version') or 'none'})",
        "",
        f"Validation {metric}: **{value:.4g}**" if isinstance(value, float) else f"{metric}: -",
        f"Compared with the {reference.get('kind', '-')}: {reference.get(metric, float('nan')):.4g}, "
        f"improvement {assessment.get('improvement', 0.0):+.2%}",
        f"Evaluated on {assessment.get('rows', 0):,} held-out rows of "
        f"{', '.join(assessment.get('evaluated_on', [])) or '-'}",
        "",
        "| gate | passed | detail |",
        "|---|---|---|",
        *(f"| {g['name']} | {'yes' if g['passed'] else 'NO'} | {g['detail']} |" for g in assessment["gates"]),
        "",
        f"Model version: {model_url(assessment['model_name'], assessment['version'])}",
    ]
    return "\n".join(lines)


def approval_answer(response: dict[str, Any]) -> dict[str, Any]:
    """A person's answer from the approval task's result (``by`` is ``None`` after a timeout)."""
    user = response.get("responded_by_user") or None
    by = (user.get("name") or user.get("id")) if isinstance(user, dict) else None
    return {"approved": list(response.get("chosen_options") or []) == ["Approve"], "by": by}


# -- deciding and acting ----------------------------------------------------------------------
OUTCOMES = ("promoted", "rejected", "awaiting_promotion", "awaiting_approval")


@dataclass(frozen=True)
class Decision:
    outcome: str
    reason: str
    by: str


def decide(use_case: UseCase, assessment: dict[str, Any], approval: dict[str, Any] | None = None) -> Decision:
    """What happens to an assessed version.

    ``approval`` is a person's answer: ``{"approved": bool, "by": name}`` (``by`` is
    ``None`` when an approval request timed out). Failed gates always reject, approved or not.
    """
    if not assessment["passed"]:
        return Decision("rejected", "gates failed: " + " | ".join(failed_gates(assessment)), "gates")
    if approval is not None:
        if approval.get("approved"):
            return Decision("promoted", "gates passed and a person approved", str(approval.get("by") or "?"))
        if approval.get("by") is None:
            hours = use_case.promotion.approval_timeout_hours
            return Decision("rejected", f"no approval within {hours:g} h", "approval timeout")
        return Decision("rejected", "gates passed but a person rejected it", str(approval["by"]))
    if use_case.maturity_level == 4:
        return Decision("promoted", "gates passed (maturity level 4: automatic)", "automatic (level 4)")
    if use_case.maturity_level == 3:
        return Decision("awaiting_approval", "gates passed; waiting for a person's approval", "gates")
    return Decision("awaiting_promotion", "gates passed; a person promotes by hand (level 2)", "gates")


def apply(
    use_case: UseCase, assessment: dict[str, Any], decision: Decision, run_id: str | None = None
) -> dict[str, Any]:
    """Move aliases if ``decision`` promotes, record it on the version, and post it to Slack.

    A promotion that finds a different champion than the one assessed against is recorded
    as rejected, with the reason and what to do (:func:`promote`).
    """
    registry = client()
    name, version = assessment["model_name"], assessment["version"]
    run_id = run_id or f"cli:{who()}"
    moved = None
    if decision.outcome == "promoted":
        expected = {"expected_champion": assessment["champion_version"]}
        try:
            moved = promote(name, version, {"run_id": run_id, "by": decision.by, **expected}, registry)
        except PromotionError as exc:
            decision = Decision("rejected", str(exc), decision.by)
    if decision.outcome == "rejected" and alias_version(registry, name, CHALLENGER) == version:
        registry.delete_registered_model_alias(name, CHALLENGER)
    metric = assessment["metric"]
    record = {
        "decision": decision.outcome,
        "decision.reason": decision.reason,
        "decision.by": decision.by,
        "decision.run_id": run_id,
        "decision.at": datetime.now(UTC).isoformat(),
        "decision.metrics": {
            metric: (assessment.get("candidate") or {}).get("overall", {}).get(metric),
            "reference": assessment.get("reference"),
            "improvement": assessment.get("improvement"),
            "latency_ms_per_row": assessment.get("latency_ms_per_row"),
            "size_mb": assessment.get("size_mb"),
            "evaluated_rows": assessment.get("rows"),
        },
        "decision.gates": assessment["gates"],
    }
    _tag(registry, name, version, record)
    _announce(use_case, assessment, decision, run_id)
    return {
        "model_name": name,
        "version": version,
        "outcome": decision.outcome,
        "reason": decision.reason,
        "by": decision.by,
        "champion": moved["champion"] if moved else alias_version(registry, name, CHAMPION),
    }


def _announce(use_case: UseCase, assessment: dict[str, Any], decision: Decision, run_id: str) -> None:
    name, version, metric = assessment["model_name"], assessment["version"], assessment["metric"]
    severity = {"promoted": "ok", "rejected": "warning"}.get(decision.outcome, "info")
    lines = [f"*{decision.outcome.replace('_', ' ')}*: {decision.reason}"]
    for gate in assessment["gates"]:
        lines.append(f"{':white_check_mark:' if gate['passed'] else ':x:'} {gate['name']}: {gate['detail']}")
    if decision.outcome == "awaiting_promotion":
        lines.append(
            f"To promote it: `mlplatform promote --use-case {use_case.name} --version {version} --approve`, "
            f"or trigger `{use_case.name}_promote` with action `promote` and version {version}."
        )
    value = (assessment.get("candidate") or {}).get("overall", {}).get(metric)
    notify(
        severity,
        f"{name} version {version}: {decision.outcome.replace('_', ' ')}",
        lines,
        {
            "Model": f"{name} v{version}",
            metric: f"{value:.4g}" if isinstance(value, float) else "-",
            "Compared with": (assessment.get("reference") or {}).get("kind", "-"),
            "Decided by": decision.by,
            "Maturity level": use_case.maturity_level,
            "Run": run_id,
        },
        {"Model version": model_url(name, version)},
    )


def notify(
    severity: str, title: str, lines: list[str], fields: dict[str, Any], links: dict[str, str]
) -> bool:
    """Post a registry event to Slack (through :mod:`mlplatform.adapters.alerts`); never raises."""
    from mlplatform.adapters import alerts

    return alerts.send(alerts.Alert(title, severity, tuple(lines), fields, links))  # type: ignore[arg-type]


def evaluate_and_decide(
    lake: Lake,
    use_case: UseCase,
    version: str | None = None,
    approval: dict[str, Any] | None = None,
    run_id: str | None = None,
) -> dict[str, Any]:
    """Assess, decide and apply in one go (the command line's ``promote``)."""
    assessment = assess(lake, use_case, version)
    return apply(use_case, assessment, decide(use_case, assessment, approval), run_id)
