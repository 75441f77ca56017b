"""How a model is measured: the primary metric, overall and per slice, on labelled trips."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from mlplatform.core.metrics import score
from mlplatform.core.modelling import TripModel
from mlplatform.core.spec import UseCase
from mlplatform.stages.training.dataset import safe_key

MIN_SLICE_ROWS = 100
"""Slices with fewer validation rows are not scored: their metrics would be noise."""


def primary_metric(use_case: UseCase) -> str:
    """The metric models are compared on: the spec's ``monitoring.performance_metric``."""
    return use_case.monitoring.performance_metric


@dataclass
class Evaluation:
    """Metrics of one model on one frame: overall and per slice (``column=value``)."""

    overall: dict[str, float]
    slices: dict[str, dict[str, float]] = field(default_factory=dict)
    rows: int = 0

    def as_metrics(self, prefix: str = "val_", with_slices: bool = True) -> dict[str, float]:
        """MLflow metric names and values: ``<prefix><metric>``, ``<prefix><metric>.<column>.<value>``."""
        out = {f"{prefix}{name}": value for name, value in self.overall.items()}
        if with_slices:
            for key, values in self.slices.items():
                column, value = key.split("=", 1)
                for name, metric in values.items():
                    if name != "rows":
                        out[f"{prefix}{name}.{column}.{safe_key(value)}"] = metric
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"overall": self.overall, "slices": self.slices, "rows": self.rows}


def evaluate(use_case: UseCase, model: TripModel, featured: pd.DataFrame, y: pd.Series) -> Evaluation:
    """Score ``model`` on trips with derived features, overall and per ``promotion.slices``."""
    answer = model.answer(featured)
    result = Evaluation(score(use_case.task, y, answer), rows=len(featured))
    for column in use_case.promotion.slices:
        for value, index in featured.groupby(column, observed=True).groups.items():
            if len(index) < MIN_SLICE_ROWS:
                continue
            metrics = score(use_case.task, y.loc[index], answer.loc[index])
            result.slices[f"{column}={value}"] = {**metrics, "rows": float(len(index))}
    return result
