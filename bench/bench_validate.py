"""Contract validation of a real-sized yellow month (3M rows) against reading the same file.

The validation step is what the validate DAG's ``check_contract`` task runs: read the raw
file from the lake, normalise it, compute the row rules, run the GX checkpoint (which
rebuilds Data Docs) and write the validated snapshot. The baseline is reading the same
file from the same lake into an Arrow table, measured in the same run; reading it into
pandas (what a pandas-based validation starts from) is reported too, with its ratio. Great
Expectations is imported and its context opened once before timing (a worker pays that
once per process; ``gx_import_s`` shows what it costs).

``steps_s`` splits the fastest run: ``fetch`` (the raw bytes), ``read_and_normalise``
(hashing and parsing the parquet file, :func:`mlplatform.tlc.normalise`), ``row_rules``
(the masks, the validated and quarantined rows), ``checkpoint`` (GX and Data Docs) and
``write`` (what is left to wait for of the snapshot encoding, then storing the snapshot,
its manifest and any quarantined rows). ``snapshot_encode`` is
:func:`mlplatform.snapshots.encode` in a thread that runs alongside the checkpoint, so it
overlaps ``checkpoint`` and ``write`` instead of adding to them.

The floor of the step is measured in the same run: reading and normalising the file,
encoding its snapshot with the same settings and storing it, with no row rules and no
checkpoint (``floor_s``), and the encoding on its own (``encode_s``). pyarrow encodes a
parquet file on one thread, so however the other steps are arranged around it, the
validation takes at least ``encode_ratio_to_read`` times the read.

``--bad-share`` corrupts that share of the rows (negative distances) so the month passes
with rows quarantined, as real months do; the default is a clean month.

Each figure is the best of ``--repeat`` runs; each validation run uses a fresh lake, so it
writes a new snapshot. Targets: under 3x the read, and under 20 s.

    .venv/bin/python bench/bench_validate.py [--rows 3000000] [--repeat 3] [--bad-share 0.02]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

from mlplatform import contracts, generator, ingest, settings, snapshots, spec, tlc
from mlplatform.lake import Lake

MONTH = "2024-03"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--use-case", default="taxi_trip_duration")
    parser.add_argument("--bad-share", type=float, default=0.0, help="share of rows to corrupt (0..0.05)")
    args = parser.parse_args()
    use_case = spec.load_spec(args.use_case)
    data = use_case.data

    with tempfile.TemporaryDirectory() as tmp:
        gx_root = Path(tmp) / "great_expectations"  # results and Data Docs stay out of the repo
        shutil.copytree(
            settings.REPO_ROOT / "great_expectations", gx_root, ignore=shutil.ignore_patterns("uncommitted")
        )
        os.environ["MLPLATFORM_GX_ROOT"] = str(gx_root)
        month = generator.generate_month(data.taxi_type, MONTH, args.rows, seed=0).table
        if args.bad_share:
            month = generator.corrupt(month, "negative_distance", args.bad_share, seed=0)
        buffer = io.BytesIO()
        pq.write_table(month, buffer)
        raw = buffer.getvalue()
        del month

        started = time.perf_counter()
        import great_expectations  # noqa: F401

        gx_import = time.perf_counter() - started
        warm = Lake((Path(tmp) / "warm").as_uri())
        small = io.BytesIO()
        pq.write_table(generator.generate_month(data.taxi_type, MONTH, 1000, seed=0).table, small)
        ingest.land_bytes(warm, data.dataset, data.taxi_type, MONTH, small.getvalue())
        contracts.validate_month(warm, use_case, MONTH)  # opens the context, renders Data Docs once

        read_arrow, read_pandas, validate, steps = [], [], [], {}
        for i in range(args.repeat):
            lake = Lake((Path(tmp) / f"lake{i}").as_uri())
            path = ingest.land_bytes(lake, data.dataset, data.taxi_type, MONTH, raw).path

            started = time.perf_counter()
            table = lake.read_parquet(path)
            read_arrow.append(time.perf_counter() - started)
            started = time.perf_counter()
            table.to_pandas()
            read_pandas.append(read_arrow[-1] + time.perf_counter() - started)
            del table

            started = time.perf_counter()
            outcome = contracts.validate_month(lake, use_case, MONTH)
            validate.append(time.perf_counter() - started)
            assert outcome["success"] and outcome["snapshot"]["created"], outcome["summary"]
            if validate[-1] == min(validate):
                steps = outcome["timings"]
            del outcome

        floor, encode = [], []
        for i in range(args.repeat):
            lake = Lake((Path(tmp) / f"floor{i}").as_uri())
            path = ingest.land_bytes(lake, data.dataset, data.taxi_type, MONTH, raw).path
            started = time.perf_counter()
            trips = tlc.normalise(lake.read_parquet(path), data.taxi_type)
            encoding = time.perf_counter()
            encoded = snapshots.encode(trips)
            encode.append(time.perf_counter() - encoding)
            lake.write_bytes(f"validated/floor/{encoded.digest}/data.parquet", memoryview(encoded.data))
            floor.append(time.perf_counter() - started)
            del trips, encoded

    best = min(validate)
    figures = {
        "rows": args.rows,
        "raw_file_mb": round(len(raw) / 1e6, 1),
        "bad_share": args.bad_share,
        "validate_s": round(best, 2),
        "read_s": round(min(read_arrow), 2),
        "ratio_to_read": round(best / min(read_arrow), 2),
        "read_into_pandas_s": round(min(read_pandas), 2),
        "ratio_to_read_into_pandas": round(best / min(read_pandas), 2),
        "steps_s": steps,
        "floor_s": round(min(floor), 2),
        "floor_ratio_to_read": round(min(floor) / min(read_arrow), 2),
        "encode_s": round(min(encode), 2),
        "encode_ratio_to_read": round(min(encode) / min(read_arrow), 2),
        "gx_import_s": round(gx_import, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "target_ratio": 3,
        "target_s": 20,
        "within_ratio_target": best / min(read_arrow) < 3,
        "within_ratio_target_vs_pandas_read": best / min(read_pandas) < 3,
        "within_time_target": best < 20,
        "cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
