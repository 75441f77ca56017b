"""Model commands: specs, training, promotion, rollback and scoring files."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mlplatform.cli.arguments import LAKE_HELP, Subparsers


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
    from mlplatform.adapters import registry
    from mlplatform.stages import scoring

    try:
        summary = scoring.score_file(args.model, args.input, args.output, args.batch_rows)
    except registry.ModelNotFound as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary))
    return 0


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
    from mlplatform.stages import promotion

    try:
        use_case = spec.load_spec(args.use_case)
        approval = {"approved": True, "by": registry.who()} if args.approve else None
        version = None if args.version is None else str(args.version)
        result = promotion.evaluate_and_decide(Lake(args.lake), use_case, version, approval)
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


def register(sub: Subparsers) -> None:
    """Add the model commands to ``sub``."""
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

    _register_train(sub)

    p = sub.add_parser("promote", help="assess a model version against the gates and decide")
    p.description = (
        "Assess a version (default: the challenger) against the spec's promotion gates on the same "
        "held-out data as the champion, record the decision and post it to Slack. With --approve, "
        "promote it if every gate passes (the manual path of maturity levels 2 and 3). Exits 1 if rejected."
    )
    p.add_argument("--use-case", required=True, help="use case whose registered model to promote")
    p.add_argument("--version", type=int, help="model version (default: the challenger)")
    p.add_argument("--approve", action="store_true", help="you approve: promote if the gates pass")
    p.add_argument("--lake", help=LAKE_HELP)
    p.set_defaults(func=cmd_promote)

    p = sub.add_parser("rollback", help="put champion back on previous_champion")
    p.description = "Move the champion alias back to previous_champion in one step (no gates)."
    p.add_argument("--use-case", required=True, help="use case whose registered model to roll back")
    p.set_defaults(func=cmd_rollback)


def _register_train(sub: Subparsers) -> None:
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
