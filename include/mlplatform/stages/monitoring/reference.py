"""The champion and its training reference: what production is compared with.

The ``champion`` version, the metrics and params its training run logged, the
validation value of the monitored metric under the names training uses, and the months
it trained on (the drift reference).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from mlplatform.adapters import registry
from mlplatform.adapters.registry import model_url
from mlplatform.core import months as monthly
from mlplatform.core.spec import UseCase
from mlplatform.stages import scoring


@dataclass
class Champion:
    """The version serving now, and what its training run recorded."""

    name: str
    version: str
    run_id: str | None
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    url: str = ""
    model: Any = field(default=None, repr=False)


def champion(use_case: UseCase, client: Any = None, load: bool = True) -> Champion | None:
    """The ``champion`` version with its run's metrics and params; ``None`` when none is set."""
    try:
        client = client or registry.client()
        ref = registry.resolve(use_case.model_name, "champion", client)
    except registry.ModelNotFound:
        return None
    found = Champion(ref.name, ref.version, ref.run_id, url=model_url(ref.name, ref.version))
    if ref.run_id:
        run = client.get_run(ref.run_id)
        found.metrics = dict(run.data.metrics)
        found.params = {**run.data.params, **run.data.tags}
    if load:
        found.model = scoring.load_model(ref.uri)
    return found


def version_metrics(client: Any, name: str, version: str) -> dict[str, float]:
    """Metrics of the training run of any registered version (empty when it has none)."""
    try:
        run_id = client.get_model_version(name, str(version)).run_id
        return dict(client.get_run(run_id).data.metrics) if run_id else {}
    except Exception:  # a deleted version or run: no reference to compare with
        return {}


_METRIC_KEYS = ("val_{m}", "validation_{m}", "val.{m}", "validation.{m}", "validation/{m}", "{m}_val", "{m}")


def reference_metric(metrics: dict[str, float], metric: str) -> float | None:
    """The validation value of ``metric`` a training run logged, under the names training uses."""
    for pattern in _METRIC_KEYS:
        if (value := metrics.get(pattern.format(m=metric))) is not None:
            return float(value)
    return None


_MONTH_KEYS = ("train_months", "training_months", "training.months", "data.train_months", "train.months")


def reference_months(
    use_case: UseCase, window: str, params: dict[str, str], available: list[str]
) -> list[str]:
    """The months the champion trained on, else the ``training.window_months`` before the window."""
    for key in _MONTH_KEYS:
        if raw := params.get(key):
            months = [found.group() for found in re.finditer(monthly.PATTERN, raw)]
            if ".." in raw and len(months) == 2:  # a range, first..last
                months = monthly.sequence(months[0], _months_between(*months) + 1)
            chosen = [m for m in months if m in available and m != window]
            if chosen:
                return chosen
    before = [m for m in available if m < window]
    return before[-use_case.training.window_months :]


def _months_between(first: str, last: str) -> int:
    (y1, m1), (y2, m2) = map(int, first.split("-")), map(int, last.split("-"))
    return (y2 * 12 + m2) - (y1 * 12 + m1)
