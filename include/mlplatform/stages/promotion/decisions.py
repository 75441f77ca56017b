"""Deciding on an assessed version and acting on the decision, with its audit trail.

:func:`decide` turns an :class:`~mlplatform.core.records.Assessment` into an outcome by the
use case's maturity level; :func:`apply` acts on it. Every decision is recorded as tags on
the model version (``decision``, ``decision.reason``, ``decision.by``, ``decision.run_id``,
``decision.at``, ``decision.metrics``, ``decision.gates``) and posted to Slack. A final
decision (promoted or rejected) removes the ``challenger`` alias when it still points at
that version, so nothing keeps sending traffic to a rejected model.

Every alias move a decision makes is first recorded in the lake's alias history with the
decision and its evidence (:func:`mlplatform.adapters.registry.record`); when it cannot be,
nothing moves. :func:`rollback` is the rollback on quality the monitoring stage calls.

Promotion is idempotent: deciding on a version that already is the champion (assessed so,
or made champion meanwhile by a concurrent promotion of the same version) has the outcome
``already_champion`` and records nothing. A promotion that loses a race to a different
version is rejected, and its tags go on its own version only, never on the winner's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mlplatform.adapters import registry
from mlplatform.adapters.lake import Lake
from mlplatform.adapters.registry import CHAMPION, PromotionError
from mlplatform.core import evidence
from mlplatform.core.records import Assessment
from mlplatform.core.spec import UseCase

log = logging.getLogger(__name__)


def summary_markdown(assessment: Assessment) -> str:
    """The assessment as markdown, for the person asked to approve it."""
    metric, value = assessment.metric, assessment.candidate_value
    lines = [
        f"**{assessment.model_name} version {assessment.version}** "
        f"(current champion: {assessment.champion_version or 'none'})",
        "",
        f"Validation {metric}: **{value:.4g}**" if value is not None else f"{metric}: -",
        f"Compared with the {assessment.reference_kind}: {assessment.reference_value:.4g}, "
        f"improvement {_improvement_text(assessment)}",
        f"Evaluated on {assessment.rows:,} held-out rows of {', '.join(assessment.evaluated_on) or '-'}",
        "",
        "| gate | passed | detail |",
        "|---|---|---|",
        *(f"| {g.name} | {'yes' if g.passed else 'NO'} | {g.detail} |" for g in assessment.gates),
        "",
        f"Model version: {registry.model_url(assessment.model_name, assessment.version)}",
    ]
    return "\n".join(lines)


def _improvement_text(assessment: Assessment) -> str:
    """The improvement with its interval when the gates measured one, else the point."""
    measured = (assessment.evidence or {}).get("improvement")
    if measured:
        return f"**{evidence.Interval.from_dict(measured).percent()}** (paired bootstrap)"
    return f"{assessment.improvement or 0.0:+.2%} (point estimate)"


def approval_answer(response: dict[str, Any]) -> dict[str, Any]:
    """A person's answer from the approval task's result (``by`` is ``None`` after a timeout)."""
    user = response.get("responded_by_user") or None
    by = (user.get("name") or user.get("id")) if isinstance(user, dict) else None
    return {"approved": list(response.get("chosen_options") or []) == ["Approve"], "by": by}


# -- deciding and acting ----------------------------------------------------------------------
OUTCOMES = ("promoted", "rejected", "awaiting_promotion", "awaiting_approval", "already_champion")


@dataclass(frozen=True)
class Decision:
    """What happens to an assessed version (one of ``OUTCOMES``), why, and who decided."""

    outcome: str
    reason: str
    by: str


def already_champion(version: str) -> Decision:
    """The no-op decision on a version that is the champion already."""
    return Decision(
        "already_champion", f"version {version} is already the champion: nothing to do", "registry"
    )


def decide(use_case: UseCase, assessment: Assessment, approval: dict[str, Any] | None = None) -> Decision:
    """What happens to an assessed version.

    ``approval`` is a person's answer: ``{"approved": bool, "by": name}`` (``by`` is
    ``None`` when an approval request timed out). Failed gates always reject, approved or not.
    """
    if assessment.champion_version is not None and assessment.champion_version == assessment.version:
        return already_champion(assessment.version)
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
        "decision.evidence": _short_evidence(assessment),
        "decision.gates": [gate.to_dict() for gate in assessment.gates],
    }


def _short_evidence(assessment: Assessment) -> dict[str, Any]:
    """The overall interval and how it was made (the slices' are in the gate table)."""
    found = dict(assessment.evidence or {})
    found.pop("slices", None)
    return found or {"method": "point estimate", "rows": assessment.rows}


def _why(assessment: Assessment, decision: Decision, run_id: str) -> dict[str, Any]:
    """What an alias move's history record says about why: the decision and its evidence."""
    return {
        "by": decision.by,
        "run_id": run_id,
        "reason": f"{decision.outcome}: {decision.reason}",
        "evidence": {**_short_evidence(assessment), "rows": assessment.rows, "version": assessment.version},
        "gates": [gate.to_dict() for gate in assessment.gates],
    }


def apply(
    use_case: UseCase, assessment: Assessment, decision: Decision, run_id: str | None = None
) -> dict[str, Any]:
    """Move aliases if ``decision`` promotes, record it on the version, and post it to Slack.

    A promotion that finds a different champion than the one assessed against is recorded
    as rejected on its own version, with the reason and what to do
    (:func:`mlplatform.adapters.registry.promote`). One that finds its version already the
    champion (a concurrent promotion of the same version won) changes and records nothing.
    """
    client = registry.client()
    name, version = assessment.model_name, assessment.version
    run_id = run_id or f"cli:{registry.who()}"
    moved = None
    if decision.outcome == "promoted":
        why = {**_why(assessment, decision, run_id), "expected_champion": assessment.champion_version}
        try:
            moved = registry.promote(name, version, why, client)
            if not moved.moved:
                if not _audited(client, name, version):
                    # An earlier attempt moved the alias and lost the registry (MLflow went
                    # away) before the audit trail: this retry records it, so no champion
                    # lacks one. Its outcome stays "already the champion".
                    registry.tag_version(client, name, version, decision_tags(assessment, decision, run_id))
                decision = already_champion(version)
        except PromotionError as exc:
            decision = Decision("rejected", str(exc), decision.by)
    if decision.outcome != "already_champion":
        if decision.outcome == "rejected":
            try:
                registry.retire_challenger(client, name, version, _why(assessment, decision, run_id))
            except PromotionError as exc:  # no move without its record: the alias stays, said so
                log.warning("%s version %s keeps the challenger alias: %s", name, version, exc)
        registry.tag_version(client, name, version, decision_tags(assessment, decision, run_id))
        _announce(use_case, assessment, decision, run_id)
    return {
        "model_name": name,
        "version": version,
        "outcome": decision.outcome,
        "reason": decision.reason,
        "by": decision.by,
        "champion": moved.champion if moved else registry.alias_version(client, name, CHAMPION),
    }


def _audited(client: Any, name: str, version: str) -> bool:
    """Whether the version carries the audit trail of its promotion (``decision`` = promoted)."""
    return bool(client.get_model_version(name, version).tags.get("decision") == "promoted")


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


# -- rolling back -------------------------------------------------------------------------------
def rollback(
    use_case: UseCase,
    reason: str,
    evidence: dict[str, Any] | None = None,
    *,
    by: str = "monitoring",
    run_id: str | None = None,
    force: bool = False,
    history: Lake | None = None,
) -> dict[str, Any]:
    """Put ``champion`` back on ``previous_champion`` because of its quality in production.

    The function the monitoring stage calls (and the command line and the promote DAG's
    ``rollback`` action): ``reason`` says why in words, ``evidence`` what it rests on (the
    intervals, the labelled rows, the windows), both recorded in the alias history before
    the alias moves, with ``by`` and ``run_id``. The rollback starts a cooldown of
    ``promotion.rollback_cooldown_days``: until it ends another rollback is refused
    (:class:`~mlplatform.adapters.registry.PromotionError` naming when it ends) unless
    ``force`` (a person who means it), so champion and previous champion do not flap.
    Raises :class:`~mlplatform.adapters.registry.PromotionError` too when there is no
    previous champion or the history cannot be written (nothing moves then).
    """
    if not reason.strip():
        raise ValueError("a rollback needs a reason: say what was seen in production")
    return registry.rollback(
        use_case.model_name,
        by=by,
        run_id=run_id,
        reason=reason,
        evidence=evidence or {},
        cooldown_days=use_case.promotion.rollback_cooldown_days,
        force=force,
        history=history,
    )
