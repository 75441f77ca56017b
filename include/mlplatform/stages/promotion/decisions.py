"""Deciding on an assessed version and acting on the decision, with its audit trail.

:func:`decide` turns an :class:`~mlplatform.core.records.Assessment` (made by
:func:`mlplatform.stages.promotion.gates.assess`) into a :class:`PromotionDecision` by the
use case's maturity level (4 promotes, 3 needs a person's approval, 2 records the decision
and a person promotes by hand); :func:`apply` acts on it: for ``promoted`` it moves the
aliases with :func:`mlplatform.adapters.registry.promote`. Every decision is recorded as
tags on the model version (``decision``, ``decision.reason``, ``decision.by``,
``decision.run_id``, ``decision.at``, ``decision.metrics``, ``decision.evidence``,
``decision.gates``, in the one shape of :func:`mlplatform.adapters.registry.decision_tags`,
which a rollback's tags share) and posted to Slack. A final
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
from typing import Any

from mlplatform.adapters import registry
from mlplatform.adapters.lake import Lake
from mlplatform.adapters.registry import CHAMPION, PromotionError
from mlplatform.core import evidence
from mlplatform.core.records import Approval, Assessment, LiveAsk, Record
from mlplatform.core.spec import UseCase
from mlplatform.stages.promotion.gates import assess

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


OUTCOMES = (
    "promoted",
    "rejected",
    "awaiting_promotion",
    "awaiting_approval",
    "already_champion",
    "retired",
    "rolled_back",
)


@dataclass(frozen=True)
class PromotionDecision:
    """What happens to an assessed version (one of ``OUTCOMES``), why, and who decided."""

    outcome: str
    reason: str
    by: str


@dataclass(frozen=True)
class PromotionOutcome(Record):
    """What acting on a decision did: the version's outcome (one of ``OUTCOMES``; a promotion
    that lost a race ends ``rejected`` or ``already_champion``), why, who decided, and which
    version is the champion after it."""

    model_name: str
    version: str
    outcome: str
    reason: str
    by: str
    champion: str | None


def already_champion(version: str) -> PromotionDecision:
    """The no-op decision on a version that is the champion already."""
    return PromotionDecision(
        "already_champion", f"version {version} is already the champion: nothing to do", "registry"
    )


def decide(use_case: UseCase, assessment: Assessment, approval: Approval | None = None) -> PromotionDecision:
    """What happens to an assessed version.

    ``approval`` is a person's answer (its ``by`` is ``None`` when an approval request timed
    out). Failed gates always reject, approved or not.
    """
    if assessment.champion_version is not None and assessment.champion_version == assessment.version:
        return already_champion(assessment.version)
    if not assessment.passed:
        return PromotionDecision(
            "rejected", "gates failed: " + " | ".join(assessment.failed_gates()), "gates"
        )
    if approval is not None:
        if approval.approved:
            return PromotionDecision("promoted", "gates passed and a person approved", approval.by or "?")
        if approval.timed_out:
            hours = use_case.promotion.approval_timeout_hours
            return PromotionDecision("rejected", f"no approval within {hours:g} h", "approval timeout")
        return PromotionDecision("rejected", "gates passed but a person rejected it", str(approval.by))
    if use_case.maturity_level == 4:
        return PromotionDecision(
            "promoted", "gates passed (maturity level 4: automatic)", "automatic (level 4)"
        )
    if use_case.maturity_level == 3:
        return PromotionDecision(
            "awaiting_approval", "gates passed; waiting for a person's approval", "gates"
        )
    return PromotionDecision(
        "awaiting_promotion", "gates passed; a person promotes by hand (level 2)", "gates"
    )


def decision_tags(assessment: Assessment, decision: PromotionDecision, run_id: str) -> dict[str, Any]:
    """The audit trail a decision leaves on the model version: what it rests on, in the
    registry's shape of decision tags."""
    metrics = {
        assessment.metric: assessment.candidate_value,
        "reference": None if assessment.reference is None else dict(assessment.reference),
        "improvement": assessment.improvement,
        "latency_ms_per_row": assessment.latency_ms_per_row,
        "size_mb": assessment.size_mb,
        "evaluated_rows": assessment.rows,
    }
    return registry.decision_tags(
        decision.outcome,
        decision.reason,
        decision.by,
        run_id,
        metrics=metrics,
        evidence=_short_evidence(assessment),
        gates=[gate.to_dict() for gate in assessment.gates],
    )


def _short_evidence(assessment: Assessment) -> dict[str, Any]:
    """The overall interval and how it was made (the slices' are in the gate table)."""
    found = dict(assessment.evidence or {})
    found.pop("slices", None)
    return found or {"method": "point estimate", "rows": assessment.rows}


def _why(
    assessment: Assessment, decision: PromotionDecision, run_id: str, live: LiveAsk | None = None
) -> dict[str, Any]:
    """What an alias move's history record says about why: the decision and its evidence
    (with ``live``, the monitor's live comparison it was asked on)."""
    found = {**_short_evidence(assessment), "rows": assessment.rows, "version": assessment.version}
    return {
        "by": decision.by,
        "run_id": run_id,
        "reason": f"{decision.outcome}: {decision.reason}",
        "evidence": {**found, "live": live.evidence.to_dict()} if live else found,
        "gates": [gate.to_dict() for gate in assessment.gates],
    }


def apply(
    use_case: UseCase,
    assessment: Assessment,
    decision: PromotionDecision,
    run_id: str | None = None,
    live: LiveAsk | None = None,
) -> PromotionOutcome:
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
        why = {**_why(assessment, decision, run_id, live), "expected_champion": assessment.champion_version}
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
            decision = PromotionDecision("rejected", str(exc), decision.by)
    if decision.outcome != "already_champion":
        if decision.outcome == "rejected":
            try:
                registry.retire_challenger(client, name, version, _why(assessment, decision, run_id, live))
            except PromotionError as exc:  # no move without its record: the alias stays, said so
                log.warning("%s version %s keeps the challenger alias: %s", name, version, exc)
        registry.tag_version(client, name, version, decision_tags(assessment, decision, run_id))
        _announce(use_case, assessment, decision, run_id)
    return PromotionOutcome(
        name,
        version,
        decision.outcome,
        decision.reason,
        decision.by,
        moved.champion if moved else registry.alias_version(client, name, CHAMPION),
    )


def _audited(client: Any, name: str, version: str) -> bool:
    """Whether the version carries the audit trail of its promotion (``decision`` = promoted)."""
    return bool(client.get_model_version(name, version).tags.get("decision") == "promoted")


def _announce(use_case: UseCase, assessment: Assessment, decision: PromotionDecision, run_id: str) -> None:
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


def live_summary(ask: LiveAsk) -> str:
    """The monitor's live evidence as markdown, for the person asked to approve acting on it."""
    live = ask.evidence
    interval = evidence.Interval.from_dict(live.interval).percent() if live.interval else "-"
    compared = (
        "the previous champion over the champion"
        if live.live == "rollback"
        else "the challenger over the champion"
    )
    return "\n".join(
        [
            f"**Live evidence: {ask.action} version {ask.version}** (the monitor's, on delayed labels)",
            "",
            f"- {ask.reason}",
            f"- Improvement of {compared}: **{interval}**",
            f"- Labelled trips: {live.trips:,}",
            f"- Windows: {', '.join(live.windows) or '-'}",
        ]
    )


def act_on_live(use_case: UseCase, ask: LiveAsk, approval: Approval | None, run_id: str) -> PromotionOutcome:
    """Retire the challenger or roll the champion back on the monitor's live evidence, once a
    person approved (level 3). Rejected or timed out, nothing moves and the decision is
    recorded on the version (``live_decision`` tags) and posted to Slack."""
    client, name = registry.client(), use_case.model_name
    action, version, reason = ask.action, ask.version, ask.reason
    by = "approval timeout" if approval is None or approval.timed_out else str(approval.by)
    outcome, why = "rejected", f"{action} on live evidence not approved ({by}): {reason}"
    if approval is not None and approval.approved:
        outcome, why = ("retired" if action == "retire" else "rolled_back"), f"{action}: {reason} (approved)"
        moved_on = {"live": ask.evidence.to_dict(), "approved_by": by}
        try:
            if action == "retire":
                moved = registry.retire_challenger(
                    client, name, version, {"by": by, "run_id": run_id, "reason": why, "evidence": moved_on}
                )
                if not moved:
                    outcome, why = (
                        "rejected",
                        f"the challenger is no longer version {version}: nothing retired",
                    )
            else:
                rollback(use_case, why, moved_on, by=by, run_id=run_id)
        except PromotionError as refused:  # the cooldown, or no record: nothing moved
            outcome, why = "rejected", f"{action} approved but refused: {refused}"
    tags = {
        "live_decision": f"{action}:{outcome}",
        "live_decision.by": by,
        "live_decision.reason": why[:4900],
    }
    registry.tag_version(client, name, version, {**tags, "live_decision.run_id": run_id})
    registry.notify(
        "ok" if outcome != "rejected" else "warning",
        f"{name} version {version}: {action} on live evidence {outcome.replace('_', ' ')}",
        [why],
        {
            "Model": f"{name} v{version}",
            "Live evidence": ask.evidence.text(),
            "Decided by": by,
            "Run": run_id,
        },
        {"Model version": registry.model_url(name, version)},
    )
    return PromotionOutcome(name, version, outcome, why, by, registry.alias_version(client, name, CHAMPION))


def evaluate_and_decide(
    lake: Lake,
    use_case: UseCase,
    version: str | None = None,
    approval: Approval | None = None,
    run_id: str | None = None,
) -> PromotionOutcome:
    """Assess, decide and apply in one go (the command line's ``promote``)."""
    assessment = assess(lake, use_case, version)
    return apply(use_case, assessment, decide(use_case, assessment, approval), run_id)
