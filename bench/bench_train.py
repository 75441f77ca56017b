"""Training speed and quality: the default model of ``taxi_trip_duration`` on generated and real months.

Generated: ``--months`` months of TLC-format trips (the last one held out for validation)
are stored as validated snapshots in a temporary lake and trained on exactly as the train
DAG does, without the tracking server: assemble the training set from the snapshots, fit
the baseline and the default family with its bounded search, evaluate on the held-out
month, draw the review plots. Prints the time of each step and the default model's
validation RMSE against the generator's noise floor on the same rows.

Real: each ``--real TRAIN,VALID`` pair of raw TLC files (by default the green months of
``tests/fixtures/real_tlc/``: 2021-01 to 2021-02 and 2021-02 to 2021-03) is trained on as
``mlplatform train`` does, on the spec's modelling range (``target.range``, 1-60 minutes).
Beside the model's validation RMSE it prints, recomputed in the same run on the same rows,
the standard linear anchor of NYC trip-duration work (one-hot ``PU_DO`` zone pair plus
``trip_distance`` through a ``DictVectorizer``, ordinary least squares) and their ratio,
the spec's baseline, and every search trial refitted on the whole training set and scored
on the validation month (none may be much worse than the baseline). Each ``--real-split
FILE:DAY`` month (by default green 2023-01 at day 21, the one month of TLC's 2022-12-19
fares at hand) is split by date: pickups on days 1..DAY train, the rest validate.

Targets: generated: training on 3M rows under 120 s, validation RMSE within 10% of the
noise floor. Real: green 2021-01 -> 2021-02 validation RMSE at most 5.6 minutes (the anchor
scores about 7.76, the best published result 6.30); on every pair and split, in every fare
regime, at most 0.72 times the anchor, and every trial within 10% of the best one.

    .venv/bin/python bench/bench_train.py [--rows-per-month 1500000] [--months 3] [--sample-rows N]
        [--real TRAIN.parquet,VALID.parquet ...] [--real-split FILE.parquet:DAY ...]
        [--no-generated] [--no-real]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see mlplatform.stages.training

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from mlplatform.adapters import snapshots
from mlplatform.adapters.lake import Lake
from mlplatform.core import generator, modelling, spec, tlc
from mlplatform.core.modelling import build_estimator
from mlplatform.core.spec import UseCase
from mlplatform.stages import training

REAL_DIR = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "real_tlc"
REAL_PAIRS = [
    f"{REAL_DIR}/green_tripdata_2021-01.parquet,{REAL_DIR}/green_tripdata_2021-02.parquet",
    f"{REAL_DIR}/green_tripdata_2021-02.parquet,{REAL_DIR}/green_tripdata_2021-03.parquet",
]
REAL_SPLITS = [f"{REAL_DIR}/green_tripdata_2023-01.parquet:21"]
"""2023-01, the one month of the 2022-12-19 fares at hand: days 1-21 train, 22-31 validate."""
MAX_ANCHOR_RATIO = 0.72
"""The default model's validation RMSE is at most this share of the linear anchor's on every
real split, in every fare regime (issue 23, item 5)."""
REAL_TARGET_RMSE = 5.6
"""Green 2021-01 -> 2021-02: the issue's bar (anchor 7.76, best published 6.30)."""
MAX_TRIAL_SPREAD = 1.10
"""No search trial's validation RMSE may exceed the best trial's by more than this factor."""


def generated(use_case: UseCase, rows_per_month: int, n_months: int) -> dict[str, Any]:
    """Train as the DAG does on generated months; times and RMSE against the noise floor."""
    with tempfile.TemporaryDirectory() as tmp:
        lake = Lake(f"file://{tmp}/lake")
        started = time.perf_counter()
        months = [f"2024-{m:02d}" for m in range(1, n_months + 1)]
        for i, month in enumerate(months):
            made = generator.generate_month("yellow", month, rows_per_month, seed=i)
            manifest = {"contract": {"success": True, "suite": use_case.contract.suite, "bad_row_share": 0.0}}
            snapshots.write_snapshot(lake, use_case.name, month, tlc.normalise(made.table), manifest)
        prepare_s = time.perf_counter() - started

        timings: dict[str, float] = {}
        load_before = os.getloadavg()[0]
        cpu_started = time.process_time()
        started = time.perf_counter()
        assembled = training.assemble_training_set(lake, use_case, key="bench")
        timings["assemble_s"] = time.perf_counter() - started
        train = training.read_set(lake, assembled.train_uri)
        valid = training.read_set(lake, assembled.validation_uri)
        step = time.perf_counter()
        fitted = training.fit(use_case, train, None)
        timings["fit_s"] = time.perf_counter() - step
        step = time.perf_counter()
        evaluation, baseline = training.validate(use_case, fitted, valid)
        timings["evaluate_s"] = time.perf_counter() - step
        step = time.perf_counter()
        training.figures(use_case, fitted, valid)
        timings["plots_s"] = time.perf_counter() - step
        total = time.perf_counter() - started
        cpu = time.process_time() - cpu_started

        # The noise floor on exactly the validation rows: RMSE of the best possible prediction.
        table = pa.Table.from_pandas(valid, preserve_index=False)
        best = generator.expected_duration_minutes(table)
        floor = float(np.sqrt(np.mean((best - valid[use_case.target.column].to_numpy()) ** 2)))
        assert len(modelling.trip_features(valid)) == len(valid)

    rmse = evaluation.overall["rmse"]
    return {
        "rows_in_window": rows_per_month * n_months,
        "training_rows_available": rows_per_month * (n_months - 1),
        "training_rows_fitted": assembled.train_rows,
        "validation_rows": assembled.validation_rows,
        "rows_outside_range": assembled.rows_outside_range,
        "generate_and_store_s": round(prepare_s, 1),
        **{k: round(v, 1) for k, v in timings.items()},
        "train_total_s": round(total, 1),
        "train_cpu_s": round(cpu, 1),
        "cores": os.cpu_count(),
        "load_average_before": round(load_before, 2),
        "target_s": 120,
        "within_time_target": total < 120,
        "chosen_params": fitted.params,
        "search": fitted.search,
        "validation_rmse_min": round(rmse, 4),
        "noise_floor_rmse_min": round(floor, 4),
        "rmse_to_floor_ratio": round(rmse / floor, 4),
        "within_quality_target": rmse / floor <= 1.10,
        "baseline_validation_rmse_min": round(baseline.overall["rmse"], 4),
    }


def linear_anchor(train: pd.DataFrame, valid: pd.DataFrame, target: str) -> float:
    """Validation RMSE of the standard linear anchor: one-hot ``PU_DO`` plus distance, OLS."""
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LinearRegression
    from sklearn.metrics import root_mean_squared_error

    def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
        pair = frame["pu_location_id"].astype(str) + "_" + frame["do_location_id"].astype(str)
        return pd.DataFrame({"PU_DO": pair, "trip_distance": frame["trip_distance"]}).to_dict("records")

    vectorizer = DictVectorizer()
    model = LinearRegression().fit(vectorizer.fit_transform(records(train)), train[target])
    predicted = model.predict(vectorizer.transform(records(valid)))
    return float(root_mean_squared_error(valid[target], predicted))


def real(use_case: UseCase, pair: str) -> dict[str, Any]:
    """Train on one real TLC file and validate on another, as ``mlplatform train`` does."""
    train_path, valid_path = pair.split(",")
    train, train_files = training.read_tlc_files(use_case, [train_path])
    valid, valid_files = training.read_tlc_files(use_case, [valid_path])
    outside = {
        "training": sum(f.rows_outside_range or 0 for f in train_files),
        "validation": sum(f.rows_outside_range or 0 for f in valid_files),
    }
    figures = compare(use_case, train, valid, Path(train_path).name, Path(valid_path).name, outside)
    if Path(train_path).name == "green_tripdata_2021-01.parquet" and "2021-02" in Path(valid_path).name:
        figures["target_rmse_min"] = REAL_TARGET_RMSE
        figures["within_quality_target"] = figures["validation_rmse_min"] <= REAL_TARGET_RMSE
    return figures


def real_split(use_case: UseCase, split: str) -> dict[str, Any]:
    """Train on the first days of one real TLC month and validate on the rest (``FILE:DAY``:
    pickups on days 1..DAY train), for a regime with a single month at hand."""
    path, _, last_day = split.rpartition(":")
    rows, files = training.read_tlc_files(use_case, [path])
    named = tlc.parse_file_name(Path(path).name)
    if named is None:
        raise SystemExit(
            f"{path}: not a TLC file name (e.g. green_tripdata_2023-01.parquet), so its month is unknown"
        )
    month = named.month
    pickup = rows["pickup_datetime"]
    inside = pickup.dt.strftime("%Y-%m") == month  # trips begun the month before stay out
    early = pickup.dt.day <= int(last_day)
    name = Path(path).name
    figures = compare(
        use_case,
        rows[inside & early],
        rows[inside & ~early],
        f"{name} days 1-{last_day}",
        f"{name} days {int(last_day) + 1}-end",
        {"month": files[0].rows_outside_range},
    )
    return figures


def compare(
    use_case: UseCase,
    train: pd.DataFrame,
    valid: pd.DataFrame,
    train_name: str,
    valid_name: str,
    outside: dict[str, int],
) -> dict[str, Any]:
    """The default model and its trials against the linear anchor, fitted and scored on the same rows."""
    started = time.perf_counter()
    train = training.sample(train, use_case.training.sample_rows)
    valid = training.sample(valid, training.MAX_VALIDATION_ROWS)
    fitted, evaluation, baseline = training.train_frames(use_case, train, valid)
    seconds = time.perf_counter() - started
    target = use_case.target.column
    anchor = linear_anchor(train, valid, target)

    featured_train = modelling.trip_features(train)
    featured_valid = modelling.trip_features(valid)
    columns = list(use_case.features.all)
    trials = []
    for trial in training.search_trials(use_case):
        params = {**use_case.model.hyperparameters, **trial}
        estimator = build_estimator(use_case, use_case.model.family, params)
        estimator.fit(featured_train[columns], train[target])
        predicted = estimator.predict(featured_valid[columns])
        rmse = float(np.sqrt(np.mean((predicted - valid[target].to_numpy()) ** 2)))
        trials.append({"params": trial, "validation_rmse_min": round(rmse, 4)})
    worst, best = max(t["validation_rmse_min"] for t in trials), min(t["validation_rmse_min"] for t in trials)

    rmse = evaluation.overall["rmse"]
    return {
        "train": train_name,
        "validation": valid_name,
        "target_range": list(use_case.target.range_ or []),
        "training_rows": len(train),
        "validation_rows": len(valid),
        "rows_outside_range": outside,
        "train_and_evaluate_s": round(seconds, 1),
        "chosen_params": fitted.params,
        "validation_rmse_min": round(rmse, 4),
        "validation_r2": round(evaluation.overall["r2"], 4),
        "linear_anchor_rmse_min": round(anchor, 4),
        "rmse_to_anchor_ratio": round(rmse / anchor, 4),
        "baseline_family": use_case.model.baseline,
        "baseline_validation_rmse_min": round(baseline.overall["rmse"], 4),
        "trials_on_validation": trials,
        "worst_to_best_trial_ratio": round(worst / best, 4),
        "worst_trial_to_baseline_ratio": round(worst / baseline.overall["rmse"], 4),
        "beats_anchor": rmse < anchor,
        "target_anchor_ratio": MAX_ANCHOR_RATIO,
        "within_anchor_ratio": rmse / anchor <= MAX_ANCHOR_RATIO,
        "trials_within_spread": worst / best <= MAX_TRIAL_SPREAD,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows-per-month", type=int, default=1_500_000)
    parser.add_argument("--months", type=int, default=3, help="months in the window; the last is held out")
    parser.add_argument("--sample-rows", type=int, help="override training.sample_rows (default: the spec's)")
    parser.add_argument(
        "--real",
        nargs="+",
        default=REAL_PAIRS,
        metavar="TRAIN,VALID",
        help="raw TLC file pairs (paths or URIs)",
    )
    parser.add_argument(
        "--real-split",
        nargs="*",
        default=REAL_SPLITS,
        metavar="FILE:DAY",
        help="one raw TLC month split by date: days 1..DAY train, the rest validate",
    )
    parser.add_argument("--no-generated", action="store_true", help="skip the generated months")
    parser.add_argument("--no-real", action="store_true", help="skip the real months")
    args = parser.parse_args()
    use_case = spec.load_spec("taxi_trip_duration")
    updates: dict[str, Any] = {"window_months": args.months}
    if args.sample_rows:
        updates["sample_rows"] = args.sample_rows
    use_case = use_case.model_copy(update={"training": use_case.training.model_copy(update=updates)})

    figures: dict[str, Any] = {}
    if not args.no_real:
        figures["real"] = [real(use_case, pair) for pair in args.real]
        figures["real"] += [real_split(use_case, split) for split in args.real_split]
    if not args.no_generated:
        figures["generated"] = generated(use_case, args.rows_per_month, args.months)
    print(json.dumps(figures, indent=2, default=float))


if __name__ == "__main__":
    main()
