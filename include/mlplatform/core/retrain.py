"""Whether a retrain runs, and why: the one rule set behind both ways a train run starts.

A newly validated month starts one (:func:`on_new_data`, the train DAG's own asset trigger,
governed by ``training.on_new_data``); so does a monitored window whose breaches a new model
would fix (:func:`on_breaches`, the monitor DAG, governed by
``monitoring.retrain_cooldown_hours``). Both answer with a :class:`RetrainDecision`. Pure:
the callers read the lake and the registry and pass in what they found.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from mlplatform.core.records import MonitoringRecord
from mlplatform.core.spec import UseCase


@dataclass(frozen=True)
class RetrainDecision:
    """Whether a retrain runs; ``reason`` is what it is (or would be) for, ``why_not`` why it does not run."""

    retrain: bool
    reason: str
    why_not: str = ""

    @property
    def explanation(self) -> str:
        """The one line a log shows: the reason of a retrain, or why none runs."""
        return self.reason if self.retrain else self.why_not


@dataclass(frozen=True)
class LastTrigger:
    """The last retrain the monitor triggered: when, and for which window."""

    at: datetime
    window: str


def on_new_data(use_case: UseCase, validated_months: int, has_champion: bool) -> RetrainDecision:
    """Whether a newly validated month trains a challenger, given the months validated so far."""
    needed = use_case.training.validation_months + 1
    reason = f"{validated_months} validated months; training.on_new_data is {use_case.training.on_new_data}"
    if validated_months < needed:
        return RetrainDecision(
            False, reason, f"{validated_months} validated month(s); training needs {needed}"
        )
    if use_case.training.on_new_data == "first_model" and has_champion:
        return RetrainDecision(
            False,
            reason,
            "a champion exists and training.on_new_data is first_model: monitoring decides retrains",
        )
    return RetrainDecision(True, reason)


def breach_reason(record: MonitoringRecord) -> str:
    """What a retrain for this window is for, in one line (the train DAG's conf ``reason``)."""
    wanted = [b for b in record.model_breaches if b.retrain]  # serving breaches never retrain
    return f"{record.window}: " + "; ".join(b.message for b in wanted) if wanted else ""


def on_breaches(
    use_case: UseCase,
    record: MonitoringRecord,
    active_train_runs: int,
    last: LastTrigger | None,
    now: datetime,
) -> RetrainDecision:
    """Whether this window's breaches start a retrain now.

    No when nothing that a new model fixes breached, when a train run is queued or
    running, or within ``retrain_cooldown_hours`` of the ``last`` retrain the monitor
    triggered. The cooldown runs on wall-clock time: it limits how often models are
    rebuilt, whatever window is being evaluated.
    """
    reason = breach_reason(record)
    if not reason:
        return RetrainDecision(False, "", "no performance or drift breach")
    if active_train_runs:
        return RetrainDecision(False, reason, f"a {use_case.name}_train run is already queued or running")
    if last is not None:
        until = last.at + timedelta(hours=use_case.monitoring.retrain_cooldown_hours)
        if now < until:
            return RetrainDecision(
                False,
                reason,
                f"cooldown: the last retrain was triggered at {last.at.isoformat()} (window {last.window}); "
                f"the next one may start after {until.isoformat()}",
            )
    return RetrainDecision(True, reason)
