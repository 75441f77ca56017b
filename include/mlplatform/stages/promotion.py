"""Promotion: a model version judged against its use case's gates, and the decision acted on.

A promotion has three steps. :func:`assess` evaluates a version against the gates of the
spec's ``promotion`` section; :func:`decide` turns the result into an outcome according to
the spec's ``maturity_level`` (4 promotes, 3 needs a person's approval, 2 records the
decision and a person promotes by hand); :func:`apply` records it and, for ``promoted``,
moves the aliases with :func:`mlplatform.adapters.registry.promote`. A bad model is never
promoted: every path to the ``champion`` alias other than a rollback goes through the gates.

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

An assessment is a :class:`~mlplatform.core.records.Assessment`. Every decision is recorded
as tags on the model version (``decision``, ``decision.reason``, ``decision.by``,
``decision.run_id``, ``decision.at``, ``decision.metrics``, ``decision.gates``) and posted
to Slack. A final decision (promoted or rejected) removes the ``challenger`` alias when it
still points at that version, so nothing keeps sending traffic to a rejected model.

Promotion measures models the way training does (:mod:`mlplatform.stages.training`: the
same held-out rows, the same evaluation): the one stage-to-stage import the import
contract in ``pyproject.toml`` declares for it.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlplatform.adapters import registry, snapshots
from mlplatform.adapters.lake import Lake
from mlplatform.adapters.registry import CHALLENGER, CHAMPION, PromotionError
from mlplatform.core.metrics import relative_degradation
from mlplatform.core.modelling import input_columns
from mlplatform.core.records import Assessment, Gate
from mlplatform.core.spec import UseCase
from mlplatform.stages import training

MAX_EVAL_ROWS = 200_000
LATENCY_BATCH = 1000


# -- assessing a version ----------------------------------------------------------------------
def lineage(client: Any, run_id: str) -> list[dict[str, str]]:
    """The snapshots a training run logged as inputs: month, digest, role."""
    run = client.get_run(run_id)
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


def contract_gate(lake: Lake, use_case: UseCase, lineage: list[dict[str, str]]) -> Gate:
    """Passed when every snapshot in ``lineage`` passed its data contract."""
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
    return -relative_degradation(metric, candidate, reference)


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
    rows = training.sample(rows, MAX_EVAL_ROWS)
    return rows, held_out


def _slice_gate(use_case: UseCase, metric: str, mine: Any, theirs: Any) -> Gate:
    """No slice of the candidate (``mine``) worse than the champion's beyond the tolerance."""
    tolerance = use_case.promotion.max_slice_regression
    regressions = []
    for key, values in mine.slices.items():
        if key in theirs.slices and metric in values and metric in theirs.slices[key]:
            loss = -_relative_gain(metric, values[metric], theirs.slices[key][metric])
            if loss > tolerance:
                regressions.append(
                    f"{key}: {metric} {values[metric]:.4g} vs {theirs.slices[key][metric]:.4g} ({loss:+.1%})"
                )
    if regressions:
        worse = "; ".join(regressions)
        return Gate("slices", False, f"slices worse than the champion beyond {tolerance:.0%}: {worse}")
    detail = f"no slice worse than the champion by more than {tolerance:.0%} ({len(mine.slices)} slices)"
    return Gate("slices", True, detail)


def _budget_gates(use_case: UseCase, latency: float, size_mb: float) -> list[Gate]:
    gates = use_case.promotion
    return [
        Gate(
            "latency",
            latency <= gates.max_latency_ms,
            f"{latency:.4f} ms per row (budget {gates.max_latency_ms} ms)",
        ),
        Gate(
            "size",
            size_mb <= gates.max_model_size_mb,
            f"{size_mb:.1f} MB (budget {gates.max_model_size_mb} MB)",
        ),
    ]


@dataclass
class _Measured:
    """What :func:`assess` learns about a version before it applies the gates."""

    head: dict[str, Any]
    checks: list[Gate]
    rows: Any
    featured: Any
    held_out: list[dict[str, str]]
    model: Any
    size_mb: float
    mine: Any


def _measure(lake: Lake, use_case: UseCase, client: Any, version: str, champion: str | None) -> _Measured:
    from mlplatform.core import features

    name, metric = use_case.model_name, training.primary_metric(use_case)
    candidate = client.get_model_version(name, version)
    found = lineage(client, candidate.run_id) if candidate.run_id else []
    head = {"model_name": name, "version": version, "run_id": candidate.run_id, "champion_version": champion}
    head.update(metric=metric, maturity_level=use_case.maturity_level)
    checks = [contract_gate(lake, use_case, found)]
    if champion == version:
        checks.append(Gate("not_champion", False, f"version {version} is already the champion"))
    rows, held_out = _evaluation_rows(lake, use_case, found)
    model, size_mb = _load(f"models:/{name}/{version}")
    featured = features.trip_features(rows)
    mine = training.evaluate(use_case, model.unwrap_python_model(), featured, rows[use_case.target.column])
    return _Measured(head, checks, rows, featured, held_out, model, size_mb, mine)


def assess(lake: Lake, use_case: UseCase, version: str | None = None) -> Assessment:
    """Evaluate ``version`` (default: the ``challenger``) against every gate."""
    client = registry.client()
    name = use_case.model_name
    version = str(version) if version is not None else registry.alias_version(client, name, CHALLENGER)
    if version is None:
        raise PromotionError(
            f"{name} has no challenger to assess: train one first (the {name}_train DAG or "
            "`mlplatform train`), or name a version"
        )
    champion = registry.alias_version(client, name, CHAMPION)
    got = _measure(lake, use_case, client, version, champion)
    metric, checks, run_id = got.head["metric"], got.checks, got.head["run_id"]
    measured: dict[str, Any] = {
        **got.head,
        "evaluated_on": tuple(f"{r['month']}:{r['digest'][:12]}" for r in got.held_out),
        "rows": len(got.rows),
        "candidate": got.mine.to_dict(),
    }
    own = got.mine.overall[metric]
    if champion is not None and champion != version:
        champion_model, _ = _load(f"models:/{name}/{champion}")
        y = got.rows[use_case.target.column]
        theirs = training.evaluate(use_case, champion_model.unwrap_python_model(), got.featured, y)
        measured["champion"] = theirs.to_dict()
        reference, kind = theirs.overall[metric], f"champion (version {champion})"
        checks.append(_slice_gate(use_case, metric, got.mine, theirs))
    else:
        logged = client.get_run(run_id).data.metrics if run_id else {}
        base, logged_own = logged.get(f"baseline_val_{metric}"), logged.get(f"val_{metric}")
        if base is None or logged_own is None:
            checks.append(Gate("improvement", False, "the training run logged no baseline metric"))
            return Assessment(**measured, reference=None, gates=tuple(checks))
        # The baseline was scored at training time on all the held-out rows: compare it with
        # the candidate's score on those same rows.
        reference, kind, own = base, f"baseline ({use_case.model.baseline})", logged_own
    gain = _relative_gain(metric, own, reference)
    needed = use_case.promotion.min_relative_improvement
    checks.append(
        Gate(
            "improvement",
            gain >= needed,
            f"{metric} {own:.4g} vs {reference:.4g} of the {kind}: {gain:+.2%} (needs {needed:+.2%})",
        )
    )
    latency = _latency_ms(got.model, got.rows, input_columns(use_case.features.all))
    checks.extend(_budget_gates(use_case, latency, got.size_mb))
    return Assessment(
        **measured,
        reference={"kind": kind, metric: reference},
        improvement=gain,
        latency_ms_per_row=latency,
        size_mb=got.size_mb,
        gates=tuple(checks),
    )


def summary_markdown(assessment: Assessment) -> str:
    """The assessment as markdown, for the person asked to approve it."""
    metric, value = assessment.metric, assessment.candidate_value
    lines = [
        f"**{assessment.model_name} version {assessment.version}** "
        f"(current champion: {assessment.champion_version or 'none'})",
        "",
        f"Validation {metric}: **{value:.4g}**" if value is not None else f"{metric}: -",
        f"Compared with the {assessment.reference_kind}: {assessment.reference_value:.4g}, "
        f"improvement {assessment.improvement or 0.0:+.2%}",
        f"Evaluated on {assessment.rows:,} held-out rows of {', '.join(assessment.evaluated_on) or '-'}",
        "",
        "| gate | passed | detail |",
        "|---|---|---|",
        *(f"| {g.name} | {'yes' if g.passed else 'NO'} | {g.detail} |" for g in assessment.gates),
        "",
        f"Model version: {registry.model_url(assessment.model_name, assessment.version)}",
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


def decide(use_case: UseCase, assessment: Assessment, approval: dict[str, Any] | None = None) -> Decision:
    """What happens to an assessed version.

    ``approval`` is a person's answer: ``{"approved": bool, "by": name}`` (``by`` is
    ``None`` when an approval request timed out). Failed gates always reject, approved or not.
    """
    if not assessment.passed:
        return Decision("rejected", "gates failed: " + " | ".join(assessment.failed_gates()), "gates")
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


def decision_tags(assessment: Assessment, decision: Decision, run_id: str) -> dict[str, Any]:
    """The audit trail a decision leaves on the model version."""
    return {
        "decision": decision.outcome,
        "decision.reason": decision.reason,
        "decision.by": decision.by,
        "decision.run_id": run_id,
        "decision.at": datetime.now(UTC).isoformat(),
        "decision.metrics": {
            assessment.metric: assessment.candidate_value,
            "reference": None if assessment.reference is None else dict(assessment.reference),
            "improvement": assessment.improvement,
            "latency_ms_per_row": assessment.latency_ms_per_row,
            "size_mb": assessment.size_mb,
            "evaluated_rows": assessment.rows,
        },
        "decision.gates": [gate.to_dict() for gate in assessment.gates],
    }


def apply(
    use_case: UseCase, assessment: Assessment, decision: Decision, run_id: str | None = None
) -> dict[str, Any]:
    """Move aliases if ``decision`` promotes, record it on the version, and post it to Slack.

    A promotion that finds a different champion than the one assessed against is recorded
    as rejected, with the reason and what to do (:func:`mlplatform.adapters.registry.promote`).
    """
    client = registry.client()
    name, version = assessment.model_name, assessment.version
    run_id = run_id or f"cli:{registry.who()}"
    moved = None
    if decision.outcome == "promoted":
        expected = {"expected_champion": assessment.champion_version}
        try:
            moved = registry.promote(name, version, {"run_id": run_id, "by": decision.by, **expected}, client)
        except PromotionError as exc:
            decision = Decision("rejected", str(exc), decision.by)
    if decision.outcome == "rejected" and registry.alias_version(client, name, CHALLENGER) == version:
        client.delete_registered_model_alias(name, CHALLENGER)
    registry.tag_version(client, name, version, decision_tags(assessment, decision, run_id))
    _announce(use_case, assessment, decision, run_id)
    return {
        "model_name": name,
        "version": version,
        "outcome": decision.outcome,
        "reason": decision.reason,
        "by": decision.by,
        "champion": moved["champion"] if moved else registry.alias_version(client, name, CHAMPION),
    }


def _announce(use_case: UseCase, assessment: Assessment, decision: Decision, run_id: str) -> None:
    name, version, metric = assessment.model_name, assessment.version, assessment.metric
    severity = {"promoted": "ok", "rejected": "warning"}.get(decision.outcome, "info")
    lines = [f"*{decision.outcome.replace('_', ' ')}*: {decision.reason}"]
    for gate in assessment.gates:
        lines.append(f"{':white_check_mark:' if gate.passed else ':x:'} {gate.name}: {gate.detail}")
    if decision.outcome == "awaiting_promotion":
        lines.append(
            f"To promote it: `mlplatform promote --use-case {use_case.name} --version {version} --approve`, "
            f"or trigger `{use_case.name}_promote` with action `promote` and version {version}."
        )
    value = assessment.candidate_value
    registry.notify(
        severity,
        f"{name} version {version}: {decision.outcome.replace('_', ' ')}",
        lines,
        {
            "Model": f"{name} v{version}",
            metric: f"{value:.4g}" if value is not None else "-",
            "Compared with": assessment.reference_kind,
            "Decided by": decision.by,
            "Maturity level": use_case.maturity_level,
            "Run": run_id,
        },
        {"Model version": registry.model_url(name, version)},
    )


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
