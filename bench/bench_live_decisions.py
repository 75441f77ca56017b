"""Live champion/challenger decisions on delayed labels, and the RMSE estimate before them.

**Comparison.** Synthetic paired predictions with a controlled RMSE difference (fast, and
the true difference is known exactly): per trip a shared error ``s`` (Student-t, heavy
tailed as trip durations are) and one error of each model's own, ``u1`` and ``u2``; the
champion errs by ``s + u1``, the challenger by ``ratio * (s + u2)``, so the challenger's
RMSE is ``ratio`` times the champion's and their errors correlate as two models of the
same trips do (the correlation is measured below on real months). Labelled trips arrive
in windows of ``--window-trips``; after each window :func:`mlplatform.core.evidence.decide`
looks at all trips so far, as the monitor does after each labelled month.

- trips needed to promote a challenger 5% better (minimum effect 0 and the spec's 1%):
  median and 90th percentile over ``--repeats`` runs, target: at most 10,000 paired trips;
- false promotion rate on equal models over ``--looks`` windows: the confidence sequence
  against a fixed 95% interval read at every look (what the sequence exists to avoid);
  target: at most 5%.

**Estimate before labels.** Direct loss estimation (:mod:`mlplatform.stages.monitoring.
measures`): a champion trained on one month, the estimator fitted on the next (labelled),
the RMSE of a third month estimated from its features and compared with the RMSE its
labels give: generated clean months (several seeds) and the real green months of
``tests/fixtures/real_tlc/``. Target: within 10% on clean months. The correlation of two
models' errors on the same real trips is printed too (what the synthetic comparison uses).

    .venv/bin/python bench/bench_live_decisions.py [--repeats 400] [--window-trips 500]
        [--looks 60] [--correlation 0.9 0.7] [--no-estimate]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from mlplatform.core import evidence, generator, modelling
from mlplatform.core.spec import load_spec
from mlplatform.stages import training
from mlplatform.stages.monitoring.measures import estimate_error, fit_loss_estimator
from mlplatform.use_cases.taxi_trip_duration import build_estimator

REAL = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "real_tlc"
TARGET_TRIPS = 10_000
TARGET_FALSE_PROMOTION = 0.05
TARGET_ESTIMATE_ERROR = 0.10


def paired_window(
    rng: np.random.Generator, trips: int, ratio: float, correlation: float, df: float = 4.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Truth, champion and challenger predictions of one window: RMSEs in ``ratio``, errors correlated."""
    shared = rng.standard_t(df, trips) / np.sqrt(df / (df - 2))  # unit variance
    own_sd = np.sqrt((1 - correlation) / correlation)
    truth = rng.uniform(5, 40, trips)
    scale = 5.0 * np.sqrt(correlation)  # champion RMSE about 5 minutes
    champion = truth + scale * (shared + own_sd * rng.standard_normal(trips))
    challenger = truth + ratio * scale * (shared + own_sd * rng.standard_normal(trips))
    return truth, champion, challenger


def run_until_decided(
    rng: np.random.Generator, ratio: float, correlation: float, window_trips: int, looks: int, minimum: float,
    sequential: bool,
) -> tuple[str, int]:  # fmt: skip
    """Windows until the comparison promotes or retires (or ``looks`` windows): outcome and trips."""
    sums = evidence.PairedSums()
    for look in range(1, looks + 1):
        sums = sums + evidence.PairedSums.of(*paired_window(rng, window_trips, ratio, correlation))
        if sequential:
            decision = evidence.decide(sums, minimum, [str(i) for i in range(look)], max_windows=looks + 1)
            if decision.outcome in ("promote", "retire"):
                return decision.outcome, sums.n
        else:  # a fixed 95% interval read at every look: promote as soon as its lower bound clears
            interval = evidence.improvement(sums, sequential=False)
            if sums.n >= evidence.MIN_TRIPS and interval.low >= minimum and interval.low > 0:
                return "promote", sums.n
    return "keep", sums.n


def comparison(repeats: int, window_trips: int, looks: int, correlation: float) -> dict[str, Any]:
    rng = np.random.default_rng(20240101)
    out: dict[str, Any] = {
        "window_trips": window_trips,
        "error_correlation": correlation,
        "repeats": repeats,
    }
    for minimum in (0.0, 0.01):
        trips, promoted = [], 0
        for _ in range(repeats):
            outcome, n = run_until_decided(rng, 0.95, correlation, window_trips, looks, minimum, True)
            promoted += outcome == "promote"
            trips.append(n if outcome == "promote" else np.inf)
        finite = np.array(trips)
        out[f"detect_5pct_min_effect_{minimum:g}"] = {
            "promoted_share": round(promoted / repeats, 3),
            "median_trips": float(np.median(finite)),
            "p90_trips": float(np.quantile(finite, 0.9)),
            "within_target": float(np.quantile(finite, 0.5)) <= TARGET_TRIPS,
        }
    for sequential in (True, False):
        false = sum(
            run_until_decided(rng, 1.0, correlation, window_trips, looks, 0.0, sequential)[0] == "promote"
            for _ in range(repeats)
        )
        key = "confidence_sequence" if sequential else "fixed_interval_every_look"
        out[f"false_promotion_{key}"] = {
            "looks": looks,
            "rate": round(false / repeats, 4),
            "within_target": false / repeats <= TARGET_FALSE_PROMOTION,
        }
    # One look at exactly DESIGN_TRIPS: how much wider the sequence is than a fixed interval.
    s = evidence.PairedSums.of(*paired_window(rng, evidence.DESIGN_TRIPS, 0.95, correlation))
    seq, fixed = evidence.improvement(s), evidence.improvement(s, sequential=False)
    out["width_ratio_sequence_to_fixed_at_design"] = round((seq.high - seq.low) / (fixed.high - fixed.low), 3)
    return out


# -- the estimate before labels ---------------------------------------------------------------------
def _estimate(train: pd.DataFrame, reference: pd.DataFrame, target: pd.DataFrame) -> dict[str, Any]:
    use_case = load_spec("taxi_trip_duration")
    columns, label = list(use_case.features.all), use_case.target.column
    model = build_estimator(use_case.model.family, use_case.model.hyperparameters, use_case.features)
    model.fit(modelling.trip_features(train)[columns], train[label])
    ref_x, new_x = modelling.trip_features(reference)[columns], modelling.trip_features(target)[columns]
    ref_pred, new_pred = model.predict(ref_x), model.predict(new_x)
    estimator = fit_loss_estimator(ref_x, ref_pred, reference[label])
    estimated = estimator.estimate_rmse(new_x, new_pred)
    realised = float(np.sqrt(np.mean((new_pred - target[label].to_numpy()) ** 2)))
    error = estimate_error(estimated, realised) or 0.0
    return {
        "reference_rmse": round(estimator.reference_rmse, 3),
        "estimated_rmse": round(estimated, 3),
        "realised_rmse": round(realised, 3),
        "relative_error": round(error, 4),
        "within_target": abs(error) <= TARGET_ESTIMATE_ERROR,
    }


def _read(path: Path) -> pd.DataFrame:
    return training.read_tlc_files(load_spec("taxi_trip_duration"), [str(path)])[0]


def estimates(seeds: int = 3, rows: int = 100_000) -> dict[str, Any]:
    out: dict[str, Any] = {"generated_clean": []}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(seeds):
            frames = []
            for i, month in enumerate(("2024-01", "2024-02", "2024-03")):
                made = generator.generate_month("yellow", month, rows, seed=100 * seed + i, clean=True)
                path = Path(tmp) / f"yellow_tripdata_{month}.parquet"
                pq.write_table(made.table, path)
                frames.append(_read(path))
            out["generated_clean"].append({"seed": seed, **_estimate(*frames)})
    green = {m: _read(REAL / f"green_tripdata_{m}.parquet") for m in ("2021-01", "2021-02", "2021-03")}
    out["real_green_2021_01_02_03"] = _estimate(green["2021-01"], green["2021-02"], green["2021-03"])
    rows_2023 = _read(REAL / "green_tripdata_2023-01.parquet")
    rows_2023 = rows_2023[rows_2023["pickup_datetime"].dt.strftime("%Y-%m") == "2023-01"]
    day = rows_2023["pickup_datetime"].dt.day
    out["real_green_2023_01_days_1-14_15-21_22-31"] = _estimate(
        rows_2023[day <= 14], rows_2023[(day > 14) & (day <= 21)], rows_2023[day > 21]
    )
    out["real_error_correlation_two_models"] = _error_correlation(green)
    errors = [abs(r["relative_error"]) for r in out["generated_clean"]]
    errors += [abs(out[k]["relative_error"]) for k in out if k.startswith("real_green")]
    out["max_abs_relative_error"] = round(max(errors), 4)
    return out


def _error_correlation(green: dict[str, pd.DataFrame]) -> float:
    """Correlation of the errors of models trained on 2021-01 and on 2021-02, on 2021-03's trips."""
    use_case = load_spec("taxi_trip_duration")
    columns, label = list(use_case.features.all), use_case.target.column
    target_x = modelling.trip_features(green["2021-03"])[columns]
    errors = []
    for month in ("2021-01", "2021-02"):
        model = build_estimator(use_case.model.family, use_case.model.hyperparameters, use_case.features)
        model.fit(modelling.trip_features(green[month])[columns], green[month][label])
        errors.append(model.predict(target_x) - green["2021-03"][label].to_numpy())
    return round(float(np.corrcoef(errors[0], errors[1])[0, 1]), 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=400)
    parser.add_argument("--window-trips", type=int, default=500)
    parser.add_argument("--looks", type=int, default=60)
    parser.add_argument("--correlation", type=float, nargs="+", default=[0.9, 0.7])
    parser.add_argument("--no-estimate", action="store_true")
    args = parser.parse_args()
    figures: dict[str, Any] = {
        "comparison": [comparison(args.repeats, args.window_trips, args.looks, c) for c in args.correlation]
    }
    if not args.no_estimate:
        figures["estimate_before_labels"] = estimates()
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
