"""The ``mlplatform`` command line: the same functions the DAGs run, outside Airflow.

Every command has ``--help``. Exit codes: 0 success, 1 the data or model failed a check,
2 bad usage or input.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

CommandFn = Callable[[argparse.Namespace], int]


def _month(value: str) -> str:
    import re

    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", value):
        raise argparse.ArgumentTypeError(f"month must be YYYY-MM, got {value!r}")
    return value


def _months(start: str, count: int) -> list[str]:
    year, month = map(int, start.split("-"))
    out = []
    for i in range(count):
        y, m = divmod(month - 1 + i, 12)
        out.append(f"{year + y:04d}-{m + 1:02d}")
    return out


def cmd_generate(args: argparse.Namespace) -> int:
    from mlplatform.adapters.lake import Lake
    from mlplatform.core import generator
    from mlplatform.stages import ingest

    drift = generator.Drift(args.congestion, args.outer_borough_shift, args.trip_length)
    for month in _months(args.month, args.months):
        started = time.perf_counter()
        if args.out:
            import pyarrow.parquet as pq

            made = generator.generate_month(args.kind, month, args.rows, args.seed, drift, args.generation)
            target = Path(args.out)
            path = (
                target / f"{args.kind}_tripdata_{month}.parquet"
                if target.is_dir() or args.months > 1
                else target
            )
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(made.table, path)
            where = str(path)
        else:
            lake = Lake(args.lake)
            landed, made = ingest.land_generated(
                lake, args.dataset, args.kind, month, args.rows, args.seed, drift, replace=args.replace
            )
            where = lake.uri(landed.path)
        seconds = time.perf_counter() - started
        summary = {
            "path": where,
            "kind": args.kind,
            "month": month,
            "rows": made.table.num_rows,
            "seconds": round(seconds, 3),
            "rows_per_second": round(made.table.num_rows / seconds) if seconds else None,
            "noise_floor_rmse_minutes": round(made.noise_floor_rmse, 4),
        }
        if args.json:
            print(json.dumps(summary))
        else:
            print(
                f"wrote {summary['rows']:,} {args.kind} trips for {month} to {where} in {seconds:.1f}s "
                f"({summary['rows_per_second'] or 0:,} rows/s); noise floor RMSE "
                f"{made.noise_floor_rmse:.3f} min"
            )
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from mlplatform.adapters.lake import Lake
    from mlplatform.core import spec, tlc
    from mlplatform.stages import ingest

    use_case = spec.load_spec(args.use_case)
    data = Path(args.path).read_bytes()
    import io

    import pyarrow.parquet as pq

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
    from mlplatform.stages import contracts

    use_case = spec.load_spec(args.use_case)
    paths = [Path(p) for p in args.path]
    found = re.search(r"(\d{4}-(0[1-9]|1[0-2]))", paths[0].name)
    month = args.month or (found.group(1) if found else None)
    if month is None:
        print(f"error: cannot tell the month from {paths[0].name}; pass --month YYYY-MM", file=sys.stderr)
        return 2
    history = contracts.history_row_counts(Lake(args.lake), use_case, month)
    files = [contracts.RawFile(str(p), p.read_bytes(), use_case.data.taxi_types) for p in paths]
    evaluation = contracts.evaluate_files(files, use_case, month, history=history)
    evaluation.docs_rendered()
    if args.json:
        result = {"use_case": use_case.name, "month": month, "source": evaluation.source}
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


def cmd_spec(args: argparse.Namespace) -> int:
    from mlplatform.core import spec

    try:
        if args.file:
            loaded = [spec.load_spec_file(Path(f)) for f in args.file]
        else:
            loaded = [spec.load_spec(n) for n in (args.name or spec.use_case_names())]
    except spec.SpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for use_case in loaded:
        if args.json:
            print(json.dumps(use_case.model_dump(mode="json", by_alias=True), indent=2))
        else:
            print(
                f"{use_case.name}: {use_case.task}, level {use_case.maturity_level}, "
                f"{'+'.join(use_case.data.taxi_types)} data, model {use_case.model.family}, "
                f"serving {use_case.serving.mode}"
            )
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from mlplatform.stages import scoring

    try:
        summary = scoring.score_file(args.model, args.input, args.output, args.batch_rows)
    except scoring.ModelNotFound as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary))
    return 0


def cmd_monitor(args: argparse.Namespace) -> int:
    from mlplatform.adapters.lake import Lake
    from mlplatform.core import spec
    from mlplatform.stages import monitoring

    try:
        use_case = spec.load_spec(args.use_case)
    except spec.SpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    record = monitoring.monitor(Lake(args.lake), use_case, args.window)
    print(json.dumps(record, indent=2, default=str) if args.json else monitoring.summary(record), end="\n")
    return 1 if record["status"] == "breach" else 0


def cmd_train(args: argparse.Namespace) -> int:
    from mlplatform.core import spec
    from mlplatform.stages import training

    try:
        use_case = spec.load_spec(args.use_case)
    except spec.SpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result = training.train_files(
        use_case, args.train, args.valid, family=args.family, track=args.track, reason=args.reason
    )
    print(json.dumps(result, indent=2))
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    from mlplatform.adapters import registry
    from mlplatform.adapters.lake import Lake
    from mlplatform.core import spec

    try:
        use_case = spec.load_spec(args.use_case)
        approval = {"approved": True, "by": registry.who()} if args.approve else None
        version = None if args.version is None else str(args.version)
        result = registry.evaluate_and_decide(Lake(args.lake), use_case, version, approval)
    except (spec.SpecError, registry.PromotionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    return 1 if result["outcome"] == "rejected" else 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from mlplatform.adapters import registry
    from mlplatform.core import spec

    try:
        result = registry.rollback(spec.load_spec(args.use_case).model_name)
    except (spec.SpecError, registry.PromotionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from mlplatform.dev import closed_loop

    scenario = closed_loop.Scenario(
        months=args.months,
        rows=args.rows,
        start=args.start,
        drift_from=args.drift_from,
        congestion=args.congestion,
        outer_borough_shift=args.outer_borough_shift,
        data=args.data,
    )
    if args.data is not None:
        try:
            closed_loop.real_files(args.data)
        except FileNotFoundError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    return closed_loop.run(scenario)


def cmd_stop(args: argparse.Namespace) -> int:
    from mlplatform.dev import embedded

    return embedded.stop()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlplatform", description="Run the ML platform's steps outside Airflow, on any TLC files."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    lake_help = "lake root URI (default: MLPLATFORM_LAKE_URI or the embedded default)"

    p = sub.add_parser("generate", help="generate TLC-format monthly trip files")
    p.description = "Generate months of synthetic trips in the exact TLC parquet format."
    p.add_argument("--kind", choices=["yellow", "green"], default="yellow", help="taxi type (default yellow)")
    p.add_argument("--month", type=_month, required=True, help="first month, YYYY-MM")
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
    p.add_argument("--lake", help=lake_help)
    p.add_argument("--dataset", default="nyc_tlc_yellow", help="raw dataset folder in the lake")
    p.add_argument("--replace", action="store_true", help="supersede a different file already in the lake")
    p.add_argument("--json", action="store_true", help="print one JSON object per month")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("ingest", help="land a real (or any) TLC parquet file in the lake's raw zone")
    p.description = "Copy a TLC trip-record parquet file into the raw zone for a use case and month."
    p.add_argument("path", help="TLC parquet file (green or yellow, any year)")
    p.add_argument("--use-case", required=True, help="use case whose dataset the file belongs to")
    p.add_argument("--month", type=_month, required=True, help="month the file covers, YYYY-MM")
    p.add_argument("--lake", help=lake_help)
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
    p.add_argument("--month", type=_month, help="month the file covers (default: from the file name)")
    p.add_argument("--lake", help=lake_help + "; its validated months are the volume history")
    p.add_argument("--json", action="store_true", help="print the contract result as JSON")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("lake", help="list what the lake holds, by zone")
    p.description = "List the lake's objects by zone (raw, validated, quarantine, ...)."
    p.add_argument("--lake", help=lake_help)
    p.add_argument("--limit", type=int, default=12, help="objects listed per zone (default 12)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_lake)

    p = sub.add_parser("spec", help="validate and show use-case specs")
    p.description = "Validate use-case specs and print a summary (or the full spec with --json)."
    p.add_argument("name", nargs="*", help="use case names (default: all shipped)")
    p.add_argument("--file", nargs="+", help="validate these spec files instead")
    p.add_argument("--json", action="store_true", help="print the validated spec as JSON")
    p.set_defaults(func=cmd_spec)

    p = sub.add_parser("score", help="score a TLC or normalised trip file with a registered model")
    p.description = (
        "Score a parquet file of trips (a TLC file of any year, or normalised trips) with an MLflow "
        "model, in bounded memory; writes one prediction per row and prints a JSON summary."
    )
    p.add_argument("--model", required=True, help="MLflow model URI (models:/<name>@champion, a path...)")
    p.add_argument("--input", required=True, help="parquet file to score (path or URI)")
    p.add_argument("--output", required=True, help="predictions parquet file to write (path or URI)")
    p.add_argument("--batch-rows", type=int, default=250_000, help="rows per record batch (default 250000)")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("monitor", help="measure one window of production against the thresholds")
    p.description = (
        "Compute a window's performance on ground truth, drift, data quality and serving health, "
        "write its record, history rows, drift report and MLflow run, and print it. Exits 1 on a "
        "breach. Alerts and retraining are the monitor DAG's."
    )
    p.add_argument("--use-case", required=True, help="use case to monitor")
    p.add_argument("--window", type=_month, required=True, help="month to evaluate, YYYY-MM")
    p.add_argument("--lake", help=lake_help)
    p.add_argument("--json", action="store_true", help="print the whole record as JSON")
    p.set_defaults(func=cmd_monitor)

    p = sub.add_parser("train", help="train a use case's model on TLC files and print its metrics")
    p.description = (
        "Train the use case's baseline and model (with its bounded search) on raw TLC files of any "
        "year, validate on other files, and print the metrics as JSON. Same code as the train DAG."
    )
    p.add_argument("--use-case", required=True, help="use case whose spec defines data, features, model")
    p.add_argument("--train", nargs="+", required=True, metavar="PATH", help="TLC parquet files to train on")
    p.add_argument(
        "--valid", nargs="+", required=True, metavar="PATH", help="TLC parquet files to validate on"
    )
    p.add_argument("--family", help="model family (default: the spec's model.family)")
    p.add_argument("--track", action="store_true", help="also log the run to MLflow (MLFLOW_TRACKING_URI)")
    p.add_argument("--reason", default="", help="why, recorded with a tracked run")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("promote", help="assess a model version against the gates and decide")
    p.description = (
        "Assess a version (default: the challenger) against the spec's promotion gates on the same "
        "held-out data as the champion, record the decision and post it to Slack. With --approve, "
        "promote it if every gate passes (the manual path of maturity levels 2 and 3). Exits 1 if rejected."
    )
    p.add_argument("--use-case", required=True, help="use case whose registered model to promote")
    p.add_argument("--version", type=int, help="model version (default: the challenger)")
    p.add_argument("--approve", action="store_true", help="you approve: promote if the gates pass")
    p.add_argument("--lake", help=lake_help)
    p.set_defaults(func=cmd_promote)

    p = sub.add_parser("rollback", help="put champion back on previous_champion")
    p.description = "Move the champion alias back to previous_champion in one step (no gates)."
    p.add_argument("--use-case", required=True, help="use case whose registered model to roll back")
    p.set_defaults(func=cmd_rollback)

    p = sub.add_parser("run", help="run the closed loop on the embedded default")
    p.description = (
        "Start (or reuse) the embedded default (local lake, MLflow, Airflow, serving app, Slack "
        "sink) and simulate months through the real scheduler: contracts, training, promotion, "
        "deployment, scoring, monitoring, drift and automatic retraining. A previous run's lake "
        "and registered models are set aside first."
    )
    from mlplatform.dev.closed_loop import Scenario

    defaults = Scenario()
    p.add_argument(
        "--months", type=int, default=defaults.months, help=f"months to simulate ({defaults.months})"
    )
    p.add_argument("--rows", type=int, default=defaults.rows, help=f"trips per month ({defaults.rows})")
    p.add_argument("--start", type=_month, default=defaults.start, help=f"first month ({defaults.start})")
    p.add_argument(
        "--drift-from",
        type=int,
        default=defaults.drift_from,
        help=f"first drifted month, 1-based ({defaults.drift_from})",
    )
    p.add_argument(
        "--congestion",
        type=float,
        default=defaults.congestion,
        help=f"drift: trips take this much longer ({defaults.congestion})",
    )
    p.add_argument(
        "--outer-borough-shift",
        type=float,
        default=defaults.outer_borough_shift,
        help=f"drift: share of pickups moved to the outer boroughs ({defaults.outer_borough_shift})",
    )
    p.add_argument(
        "--data",
        type=Path,
        default=None,
        metavar="DIR",
        help="replay a folder of real TLC monthly files (green_tripdata_2021-01.parquet, ...) "
        "through the loop instead of generated months; the month, row and drift knobs are ignored",
    )
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("stop", help="stop every process `mlplatform run` started")
    p.description = "Stop the processes the embedded default started, by process id."
    p.set_defaults(func=cmd_stop)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
