"""Generator throughput and shape: a real yellow month (3M rows) generated and written as TLC
parquet, and generated green months against the real ones.

Prints rows/s and the time against the baseline of writing the same table that is already
in memory, measured in the same run, plus the file's noise floor. Target: under 30 s. When
the real green months of ``tests/fixtures/real_tlc/`` are present, it also generates each of
them at the same size (with the real anomaly shares) and prints both months' shape figures
(median duration and distance, busiest pickup zones and their overlap, zero-distance and
blank-code shares, distinct zone pairs) side by side.

    .venv/bin/python bench/bench_generate.py [--rows 3000000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

from mlplatform.core import generator, tlc

REAL = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "real_tlc"


def shape_against_real() -> list[dict]:
    """Each real green month beside a generated month of the same size and period."""
    rows = []
    for path in sorted(REAL.glob("green_tripdata_*.parquet")):
        real = pq.read_table(path)
        month = path.stem.rsplit("_", 1)[-1]
        made = generator.generate_month("green", month, real.num_rows, seed=0, anomalies=True).table
        shapes = {"real": generator.shape_summary(tlc.normalise(real))}
        shapes["generated"] = generator.shape_summary(tlc.normalise(made))
        top = [set(s.top_pickup_zones) for s in shapes.values()]
        rows.append(
            {
                "month": month,
                **{name: shape.to_dict() for name, shape in shapes.items()},
                "top_10_pickup_zones_shared": len(top[0] & top[1]),
                "schema_equals_real": made.schema.remove_metadata() == real.schema.remove_metadata(),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "yellow_tripdata_2024-03.parquet"
        started = time.perf_counter()
        made = generator.generate_month("yellow", "2024-03", args.rows, seed=0)
        pq.write_table(made.table, path)
        total = time.perf_counter() - started

        started = time.perf_counter()
        pq.write_table(made.table, Path(tmp) / "baseline.parquet")
        write_only = time.perf_counter() - started
        schema_ok = pq.read_schema(path).remove_metadata() == tlc.raw_schema("yellow", "2024")
    figures = {
        "rows": args.rows,
        "generate_and_write_s": round(total, 2),
        "rows_per_s": round(args.rows / total),
        "baseline_write_only_s": round(write_only, 2),
        "ratio_to_write_only": round(total / write_only, 2),
        "target_s": 30,
        "within_target": total < 30,
        "schema_equals_tlc_yellow_2024": schema_ok,
        "noise_floor_rmse_min": round(made.noise_floor_rmse, 4),
        "green_against_real": shape_against_real(),
    }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
