"""The volume check: how many rows a month may have, from the months validated before it.

A month far off the usual volume is a partial or duplicated delivery. The allowed range
is ``contract.volume_band`` times the median raw row count of the latest
:data:`HISTORY_MONTHS` validated months; without history any count passes.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

import numpy as np

from mlplatform.adapters import snapshots
from mlplatform.adapters.lake import Lake
from mlplatform.core.spec import UseCase

HISTORY_MONTHS = 6
"""How many previous months the volume check takes the median of."""


def history_row_counts(lake: Lake, use_case: UseCase, month: str, months: int = HISTORY_MONTHS) -> list[int]:
    """Raw row counts of the latest ``months`` validated months before ``month``."""
    earlier = [s for s in snapshots.current_snapshots(lake, use_case.name) if s.month < month][-months:]
    return [int((s.manifest.get("source") or {}).get("rows", s.rows)) for s in earlier]


def volume_bounds(use_case: UseCase, history: Sequence[int]) -> dict[str, Any]:
    """The allowed row count from the history's median (no history: unchecked)."""
    if not history:
        return {"checked": False, "history_months": 0, "median_rows": None, "min_rows": 0, "max_rows": None}
    median = float(statistics.median(history))
    low, high = use_case.contract.volume_band
    return {
        "checked": True,
        "history_months": len(history),
        "median_rows": median,
        "min_rows": int(np.ceil(low * median)),
        "max_rows": int(np.floor(high * median)),
    }
