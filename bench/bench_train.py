"""Training speed and quality: the default model of ``taxi_trip_duration`` on generated months.

Generates ``--months`` months of TLC-format trips (the last one held out for validation),
stores them as validated snapshots in a temporary lake and runs training exactly as the
train DAG does, without the tracking server: assemble the training set from the snapshots,
fit the baseline and the default family with its bounded search, evaluate on the held-out
month, draw the review plots. Prints the time of each step and the default model's
validation RMSE against the generator's noise floor on the same rows.

Targets: training on 3M rows under 120 s; validation RMSE within 5% of the noise floor.

    .venv/bin/python bench/bench_train.py [--rows-per-month 1500000] [--months 3] [--sample-rows N]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see mlplatform.training

import argparse
import json
import tempfile
import time

import numpy as np
import pyarrow as pa

from mlplatform import features, generator, snapshots, spec, tlc, training
from mlplatform.lake import Lake


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows-per-month", type=int, default=1_500_000)
    parser.add_argument("--months", type=int, default=3, help="months in the window; the last is held out")
    parser.add_argument("--sample-rows", type=int, help="override training.sample_rows (default: the spec's)")
    args = parser.parse_args()
    use_case = spec.load_spec("taxi_trip_duration")
    updates = {"window_months": args.months}
    if args.sample_rows:
        updates["sample_rows"] = args.sample_rows
    use_case = use_case.model_copy(update={"training": use_case.training.model_copy(update=updates)})

    with tempfile.TemporaryDirectory() as tmp:
        lake = Lake(f"file://{tmp}/lake")
        started = time.perf_counter()
        months = [f"2024-{m:02d}" for m in range(1, args.months + 1)]
        for i, month in enumerate(months):
            made = generator.generate_month("yellow", month, args.rows_per_month, seed=i)
            manifest = {"contract": {"success": True, "suite": use_case.contract.suite, "bad_row_share": 0.0}}
            snapshots.write_snapshot(lake, use_case.name, month, tlc.normalise(made.table), manifest)
        prepare_s = time.perf_counter() - started

        timings: dict[str, float] = {}
        load_before = os.getloadavg()[0]
        cpu_started = time.process_time()
        started = time.perf_counter()
        assembled = training.assemble_training_set(lake, use_case, key="bench")
        timings["assemble_s"] = time.perf_counter() - started
        train = training.read_set(lake, assembled["train_uri"])
        valid = training.read_set(lake, assembled["validation_uri"])
        step = time.perf_counter()
        fitted = training.fit(use_case, train, None)
        timings["fit_s"] = time.perf_counter() - step
        step = time.perf_counter()
        evaluation, baseline = training.validate(use_case, fitted, valid)
        timings["evaluate_s"] = time.perf_counter() - step
        step = time.perf_counter()
        training._plots(use_case, fitted, valid)
        timings["plots_s"] = time.perf_counter() - step
        total = time.perf_counter() - started
        cpu = time.process_time() - cpu_started

        # The noise floor on exactly the validation rows: RMSE of the best possible prediction.
        table = pa.Table.from_pandas(valid, preserve_index=False)
        best = generator.expected_duration_minutes(table)
        floor = float(np.sqrt(np.mean((best - valid[use_case.target.column].to_numpy()) ** 2)))
        featured = features.trip_features(valid)
        assert len(featured) == len(valid)

    rmse = evaluation.overall["rmse"]
    figures = {
        "rows_in_window": args.rows_per_month * args.months,
        "training_rows_available": args.rows_per_month * (args.months - 1),
        "training_rows_fitted": assembled["train_rows"],
        "validation_rows": assembled["validation_rows"],
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
        "within_quality_target": rmse / floor <= 1.05,
        "baseline_validation_rmse_min": round(baseline.overall["rmse"], 4),
    }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
