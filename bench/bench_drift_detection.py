"""Drift detection quality: how often monitoring catches injected drift, and how often it cries wolf.

A champion is trained on clean generated months. Then a batch of simulated months goes
through the same code the monitor DAG runs (:func:`mlplatform.stages.monitoring.evaluate_window`
on a lake holding validated snapshots and batch predictions): clean months with other
seeds, and months with injected drift of known size (congestion: concept drift; outer
borough shift and trip length: covariate drift). For every drift the RMSE increase over
the clean months is measured, so detection can be judged against what the drift costs.

Prints JSON: the detection rate over drifts that raise RMSE by 10% or more (target: all
of them), the detection rate over every injected drift, the false-alarm rate over clean
months (target: under 5%), and one row per injected drift. Uses the spec's thresholds.

Then the real TLC months of ``--real`` (the fixtures: green 2021-01..03) go through the
contract and the monitor's code: a champion trained on each month and validated on the
next is evaluated on every later month. ``real_months`` reports the RMSE degradation,
drifted share and prediction drift of each window against the thresholds, and the false
alarms (target: none, since the model still performs on those months).

    .venv/bin/python bench/bench_drift_detection.py [--rows 10000] [--clean-months 40] [--real DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from mlplatform.adapters import settings, snapshots
from mlplatform.adapters.lake import Lake
from mlplatform.core import generator, tlc
from mlplatform.core.modelling import TripModel, input_columns, trip_features
from mlplatform.core.months import shift
from mlplatform.core.records import ModelRef, ScoredOutput
from mlplatform.core.spec import load_spec
from mlplatform.dev import closed_loop
from mlplatform.stages import contracts, ingest, monitoring, scoring, training
from mlplatform.use_cases.taxi_trip_duration import build_estimator

USE_CASE = load_spec("taxi_trip_duration")
TRAIN_MONTHS = ("2024-01", "2024-02")
VALIDATION_MONTH = "2024-03"
DRIFTS = [
    *[generator.Drift(congestion=c) for c in (1.02, 1.04, 1.045, 1.05, 1.055, 1.06, 1.08, 1.1, 1.2, 1.5)],
    *[generator.Drift(outer_borough_shift=s) for s in (0.05, 0.1, 0.2, 0.4, 0.7)],
    *[generator.Drift(trip_length=t) for t in (1.05, 1.06, 1.07, 1.1, 1.2, 1.4)],
    generator.Drift(congestion=1.1, outer_borough_shift=0.3),
    generator.Drift(outer_borough_shift=0.3, trip_length=1.2),
]
TARGET_RMSE_INCREASE = 0.10
TARGET_FALSE_ALARM_RATE = 0.05


def add_month(lake: Lake, month: str, rows: int, seed: int, drift: generator.Drift) -> snapshots.Snapshot:
    table = tlc.normalise(generator.generate_month("yellow", month, rows, seed=seed, drift=drift).table)
    contract = {"success": True, "bad_row_share": 0.0}
    return snapshots.write_snapshot(lake, USE_CASE.name, month, table, {"contract": contract})[0]


def train(lake: Lake) -> tuple[TripModel, float]:
    """The champion on the training months, and its validation RMSE (what training logs)."""

    def frame(months: tuple[str, ...]) -> pd.DataFrame:
        current = [snapshots.current_snapshot(lake, USE_CASE.name, m) for m in months]
        return pd.concat([snapshots.read_table(lake, s).to_pandas() for s in current], ignore_index=True)

    features = USE_CASE.features.all
    params = {**USE_CASE.model.hyperparameters, "max_iter": 150}
    train_rows, valid = frame(TRAIN_MONTHS), frame((VALIDATION_MONTH,))
    estimator = build_estimator(USE_CASE.model.family, params, USE_CASE.features)
    estimator.fit(trip_features(train_rows)[list(features)], train_rows[USE_CASE.target.column])
    model = TripModel(estimator, features, USE_CASE.task)
    answer = model.predict(None, valid[input_columns(features)])["prediction"]
    return model, float(np.sqrt(np.mean((answer - valid[USE_CASE.target.column]) ** 2)))


def score(lake: Lake, model: TripModel, snapshot: snapshots.Snapshot) -> None:
    """Batch predictions in the batch-score layout, made the month's current ones."""
    trips = snapshots.read_table(lake, snapshot, input_columns(USE_CASE.features.all)).to_pandas()
    n = len(trips)
    table = pa.table(
        {
            "row_id": [f"{snapshot.digest[:16]}-{i}" for i in range(n)],
            "row_index": np.arange(n, dtype=np.int64),
            "prediction": model.predict(None, trips)["prediction"].to_numpy(),
            "model_name": [USE_CASE.model_name] * n,
            "model_version": np.ones(n, dtype=np.int64),
            "snapshot_digest": [snapshot.digest] * n,
        }
    )
    ref = ModelRef(USE_CASE.model_name, "1")
    path = scoring.output_path(USE_CASE.name, snapshot, ref)
    lake.write_parquet(path, table)
    scoring.publish(
        lake,
        ScoredOutput(USE_CASE.name, snapshot.month, path, lake.uri(path), n, ref, snapshot.digest, n),
    )


def evaluate(lake: Lake, champion: monitoring.Champion, month: str) -> dict:
    record, _ = monitoring.evaluate_window(lake, USE_CASE, month, client=object(), found=champion)
    return record.to_dict()


REAL_DIR = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "real_tlc"


def real_months(folder: Path) -> dict[str, Any]:
    """Real TLC months through the contract and monitoring, month to month.

    Every month of ``folder`` lands and is validated with the committed contract; for each
    month but the last a champion is trained on it (as ``mlplatform train`` does, on the
    modelling range) and validated on the next month, and every later month is scored and
    evaluated by the monitor's code against it. What is reported is the real month-to-month
    change the thresholds must live with: RMSE against validation, drifted share, prediction
    drift, and whether anything would have fired.
    """
    try:
        files = closed_loop.real_files(folder)  # TLC's file names, as `mlplatform run --data` reads them
    except FileNotFoundError as exc:
        return {"skipped": str(exc)}
    months = sorted(files)
    if len(months) < 2:
        return {"skipped": f"fewer than two real TLC months in {folder}"}
    with tempfile.TemporaryDirectory() as tmp:
        lake = Lake((Path(tmp) / "lake").as_uri())
        root = Path(tmp) / "great_expectations"
        shutil.copytree(
            settings.REPO_ROOT / "great_expectations", root, ignore=shutil.ignore_patterns("uncommitted")
        )
        contract = {}
        for month in months:
            for taxi_type, path in files[month].items():
                ingest.land_bytes(lake, USE_CASE.data.dataset, taxi_type, month, path.read_bytes())
            outcome = contracts.validate_month(lake, USE_CASE, month, root)
            contract[month] = {
                "severity": outcome["severity"],
                "bad_row_share": round(outcome["bad_row_share"], 4),
            }

        def frame(month: str) -> pd.DataFrame:
            snapshot = snapshots.current_snapshot(lake, USE_CASE.name, month)
            return training.labelled(snapshots.read_table(lake, snapshot).to_pandas(), USE_CASE)

        windows = []
        for i, trained_on in enumerate(months[:-1]):
            fitted, evaluation, _ = training.train_frames(USE_CASE, frame(trained_on), frame(months[i + 1]))
            val_rmse = evaluation.overall["rmse"]
            champion = monitoring.Champion(
                USE_CASE.model_name,
                "1",
                None,
                metrics={"val_rmse": val_rmse},
                params={"train_months": trained_on},
                model=fitted.model,
            )
            for month in months[i + 1 :]:
                score(lake, fitted.model, snapshots.current_snapshot(lake, USE_CASE.name, month))
                record = evaluate(lake, champion, month)
                m = record["metrics"]
                windows.append(
                    {
                        "trained_on": trained_on,
                        "validated_on": months[i + 1],
                        "window": month,
                        "validation_rmse": round(val_rmse, 4),
                        "rmse": round(m["rmse"], 4),
                        "rmse_degradation": round(m["rmse_degradation"], 4),
                        "drift_share": round(m["drift_share"], 3),
                        "prediction_drift": round(m.get("prediction_drift", 0.0), 4),
                        "status": record["status"],
                        "breaches": record["breaches"],
                    }
                )
    return {
        "months": months,
        "contract": contract,
        "windows": windows,
        "false_alarms": sum(w["status"] == "breach" for w in windows),
        "max_rmse_degradation": max(w["rmse_degradation"] for w in windows),
        "max_drift_share": max(w["drift_share"] for w in windows),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000, help="trips per month (default 10000)")
    parser.add_argument("--clean-months", type=int, default=40, help="months without drift (default 40)")
    parser.add_argument(
        "--real", type=Path, default=REAL_DIR, help="folder of real TLC monthly files (the fixtures)"
    )
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        lake = Lake((Path(tmp) / "lake").as_uri())
        for month in (*TRAIN_MONTHS, VALIDATION_MONTH):
            add_month(lake, month, args.rows * 2, seed=0, drift=generator.Drift())
        model, val_rmse = train(lake)
        champion = monitoring.Champion(
            USE_CASE.model_name,
            "1",
            None,
            metrics={"val_rmse": val_rmse},
            params={"train_months": ",".join(TRAIN_MONTHS)},
            model=model,
        )
        months = iter(shift(VALIDATION_MONTH, i) for i in range(1, 1000))

        clean = []
        for seed in range(1, args.clean_months + 1):
            month = next(months)
            score(lake, model, add_month(lake, month, args.rows, seed, generator.Drift()))
            clean.append(evaluate(lake, champion, month))
        clean_rmse = float(np.mean([r["metrics"]["rmse"] for r in clean]))

        drifted = []
        for seed, drift in enumerate(DRIFTS, start=1000):
            month = next(months)
            score(lake, model, add_month(lake, month, args.rows, seed, drift))
            record = evaluate(lake, champion, month)
            drifted.append(
                {
                    "drift": {k: v for k, v in vars(drift).items() if v != getattr(generator.Drift(), k)},
                    "rmse": round(record["metrics"]["rmse"], 4),
                    "rmse_increase": round(record["metrics"]["rmse"] / clean_rmse - 1, 4),
                    "drift_share": round(record["metrics"]["drift_share"], 3),
                    "prediction_drift": round(record["metrics"].get("prediction_drift", 0.0), 4),
                    "breaches": record["breaches"],
                    "detected": record["status"] == "breach",
                }
            )
    costly = [d for d in drifted if d["rmse_increase"] >= TARGET_RMSE_INCREASE]
    false_alarms = [r for r in clean if r["status"] == "breach"]
    detection_costly = sum(d["detected"] for d in costly) / len(costly) if costly else 1.0
    false_alarm_rate = len(false_alarms) / len(clean)
    figures = {
        "rows_per_month": args.rows,
        "thresholds": {
            k: getattr(USE_CASE.monitoring, k)
            for k in (
                "drift_threshold",
                "drifted_share_threshold",
                "prediction_drift_threshold",
                "max_relative_degradation",
            )
        },
        "validation_rmse": round(val_rmse, 4),
        "clean_months": len(clean),
        "clean_rmse_mean": round(clean_rmse, 4),
        "clean_rmse_ratio_to_validation_max": round(max(r["metrics"]["rmse"] for r in clean) / val_rmse, 4),
        "clean_drift_share_max": round(max(r["metrics"]["drift_share"] for r in clean), 3),
        "clean_prediction_drift_max": round(max(r["metrics"].get("prediction_drift", 0) for r in clean), 4),
        "false_alarms": len(false_alarms),
        "false_alarm_rate": round(false_alarm_rate, 4),
        "false_alarm_breaches": sorted({b for r in false_alarms for b in r["breaches"]}),
        "injected_drifts": len(drifted),
        "drifts_raising_rmse_10pct": len(costly),
        "detection_rate_rmse_10pct": round(detection_costly, 4),
        "detection_rate_all_drifts": round(sum(d["detected"] for d in drifted) / len(drifted), 4),
        "within_target": detection_costly == 1.0 and false_alarm_rate < TARGET_FALSE_ALARM_RATE,
        "seconds": round(time.perf_counter() - started, 1),
        "drifts": drifted,
    }
    figures["real_months"] = real_months(args.real)
    print(json.dumps(figures, indent=2))
    return 0 if figures["within_target"] else 1


if __name__ == "__main__":
    sys.exit(main())
