"""Whether a breached window starts a retrain: what a new model would fix, cooldown, de-duplication.

The retrains the monitor triggered are kept in ``monitoring/<uc>/retrain_state.json``;
the cooldown (``monitoring.retrain_cooldown_hours``) is measured from the last of them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mlplatform.adapters.lake import Lake
from mlplatform.core import retrain
from mlplatform.core.records import MonitoringRecord
from mlplatform.core.retrain import LastTrigger, RetrainDecision
from mlplatform.core.spec import UseCase

KEPT_TRIGGERS = 50
"""Triggered retrains remembered in the state's ``history``."""


def state_path(use_case: str) -> str:
    return f"monitoring/{use_case}/retrain_state.json"


def retrain_decision(
    lake: Lake, use_case: UseCase, record: MonitoringRecord, active_train_runs: int, now: datetime
) -> RetrainDecision:
    """Whether this window's breaches start a retrain now (:func:`mlplatform.core.retrain.on_breaches`)."""
    state = read_state(lake, use_case.name)
    last = state.get("last_triggered_at")
    previous = LastTrigger(datetime.fromisoformat(last), str(state.get("window"))) if last else None
    return retrain.on_breaches(use_case, record, active_train_runs, previous, now)


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
