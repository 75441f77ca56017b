"""The ``mlplatform`` commands: each is a ``cmd_*`` function of the parsed arguments.

- data: ``generate``, ``ingest``, ``validate``, ``lake``, ``contracts`` (generate and land
  TLC months, check them against contracts, list the lake);
- models: ``spec``, ``score``, ``train``, ``promote``, ``rollback``, ``history`` (specs,
  training, promotion, rollback, the alias history and scoring files);
- operations: ``monitor``, ``alerts``, ``config``, ``serve`` (monitor a window of production,
  deliver queued alerts, show the settings, run the serving app).

:func:`register` adds them all to the command line in that order. ``completion`` is
generated from the whole parser (:mod:`mlplatform.cli.arguments`); ``run`` and ``stop``
drive the embedded platform and live with it in :mod:`mlplatform.dev.commands`, which is
not installed with the wheel.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
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
    input_uri,
    instant,
    load_use_case,
    month,
    use_case_help,
)


def register(sub: Subparsers) -> None:
    """Add every command of this module to ``sub``: data, then models, then operations."""
    _register_data(sub)
    _register_models(sub)
    _register_operations(sub)


# -- data: generate and land TLC months, check them against contracts, list the lake ----------


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
        result = {"use_case": use_case.name, "month": chosen, "source": evaluation.source.to_dict()}
        output.print_json({**result, "contract": evaluation.contract().to_dict()})
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


def _register_data(sub: Subparsers) -> None:
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
    p.add_argument("--dataset", default="nyc_tlc", help="raw dataset folder in the lake")
    p.add_argument("--replace", action="store_true", help="supersede a different file already in the lake")
    add_output_options(p, progress=True)
    p.set_defaults(func=cmd_generate)


# -- models: specs, training, promotion, rollback, the alias history, scoring files ---------


def cmd_spec(args: argparse.Namespace) -> int:
    from mlplatform.core import spec

    try:
        if args.file:
            loaded = [spec.load_spec_file(input_file(f)) for f in args.file]
        else:
            loaded = [spec.load_spec(n) for n in (args.name or spec.use_case_names())]
    except spec.SpecError as exc:
        raise CannotCheck(str(exc)) from None
    # Where each use case serves in each environment: the one resolver the DAGs call.
    targets = {u.name: {env: spec.serving_target(u, env) for env in ("local", "aws")} for u in loaded}
    if args.json:
        for use_case in loaded:
            shown = use_case.model_dump(mode="json", by_alias=True)
            output.print_json({**shown, "serving_targets": targets[use_case.name]})
        return PASSED
    columns = (
        "use case",
        "task",
        "level",
        "data",
        "model family",
        "families",
        "serving",
        "on local",
        "on aws",
    )
    rows = [
        [
            u.name,
            u.task,
            u.maturity_level,
            "+".join(u.data.taxi_types),
            u.model.family,
            ", ".join(spec.model_families(u)),
            u.serving.mode,
            targets[u.name]["local"],
            targets[u.name]["aws"],
        ]
        for u in loaded
    ]
    output.stdout().print(output.rows_table("use cases", columns, rows))
    return PASSED


def cmd_score(args: argparse.Namespace) -> int:
    input_uri(args.input)  # before the heavy imports: bad input answers at once
    from mlplatform.adapters import registry
    from mlplatform.stages import scoring

    try:
        with output.working(args, f"scoring {args.input} with {args.model} ..."):
            summary = scoring.score_file(args.model, args.input, args.output, args.batch_rows)
    except registry.ModelNotFound as exc:
        raise CannotCheck(str(exc)) from None
    output.show(args, summary, lambda: output.record_table(f"scored {args.input}", summary))
    return PASSED


def cmd_train(args: argparse.Namespace) -> int:
    use_case = load_use_case(args.use_case)
    train, valid = input_files(args.train), input_files(args.valid)  # before the heavy imports
    from mlplatform.stages import training

    with output.working(args, f"training {use_case.name} on {len(train)} file(s) ..."):
        result = training.train_files(
            use_case,
            [str(p) for p in train],
            [str(p) for p in valid],
            family=args.family,
            track=args.track,
            reason=args.reason,
        )
    shown = result.to_dict()
    output.show(args, shown, lambda: output.record_table(f"{use_case.name}: trained", shown))
    return PASSED


def cmd_promote(args: argparse.Namespace) -> int:
    from mlplatform.adapters import registry
    from mlplatform.adapters.lake import Lake
    from mlplatform.core.records import Approval
    from mlplatform.stages import promotion

    use_case = load_use_case(args.use_case)
    approval = Approval(True, registry.who()) if args.approve else None
    version = None if args.version is None else str(args.version)
    try:
        result = promotion.evaluate_and_decide(Lake(args.lake), use_case, version, approval).to_dict()
    except registry.PromotionError as exc:
        raise CannotCheck(str(exc)) from None
    title = f"{use_case.name} version {result['version']}: {result['outcome']}"
    output.show(args, result, lambda: output.record_table(title, result))
    return FAILED_CHECK if result["outcome"] == "rejected" else PASSED


def cmd_rollback(args: argparse.Namespace) -> int:
    from mlplatform.adapters import registry
    from mlplatform.adapters.lake import Lake
    from mlplatform.stages import promotion

    use_case = load_use_case(args.use_case)
    try:
        result = promotion.rollback(
            use_case,
            args.reason,
            {"requested_by": "command line"},
            by=registry.who(),
            run_id=f"cli:{registry.who()}",
            force=args.force,
            history=Lake(args.lake),
        )
    except registry.PromotionError as exc:  # refused (no previous champion): a failed check, not bad input
        print(f"error: {exc}", file=sys.stderr)
        return FAILED_CHECK
    output.show(args, result, lambda: output.record_table(f"{use_case.name}: rolled back", result))
    return PASSED


def _event_row(event: Any, until: str | None) -> list[Any]:
    evidence = event.evidence or {}
    live = evidence.get("live")
    if not isinstance(live, dict):
        live = {}
    # The gates' interval, or the live decision's (a move by the monitor on live labels).
    interval = evidence.get("improvement") or live.get("interval")
    shown = "-"
    if isinstance(interval, dict) and {"point", "low", "high"} <= set(interval):
        shown = f"{interval['point']:+.2%} [{interval['low']:+.2%}, {interval['high']:+.2%}]"
        if live.get("trips"):
            shown += f" on {int(live['trips']):,} live trips"
    moved = f"{event.from_version or '-'} -> {event.version or '-'}"
    return [event.at[:19], event.alias, event.action, moved, event.by, shown, event.reason, until or ""]


def cmd_history(args: argparse.Namespace) -> int:
    from mlplatform.adapters import registry
    from mlplatform.adapters.lake import Lake

    use_case = load_use_case(args.use_case)
    moment = instant(args.at) if args.at else None  # a bad time answers before reading
    found = registry.alias_events(use_case.model_name, Lake(args.lake))
    if moment is None:
        listed = [{**e.to_dict(), "until": registry.until(found, e)} for e in found]
        columns = ("at (UTC)", "alias", "action", "from -> to", "by", "improvement", "why", "until")
        output.show(
            args,
            listed,
            lambda: output.rows_table(
                f"{use_case.name}: alias history",
                columns,
                [_event_row(e, registry.until(found, e)) for e in found],
            ),
        )
        return PASSED
    event = registry.serving_at(found, moment)
    if event is None:
        answer: dict[str, Any] = {
            "at": moment.isoformat(),
            "champion": None,
            "reason": "no champion yet then",
        }
    else:
        answer = {
            "at": moment.isoformat(),
            "champion": event.version,
            "since": event.at,
            "until": registry.until(found, event),
            "moved_by": event.by,
            "action": event.action,
            "run_id": event.run_id,
            "reason": event.reason,
            "evidence": dict(event.evidence),
            "gates": [f"{g.name}: {'passed' if g.passed else 'FAILED'}: {g.detail}" for g in event.gates],
        }
    title = f"{use_case.name}: champion at {moment.isoformat()}"
    output.show(args, answer, lambda: output.record_table(title, answer))
    return PASSED


def _register_models(sub: Subparsers) -> None:
    p = sub.add_parser("spec", help="validate and show use-case specs")
    p.description = "Validate use-case specs and print a summary (or the full spec with --json)."
    p.add_argument("name", nargs="*", help=use_case_help("use case names (default: all)"))
    p.add_argument("--file", nargs="+", help="validate these spec files instead")
    add_output_options(p)
    p.set_defaults(func=cmd_spec)

    p = sub.add_parser("score", help="score a TLC or normalised trip file with a registered model")
    p.description = (
        "Score a parquet file of trips (a TLC file of any year, or normalised trips) with an MLflow "
        "model, in bounded memory; writes one prediction per row and prints a summary."
    )
    p.add_argument("--model", required=True, help="MLflow model URI (models:/<name>@champion, a path...)")
    p.add_argument("--input", required=True, help="parquet file to score (path or URI)")
    p.add_argument("--output", required=True, help="predictions parquet file to write (path or URI)")
    p.add_argument("--batch-rows", type=int, default=250_000, help="rows per record batch (default 250000)")
    add_output_options(p, progress=True)
    p.set_defaults(func=cmd_score)

    _register_train(sub)

    p = sub.add_parser("promote", help="assess a model version against the gates and decide")
    p.description = (
        "Assess a version (default: the challenger) against the spec's promotion gates on the same "
        "held-out data as the champion, record the decision and post it to Slack. With --approve, "
        "promote it if every gate passes (the manual path of maturity levels 2 and 3). Exits 1 if rejected."
    )
    p.add_argument(
        "--use-case", required=True, help=use_case_help("use case whose registered model to promote")
    )
    p.add_argument("--version", type=int, help="model version (default: the challenger)")
    p.add_argument("--approve", action="store_true", help="you approve: promote if the gates pass")
    p.add_argument("--lake", help=LAKE_HELP)
    add_output_options(p)
    p.set_defaults(func=cmd_promote)

    p = sub.add_parser("rollback", help="put champion back on previous_champion")
    p.description = (
        "Move the champion alias back to previous_champion in one step (no gates). Exits 1 if refused."
    )
    p.add_argument(
        "--use-case", required=True, help=use_case_help("use case whose registered model to roll back")
    )
    p.add_argument(
        "--reason",
        default="rolled back by hand",
        help="why, recorded in the alias history (default: by hand)",
    )
    p.add_argument(
        "--force", action="store_true", help="roll back even within the cooldown after the last rollback"
    )
    p.add_argument("--lake", help=LAKE_HELP)
    add_output_options(p)
    p.set_defaults(func=cmd_rollback)

    p = sub.add_parser("history", help="which model version served when, and why")
    p.description = (
        "The alias history of a use case's model, from the lake: every move of champion, challenger and "
        "previous_champion with who moved it, why and on what evidence. With --at, the champion that "
        "served at that time and the decision that put it there."
    )
    p.add_argument("use_case", metavar="USE_CASE", help=use_case_help("use case whose history to show"))
    p.add_argument("--at", help="a date or time (ISO 8601, UTC unless it says otherwise)")
    p.add_argument("--lake", help=LAKE_HELP)
    add_output_options(p)
    p.set_defaults(func=cmd_history)


def _families_help() -> str:
    """The model families each use case's model module offers, for ``train --family``."""
    from mlplatform.core import spec

    try:
        offered = {u.name: spec.model_families(u) for u in spec.load_all()}
    except spec.SpecError:
        return "model family (default: the spec's model.family)"
    listing = "; ".join(f"{name}: {', '.join(families)}" for name, families in offered.items())
    return f"model family (default: the spec's model.family); {listing}"


def _register_train(sub: Subparsers) -> None:
    p = sub.add_parser("train", help="train a use case's model on TLC files and print its metrics")
    p.description = (
        "Train the use case's baseline and model (with its bounded search) on raw TLC files of any "
        "year, validate on other files, and print the metrics. Same code as the train DAG."
    )
    p.add_argument(
        "--use-case", required=True, help=use_case_help("use case whose spec defines data, features, model")
    )
    p.add_argument("--train", nargs="+", required=True, metavar="PATH", help="TLC parquet files to train on")
    p.add_argument(
        "--valid", nargs="+", required=True, metavar="PATH", help="TLC parquet files to validate on"
    )
    p.add_argument("--family", help=_families_help())
    p.add_argument("--track", action="store_true", help="also log the run to MLflow (MLFLOW_TRACKING_URI)")
    p.add_argument("--reason", default="", help="why, recorded with a tracked run")
    add_output_options(p, progress=True)
    p.set_defaults(func=cmd_train)


# -- operations: monitor a window, deliver queued alerts, run the serving app, settings -----


def cmd_monitor(args: argparse.Namespace) -> int:
    from mlplatform.adapters.lake import Lake
    from mlplatform.stages import monitoring

    use_case = load_use_case(args.use_case)
    record = monitoring.monitor(Lake(args.lake), use_case, args.window)
    if args.json:
        output.print_json(record.to_dict())
    else:
        print(monitoring.summary(record))
    return FAILED_CHECK if record.model_status == "breach" else PASSED


def cmd_alerts(args: argparse.Namespace) -> int:
    """``flush``: deliver the queued alerts; ``list``: show what is queued and what Slack refused.

    Exits 1 when alerts remain queued (Slack unreachable) or were refused (4xx).
    """
    from mlplatform.adapters import alerts
    from mlplatform.adapters.lake import Lake

    lake = Lake(args.lake)
    if args.action == "flush":
        report = alerts.flush(lake)
        counts = [[state, len(ids)] for state, ids in report.to_dict().items()]
        output.show(
            args, report.to_dict(), lambda: output.rows_table("alerts flushed", ("", "alerts"), counts)
        )
        return FAILED_CHECK if report.queued or report.failed else PASSED
    found = [
        {**e.to_dict(), "state": state} for state in ("outbox", "failed") for e in alerts.queued(lake, state)
    ]
    rows = [
        [
            e["state"],
            e["id"],
            e["alert"]["title"],
            e.get("attempts", 0),
            e.get("reason") or e.get("last_error", ""),
        ]
        for e in found
    ]
    columns = ("state", "id", "title", "attempts", "why")
    output.show(args, found, lambda: output.rows_table("alerts not delivered", columns, rows))
    return FAILED_CHECK if found else PASSED


def cmd_config(args: argparse.Namespace) -> int:
    """Print every setting's effective value (secrets masked) and where it came from."""
    try:  # imported here: the settings module reads the environment when it loads
        from mlplatform.adapters.settings import effective_settings
    except ImportError as exc:
        raise CannotCheck(f"this installation cannot list its settings: {exc}") from None
    found = effective_settings()
    records = [{"name": s.name, "value": s.value, "source": s.source} for s in found]
    rows = [[r["name"], r["value"], r["source"]] for r in records]
    output.show(
        args, records, lambda: output.rows_table("effective settings", ("name", "value", "source"), rows)
    )
    return PASSED


def serving_argv(args: argparse.Namespace) -> list[str]:
    """The ``python -m mlplatform.serving`` arguments that ``mlplatform serve`` was given."""
    argv = ["serve"] if args.sagemaker else []
    for flag, value in (
        ("--use-case", args.use_case),
        ("--host", args.host),
        ("--port", args.port),
        ("--poll-seconds", args.poll_seconds),
    ):
        if value is not None:
            argv += [flag, str(value)]
    return [*argv, "--access-log"] if args.access_log else argv


def cmd_serve(args: argparse.Namespace) -> int:
    """Become ``python -m mlplatform.serving`` (its ``main``) with the same options.

    The serving app is a sibling face of the command line, not below it (the layers in
    ``pyproject.toml``), so it is started as its own program rather than imported.
    """
    command = [sys.executable, "-m", "mlplatform.serving", *serving_argv(args)]
    os.execv(command[0], command)
    return PASSED  # not reached: the process is the serving app now


def _register_operations(sub: Subparsers) -> None:
    p = sub.add_parser("monitor", help="measure one window of production against the thresholds")
    p.description = (
        "Compute a window's performance on ground truth, drift, data quality and serving health, "
        "write its record, history rows, drift report and MLflow run, and print it. Exits 1 on a "
        "breach. Alerts and retraining are the monitor DAG's."
    )
    p.add_argument("--use-case", required=True, help=use_case_help("use case to monitor"))
    p.add_argument("--window", type=month, required=True, help="month to evaluate, YYYY-MM")
    p.add_argument("--lake", help=LAKE_HELP)
    add_output_options(p)
    p.set_defaults(func=cmd_monitor)

    p = sub.add_parser("alerts", help="deliver the alerts queued in the lake's outbox, or list them")
    p.description = (
        "Alerts are queued in the lake (alerts/outbox/) before they are sent to Slack. `flush` "
        "delivers every queued alert once, oldest first (delivered ones move to alerts/sent/, "
        "ones Slack refuses with a 4xx to alerts/failed/ with the reason); `list` shows the queued "
        "and refused ones. Exits 1 when some remain undelivered."
    )
    p.add_argument("action", choices=("flush", "list"), help="flush: deliver what is queued; list: show it")
    p.add_argument("--lake", help=LAKE_HELP)
    add_output_options(p)
    p.set_defaults(func=cmd_alerts)

    p = sub.add_parser("config", help="show the effective settings and where each came from")
    p.description = (
        "Print every setting the platform reads, its effective value (secrets masked) and its "
        "source (environment, .env, SSM parameter, default)."
    )
    add_output_options(p)
    p.set_defaults(func=cmd_config)

    p = sub.add_parser("serve", help="run the real-time serving app (the champion behind HTTP)")
    p.description = (
        "Run the serving app in the foreground, as `python -m mlplatform.serving` does: the "
        "registry's champion (and challenger) of a use case behind /predict, /health and /metrics."
    )
    p.add_argument(
        "--use-case", help=use_case_help("use case (default: MLPLATFORM_USE_CASE, else the reference one)")
    )
    p.add_argument("--host", help="address to listen on (default: HOST, else the serving app's default)")
    p.add_argument("--port", type=int, help="port (default: PORT, else 8000; 8080 with --sagemaker)")
    p.add_argument("--poll-seconds", type=float, help="how often to check the registry aliases (default 30)")
    p.add_argument("--access-log", action="store_true", help="log every request (off: /metrics counts them)")
    p.add_argument(
        "--sagemaker", action="store_true", help="listen as a SageMaker container does (port 8080)"
    )
    p.set_defaults(func=cmd_serve)
