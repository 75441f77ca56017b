"""Whether a breached window starts a retrain: what a new model would fix, cooldown, de-duplication.

The retrains the monitor triggered are kept in ``monitoring/<uc>/retrain_state.json``;
the cooldown (``monitoring.retrain_cooldown_hours``) is measured from the last of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from mlplatform.adapters.lake import Lake
from mlplatform.core.records import MonitoringRecord
from mlplatform.core.spec import UseCase

KEPT_TRIGGERS = 50
"""Triggered retrains remembered in the state's ``history``."""


def state_path(use_case: str) -> str:
    return f"monitoring/{use_case}/retrain_state.json"


@dataclass(frozen=True)
class Decision:
    retrain: bool
    reason: str
    why_not: str = ""


def retrain_reason(record: MonitoringRecord) -> str:
    """What a retrain is for, in one line (the train DAG's conf ``reason``)."""
    wanted = [b for b in record.model_breaches if b.retrain]  # serving breaches never retrain
    return f"{record.window}: " + "; ".join(b.message for b in wanted) if wanted else ""


def retrain_decision(
    lake: Lake, use_case: UseCase, record: MonitoringRecord, active_train_runs: int, now: datetime
) -> Decision:
    """Whether this window's breaches start a retrain now.

    No when nothing that a new model fixes breached, when a train run is queued or
    running, or within ``retrain_cooldown_hours`` of the last retrain the monitor
    triggered. The cooldown runs on wall-clock time: it limits how often models are
    rebuilt, whatever window is being evaluated.
    """
    reason = retrain_reason(record)
    if not reason:
        return Decision(False, "", "no performance or drift breach")
    if active_train_runs:
        return Decision(False, reason, f"a {use_case.name}_train run is already queued or running")
    state = read_state(lake, use_case.name)
    if last := state.get("last_triggered_at"):
        until = datetime.fromisoformat(last) + timedelta(hours=use_case.monitoring.retrain_cooldown_hours)
        if now < until:
            return Decision(
                False,
                reason,
                f"cooldown: the last retrain was triggered at {last} (window {state.get('window')}); "
                f"the next one may start after {until.isoformat()}",
            )
    return Decision(True, reason)


def read_state(lake: Lake, use_case: str) -> dict[str, Any]:
    return lake.read_json(state_path(use_case)) if lake.exists(state_path(use_case)) else {}


def record_trigger(
    lake: Lake,
    use_case: str,
    window: str,
    reason: str,
    train_run_id: str | None,
    monitor_run_id: str,
    now: datetime,
) -> dict[str, Any]:
    """Note a triggered retrain in ``retrain_state.json`` (the last :data:`KEPT_TRIGGERS` are kept)."""
    state = read_state(lake, use_case)
    entry = {
        "triggered_at": now.isoformat(),
        "window": window,
        "reason": reason,
        "train_run_id": train_run_id,
        "monitor_run_id": monitor_run_id,
    }
    history = [*state.get("history", []), entry][-KEPT_TRIGGERS:]
    new = {"last_triggered_at": entry["triggered_at"], **entry, "history": history}
    new.pop("triggered_at")
    lake.write_json(state_path(use_case), new)
    return new
