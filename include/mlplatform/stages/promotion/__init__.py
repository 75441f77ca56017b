"""Promotion: a model version judged against its use case's gates, and the decision acted on.

``gates`` measures a version against the spec's ``promotion`` section (:func:`assess`);
``decisions`` decides on the assessment by the maturity level and acts on it
(:func:`decide`, :func:`apply`), puts the previous champion back on quality
(:func:`rollback`, with a cooldown), and leaves the audit trail. Which version served when,
and why, is read from the alias history every move writes first
(:func:`mlplatform.adapters.registry.serving_at`).
"""

from mlplatform.stages.promotion.decisions import (
    PromotionDecision,
    PromotionOutcome,
    act_on_live,
    apply,
    decide,
    evaluate_and_decide,
    live_summary,
    rollback,
    summary_markdown,
)
from mlplatform.stages.promotion.gates import assess

__all__ = [
    "PromotionDecision",
    "PromotionOutcome",
    "act_on_live",
    "apply",
    "assess",
    "decide",
    "evaluate_and_decide",
    "live_summary",
    "rollback",
    "summary_markdown",
]
