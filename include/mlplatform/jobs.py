"""The heavy steps as SageMaker jobs: ``python -m mlplatform.jobs train|validate``.

On AWS the train and validate DAGs run these in the platform image, as a SageMaker Training
job and a Processing job, so a million training rows or a 3M-row month never load into an
Airflow worker; locally the same stage functions run in the task itself. The job follows
SageMaker's container contract below a root (``/opt/ml`` in SageMaker; ``--root`` or
``MLPLATFORM_JOB_ROOT`` elsewhere, so tests lay a job out in a folder):

``train`` (Training job)
    reads the assembled sets from the channels ``input/data/train/``,
    ``input/data/validation/`` (one parquet file each) and ``input/data/lineage/lineage.json``
    (what :func:`mlplatform.stages.training.assemble_training_set` wrote beside them), and
    ``input/config/hyperparameters.json`` (every value a string: ``use_case``, ``family``,
    ``reason``, ``airflow_run_id``, ``tags`` as JSON). Fits and logs the MLflow run exactly as
    the local task does, then writes ``model/trained.json`` (run id, model URI, metrics) and the
    logged model's files to ``model/model/``; SageMaker uploads ``model/`` as ``model.tar.gz``.
``validate --use-case NAME --month YYYY-MM`` (Processing job)
    validates the month in the lake (``MLPLATFORM_LAKE_URI``) with the contracts stage's
    public entry point and writes the outcome to ``processing/output/outcome.json``, which
    SageMaker uploads to the job's output prefix. A breach is an outcome, not a failure: the
    DAG reads it, alerts and fails the run.

A job that fails writes the reason to ``output/failure`` (a Training job's ``FailureReason``)
and ``output/message`` (a Processing job's ``ExitMessage``), prints the traceback, and exits 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlplatform.core.records import TrainedRun
    from mlplatform.stages.contracts import ContractOutcome

ROOT_VARIABLE = "MLPLATFORM_JOB_ROOT"
SAGEMAKER_ROOT = "/opt/ml"
FAILURE_LIMIT = 1024  # SageMaker keeps the first KB of a failure reason


class JobInputMissing(ValueError):
    """The job directory lacks an input the job needs; the message names the path."""


def train(root: Path) -> TrainedRun:
    """The Training job: fit and log on the channels' sets, write the model directory."""
    import mlflow

    from mlplatform.adapters import settings
    from mlplatform.adapters.lake import Lake
    from mlplatform.core.spec import load_spec
    from mlplatform.stages import training

    hyperparameters = _hyperparameters(root / "input" / "config" / "hyperparameters.json")
    if not hyperparameters.get("use_case"):
        raise JobInputMissing("hyperparameters.json has no use_case: the train job needs the use case's name")
    use_case = load_spec(hyperparameters["use_case"])
    data = root / "input" / "data"
    train, validation = _one_parquet(data / "train"), _one_parquet(data / "validation")
    assembled = dataclasses.replace(
        training.TrainingSet.from_dict(_json_object(data / "lineage" / "lineage.json")),
        train_uri=train.as_uri(),
        validation_uri=validation.as_uri(),
    )
    trained = training.fit_and_log(
        Lake(data.as_uri()),
        use_case,
        assembled,
        family=hyperparameters.get("family") or None,
        reason=hyperparameters.get("reason", ""),
        airflow_run_id=hyperparameters.get("airflow_run_id") or None,
        extra_tags=json.loads(hyperparameters.get("tags") or "{}"),
    )
    model = root / "model"
    model.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.tracking_uri())
    mlflow.artifacts.download_artifacts(artifact_uri=trained.model_uri, dst_path=str(model / "model"))
    (model / "trained.json").write_text(json.dumps(trained.to_dict(), indent=2))
    return trained


def validate(root: Path, use_case_name: str, month: str) -> ContractOutcome:
    """The Processing job: the month's contract, the outcome written for the DAG to read."""
    from mlplatform.adapters.lake import Lake
    from mlplatform.core import months
    from mlplatform.core.spec import load_spec
    from mlplatform.stages import contracts

    use_case = load_spec(use_case_name)
    outcome = contracts.validate_month(Lake(), use_case, months.check(month, "--month"))
    output = root / "processing" / "output"
    output.mkdir(parents=True, exist_ok=True)
    (output / "outcome.json").write_text(json.dumps(outcome.to_dict(), indent=2, default=str))
    print(outcome.summary)
    return outcome


def _hyperparameters(path: Path) -> dict[str, str]:
    """The job's hyperparameters: SageMaker writes every value as a string."""
    found = _json_object(path)
    if not all(isinstance(value, str) for value in found.values()):
        raise JobInputMissing(f"{path} holds values that are not strings: SageMaker writes strings")
    return {key: str(value) for key, value in found.items()}


def _json_object(path: Path) -> dict[str, Any]:
    """The JSON object SageMaker wrote from the job's request (its keys are strings)."""
    if not path.is_file():
        raise JobInputMissing(f"{path} is missing: SageMaker writes it from the job's request")
    found = json.loads(path.read_text())
    if not isinstance(found, dict):
        raise JobInputMissing(f"{path} holds {type(found).__name__}, not a JSON object")
    return found


def _one_parquet(channel: Path) -> Path:
    files = sorted(channel.rglob("*.parquet")) if channel.is_dir() else []
    if len(files) != 1:
        raise JobInputMissing(
            f"channel {channel.name} ({channel}) holds {len(files)} parquet files, not one: point the "
            "channel at the set the train DAG's assemble step wrote"
        )
    return files[0]


def write_failure(root: Path, reason: str) -> None:
    """Where SageMaker reads why a job failed (training: ``failure``; processing: ``message``)."""
    output = root / "output"
    output.mkdir(parents=True, exist_ok=True)
    text = reason.encode("utf-8", "replace")[:FAILURE_LIMIT].decode("utf-8", "ignore")
    for name in ("failure", "message"):
        (output / name).write_text(text, encoding="utf-8")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m mlplatform.jobs", description=__doc__.split("\n\n")[0])
    p.add_argument("--root", help=f"job directory (default: ${ROOT_VARIABLE}, else {SAGEMAKER_ROOT})")
    sub = p.add_subparsers(dest="job", required=True)
    sub.add_parser("train", help="the Training job: fit and log on the job's channels")
    v = sub.add_parser("validate", help="the Processing job: a month's data contract")
    v.add_argument("--use-case", required=True)
    v.add_argument("--month", required=True, help="YYYY-MM")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    root = Path(args.root or os.environ.get(ROOT_VARIABLE) or SAGEMAKER_ROOT)
    try:
        result = train(root) if args.job == "train" else validate(root, args.use_case, args.month)
    except Exception as exc:
        traceback.print_exc()
        write_failure(root, f"{args.job} job failed: {type(exc).__name__}: {exc}")
        return 1
    shown = result.to_dict()
    print(json.dumps({"job": args.job, **{k: v for k, v in shown.items() if not isinstance(v, dict)}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
