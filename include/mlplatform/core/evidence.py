"""Evidence for decisions: how sure a measured difference between two models is.

Promotion compares a challenger with the champion on the same held-out rows. A point
difference on a holdout is noise as much as signal, so the gates read an interval:
:func:`paired_bootstrap` resamples the rows with replacement, recomputes both models'
metric on the *same* resampled rows, and returns the percentile interval of the relative
improvement of the candidate over the reference (positive: the candidate is better, the
same sign as :func:`mlplatform.core.metrics.relative_degradation` negated). Pairing is what
makes it sharp: both models' errors on a row move together, so only their difference
varies between resamples.

Metrics that are a function of a mean of per-row terms (RMSE, MAE, log loss, Brier,
accuracy) are resampled vectorised: one matrix of row counts per chunk of resamples, times
one column of per-row terms per model and slice. ROC AUC is not such a metric and is
resampled one resample at a time (slower; it is only used on small holdouts).

Everything here is pure and seeded: the same inputs and seed give the same interval.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from mlplatform.core.metrics import LOWER_IS_BETTER

Array = npt.NDArray[np.float64]

DEFAULT_RESAMPLES = 2000
DEFAULT_SEED = 20240101
# Resamples drawn at once: a chunk is a (chunk x rows) matrix of counts, so memory stays
# bounded (50 x 200,000 rows x 8 bytes = 80 MB) whatever the number of resamples.
_CHUNK = 50
_EPS = 1e-6  # probabilities are clipped as metrics.score clips them


@dataclass(frozen=True)
class Interval:
    """A point estimate and its two-sided percentile interval at ``confidence``.

    ``rows`` is how many rows the estimate is measured on and ``resamples`` how many
    bootstrap resamples made the interval (0 for an exact value with no interval).
    """

    point: float
    low: float
    high: float
    confidence: float
    resamples: int
    rows: int

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    def negated(self) -> Interval:
        """The interval of minus the quantity (an improvement read as a degradation)."""
        return Interval(-self.point, -self.high, -self.low, self.confidence, self.resamples, self.rows)

    def percent(self) -> str:
        """``+3.10% [+1.20%, +5.00%] (95%, 5,000 rows)``: how the gates print it."""
        return (
            f"{self.point:+.2%} [{self.low:+.2%}, {self.high:+.2%}] "
            f"({self.confidence:.0%}, {self.rows:,} rows)"
        )

    def to_dict(self) -> dict[str, float | int]:
        return {
            "point": self.point,
            "low": self.low,
            "high": self.high,
            "confidence": self.confidence,
            "resamples": self.resamples,
            "rows": self.rows,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, float | int]) -> Interval:
        return cls(
            float(data["point"]),
            float(data["low"]),
            float(data["high"]),
            float(data["confidence"]),
            int(data["resamples"]),
            int(data["rows"]),
        )


# -- per-row terms of each metric ---------------------------------------------------------------
def _terms(metric: str, y: Array, predicted: Array) -> Array:
    """The per-row terms whose mean the metric is a function of."""
    if metric == "rmse":
        return np.asarray((predicted - y) ** 2, dtype=np.float64)
    if metric == "mae":
        return np.asarray(np.abs(predicted - y), dtype=np.float64)
    p = np.clip(predicted, _EPS, 1 - _EPS)
    if metric == "log_loss":
        return np.asarray(-(y * np.log(p) + (1 - y) * np.log(1 - p)), dtype=np.float64)
    if metric == "brier":
        return np.asarray((p - y) ** 2, dtype=np.float64)
    if metric == "accuracy":
        return np.asarray((p >= 0.5) == (y == 1), dtype=np.float64)
    raise ValueError(f"{metric} is not a mean of per-row terms")


def _from_mean(metric: str, mean: Array) -> Array:
    return np.sqrt(mean) if metric == "rmse" else mean


def _gain(metric: str, reference: Array, candidate: Array) -> Array:
    """Relative improvement of ``candidate`` over ``reference`` (positive: better)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        change = (candidate - reference) / np.abs(reference)
    gain = -change if LOWER_IS_BETTER[metric] else change
    # Both models perfect (0/0): no difference. A zero reference is otherwise not a ratio.
    return np.where((reference == 0) & (candidate == reference), 0.0, gain) + 0.0  # no -0.0


def _roc_auc(y: Array, score: Array) -> float:
    """Mann-Whitney AUC with ties counted half; NaN when one class is missing."""
    positive = y == 1
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score), dtype=np.float64)
    sorted_scores = score[order]
    # Average ranks over ties.
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    average = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(average, counts)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


# -- the bootstrap ------------------------------------------------------------------------------
def _check(y: Array, a: Array, b: Array, confidence: float, resamples: int) -> None:
    if not (len(y) == len(a) == len(b)):
        raise ValueError(f"truth and both predictions need as many rows: {len(y)}, {len(a)}, {len(b)}")
    if len(y) < 2:
        raise ValueError(f"a bootstrap needs at least 2 rows, got {len(y)}")
    if not 0.5 < confidence < 1:
        raise ValueError(f"confidence must be in (0.5, 1), got {confidence}")
    if resamples < 100:
        raise ValueError(f"use at least 100 resamples, got {resamples}")
    if not (np.isfinite(y).all() and np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("truth and predictions must be finite numbers")
    if y.ndim != 1 or a.ndim != 1 or b.ndim != 1:
        raise ValueError("truth and predictions must be one-dimensional")


def _interval(point: float, samples: Array, confidence: float, rows: int) -> Interval:
    finite = samples[np.isfinite(samples)]
    if len(finite) == 0:
        return Interval(point, math.nan, math.nan, confidence, 0, rows)
    tail = (1 - confidence) / 2
    low, high = np.quantile(finite, [tail, 1 - tail])
    return Interval(point, float(low), float(high), confidence, len(finite), rows)


def _counts(rng: np.random.Generator, size: int, rows: int) -> Array:
    """``size`` resamples of ``rows`` rows with replacement, as a (size x rows) count matrix."""
    drawn = rng.integers(0, rows, size=(size, rows))
    flat = (np.arange(size)[:, None] * rows + drawn).ravel()
    return np.bincount(flat, minlength=size * rows).reshape(size, rows).astype(np.float64)


def paired_bootstraps(
    y: npt.ArrayLike,
    reference: npt.ArrayLike,
    candidate: npt.ArrayLike,
    metric: str,
    groups: Mapping[str, npt.ArrayLike] | None = None,
    *,
    confidence: float = 0.95,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> dict[str, Interval]:
    """Intervals of the relative improvement of ``candidate`` over ``reference``: overall
    (key ``""``) and within each of ``groups`` (name -> boolean row mask), from the same
    resamples of the rows.

    ``reference`` and ``candidate`` are predictions (regression) or probabilities of the
    positive class (classification, ``y`` in {0, 1}). A group's value in a resample is its
    metric on the resampled rows that fall in the group; a resample where it has none is
    left out of that group's interval.
    """
    truth = np.asarray(y, dtype=np.float64)
    a = np.asarray(reference, dtype=np.float64)
    b = np.asarray(candidate, dtype=np.float64)
    _check(truth, a, b, confidence, resamples)
    if metric not in LOWER_IS_BETTER:
        raise ValueError(f"unknown metric {metric!r}; known: {', '.join(LOWER_IS_BETTER)}")
    masks = {"": np.ones(len(truth), dtype=bool)}
    for name, mask in (groups or {}).items():
        array = np.asarray(mask, dtype=bool)
        if array.shape != truth.shape:
            raise ValueError(f"group {name!r} has {len(array)} rows, the data {len(truth)}")
        masks[name] = array
    rng = np.random.default_rng(seed)
    if metric == "roc_auc":
        return _looped(truth, a, b, masks, confidence, resamples, rng)
    terms_a, terms_b = _terms(metric, truth, a), _terms(metric, truth, b)
    # One column per group and quantity: the group's sum of a's terms, of b's, and its rows.
    columns = np.column_stack([c for m in masks.values() for c in (terms_a * m, terms_b * m, m * 1.0)])
    totals = columns.sum(axis=0)
    sums = np.concatenate(
        [
            _counts(rng, min(_CHUNK, resamples - start), len(truth)) @ columns
            for start in range(0, resamples, _CHUNK)
        ]
    )
    out = {}
    for i, (name, mask) in enumerate(masks.items()):
        rows = int(mask.sum())
        if rows == 0:
            continue
        point = _gain(
            metric,
            _from_mean(metric, np.array([totals[3 * i] / rows])),
            _from_mean(metric, np.array([totals[3 * i + 1] / rows])),
        )[0]
        with np.errstate(divide="ignore", invalid="ignore"):
            n = sums[:, 3 * i + 2]
            samples = _gain(
                metric,
                _from_mean(metric, sums[:, 3 * i] / n),
                _from_mean(metric, sums[:, 3 * i + 1] / n),
            )
        out[name] = _interval(float(point), samples[n > 0], confidence, rows)
    return out


def _looped(
    y: Array,
    a: Array,
    b: Array,
    masks: Mapping[str, npt.NDArray[np.bool_]],
    confidence: float,
    resamples: int,
    rng: np.random.Generator,
) -> dict[str, Interval]:
    """The bootstrap one resample at a time, for a metric that is not a mean (ROC AUC)."""
    auc = _roc_auc
    drawn = [rng.integers(0, len(y), size=len(y)) for _ in range(resamples)]
    out = {}
    for name, mask in masks.items():
        rows = np.flatnonzero(mask)
        if len(rows) == 0:
            continue
        point = _gain("roc_auc", np.array([auc(y[rows], a[rows])]), np.array([auc(y[rows], b[rows])]))
        samples = np.empty(resamples)
        for k, index in enumerate(drawn):
            picked = index[mask[index]]
            ref, cand = auc(y[picked], a[picked]), auc(y[picked], b[picked])
            samples[k] = _gain("roc_auc", np.array([ref]), np.array([cand]))[0]
        out[name] = _interval(float(point[0]), samples, confidence, len(rows))
    return out


def paired_bootstrap(
    y: npt.ArrayLike,
    reference: npt.ArrayLike,
    candidate: npt.ArrayLike,
    metric: str,
    confidence: float = 0.95,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> Interval:
    """The interval of the relative improvement of ``candidate`` over ``reference`` on all rows.

    Positive values mean the candidate is better, whichever way the metric points: for
    RMSE, ``(rmse_reference - rmse_candidate) / rmse_reference``.
    """
    found = paired_bootstraps(
        y, reference, candidate, metric, confidence=confidence, resamples=resamples, seed=seed
    )
    return found[""]


def confidently_at_least(interval: Interval, minimum: float) -> bool:
    """Whether the improvement is at least ``minimum`` with the interval's confidence: its
    lower bound reaches ``minimum`` and excludes no improvement at all (a tie never wins)."""
    return interval.low >= minimum and interval.low > 0


def confidently_within(degradation: Interval, allowance: float) -> bool:
    """Whether a degradation stays within ``allowance`` with the interval's confidence: its
    upper bound does. An interval that cannot exclude a larger one fails."""
    return not math.isnan(degradation.high) and degradation.high <= allowance
