"""Data commands: generate and land TLC months, check them against contracts, list the lake."""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlplatform.cli import output
from mlplatform.cli.arguments import (
    FAILED_CHECK,
    LAKE_HELP,
    PASSED,
    CannotCheck,
    Subparsers,
    add_output_options,
    input_file,
    input_files,
    input_folder,
    load_use_case,
    month,
    use_case_help,
)


def cmd_generate(args: argparse.Namespace) -> int:
    from mlplatform.core import generator
    from mlplatform.core.months import sequence

    drift = generator.Drift(args.congestion, args.outer_borough_shift, args.trip_length)
    made_months = []
    with output.progress_bar(args, f"generating {args.kind} months", args.months) as advance:
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
            if args.json:  # JSON Lines: one object per month, as each is done
                print(json.dumps(summary), flush=True)
            made_months.append(summary)
            advance()
    if not args.json:
        columns = ("month", "kind", "rows", "seconds", "rows_per_second", "noise_floor_rmse_minutes", "path")
        rows = [[m[c] for c in columns] for m in made_months]
        output.stdout().print(output.rows_table("generated TLC months", columns, rows))
    return PASSED


def _generate_month(args: argparse.Namespace, each: str, drift: Any) -> tuple[str, Any]:
    """Generate one month to ``--out`` or the lake's raw zone: where it went, and what was made."""
    from mlplatform.adapters.lake import Lake
    from mlplatform.core import generator, tlc
    from mlplatform.stages import ingest

    if args.out:
        import pyarrow.parquet as pq

        made = generator.generate_month(
            args.kind, each, args.rows, args.seed, drift, args.generation, clean=args.clean
        )
        target = Path(args.out)
        path = target / tlc.file_name(args.kind, each) if target.is_dir() or args.months > 1 else target
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(made.table, path)
        return str(path), made
    lake = Lake(args.lake)
    if args.clean:  # land_generated draws TLC's pathologies, as every landed month has them
        import io

        import pyarrow.parquet as pq

        made = generator.generate_month(args.kind, each, args.rows, args.seed, drift, clean=True)
        buffer = io.BytesIO()
        pq.write_table(made.table, buffer)
        landed = ingest.land_bytes(lake, args.dataset, args.kind, each, buffer.getvalue(), args.replace)
        return lake.uri(landed.path), made
    landed, made = ingest.land_generated(
        lake, args.dataset, args.kind, each, args.rows, args.seed, drift, replace=args.replace
    )
    return lake.uri(landed.path), made


def cmd_ingest(args: argparse.Namespace) -> int:
    import io

    import pyarrow.parquet as pq

    from mlplatform.adapters.lake import Lake
    from mlplatform.core import tlc
    from mlplatform.stages import ingest

    use_case = load_use_case(args.use_case)
    data = input_file(args.path).read_bytes()
    listed = use_case.data.taxi_types
    try:
        report = tlc.inspect_schema(pq.read_schema(io.BytesIO(data)), listed)
    except Exception as exc:
        raise CannotCheck(f"{args.path} is not a readable parquet file: {exc}") from None
    if report.taxi_type not in listed:
        found = report.taxi_type or "no recognisable (tpep_/lpep_)"
        raise CannotCheck(
            f"{args.path} holds {found} trips but {use_case.name} expects {' or '.join(listed)}"
        )
    lake = Lake(args.lake)
    try:  # each taxi type has its own file in the month's folder
        landed = ingest.land_bytes(
            lake, use_case.data.dataset, report.taxi_type, args.month, data, args.replace
        )
    except ingest.LandingError as exc:
        raise CannotCheck(str(exc)) from None
    state = "landed" if landed.changed else "already present (identical)"
    record = {"state": state, "uri": lake.uri(landed.path), "rows": landed.rows, "sha256": landed.digest}
    output.show(args, record, lambda: output.record_table(f"{use_case.name} {args.month}: {state}", record))
    return PASSED


def validation_month(paths: list[Path], given: str | None) -> tuple[str, str]:
    """The month to validate and where it came from: ``--month``, else TLC's file name.

    Every file of a month must name the same month; a file name that names none needs ``--month``.
    """
    from mlplatform.core import tlc

    named = {p.name: found.month for p in paths if (found := tlc.parse_file_name(p.name)) is not None}
    if given is not None:
        return given, "--month"
    if len(named) < len(paths):
        unnamed = next(p.name for p in paths if p.name not in named)
        raise CannotCheck(
            f"cannot tell the month from {unnamed} (TLC names files <type>_tripdata_YYYY-MM.parquet); "
            "pass --month YYYY-MM"
        )
    if len(set(named.values())) > 1:
        listing = ", ".join(f"{name}: {m}" for name, m in named.items())
        raise CannotCheck(f"the files name different months ({listing}); validate one month at a time")
    return next(iter(named.values())), "the file name"


def cmd_validate(args: argparse.Namespace) -> int:
    use_case = load_use_case(args.use_case)
    paths = input_files(args.path)
    chosen, origin = validation_month(paths, args.month)
    from mlplatform.adapters.lake import Lake  # after the checks: bad input answers at once
    from mlplatform.stages import contracts

    lake = Lake(args.lake)
    history = contracts.history_row_counts(lake, use_case, chosen)
    rule_history = contracts.history_rule_shares(lake, use_case, chosen)
    files = [contracts.RawFile(str(p), p.read_bytes(), use_case.data.taxi_types) for p in paths]
    evaluation = contracts.evaluate_files(files, use_case, chosen, history=history, rule_history=rule_history)
    evaluation.docs_rendered()
    if args.json:
        result = {"use_case": use_case.name, "month": chosen, "source": evaluation.source}
        output.print_json({**result, "contract": evaluation.contract()})
    else:
        _print_evaluation(evaluation, origin)
    return PASSED if evaluation.success else FAILED_CHECK


def _print_evaluation(ev: Any, origin: str) -> None:
    """The verdict, its source, breaches and notices, and a table of the quarantine share per rule."""
    console = output.stdout()
    head, *details = ev.summary().splitlines()
    console.print(f"[bold]{head}[/bold]  (month from {origin})")
    for line in details:
        if not line.lstrip().startswith("rows "):
            console.print(line, soft_wrap=True)
    if ev.bad_rows:
        rows = [[name, n, f"{n / ev.rows:.2%}"] for name, n in ev.rule_counts.items() if n]
        console.print(output.rows_table("rows breaking row rules", ("rule", "rows", "share"), rows))


def cmd_lake(args: argparse.Namespace) -> int:
    from mlplatform.adapters.lake import Lake, inventory

    lake = Lake(args.lake)
    zones = inventory(lake)
    if args.json:
        output.print_json({z: [e.__dict__ for e in entries] for z, entries in zones.items()})
        return PASSED
    rows: list[list[Any]] = []
    for zone, entries in zones.items():
        rows.append([zone, f"{len(entries):,} objects", round(sum(e.size for e in entries) / 1e6, 1)])
        rows += [["", entry.path, round(entry.size / 1e6, 1)] for entry in entries[: args.limit]]
        if len(entries) > args.limit:
            rows.append(["", f"... {len(entries) - args.limit} more", ""])
    output.stdout().print(output.rows_table(f"lake {lake.root_uri}", ("zone", "objects", "MB"), rows))
    return PASSED


def cmd_contracts_sync(args: argparse.Namespace) -> int:
    from mlplatform.stages import contracts

    root = contracts.sync_context(args.root)
    print(f"synced the Great Expectations context at {root}")
    return PASSED


def cmd_contracts_report(args: argparse.Namespace) -> int:
    """Each month's quarantine share per row rule and fare reading, from TLC files or the lake."""
    if (args.folder is None) == (args.lake is None):
        raise CannotCheck("give either a folder of TLC files or --lake [URI], not both and not neither")
    folder = input_folder(args.folder) if args.folder is not None else None
    use_case = load_use_case(args.use_case or _widest_use_case())
    from mlplatform.stages import contracts

    if folder is not None:
        with output.working(args, f"validating the TLC files in {folder} in memory"):
            trend = contracts.folder_trend(folder, use_case)
        if not trend:
            kinds = " or ".join(use_case.data.taxi_types)
            raise CannotCheck(f"{folder} holds no {kinds} TLC file (<type>_tripdata_YYYY-MM.parquet)")
        origin = str(folder)
    else:
        from mlplatform.adapters.lake import Lake

        lake = Lake(None if args.lake is True else args.lake)
        trend = contracts.lake_trend(lake, use_case)
        origin = lake.root_uri
    output.show(
        args, [dataclasses.asdict(t) for t in trend], lambda: _trend_table(trend, use_case.name, origin)
    )
    return PASSED


def _widest_use_case() -> str:
    """The use case that reads the most taxi types (the first such by name)."""
    from mlplatform.core import spec

    names = spec.use_case_names()
    return max(names, key=lambda n: (len(spec.load_spec(n).data.taxi_types), -names.index(n)))


def _trend_table(trend: Sequence[Any], use_case: str, origin: str) -> Any:
    """One column per month, one row per rule (and fare reading) that hit anything; ▲ marks a jump."""
    rules = [r for r in dict.fromkeys(t.rule for t in trend) if any(t.count for t in trend if t.rule == r)]
    months = sorted({t.month for t in trend})
    cell = {(t.month, t.rule): t for t in trend}
    first = {t.month: t for t in reversed(trend)}
    rows: list[list[Any]] = [
        ["rows", *(first[m].rows for m in months)],
        ["verdict", *(first[m].severity for m in months)],
    ]
    for rule in rules:
        found = [cell.get((m, rule)) for m in months]
        rows.append([rule, *(f"{t.share:.2%}{' ▲' if t.jump else ''}" if t else "-" for t in found)])
    title = (
        f"{use_case}: share of each month's rows per row rule ({origin}; ▲ a jump above its trailing median)"
    )
    return output.rows_table(title, ("rule", *months), rows)


def register(sub: Subparsers) -> None:
    """Add the data commands to ``sub``."""
    _register_generate(sub)

    p = sub.add_parser("ingest", help="land a real (or any) TLC parquet file in the lake's raw zone")
    p.description = "Copy a TLC trip-record parquet file into the raw zone for a use case and month."
    p.add_argument("path", help="TLC parquet file (green or yellow, any year)")
    p.add_argument(
        "--use-case", required=True, help=use_case_help("use case whose dataset the file belongs to")
    )
    p.add_argument("--month", type=month, required=True, help="month the file covers, YYYY-MM")
    p.add_argument("--lake", help=LAKE_HELP)
    p.add_argument("--replace", action="store_true", help="supersede a different file already there")
    add_output_options(p)
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("validate", help="check a TLC file against a use case's data contract")
    p.description = (
        "Run the use case's Great Expectations contract on a raw TLC month (nothing is written to the "
        "lake; Data Docs are rebuilt) and print the verdict with the quarantine share per rule. The "
        "month is --month, else the one TLC's file name says (<type>_tripdata_YYYY-MM.parquet, read "
        "from its end); pickups mostly in another month are reported as a month mismatch. "
        "Exit 0: the contract holds (bad rows would be quarantined), 1: breach, 2: could not check "
        "(a path missing, a folder, unreadable or not a regular file; no month)."
    )
    p.add_argument(
        "path", nargs="+", help="raw TLC parquet file(s) of one month (e.g. its green and yellow files)"
    )
    p.add_argument("--use-case", required=True, help=use_case_help("use case whose contract applies"))
    p.add_argument("--month", type=month, help="month the file covers (default: from the file name)")
    p.add_argument("--lake", help=LAKE_HELP + "; its validated months are the volume and rule-share history")
    add_output_options(p)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("lake", help="list what the lake holds, by zone")
    p.description = "List the lake's objects by zone (raw, validated, quarantine, ...)."
    p.add_argument("--lake", help=LAKE_HELP)
    p.add_argument("--limit", type=int, default=12, help="objects listed per zone (default 12)")
    add_output_options(p)
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
    report = actions.add_parser("report", help="the quarantine share of each row rule, month by month")
    report.description = (
        "Print a month x rule table of quarantine shares (fare readings as fare_reading.<name>), "
        "with jumps above a rule's trailing median marked. From a folder of TLC files "
        "(<type>_tripdata_YYYY-MM.parquet, each month validated in memory by the row rules, nothing "
        "written) or from the contract outcomes stored in the lake (--lake). Exit 0, or 2: nothing "
        "to report (no such folder, no TLC file in it)."
    )
    report.add_argument("folder", nargs="?", help="folder of TLC parquet files")
    report.add_argument(
        "--lake", nargs="?", const=True, help="read the stored contract outcomes; " + LAKE_HELP
    )
    report.add_argument(
        "--use-case",
        help=use_case_help("use case whose contract applies (default: the one reading most taxi types)"),
    )
    add_output_options(report)
    report.set_defaults(func=cmd_contracts_report)


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
    p.add_argument(
        "--clean",
        action="store_true",
        help="leave out TLC's pathologies (zero distances, refunds, meters left running, trips begun "
        "the month before, itemisation quirks), drawn by default at real months' shares: noise-floor studies",
    )
    p.add_argument("--out", help="write to this file or folder instead of the lake's raw zone")
    p.add_argument("--lake", help=LAKE_HELP)
    p.add_argument("--dataset", default="nyc_tlc_yellow", help="raw dataset folder in the lake")
    p.add_argument("--replace", action="store_true", help="supersede a different file already in the lake")
    add_output_options(p, progress=True)
    p.set_defaults(func=cmd_generate)
