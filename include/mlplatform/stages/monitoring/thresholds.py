"""The spec's monitoring thresholds as a rule table, and the breaches a window's metrics cross.

Each rule in :data:`THRESHOLD_RULES` names the metric it reads, the spec field that gives
its limit, the comparison that breaches it and the kind of breach; :func:`breaches`
evaluates the table. Only ``performance`` and ``drift`` breaches ask for retraining
(:data:`RETRAIN_KINDS`): a data-quality or serving breach is alerted, but a new model
would not fix it. Serving breaches (error rate, p99 latency: :data:`SERVING_KINDS`) are
the endpoint's, not the model's: they set the window's serving status and alert
operations, and never make the model status breach.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from mlplatform.core.records import SERVING_KINDS
from mlplatform.core.spec import UseCase

RETRAIN_KINDS = ("performance", "drift")
BreachKind = Literal["performance", "drift", "quality", "serving"]


@dataclass(frozen=True)
class Breach:
    metric: str
    value: float
    threshold: float
    kind: str  # performance | drift | quality | serving
    message: str

    @property
    def retrain(self) -> bool:
        return self.kind in RETRAIN_KINDS

    @property
    def serving(self) -> bool:
        """Whether the breach is the endpoint's (operations), not the model's."""
        return self.kind in SERVING_KINDS


COMPARISONS: dict[str, Callable[[float, float], bool]] = {">": operator.gt, "<": operator.lt}
"""How a rule's value crosses its limit."""


@dataclass(frozen=True)
class ThresholdRule:
    """One threshold: ``reads`` breaches when ``reads <breached_when> limit``.

    In ``name``, ``reads``, ``reports`` and ``relative_to``, ``{metric}`` stands for the
    spec's ``monitoring.performance_metric``. ``limit`` is a spec field (``section.field``)
    or a fixed number. The breach carries the value of ``reports`` (default: ``reads``)
    and, for a limit relative to a reference, ``relative_to`` × (1 + limit) as its
    threshold. ``message`` is formatted with ``name``, ``value``, ``limit``, ``reported``,
    ``reference`` and the spec's ``monitoring`` section.
    """

    name: str
    reads: str
    limit: str | float
    breached_when: Literal[">", "<"]
    kind: BreachKind
    message: str
    reports: str | None = None
    relative_to: str | None = None


THRESHOLD_RULES: tuple[ThresholdRule, ...] = (
    ThresholdRule(
        "{metric}",
        "{metric}_degradation",
        "monitoring.max_relative_degradation",
        ">",
        "performance",
        "{name} {reported:.4g} is {value:.1%} worse than the champion's {reference:.4g} at training "
        "(limit {limit:.0%})",
        reports="{metric}",
        relative_to="{metric}_reference",
    ),
    ThresholdRule(
        "drift_share",
        "drift_share",
        "monitoring.drifted_share_threshold",
        ">",
        "drift",
        "{value:.0%} of features drifted (limit {limit:.0%}; a feature drifts above a distance of "
        "{monitoring.drift_threshold})",
    ),
    ThresholdRule(
        "prediction_drift",
        "prediction_drift",
        "monitoring.prediction_drift_threshold",
        ">",
        "drift",
        "prediction drift {value:.3f} (limit {limit})",
    ),
    ThresholdRule(  # success reads as 1.0, failure as 0.0
        "contract", "contract_success", 1.0, "<", "quality", "the window's snapshot failed its data contract"
    ),
    ThresholdRule(
        "quarantined_share",
        "quarantined_share",
        "contract.max_bad_row_share",
        ">",
        "quality",
        "{value:.1%} of the window's rows were quarantined (limit {limit:.0%})",
    ),
    ThresholdRule(
        "error_rate",
        "error_rate",
        "monitoring.max_error_rate",
        ">",
        "serving",
        "serving error rate {value:.2%} (limit {limit:.2%})",
    ),
    ThresholdRule(
        "p99_latency_ms",
        "p99_latency_ms",
        "monitoring.max_p99_latency_ms",
        ">",
        "serving",
        "serving p99 latency {value:.0f} ms (limit {limit:.0f} ms)",
    ),
)
"""Every threshold a window is held to, in the order its breaches are reported."""


def spec_limit(use_case: UseCase, limit: str | float) -> Any:
    """The value of a rule's ``limit``: a spec field such as ``monitoring.max_error_rate``, or the number."""
    if not isinstance(limit, str):
        return limit
    section, name = limit.split(".")
    return getattr(getattr(use_case, section), name)


def breaches(use_case: UseCase, metrics: dict[str, Any]) -> list[Breach]:
    """The rules of :data:`THRESHOLD_RULES` the metrics cross; a metric not measured breaches nothing."""
    named = {"metric": use_case.monitoring.performance_metric}
    found = []
    for rule in THRESHOLD_RULES:
        value, limit = metrics.get(rule.reads.format(**named)), spec_limit(use_case, rule.limit)
        if value is None or not COMPARISONS[rule.breached_when](float(value), limit):
            continue
        name = rule.name.format(**named)
        reported = float(metrics[rule.reports.format(**named)]) if rule.reports else float(value)
        reference = metrics[rule.relative_to.format(**named)] if rule.relative_to else None
        threshold = reference * (1 + limit) if reference is not None else limit
        message = rule.message.format(
            name=name,
            value=value,
            limit=limit,
            reported=reported,
            reference=reference,
            monitoring=use_case.monitoring,
        )
        found.append(Breach(name, reported, threshold, rule.kind, message))
    return found
