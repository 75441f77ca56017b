"""Batch scoring: rows/s end to end against the model's bare predict, and peak memory.

End to end is what the batch-score DAG and `mlplatform score` do: read the parquet input in
record batches, derive features, predict, write predictions parquet. The baseline is the
model's bare predict (the same TripModel call) on the same rows already in memory, batch by
batch, measured in the same run. Each side runs in a fresh process, so its peak RSS is its
own. Target: end to end within 2x of bare predict, peak RSS under 1.5 GB for 10M rows.

    .venv/bin/python bench/bench_score.py [--rows 10000000] [--batch-rows 250000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_RATIO = 2.0
TARGET_RSS_MB = 1536
GENERATE_CHUNK = 1_000_000


def make_input(path: Path, rows: int) -> None:
    """A month of normalised trips (what a validated snapshot holds), written chunk by chunk."""
    import pyarrow.parquet as pq

    from mlplatform.core import generator, tlc

    writer = None
    for seed, start in enumerate(range(0, rows, GENERATE_CHUNK)):
        made = generator.generate_month("yellow", "2024-03", min(GENERATE_CHUNK, rows - start), seed=seed)
        table = tlc.normalise(made.table)
        writer = writer or pq.ParquetWriter(path, table.schema, compression="zstd")
        writer.write_table(table)
    writer.close()


def make_model(path: Path) -> None:
    """The reference use case's model, with the spec's hyperparameters, fitted on a sample."""
    import mlflow.pyfunc
    import sklearn

    from mlplatform.core import generator, spec, tlc
    from mlplatform.core.modelling import (
        TripModel,
        build_estimator,
        input_columns,
        input_defaults,
        trip_features,
    )
    from mlplatform.stages.training import model_signature

    use_case = spec.load_spec("taxi_trip_duration")
    trips = tlc.normalise(generator.generate_month("yellow", "2024-02", 200_000, seed=99).table).to_pandas()
    estimator = build_estimator(use_case, use_case.model.family, use_case.model.hyperparameters)
    estimator.fit(trip_features(trips)[list(use_case.features.all)], trips[use_case.target.column])
    model = TripModel(estimator, use_case.features.all, use_case.task, defaults=input_defaults(use_case))
    example = trips[input_columns(use_case.features.all)].head(20)
    mlflow.pyfunc.save_model(
        str(path),
        python_model=model,
        signature=model_signature(use_case, model, example),
        pip_requirements=[f"scikit-learn=={sklearn.__version__}"],
    )


def end_to_end(model: str, source: str, batch_rows: int) -> dict:
    """Read, features, predict, write: `mlplatform score` as a user runs it.

    Library imports happen before the clock starts (the baseline has them too); loading
    the model and hashing the input are timed.
    """
    import mlflow.pyfunc  # noqa: F401
    import sklearn.ensemble  # noqa: F401

    from mlplatform.stages import scoring

    started = time.perf_counter()
    output = str(Path(source).with_name("predictions.parquet"))
    summary = scoring.score_file(model, source, output, batch_rows)
    return {"seconds": time.perf_counter() - started, "rows": summary["rows"]}


def bare_predict(model: str, source: str, batch_rows: int) -> dict:
    """The model's predict alone, on the same rows already in memory, in the same batches."""
    import pyarrow.parquet as pq

    from mlplatform.stages import scoring

    pyfunc = scoring.load_model(model)
    columns = scoring.model_inputs(pyfunc)
    frames = [b.to_pandas() for b in pq.ParquetFile(source).iter_batches(batch_rows, columns=columns)]
    predict = scoring.predictor(pyfunc)
    started = time.perf_counter()
    rows = sum(len(predict(frame)) for frame in frames)
    return {"seconds": time.perf_counter() - started, "rows": rows}


def child(kind: str, *args: str) -> None:
    """One measurement in this (fresh) process; prints its figures and peak RSS as JSON."""
    if kind == "input":
        make_input(Path(args[0]), int(args[1]))
        result: dict = {}
    elif kind == "model":
        make_model(Path(args[0]))
        result = {}
    else:
        result = {"e2e": end_to_end, "bare": bare_predict}[kind](args[0], args[1], int(args[2]))
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def run(*args: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", *args], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--batch-rows", type=int, default=250_000)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    with tempfile.TemporaryDirectory() as tmp:
        source, model = Path(tmp) / "trips.parquet", Path(tmp) / "model"
        started = time.perf_counter()
        run("input", str(source), str(args.rows))
        run("model", str(model))
        prepared = time.perf_counter() - started
        e2e = run("e2e", str(model), str(source), str(args.batch_rows))
        bare = run("bare", str(model), str(source), str(args.batch_rows))
        input_mb = source.stat().st_size / 1e6
    ratio = e2e["seconds"] / bare["seconds"]
    figures = {
        "rows": args.rows,
        "batch_rows": args.batch_rows,
        "input_parquet_mb": round(input_mb, 1),
        "end_to_end_s": round(e2e["seconds"], 2),
        "end_to_end_rows_per_s": round(e2e["rows"] / e2e["seconds"]),
        "bare_predict_s": round(bare["seconds"], 2),
        "bare_predict_rows_per_s": round(bare["rows"] / bare["seconds"]),
        "ratio_to_bare_predict": round(ratio, 2),
        "end_to_end_peak_rss_mb": round(e2e["peak_rss_mb"]),
        "bare_predict_peak_rss_mb": round(bare["peak_rss_mb"]),
        "target_ratio": TARGET_RATIO,
        "target_peak_rss_mb": TARGET_RSS_MB,
        "within_target": ratio <= TARGET_RATIO and e2e["peak_rss_mb"] < TARGET_RSS_MB,
        "setup_s": round(prepared, 1),
    }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
