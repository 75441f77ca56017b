"""Training as a SageMaker Training job: the request the train DAG sends, and what it brings back.

On AWS the train DAG assembles the training set in the lake as it does locally, then hands
the fit to a Training job on the platform image (``python -m mlplatform.jobs train``): the
assembled ``train``, ``validation`` and ``lineage`` files are its channels, the DAG's knobs
its hyperparameters, and the job logs the MLflow run exactly as the local task does. What
the job leaves in ``/opt/ml/model`` comes back as ``model.tar.gz`` beside the assembled set,
and :func:`read_job_output` reads the run id and model URI from it for registration.
"""

from __future__ import annotations

import io
import json
import tarfile
from typing import Any

from mlplatform.adapters import sagemaker
from mlplatform.adapters.lake import Lake
from mlplatform.core.spec import UseCase

TRAINED_FILE = "trained.json"  # written to /opt/ml/model by the job


def job_request(
    lake: Lake,
    use_case: UseCase,
    assembled: dict[str, Any],
    *,
    image: str,
    role: str,
    family: str,
    reason: str,
    airflow_run_id: str | None,
    tags: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The CreateTrainingJob request fitting ``assembled`` (what ``assemble_training_set`` returned)."""
    folder = lake.relative(assembled["train_uri"]).rsplit("/", 1)[0]
    channels = {
        "train": assembled["train_uri"],
        "validation": assembled["validation_uri"],
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


def read_job_output(lake: Lake, model_artifacts_uri: str) -> dict[str, Any]:
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
        trained: dict[str, Any] = json.loads(handle.read())
    return trained
