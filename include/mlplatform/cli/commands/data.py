"""Data commands: generate and land TLC months, check them against contracts, list the lake."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from mlplatform.cli.arguments import LAKE_HELP, Subparsers, month


def cmd_generate(args: argparse.Namespace) -> int:
    from mlplatform.core import generator
    from mlplatform.core.months import sequence

    drift = generator.Drift(args.congestion, args.outer_borough_shift, args.trip_length)
    for each in sequence(args.month, args.months):
        started = time.perf_counter()
        where, made = _generate_month(args, each, drift)
        seconds = time.perf_counter() - started
        summary = {
            "path": where,
            "kind": args.kind,
            "month": each,
            "rows": made.table.num_rows,
            "seconds": round(seconds, 3),
            "rows_per_second": round(made.table.num_rows / seconds) if seconds else None,
            "noise_floor_rmse_minutes": round(made.noise_floor_rmse, 4),
        }
        if args.json:
            print(json.dumps(summary))
        else:
            print(
                f"wrote {summary['rows']:,} {args.kind} trips for {each} to {where} in {seconds:.1f}s "
                f"({summary['rows_per_second'] or 0:,} rows/s); noise floor RMSE "
                f"{made.noise_floor_rmse:.3f} min"
            )
    return 0


def _generate_month(args: argparse.Namespace, each: str, drift: Any) -> tuple[str, Any]:
    """Generate one month to ``--out`` or the lake's raw zone: where it went, and what was made."""
    from mlplatform.adapters.lake import Lake
    from mlplatform.core import generator
    from mlplatform.stages import ingest

    if args.out:
        import pyarrow.parquet as pq

        made = generator.generate_month(args.kind, each, args.rows, args.seed, drift, args.generation)
        target = Path(args.out)
        path = (
            target / f"{args.kind}_tripdata_{each}.parquet" if target.is_dir() or args.months > 1 else target
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(made.table, path)
        return str(path), made
    lake = Lake(args.lake)
    landed, made = ingest.land_generated(
        lake, args.dataset, args.kind, each, args.rows, args.seed, drift, replace=args.replace
    )
    return lake.uri(landed.path), made


def cmd_ingest(args: argparse.Namespace) -> int:
    import io

    import pyarrow.parquet as pq

    from mlplatform.adapters.lake import Lake
    from mlplatform.core import spec, tlc
    from mlplatform.stages import ingest

    use_case = spec.load_spec(args.use_case)
    data = Path(args.path).read_bytes()
    listed = use_case.data.taxi_types
    try:
        report = tlc.inspect_schema(pq.read_schema(io.BytesIO(data)), listed)
    except Exception as exc:
        print(f"error: {args.path} is not a readable parquet file: {exc}", file=sys.stderr)
        return 2
    if report.taxi_type not in listed:
        found = report.taxi_type or "no recognisable (tpep_/lpep_)"
        print(
            f"error: {args.path} holds {found} trips but {use_case.name} expects {' or '.join(listed)}",
            file=sys.stderr,
        )
        return 2
    lake = Lake(args.lake)
    try:  # each taxi type has its own file in the month's folder
        landed = ingest.land_bytes(
            lake, use_case.data.dataset, report.taxi_type, args.month, data, args.replace
        )
    except ingest.LandingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    state = "landed" if landed.changed else "already present (identical)"
    print(f"{state}: {lake.uri(landed.path)} ({landed.rows:,} rows, sha256 {landed.digest[:12]})")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    import re

    from mlplatform.adapters.lake import Lake
    from mlplatform.core import spec
    from mlplatform.core.months import PATTERN
    from mlplatform.stages import contracts

    use_case = spec.load_spec(args.use_case)
    paths = [Path(p) for p in args.path]
    found = re.search(f"({PATTERN})", paths[0].name)
    chosen = args.month or (found.group(1) if found else None)
    if chosen is None:
        print(f"error: cannot tell the month from {paths[0].name}; pass --month YYYY-MM", file=sys.stderr)
        return 2
    history = contracts.history_row_counts(Lake(args.lake), use_case, chosen)
    files = [contracts.RawFile(str(p), p.read_bytes(), use_case.data.taxi_types) for p in paths]
    evaluation = contracts.evaluate_files(files, use_case, chosen, history=history)
    evaluation.docs_rendered()
    if args.json:
        result = {"use_case": use_case.name, "month": chosen, "source": evaluation.source}
        print(json.dumps({**result, "contract": evaluation.contract()}, indent=2))
    else:
        print(evaluation.summary())
    return 0 if evaluation.success else 1


def cmd_lake(args: argparse.Namespace) -> int:
    from mlplatform.adapters.lake import Lake, inventory

    lake = Lake(args.lake)
    zones = inventory(lake)
    if args.json:
        print(json.dumps({z: [e.__dict__ for e in entries] for z, entries in zones.items()}, indent=2))
        return 0
    print(f"lake {lake.root_uri}")
    for zone, entries in zones.items():
        size = sum(e.size for e in entries)
        print(f"  {zone:<12} {len(entries):>5} objects  {size / 1e6:>9.1f} MB")
        for entry in entries[: args.limit]:
            print(f"      {entry.path}  ({entry.size / 1e6:.1f} MB)")
        if len(entries) > args.limit:
            print(f"      ... {len(entries) - args.limit} more")
    return 0


def cmd_contracts_sync(args: argparse.Namespace) -> int:
    from mlplatform.stages import contracts

    root = contracts.sync_context(args.root)
    print(f"synced the Great Expectations context at {root}")
    return 0


def register(sub: Subparsers) -> None:
    """Add the data commands to ``sub``."""
    _register_generate(sub)

    p = sub.add_parser("ingest", help="land a real (or any) TLC parquet file in the lake's raw zone")
    p.description = "Copy a TLC trip-record parquet file into the raw zone for a use case and month."
    p.add_argument("path", help="TLC parquet file (green or yellow, any year)")
    p.add_argument("--use-case", required=True, help="use case whose dataset the file belongs to")
    p.add_argument("--month", type=month, required=True, help="month the file covers, YYYY-MM")
    p.add_argument("--lake", help=LAKE_HELP)
    p.add_argument("--replace", action="store_true", help="supersede a different file already there")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("validate", help="check a TLC file against a use case's data contract")
    p.description = (
        "Run the use case's Great Expectations contract on a raw TLC month (nothing is written to the "
        "lake; Data Docs are rebuilt) and print the verdict with the quarantine share per rule. "
        "Exit 0: the contract holds (bad rows would be quarantined), 1: breach."
    )
    p.add_argument(
        "path", nargs="+", help="raw TLC parquet file(s) of one month (e.g. its green and yellow files)"
    )
    p.add_argument("--use-case", required=True, help="use case whose contract applies")
    p.add_argument("--month", type=month, help="month the file covers (default: from the file name)")
    p.add_argument("--lake", help=LAKE_HELP + "; its validated months are the volume history")
    p.add_argument("--json", action="store_true", help="print the contract result as JSON")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("lake", help="list what the lake holds, by zone")
    p.description = "List the lake's objects by zone (raw, validated, quarantine, ...)."
    p.add_argument("--lake", help=LAKE_HELP)
    p.add_argument("--limit", type=int, default=12, help="objects listed per zone (default 12)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_lake)

    p = sub.add_parser("contracts", help="maintain the Great Expectations context the contracts use")
    p.description = "Maintain the committed Great Expectations context (suites, validation definitions)."
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    sync = actions.add_parser("sync", help="regenerate the committed suites from the specs")
    sync.description = (
        "Regenerate the Great Expectations context's suites, validation definitions and "
        "checkpoints from the use-case specs; commit the result."
    )
    sync.add_argument("--root", type=Path, help="context folder (default: MLPLATFORM_GX_ROOT or the repo's)")
    sync.set_defaults(func=cmd_contracts_sync)


def _register_generate(sub: Subparsers) -> None:
    p = sub.add_parser("generate", help="generate TLC-format monthly trip files")
    p.description = "Generate months of synthetic trips in the exact TLC parquet format."
    p.add_argument("--kind", choices=["yellow", "green"], default="yellow", help="taxi type (default yellow)")
    p.add_argument("--month", type=month, required=True, help="first month, YYYY-MM")
    p.add_argument("--months", type=int, default=1, help="number of consecutive months (default 1)")
    p.add_argument("--rows", type=int, default=100_000, help="trips per month (default 100000)")
    p.add_argument("--seed", type=int, default=0, help="random seed; same seed, same file (default 0)")
    p.add_argument(
        "--generation", choices=["legacy", "2024", "2025"], help="TLC schema generation (default: by month)"
    )
    p.add_argument(
        "--congestion", type=float, default=1.0, help="drift: travel-time multiplier (default 1.0)"
    )
    p.add_argument(
        "--outer-borough-shift", type=float, default=0.0, help="drift: pickups moved out of Manhattan, 0-1"
    )
    p.add_argument(
        "--trip-length", type=float, default=1.0, help="drift: trip distance multiplier (default 1.0)"
    )
    p.add_argument("--out", help="write to this file or folder instead of the lake's raw zone")
    p.add_argument("--lake", help=LAKE_HELP)
    p.add_argument("--dataset", default="nyc_tlc_yellow", help="raw dataset folder in the lake")
    p.add_argument("--replace", action="store_true", help="supersede a different file already in the lake")
    p.add_argument("--json", action="store_true", help="print one JSON object per month")
    p.set_defaults(func=cmd_generate)
