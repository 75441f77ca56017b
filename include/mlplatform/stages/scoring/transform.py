"""SageMaker Batch Transform: staging a month for the job and collecting its answers.

For months too large for one machine the DAG hands the job to SageMaker: the snapshot is
staged as JSON Lines parts, each line one trip, which the serving image answers line for
line at ``/invocations``; SageMaker keeps each part's order (``SplitType`` and
``AssembleWith`` ``Line``), so answers are matched to rows by position and written in the
same layout as local scoring's.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict, cast

import numpy as np
import pandas as pd
import pyarrow as pa

from mlplatform.adapters import sagemaker, settings, snapshots
from mlplatform.adapters.lake import Lake
from mlplatform.core.records import ModelRef, Record, ScoredOutput
from mlplatform.core.spec import UseCase
from mlplatform.stages.scoring.batch import (
    modelled_batches,
    output_folder,
    output_path,
    read_columns,
    scored_output,
    signature_inputs,
    write_predictions,
)

if TYPE_CHECKING:
    from mypy_boto3_sagemaker.client import SageMakerClient
    from mypy_boto3_sagemaker.literals import TransformInstanceTypeType
    from mypy_boto3_sagemaker.type_defs import (
        CreateModelInputTypeDef,
        CreateTransformJobRequestTypeDef,
        TransformOutputTypeDef,
    )

TRANSFORM_CONTENT_TYPE = "application/jsonlines"


@dataclass(frozen=True)
class StagedPart(Record):
    """One JSON Lines part of a staged month: its file name and the rows it holds."""

    name: str
    rows: int


@dataclass(frozen=True)
class StagedTransform(Record):
    """A month staged for a transform job: where the job reads (``input``) and writes
    (``output``), the lake paths of its answers and of the parts' row positions, the parts."""

    input: str
    output: str
    output_path: str
    positions_path: str
    parts: tuple[StagedPart, ...]
    rows: int


def stage_transform_input(
    lake: Lake, use_case: UseCase, snapshot: snapshots.Snapshot, ref: ModelRef
) -> StagedTransform:
    """Write the snapshot's model inputs as JSON Lines parts for a transform job."""
    if not lake.root_uri.startswith("s3://"):
        raise ValueError(
            f"batch scoring on SageMaker needs the lake in S3, but it is {lake.root_uri}; "
            "set MLPLATFORM_LAKE_URI to the lake bucket, or run with MLPLATFORM_ENV=local"
        )
    columns = signature_inputs(ref)
    folder = f"{output_folder(use_case.name, snapshot.month, ref.version, snapshot.digest)}/transform"
    lake.remove(folder, recursive=True)  # scratch of an earlier attempt: the job reads the whole prefix
    parts = []
    source = lake.open_parquet(snapshot.data_path)
    try:
        read = read_columns(use_case, columns, source.schema_arrow.names)
        batches = source.iter_batches(batch_size=use_case.serving.batch_rows, columns=read)
        for number, (index, frame) in enumerate(modelled_batches(batches, columns, use_case.data.filter)):
            name = f"part-{number:05d}.jsonl"
            text = frame.to_json(orient="records", lines=True, date_format="iso", date_unit="s")
            lake.write_bytes(f"{folder}/input/{name}", text.encode())
            # Row positions stay out of the job's input prefix; answers come back in line order.
            lake.write_parquet(f"{folder}/positions/{name}.parquet", pa.table({"row_index": index}))
            parts.append(StagedPart(name, len(frame)))
    finally:
        source.close()
    return StagedTransform(
        input=lake.uri(f"{folder}/input/"),
        output=lake.uri(f"{folder}/output/"),
        output_path=f"{folder}/output",
        positions_path=f"{folder}/positions",
        parts=tuple(parts),
        rows=sum(p.rows for p in parts),
    )


class TransformConfig(TypedDict):
    """What SageMakerTransformOperator takes: the job, and the SageMaker model when it is new."""

    Transform: CreateTransformJobRequestTypeDef
    Model: NotRequired[CreateModelInputTypeDef]


def transform_request(
    use_case: UseCase,
    ref: ModelRef,
    snapshot: snapshots.Snapshot,
    staged: StagedTransform,
    client: SageMakerClient,
    ecr: Any,
) -> TransformConfig:
    """The SageMakerTransformOperator config: the SageMaker model (if new) and the job.

    The model runs the release's image, checked to be in ``ecr`` first
    (:class:`~mlplatform.adapters.sagemaker.ImageNotReleased` otherwise).
    """
    image = sagemaker.released_image(ecr)
    model = sagemaker.model_request(use_case, ref, image, sagemaker.execution_role())
    # Re-runs of a month reuse the name; the operator then appends a timestamp.
    job = f"{sagemaker.endpoint_name(use_case)}-{snapshot.month}-v{ref.version}-{snapshot.digest[:8]}"
    output: TransformOutputTypeDef = {
        "S3OutputPath": staged.output,
        "Accept": TRANSFORM_CONTENT_TYPE,
        "AssembleWith": "Line",
    }
    if kms := settings.get("MLPLATFORM_SERVING_KMS_KEY_ARN"):
        output["KmsKeyId"] = kms
    transform: CreateTransformJobRequestTypeDef = {
        "TransformJobName": job[:63],
        "ModelName": model["ModelName"],
        "BatchStrategy": "MultiRecord",
        # About 8,000 trips of JSON Lines a request: within the serving app's 10,000-row cap.
        "MaxPayloadInMB": 1,
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": staged.input}},
            "ContentType": TRANSFORM_CONTENT_TYPE,
            "SplitType": "Line",
            "CompressionType": "None",
        },
        "TransformOutput": output,
        "TransformResources": {
            # The spec names any instance type; SageMaker refuses one it does not transform on.
            "InstanceType": cast("TransformInstanceTypeType", use_case.serving.instance_type),
            "InstanceCount": 1,
        },
        "Tags": model["Tags"],
    }
    config: TransformConfig = {"Transform": transform}
    if sagemaker.existing(client.describe_model, ModelName=model["ModelName"]) is None:
        config["Model"] = model
    return config


def _transform_answers(lake: Lake, staged: StagedTransform) -> Iterator[tuple[np.ndarray, pd.DataFrame]]:
    """Each staged part's answers with the row positions they belong to, checked for count."""
    for part in staged.parts:
        path = f"{staged.output_path}/{part.name}.out"
        if not lake.exists(path):
            raise RuntimeError(
                f"transform output {lake.uri(path)} is missing: the job did not answer every part; "
                "see the job's CloudWatch logs, then re-run the month"
            )
        frame = pd.read_json(io.BytesIO(lake.read_bytes(path)), lines=True)
        if len(frame) != part.rows:
            raise RuntimeError(
                f"transform output {lake.uri(path)} has {len(frame)} answers for {part.rows} rows; "
                "re-run the month"
            )
        positions = lake.read_parquet(f"{staged.positions_path}/{part.name}.parquet")
        yield positions["row_index"].to_numpy(), frame


def collect_transform_output(
    lake: Lake, use_case: UseCase, snapshot: snapshots.Snapshot, ref: ModelRef, staged: StagedTransform
) -> ScoredOutput:
    """Turn a finished transform job's output into the month's predictions file."""
    path = output_path(use_case.name, snapshot, ref)
    with lake.open_atomic(path) as sink:
        rows = write_predictions(
            sink,
            _transform_answers(lake, staged),
            digest=snapshot.digest,
            model_name=ref.name,
            model_version=ref.version,
            task=use_case.task,
        )
    return scored_output(lake, use_case, snapshot, ref, path, rows, target="sagemaker")
