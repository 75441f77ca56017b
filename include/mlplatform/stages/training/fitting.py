"""Fitting and evaluating: the baseline, the chosen family after a small, bounded
hyperparameter search, and how a model is measured (the primary metric, overall and per
slice, on labelled trips).

The search tries scikit-learn's :class:`~sklearn.model_selection.ParameterGrid` of the spec's
``model.search``, or a fixed :class:`~sklearn.model_selection.ParameterSampler` draw of
``model.max_search_trials`` combinations when the grid is larger. Each trial is scored on a
random fifth of a training subsample, never on the validation months; the best is refitted
on the whole training sample.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pandas as pd

from mlplatform.core import modelling
from mlplatform.core.metrics import LOWER_IS_BETTER, score
from mlplatform.core.modelling import TripModel, build_estimator, input_defaults
from mlplatform.core.records import Record
from mlplatform.core.spec import Hyperparameter, UseCase
from mlplatform.stages.training.dataset import SAMPLE_SEED, safe_key, sample

MIN_SLICE_ROWS = 100
"""Slices with fewer validation rows are not scored: their metrics would be noise."""


def primary_metric(use_case: UseCase) -> str:
    """The metric models are compared on: the spec's ``monitoring.performance_metric``."""
    return use_case.monitoring.performance_metric


@dataclass(frozen=True)
class ModelEvaluation(Record):
    """Metrics of one model on one frame: overall and per slice (``column=value``).

    Its JSON form (``{"overall": ..., "slices": ..., "rows": n}``) is what an
    :class:`~mlplatform.core.records.Assessment` holds as ``candidate`` and ``champion``.
    """

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


def evaluate(use_case: UseCase, model: TripModel, featured: pd.DataFrame, y: pd.Series) -> ModelEvaluation:
    """Score ``model`` on trips with derived features, overall and per ``promotion.slices``."""
    answer = model.answer(featured)
    slices = {}
    for column in use_case.promotion.slices:
        for value, index in featured.groupby(column, observed=True).groups.items():
            if len(index) < MIN_SLICE_ROWS:
                continue
            metrics = score(use_case.task, y.loc[index], answer.loc[index])
            slices[f"{column}={value}"] = {**metrics, "rows": float(len(index))}
    return ModelEvaluation(score(use_case.task, y, answer), slices, rows=len(featured))


SEARCH_ROWS = 200_000
"""Training rows the hyperparameter search fits on (a uniform subsample)."""


@dataclass(frozen=True)
class SearchTrial(Record):
    """One trial of the hyperparameter search: its parameters and its value of the primary
    metric on the search's holdout. The JSON form (in the run's ``training.json``) writes the
    metric under its name: ``{"params": {...}, "rmse": 4.2}``."""

    flattened: ClassVar[str] = "metrics"

    params: dict[str, Hyperparameter]
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class Fitted:
    """What :func:`fit` produced."""

    family: str
    params: dict[str, Hyperparameter]
    model: TripModel
    baseline: TripModel
    search: Sequence[SearchTrial]
    seconds: float


def search_trials(use_case: UseCase) -> list[dict[str, Hyperparameter]]:
    """The hyperparameter combinations tried: the grid, or a fixed sample of it when larger."""
    from sklearn.model_selection import ParameterGrid, ParameterSampler

    grid = use_case.model.search
    if not grid:
        return [{}]
    limit = use_case.model.max_search_trials
    if len(ParameterGrid(grid)) <= limit:
        return list(ParameterGrid(grid))
    # Lists only: the sampler draws combinations of the grid without replacement.
    return list(ParameterSampler(grid, n_iter=limit, random_state=SAMPLE_SEED))


def trip_model(use_case: UseCase, estimator: Any) -> TripModel:
    """A fitted estimator wrapped as the model every stage loads."""
    return TripModel(
        estimator, use_case.features.all, use_case.task, use_case.target.labels, input_defaults(use_case)
    )


def _search(
    use_case: UseCase, family: str, featured: pd.DataFrame, y: pd.Series, params: dict[str, Hyperparameter]
) -> tuple[list[SearchTrial], dict[str, Hyperparameter]]:
    """Every trial of :func:`search_trials` with its primary metric, in the order tried, and
    the best trial's parameters (none when there is nothing to choose from)."""
    trials = search_trials(use_case)
    if len(trials) < 2:
        return [], {}
    metric = primary_metric(use_case)
    columns = list(use_case.features.all)
    subset = sample(featured.assign(_y=y.to_numpy()), SEARCH_ROWS)
    holdout = subset.sample(frac=0.2, random_state=SAMPLE_SEED)
    inner = subset.drop(holdout.index)
    tried: list[SearchTrial] = []
    ranks: list[float] = []
    for trial in trials:
        estimator = build_estimator(use_case, family, {**params, **trial})
        estimator.fit(inner[columns], inner["_y"])
        value = score(use_case.task, holdout["_y"], trip_model(use_case, estimator).answer(holdout))[metric]
        tried.append(SearchTrial(trial, {metric: value}))
        ranks.append(value if LOWER_IS_BETTER[metric] else -value)
    return tried, trials[ranks.index(min(ranks))]


def fit(use_case: UseCase, train: pd.DataFrame, family: str | None = None) -> Fitted:
    """Fit the baseline and ``family`` (default: the spec's) on a labelled training frame."""
    started = time.perf_counter()
    family = family or use_case.model.family
    featured = modelling.trip_features(train)
    X, y = featured[list(use_case.features.all)], train[use_case.target.column]

    baseline = build_estimator(use_case, use_case.model.baseline).fit(X, y)
    # Only the spec's own family is tuned: its hyperparameters, then the best of the search.
    tuned = family == use_case.model.family
    given = dict(use_case.model.hyperparameters) if tuned else {}
    search, best = _search(use_case, family, featured, y, given) if tuned else ([], {})
    params = {**given, **best}
    if family == use_case.model.baseline and not params:
        model = baseline
    else:
        model = build_estimator(use_case, family, params).fit(X, y)
    return Fitted(
        family,
        params,
        trip_model(use_case, model),
        trip_model(use_case, baseline),
        search,
        time.perf_counter() - started,
    )


def validate(
    use_case: UseCase, fitted: Fitted, valid: pd.DataFrame
) -> tuple[ModelEvaluation, ModelEvaluation]:
    """Evaluations of the model and of the baseline on the same validation rows."""
    featured = modelling.trip_features(valid)
    y = valid[use_case.target.column]
    return evaluate(use_case, fitted.model, featured, y), evaluate(use_case, fitted.baseline, featured, y)


def train_frames(
    use_case: UseCase, train: pd.DataFrame, valid: pd.DataFrame, family: str | None = None
) -> tuple[Fitted, ModelEvaluation, ModelEvaluation]:
    """Fit on labelled ``train`` and evaluate on labelled ``valid`` (no tracking)."""
    fitted = fit(use_case, train, family)
    evaluation, baseline = validate(use_case, fitted, valid)
    return fitted, evaluation, baseline
