"""Training as a job of its own: on raw TLC files outside Airflow (``mlplatform train``), or
as a SageMaker Training job (the request the train DAG sends, and what it brings back).

:func:`train_files` trains on raw TLC files and validates on others with the code the train
DAG runs, and returns a :class:`TrainingSummary`, what the command line prints.

On AWS the train DAG assembles the training set in the lake as it does locally, then hands
the fit to a Training job on the platform image (``python -m mlplatform.jobs train``): the
assembled ``train``, ``validation`` and ``lineage`` files are its channels, the DAG's knobs
its hyperparameters, and the job logs the MLflow run exactly as the local task does. What
the job leaves in ``/opt/ml/model`` comes back as ``model.tar.gz`` beside the assembled set,
and :func:`read_job_output` reads the :class:`~mlplatform.core.records.TrainedRun` from it
for registration.
"""

from __future__ import annotations

import dataclasses
import io
import json
import tarfile
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from mlplatform.adapters import sagemaker
from mlplatform.adapters.lake import Lake
from mlplatform.core.records import Record, TrainedRun
from mlplatform.core.spec import Hyperparameter, UseCase
from mlplatform.stages.training.dataset import (
    MAX_VALIDATION_ROWS,
    TrainingInput,
    TrainingSet,
    read_tlc_files,
    report_range,
    sample,
)
from mlplatform.stages.training.fitting import ModelEvaluation, SearchTrial, train_frames
from mlplatform.stages.training.tracking import log_run

if TYPE_CHECKING:
    from mypy_boto3_sagemaker.type_defs import CreateTrainingJobRequestTypeDef

TRAINED_FILE = "trained.json"  # written to /opt/ml/model by the job


@dataclass(frozen=True)
class TrainingSummary(Record):
    """An account of a training on raw files (what ``mlplatform train`` prints): the family and
    the parameters chosen, the fit's seconds, the validation metrics overall and per slice, the
    baseline's overall metrics, every search trial, the rows trained and validated on, the
    labelled rows ``target.range`` left out (per role) and the files with their SHA-256.
    ``run_id`` and ``model_uri`` are set (and written) only when the run was tracked.
    """

    omitted_when_none: ClassVar[tuple[str, ...]] = ("run_id", "model_uri")

    family: str
    params: dict[str, Hyperparameter]
    fit_seconds: float
    validation: ModelEvaluation
    baseline: dict[str, float]
    search: tuple[SearchTrial, ...]
    train_rows: int
    validation_rows: int
    rows_outside_range: dict[str, int]
    train_files: tuple[TrainingInput, ...]
    validation_files: tuple[TrainingInput, ...]
    run_id: str | None = None
    model_uri: str | None = None


def train_files(
    use_case: UseCase,
    train_paths: list[str],
    valid_paths: list[str],
    *,
    family: str | None = None,
    track: bool = False,
    reason: str = "",
) -> TrainingSummary:
    """Train on raw TLC files and validate on others, with the code the train DAG runs.

    With ``track`` the run is also logged to the tracking server (the files as dataset
    inputs with their SHA-256), without registering a version.
    """
    train, train_lineage = read_tlc_files(use_case, train_paths)
    valid, valid_lineage = read_tlc_files(use_case, valid_paths)
    outside = {
        "training": sum(f.rows_outside_range or 0 for f in train_lineage),
        "validation": sum(f.rows_outside_range or 0 for f in valid_lineage),
    }
    report_range(use_case, "training", len(train), outside["training"])
    report_range(use_case, "validation", len(valid), outside["validation"])
    train = sample(train, use_case.training.sample_rows)
    valid = sample(valid, MAX_VALIDATION_ROWS)
    fitted, evaluation, baseline = train_frames(use_case, train, valid, family)
    result = TrainingSummary(
        family=fitted.family,
        params=fitted.params,
        fit_seconds=round(fitted.seconds, 2),
        validation=evaluation,
        baseline=baseline.overall,
        search=tuple(fitted.search),
        train_rows=len(train),
        validation_rows=len(valid),
        rows_outside_range=outside,
        train_files=tuple(train_lineage),
        validation_files=tuple(valid_lineage),
    )
    if not track:
        return result
    assembled = TrainingSet(
        use_case=use_case.name,
        train_rows=len(train),
        validation_rows=len(valid),
        rows_outside_range=outside,
        lineage=tuple(
            dataclasses.replace(f, role=role)
            for role, files in (("training", train_lineage), ("validation", valid_lineage))
            for f in files
        ),
    )
    logged = log_run(use_case, fitted, evaluation, baseline, valid, assembled=assembled, reason=reason)
    return dataclasses.replace(result, run_id=logged.run_id, model_uri=logged.model_uri)


def job_request(
    lake: Lake,
    use_case: UseCase,
    assembled: TrainingSet,
    *,
    image: str,
    role: str,
    family: str,
    reason: str,
    airflow_run_id: str | None,
    tags: dict[str, str] | None = None,
) -> CreateTrainingJobRequestTypeDef:
    """The CreateTrainingJob request fitting ``assembled`` (what ``assemble_training_set`` returned)."""
    train_uri, validation_uri = assembled.set_uris()
    folder = lake.relative(train_uri).rsplit("/", 1)[0]
    channels = {
        "train": train_uri,
        "validation": validation_uri,
        "lineage": lake.uri(f"{folder}/lineage.json"),
    }
    hyperparameters = {
        "use_case": use_case.name,
        "family": family,
        "reason": reason,
        "airflow_run_id": airflow_run_id or "",
        "tags": json.dumps(tags or {}, sort_keys=True),
    }
    return sagemaker.training_job_request(
        use_case, image, role, channels, hyperparameters, output_uri=lake.uri(f"{folder}/job")
    )


def read_job_output(lake: Lake, model_artifacts_uri: str) -> TrainedRun:
    """What a finished Training job reported (``trained.json`` in its ``model.tar.gz``)."""
    data = lake.read_bytes(lake.relative(model_artifacts_uri))
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        member = next((m for m in archive.getmembers() if m.name.lstrip("./") == TRAINED_FILE), None)
        handle = archive.extractfile(member) if member is not None else None
        if handle is None:
            raise ValueError(
                f"{model_artifacts_uri} holds no {TRAINED_FILE}: the training job did not finish its "
                "work; see its logs in CloudWatch"
            )
        return TrainedRun.from_dict(json.loads(handle.read()))
