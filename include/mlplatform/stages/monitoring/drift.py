"""Drift of a window's trips and of the champion's answers from its training data (Evidently).

Each feature of the window is compared with a sample of the champion's training months:
the normed Wasserstein distance for numeric features, the Jensen-Shannon distance for
categorical ones. A feature drifted when its distance exceeds ``monitoring.drift_threshold``;
the window reports the share of drifted features and the drift of the champion's
predictions over the same two samples. The Evidently snapshot is kept on the result for
the HTML report a person opens.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlplatform.adapters import snapshots
from mlplatform.adapters.lake import Lake
from mlplatform.core.modelling import input_columns, trip_features
from mlplatform.core.spec import UseCase
from mlplatform.stages import scoring
from mlplatform.stages.monitoring.sources import (
    Champion,
    answer_column,
    modelled_frame,
    reference_months,
    sample,
    seed,
)

SAMPLE_ROWS = 20_000
"""Rows sampled from the reference and from the window for drift: enough for distances
around 0.02 to be noise, few enough for a report in seconds."""
MIN_DRIFT_ROWS = 1_000
"""A window with fewer trips has no drift figures: distances between small samples are
mostly sampling noise (about 1/sqrt(rows)), which would read as drift."""
TOP_CATEGORIES = 30
"""High-cardinality categories beyond the reference's most frequent ones are pooled as
``other``: thousands of rare zone pairs would otherwise read as drift from sampling alone."""


@dataclass
class DriftResult:
    scores: dict[str, float]
    drifted: list[str]
    share: float
    prediction_drift: float | None
    snapshot: Any = field(default=None, repr=False)  # the Evidently snapshot, for the HTML report


def _pool_categories(reference: pd.Series, current: pd.Series) -> tuple[pd.Series, pd.Series]:
    ref, cur = reference.astype(str), current.astype(str)
    top = set(ref.value_counts().index[:TOP_CATEGORIES])
    return ref.where(ref.isin(top), "other"), cur.where(cur.isin(top), "other")


def _comparable(
    use_case: UseCase, reference: pd.DataFrame, current: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The model's features of both samples: numbers as floats, rare categories pooled."""
    numeric, categorical = list(use_case.features.numeric), list(use_case.features.categorical)
    ref, cur = trip_features(reference)[numeric + categorical], trip_features(current)[numeric + categorical]
    ref[numeric], cur[numeric] = ref[numeric].astype(float), cur[numeric].astype(float)
    for column in categorical:
        ref[column], cur[column] = _pool_categories(ref[column], cur[column])
    return ref, cur


def _value_drift_scores(snap: Any) -> dict[str, float]:
    """The distance of every column an Evidently snapshot measured with ``ValueDrift``."""
    scores: dict[str, float] = {}
    for metric in snap.dict()["metrics"]:
        config = metric.get("config") or {}
        if str(config.get("type", "")).endswith(":ValueDrift"):
            scores[config["column"]] = float(metric["value"])
    return scores


def drift(
    use_case: UseCase,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    reference_predictions: np.ndarray | None = None,
    current_predictions: np.ndarray | None = None,
) -> DriftResult:
    """Per-feature drift scores, the drifted share and prediction drift, with Evidently.

    ``reference`` and ``current`` are normalised trips (features are derived here).
    Numeric features use the normed Wasserstein distance, categorical ones the
    Jensen-Shannon distance; a feature drifted when its score exceeds ``drift_threshold``.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    thresholds = use_case.monitoring
    features = list(use_case.features.numeric) + list(use_case.features.categorical)
    ref, cur = _comparable(use_case, reference, current)
    numbers = list(use_case.features.numeric)
    metrics: list[Any] = [
        DataDriftPreset(
            columns=features,
            num_method="wasserstein",
            cat_method="jensenshannon",
            threshold=thresholds.drift_threshold,
            drift_share=thresholds.drifted_share_threshold,
        )
    ]
    if reference_predictions is not None and current_predictions is not None:
        ref["prediction"], cur["prediction"] = reference_predictions, current_predictions
        numbers.append("prediction")
        metrics.append(
            ValueDrift(
                column="prediction", method="wasserstein", threshold=thresholds.prediction_drift_threshold
            )
        )
    definition = DataDefinition(
        numerical_columns=numbers, categorical_columns=list(use_case.features.categorical)
    )
    snap = Report(metrics).run(
        Dataset.from_pandas(cur.reset_index(drop=True), data_definition=definition),
        Dataset.from_pandas(ref.reset_index(drop=True), data_definition=definition),
    )
    scores = _value_drift_scores(snap)
    prediction_drift = scores.pop("prediction", None)
    drifted = [f for f in features if scores.get(f, 0.0) > thresholds.drift_threshold]
    return DriftResult(scores, drifted, len(drifted) / len(features), prediction_drift, snap)


def predict(use_case: UseCase, model: Any, trips: pd.DataFrame) -> np.ndarray:
    """The champion's answers for trips (``prediction``, or the positive-class probability)."""
    inputs = trips[input_columns(use_case.features.all)]
    call = model.predict if hasattr(model, "estimator") else scoring.predictor(model)
    answers: np.ndarray = call(inputs)[answer_column(use_case)].to_numpy(float)
    return answers


def reference_sample(
    lake: Lake, use_case: UseCase, months: list[str], columns: list[str], rows: int = SAMPLE_ROWS
) -> pd.DataFrame | None:
    """A uniform sample of ``rows`` modelled trips over the reference months, the same every run."""
    parts = []
    for month in months:
        if (snap := snapshots.current_snapshot(lake, use_case.name, month)) is not None:
            frame = modelled_frame(lake, use_case, snap, columns)
            parts.append(sample(frame, rows, seed(month, snap.digest)))
    if not parts:
        return None
    return sample(pd.concat(parts, ignore_index=True), rows, seed(*months))


def measure_drift(
    lake: Lake, use_case: UseCase, window: str, logged: pd.DataFrame | None, found: Champion | None
) -> tuple[DriftResult | None, list[str], int]:
    """Drift of the window's trips (its snapshot, else what serving saw) from the training data.

    Returns the result (``None`` without enough data on either side), the reference
    months and the reference rows sampled.
    """
    columns = input_columns(use_case.features.all)
    available = [s.month for s in snapshots.current_snapshots(lake, use_case.name)]
    months = reference_months(use_case, window, found.params if found else {}, available)
    reference = reference_sample(lake, use_case, months, columns)
    snap = snapshots.current_snapshot(lake, use_case.name, window)
    if snap is not None:
        current = modelled_frame(lake, use_case, snap, columns)
        current = sample(current, SAMPLE_ROWS, seed(window, snap.digest))
    elif logged is not None and all(c in logged for c in columns):
        current = sample(logged[columns], SAMPLE_ROWS, seed(window, "serving"))
    else:
        current = None
    rows = 0 if reference is None else len(reference)
    if reference is None or current is None or len(current) < MIN_DRIFT_ROWS:
        return None, months, rows
    model = found.model if found else None
    answers = (
        (predict(use_case, model, reference), predict(use_case, model, current)) if model else (None, None)
    )
    return drift(use_case, reference, current, *answers), months, rows
