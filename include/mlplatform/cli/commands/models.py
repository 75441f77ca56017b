"""Model commands: specs, training, promotion, rollback, the alias history and scoring files."""

from __future__ import annotations

import argparse
import sys
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
    input_uri,
    load_use_case,
    use_case_help,
)


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
    output.show(args, result, lambda: output.record_table(f"{use_case.name}: trained", result))
    return PASSED


def cmd_promote(args: argparse.Namespace) -> int:
    from mlplatform.adapters import registry
    from mlplatform.adapters.lake import Lake
    from mlplatform.stages import promotion

    use_case = load_use_case(args.use_case)
    approval = {"approved": True, "by": registry.who()} if args.approve else None
    version = None if args.version is None else str(args.version)
    try:
        result = promotion.evaluate_and_decide(Lake(args.lake), use_case, version, approval)
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
    interval = (event.evidence or {}).get("improvement")
    shown = "-"
    if isinstance(interval, dict) and {"point", "low", "high"} <= set(interval):
        shown = f"{interval['point']:+.2%} [{interval['low']:+.2%}, {interval['high']:+.2%}]"
    moved = f"{event.from_version or '-'} -> {event.version or '-'}"
    return [event.at[:19], event.alias, event.action, moved, event.by, shown, event.reason, until or ""]


def cmd_history(args: argparse.Namespace) -> int:
    from mlplatform.adapters.lake import Lake
    from mlplatform.stages.promotion import history

    use_case = load_use_case(args.use_case)
    moment = history.parse_time(args.at) if args.at else None  # a bad time answers before reading
    found = history.events(use_case, Lake(args.lake))
    if moment is None:
        listed = [{**e.to_dict(), "until": history.until(found, e)} for e in found]
        columns = ("at (UTC)", "alias", "action", "from -> to", "by", "improvement", "why", "until")
        output.show(
            args,
            listed,
            lambda: output.rows_table(
                f"{use_case.name}: alias history",
                columns,
                [_event_row(e, history.until(found, e)) for e in found],
            ),
        )
        return PASSED
    event = history.serving_at(found, moment)
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
            "until": history.until(found, event),
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


def register(sub: Subparsers) -> None:
    """Add the model commands to ``sub``."""
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
