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

**Live, on delayed labels.** In production the champion and the challenger are compared on
labelled windows as they come (:class:`PairedSums`, :func:`decide`, :func:`regressed`).
Production labels arrive about two months after the trips (TLC publishes a trip's duration
in the same monthly file). Once a window is labelled, every trip both variants scored gives
one pair of squared errors: ``a`` for the reference (the champion) and ``b`` for the
candidate (the challenger, scored in shadow on the same trips). Only trips both scored
count: variants with no trip in common are never compared.

**What is accumulated.** Six sums per window (:class:`PairedSums`: trips, the sums of ``a``
and ``b``, of their squares and of their product). They add exactly across windows, so the
evidence of several windows is the evidence of all their trips, and re-evaluating a window
replaces its sums instead of counting it twice.

**The quantity.** The relative RMSE improvement of the candidate,
``g = 1 - sqrt(mean(b) / mean(a))`` (positive: the candidate is better), the same sign as
:func:`paired_bootstrap`'s improvement.

**Why a confidence sequence.** The comparison is looked at after every labelled window
until it decides. A fixed 95% interval read at every look promotes an equal challenger far
more often than 5% of the time (each look is another chance for noise to cross the bar).
The interval here is an asymptotic *confidence sequence* (Howard, Ramdas, McAuliffe and
Sekhon 2021, the normal-mixture boundary; Waudby-Smith et al. 2023 for its time-uniform
CLT form): it covers the true ratio ``mean(b) / mean(a)`` at *every* number of trips at
once with probability 95%, so however many windows are looked at, the chance that an
equal (or worse) challenger is ever promoted is at most 2.5% (one side of a two-sided
95% sequence), within the 5% the platform allows. It is applied to the ratio through its
per-trip linearisation ``(b - R a) / mean(a)`` (the delta method), whose variance is
estimated from the same six sums. The price is width: about 1.5 times a fixed interval's
at the trips the boundary is tuned for (:data:`DESIGN_TRIPS`). Below :data:`MIN_TRIPS`
the normal approximation of heavy-tailed squared errors is not trusted and the decision
is ``insufficient``.

**Decisions** (:func:`decide`): ``promote`` when the lower bound of ``g`` reaches the
minimum effect and is above 0; ``retire`` when the upper bound is below 0 (worse with
confidence), below the minimum effect (confidently not better by enough), or when
``max_windows`` windows passed without a promotion; ``keep`` otherwise, with how many
trips it has and roughly how many it needs; ``insufficient`` below :data:`MIN_TRIPS`.
The same comparison with the previous champion as the candidate tells a rollback
(:func:`regressed`).

Everything here is pure (numbers in, numbers out; no I/O) and seeded: the same inputs and
seed give the same interval.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Literal

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


CONFIDENCE = 0.95
MIN_TRIPS = 1000
"""Paired trips below which no decision is made: the normal approximation of the sums of
heavy-tailed squared errors is not trusted on fewer."""
DESIGN_TRIPS = 10_000
"""Trips at which the confidence sequence is tightest relative to a fixed interval: the
number the platform aims to decide a 5% RMSE difference with."""
MAX_NEEDED_FACTOR = 1000
"""``keep`` reports needing more than this many times the trips it has as "more than"."""

LiveOutcome = Literal["promote", "retire", "keep", "insufficient"]


@dataclass(frozen=True)
class PairedSums:
    """Sufficient statistics of paired squared errors: ``a`` the reference's, ``b`` the candidate's."""

    n: int = 0
    sum_a: float = 0.0
    sum_b: float = 0.0
    sum_aa: float = 0.0
    sum_bb: float = 0.0
    sum_ab: float = 0.0

    @classmethod
    def of(cls, truth: npt.ArrayLike, reference: npt.ArrayLike, candidate: npt.ArrayLike) -> PairedSums:
        """The sums over trips with a truth and both predictions (other rows are left out)."""
        y = np.asarray(truth, dtype=np.float64)
        p = np.asarray(reference, dtype=np.float64)
        q = np.asarray(candidate, dtype=np.float64)
        if not (y.shape == p.shape == q.shape) or y.ndim != 1:
            raise ValueError(
                "truth and both predictions must be one-dimensional and as long: "
                f"{y.shape}, {p.shape}, {q.shape}"
            )
        both = np.isfinite(y) & np.isfinite(p) & np.isfinite(q)
        a, b = (p[both] - y[both]) ** 2, (q[both] - y[both]) ** 2
        return cls(
            int(both.sum()),
            float(a.sum()),
            float(b.sum()),
            float((a * a).sum()),
            float((b * b).sum()),
            float((a * b).sum()),
        )

    def __add__(self, other: PairedSums) -> PairedSums:
        return PairedSums(
            self.n + other.n,
            self.sum_a + other.sum_a,
            self.sum_b + other.sum_b,
            self.sum_aa + other.sum_aa,
            self.sum_bb + other.sum_bb,
            self.sum_ab + other.sum_ab,
        )

    @classmethod
    def total(cls, parts: Iterable[PairedSums]) -> PairedSums:
        out = cls()
        for part in parts:
            out = out + part
        return out

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, float | int]) -> PairedSums:
        return cls(
            int(data["n"]),
            *(float(data[k]) for k in ("sum_a", "sum_b", "sum_aa", "sum_bb", "sum_ab")),
        )


# -- the boundary -----------------------------------------------------------------------------------
def _rho2(alpha: float, design: int) -> float:
    """The mixture's tuning that makes the boundary tightest at ``design`` observations."""
    log_term = -2 * math.log(alpha)
    return (log_term + math.log(log_term + 1)) / design


def cs_radius(n: int, sd: float, confidence: float = CONFIDENCE, design: int = DESIGN_TRIPS) -> float:
    """Half-width of the two-sided asymptotic confidence sequence for a mean after ``n`` observations
    of standard deviation ``sd``: valid at every ``n`` at once with probability ``confidence``."""
    if n <= 0:
        return math.inf
    alpha = 1 - confidence
    rho2 = _rho2(alpha, design)
    t = n * rho2 + 1
    return sd * math.sqrt(2 * t / (n * n * rho2) * math.log(math.sqrt(t) / alpha))


def fixed_radius(n: int, sd: float, confidence: float = CONFIDENCE) -> float:
    """Half-width of a fixed (one look) normal interval: what the sequence is compared with."""
    from statistics import NormalDist

    return math.inf if n <= 0 else NormalDist().inv_cdf(0.5 + confidence / 2) * sd / math.sqrt(n)


def _ratio_and_sd(s: PairedSums) -> tuple[float, float]:
    """``R = mean(b) / mean(a)`` and the standard deviation of its per-trip linearisation."""
    mean_a, mean_b = s.sum_a / s.n, s.sum_b / s.n
    ratio = mean_b / mean_a
    # Var(b - R a) from the raw sums, divided by mean(a)^2.
    var_a = s.sum_aa / s.n - mean_a**2
    var_b = s.sum_bb / s.n - mean_b**2
    cov = s.sum_ab / s.n - mean_a * mean_b
    var = max(var_b - 2 * ratio * cov + ratio**2 * var_a, 0.0) * s.n / max(s.n - 1, 1)
    return ratio, math.sqrt(var) / mean_a


def _ratio_gain(ratio: float) -> float:
    return 1 - math.sqrt(max(ratio, 0.0))


def improvement(
    s: PairedSums, confidence: float = CONFIDENCE, design: int = DESIGN_TRIPS, sequential: bool = True
) -> Interval:
    """The relative RMSE improvement of the candidate over the reference and its interval:
    a confidence sequence (``sequential``) or a fixed interval at ``confidence``."""
    if s.n < 2 or s.sum_a <= 0:
        return Interval(math.nan, math.nan, math.nan, confidence, 0, s.n)
    ratio, sd = _ratio_and_sd(s)
    radius = cs_radius(s.n, sd, confidence, design) if sequential else fixed_radius(s.n, sd, confidence)
    # g falls as R rises: the upper bound of R is the lower bound of g.
    return Interval(
        _ratio_gain(ratio), _ratio_gain(ratio + radius), _ratio_gain(ratio - radius), confidence, 0, s.n
    )


def trips_needed(
    s: PairedSums, minimum: float, confidence: float = CONFIDENCE, design: int = DESIGN_TRIPS
) -> int | None:
    """Roughly how many paired trips the comparison needs to decide, if the per-trip spread and
    the point improvement stay as measured: the trips at which the interval's half-width on
    ``g`` shrinks to the distance between the point and the nearest decision bound. ``None``
    when the point sits on a bound (it would need more than :data:`MAX_NEEDED_FACTOR` times)."""
    if s.n < 2 or s.sum_a <= 0:
        return None
    ratio, sd = _ratio_and_sd(s)
    point = _ratio_gain(ratio)
    gap = min(abs(point - minimum), abs(point)) if point > 0 else abs(point - minimum)
    if gap <= 0 or ratio <= 0:
        return None
    # dg/dR = -1 / (2 sqrt R): the half-width on g of a half-width r on R.
    slope = 1 / (2 * math.sqrt(ratio))
    limit = max(s.n, MIN_TRIPS) * MAX_NEEDED_FACTOR
    low, high = 2, 2
    while cs_radius(high, sd, confidence, design) * slope > gap:
        high *= 2
        if high > limit:
            return None
    while low < high:  # the radius falls with n: bisect for the first n within the gap
        mid = (low + high) // 2
        if cs_radius(mid, sd, confidence, design) * slope > gap:
            low = mid + 1
        else:
            high = mid
    return max(high, MIN_TRIPS)


# -- decisions --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LiveDecision:
    """What the live comparison decided, on what evidence, and why."""

    outcome: LiveOutcome
    reason: str
    interval: Interval
    trips: int
    windows: tuple[str, ...] = ()
    trips_needed: int | None = None
    minimum_effect: float = 0.0
    extra: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {
            "outcome": self.outcome,
            "reason": self.reason,
            "interval": self.interval.to_dict(),
            "trips": self.trips,
            "windows": list(self.windows),
            "trips_needed": self.trips_needed,
            "minimum_effect": self.minimum_effect,
        }


def decide(
    s: PairedSums,
    minimum_effect: float,
    windows: Iterable[str] = (),
    max_windows: int = 6,
    confidence: float = CONFIDENCE,
    min_trips: int = MIN_TRIPS,
    design: int = DESIGN_TRIPS,
) -> LiveDecision:
    """Promote, retire, keep or wait, from the paired sums of every labelled window so far.

    ``minimum_effect`` is the relative RMSE improvement a promotion must be sure of (the
    spec's ``promotion.min_relative_improvement``); ``windows`` are the labelled windows the
    sums cover, and after ``max_windows`` of them a challenger not yet promoted is retired.
    """
    seen = tuple(windows)
    if s.n == 0:
        empty = Interval(math.nan, math.nan, math.nan, confidence, 0, 0)
        reason = "no labelled trip was scored by both variants: nothing to compare, waiting"
        return LiveDecision("insufficient", reason, empty, 0, seen, None, minimum_effect)
    interval = improvement(s, confidence, design)
    if s.n < min_trips:
        reason = f"{s.n:,} paired labelled trips, fewer than the {min_trips:,} a decision needs: waiting"
        return LiveDecision("insufficient", reason, interval, s.n, seen, min_trips, minimum_effect)
    shown = interval.percent()
    if interval.low >= minimum_effect and interval.low > 0:
        reason = f"challenger better by at least {minimum_effect:.1%} with confidence: {shown}"
        return LiveDecision("promote", reason, interval, s.n, seen, None, minimum_effect)
    if interval.high < 0:
        reason = f"challenger worse with confidence: {shown}"
        return LiveDecision("retire", reason, interval, s.n, seen, None, minimum_effect)
    if interval.high < minimum_effect:
        reason = f"challenger confidently not better by {minimum_effect:.1%}: {shown}"
        return LiveDecision("retire", reason, interval, s.n, seen, None, minimum_effect)
    if len(seen) >= max_windows:
        reason = (
            f"no better with confidence after {len(seen)} labelled windows (at most {max_windows}): {shown}"
        )
        return LiveDecision("retire", reason, interval, s.n, seen, None, minimum_effect)
    needed = trips_needed(s, minimum_effect, confidence, design)
    need = f"roughly {needed:,}" if needed else f"more than {s.n * MAX_NEEDED_FACTOR:,}"
    reason = f"not enough evidence yet: {s.n:,} paired labelled trips, {need} needed: {shown}"
    return LiveDecision("keep", reason, interval, s.n, seen, needed, minimum_effect)


def regressed(
    s: PairedSums,
    windows: Iterable[str] = (),
    confidence: float = CONFIDENCE,
    min_trips: int = MIN_TRIPS,
    design: int = DESIGN_TRIPS,
) -> LiveDecision:
    """Whether the champion (reference ``a``) is worse, with confidence, than the previous
    champion (candidate ``b``) on the same labelled trips: ``promote`` here means "roll back
    to the previous champion", ``keep`` that the evidence does not say so."""
    seen = tuple(windows)
    interval = (
        improvement(s, confidence, design)
        if s.n
        else Interval(math.nan, math.nan, math.nan, confidence, 0, 0)
    )
    if s.n < min_trips:
        reason = (
            f"{s.n:,} paired labelled trips with the previous champion, fewer than {min_trips:,}: waiting"
        )
        return LiveDecision("insufficient", reason, interval, s.n, seen, min_trips)
    if interval.low > 0:
        reason = f"the previous champion is better with confidence: {interval.percent()}"
        return LiveDecision("promote", reason, interval, s.n, seen)
    return LiveDecision("keep", f"no confident regression: {interval.percent()}", interval, s.n, seen)
