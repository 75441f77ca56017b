"""Batch scoring: a month's validated snapshot scored by a registered model in bounded memory.

The batch-score DAG resolves the ``champion`` alias to a version once, checks the month's
snapshot against its data contract, streams the snapshot through the model in record
batches of ``serving.batch_rows`` and writes one parquet file, one row group per batch::

    predictions/<use case>/month=YYYY-MM/v<version>-<digest12>/predictions.parquet
    predictions/<use case>/month=YYYY-MM/CURRENT.json    which output is in force, written last

Each prediction row carries ``row_id`` (``<snapshot digest[:16]>-<row index>``: the same
snapshot row always gets the same id, so predictions join to ground truth later),
``row_index``, the model's answer (``prediction`` in the target's unit, or ``label`` and
``probability``), ``model_name``, ``model_version`` and ``snapshot_digest``.

Re-running a month is safe: the data file is written atomically (a failed run leaves the
previous one untouched) and ``CURRENT.json`` only moves once the new file is complete and
has one row per snapshot row. Superseded outputs stay where they are, addressed by model
version and snapshot digest.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mlplatform.adapters import registry, sagemaker, settings, snapshots
from mlplatform.adapters.lake import Lake
from mlplatform.adapters.registry import ModelNotFound as ModelNotFound
from mlplatform.adapters.registry import resolve as resolve
from mlplatform.core import months
from mlplatform.core.records import ModelRef as ModelRef
from mlplatform.core.spec import UseCase

log = logging.getLogger(__name__)

POINTER = "CURRENT.json"
DATA_FILE = "predictions.parquet"

# ModelNotFound, resolve and registry_client live in mlplatform.adapters.registry, ModelRef
# in mlplatform.core.records; serving and monitoring still reach them through this module
# until they import them from there.
registry_client = registry.client


class InputRejected(RuntimeError):
    """A month may not be scored: its snapshot is missing or failed its data contract."""


# -- the model -------------------------------------------------------------------------------
def load_model(uri: str) -> Any:
    """Load an MLflow pyfunc (a :class:`mlplatform.core.modelling.TripModel`) from any MLflow URI."""
    import mlflow.pyfunc

    if uri.startswith(("models:/", "runs:/")):
        import mlflow

        mlflow.set_tracking_uri(settings.tracking_uri())
    return mlflow.pyfunc.load_model(uri)


def model_inputs(model: Any) -> list[str]:
    """The input columns a pyfunc needs: from its signature, else from the TripModel itself."""
    schema = model.metadata.get_input_schema()
    if schema is not None and schema.has_input_names():
        return list(schema.input_names())
    from mlplatform.core.modelling import input_columns

    return input_columns(model.unwrap_python_model().features)


def model_task(model: Any) -> str:
    """``regression`` or ``classification``: which answer columns the model returns."""
    try:
        return model.unwrap_python_model().task
    except Exception:  # not a TripModel: a regressor is the only other shape we accept
        return "regression"


def month_of_run(month: str | None, data_interval_end: datetime | None) -> str:
    """The month a batch-score run scores: ``month`` if given, else the last full month
    before ``data_interval_end`` (a run due on 1 April, or on 2 April, scores March).

    The rule holds for both cron timetables: zero-length intervals at the due time, and
    month-long intervals that end at the due time.
    """
    if month:
        return month
    if data_interval_end is None:
        raise ValueError(
            "this run has no data interval (triggered without a logical date): "
            "trigger it with the `month` param, YYYY-MM"
        )
    return months.shift(months.of(data_interval_end), -1)


# -- input checks ----------------------------------------------------------------------------
def checked_snapshot(lake: Lake, use_case: UseCase, month: str, columns: Iterable[str]) -> snapshots.Snapshot:
    """The month's current snapshot, if it passed its data contract and has ``columns``.

    Raises :class:`InputRejected` with what is wrong and what to do otherwise.
    """
    name = use_case.name
    snapshot = snapshots.current_snapshot(lake, name, month)
    if snapshot is None:
        raise InputRejected(
            f"{name} has no validated snapshot for {month} under {lake.uri(f'validated/{name}')}: "
            f"run the {name}_validate DAG for {month} first, then re-run this month"
        )
    contract = snapshot.manifest.get("contract")
    success = contract.get("success") if isinstance(contract, dict) else None
    if success is not True:
        why = "its manifest records no contract result" if success is None else "it failed the contract"
        details = {k: v for k, v in (contract or {}).items() if k != "success"}
        raise InputRejected(
            f"{name} snapshot {snapshot.digest[:12]} for {month} may not be scored: {why} "
            f"(suite {use_case.contract.suite}{'; ' + str(details) if details else ''}). Scoring stopped; "
            f"fix the delivery and re-run {name}_validate for {month}, then re-run this month"
        )
    schema = snapshot.manifest.get("schema") or {}
    if missing := [c for c in columns if c not in schema]:
        raise InputRejected(
            f"{name} snapshot {snapshot.digest[:12]} for {month} lacks column(s) the model needs: "
            f"{', '.join(missing)}; the model and the data contract disagree: retrain on current data"
        )
    return snapshot


# -- scoring ---------------------------------------------------------------------------------
def answer_schema(task: str) -> pa.Schema:
    """Columns of one prediction row."""
    answers = (
        [("prediction", pa.float64())]
        if task == "regression"
        else [("label", pa.string()), ("probability", pa.float64())]
    )
    return pa.schema(
        [
            ("row_id", pa.string()),
            ("row_index", pa.int64()),
            *answers,
            ("model_name", pa.string()),
            ("model_version", pa.int64()),
            ("snapshot_digest", pa.string()),
        ]
    )


def row_ids(digest: str, index: np.ndarray) -> pa.Array:
    """Stable row ids ``<digest[:16]>-<row index>`` for rows at ``index`` of the input."""
    return pc.binary_join_element_wise(f"{digest[:16]}-", pc.cast(pa.array(index), pa.string()), "")


def read_columns(use_case: UseCase, inputs: list[str], available: Iterable[str]) -> list[str]:
    """The model's inputs plus the columns the spec's ``data.filter`` mentions."""
    text = use_case.data.filter or ""
    extra = [c for c in available if c not in inputs and re.search(rf"\b{re.escape(c)}\b", text)]
    return [*inputs, *extra]


def modelled_batches(
    batches: Iterable[pa.RecordBatch], columns: list[str], data_filter: str | None = None
) -> Iterator[tuple[np.ndarray, Any]]:
    """Per batch: the rows the use case models (its ``data.filter``) as a frame of ``columns``,
    with their positions in the input (the ``row_index`` of their predictions)."""
    from mlplatform.core.features import modelled_rows

    offset = 0
    for batch in batches:
        frame = batch.to_pandas()
        frame.index = range(offset, offset + len(frame))
        offset += len(frame)
        if data_filter:
            frame = modelled_rows(frame, data_filter)
        if len(frame):
            yield frame.index.to_numpy(np.int64), frame[columns]


def predictor(model: Any) -> Any:
    """The fastest correct predict callable of a pyfunc.

    A :class:`~mlplatform.core.modelling.TripModel` is called directly: the input was already
    checked (against the data contract here, against the signature in the serving app), so
    the pyfunc wrapper's second schema pass would only cost time.
    """
    try:
        inner = model.unwrap_python_model()
    except Exception:
        return model.predict
    if hasattr(inner, "estimator") and hasattr(inner, "features"):
        return lambda frame: inner.predict(None, frame)
    return model.predict


def write_predictions(
    sink: Any,
    answers: Iterable[tuple[np.ndarray, Any]],
    *,
    digest: str,
    model_name: str | None = None,
    model_version: str | None = None,
    task: str = "regression",
) -> int:
    """Write model answers to ``sink`` as parquet, one row group per ``(row index, frame)``.

    Returns the rows written.
    """
    schema = answer_schema(task)
    version = int(model_version) if model_version is not None else None
    written = 0
    with pq.ParquetWriter(sink, schema, compression="zstd") as writer:
        for index, frame in answers:
            n = len(frame)
            if n == 0:
                continue
            arrays = {
                "row_id": row_ids(digest, index),
                "row_index": pa.array(index, pa.int64()),
                **{c: pa.array(frame[c].to_numpy(), schema.field(c).type) for c in _answer_columns(task)},
                "model_name": pa.repeat(pa.scalar(model_name, pa.string()), n),
                "model_version": pa.repeat(pa.scalar(version, pa.int64()), n),
                "snapshot_digest": pa.repeat(pa.scalar(digest, pa.string()), n),
            }
            writer.write_table(pa.Table.from_pydict(arrays, schema=schema))
            written += n
    return written


def score_batches(
    model: Any,
    batches: Iterable[pa.RecordBatch],
    sink: Any,
    *,
    columns: list[str],
    digest: str,
    model_name: str | None = None,
    model_version: str | None = None,
    task: str = "regression",
    data_filter: str | None = None,
) -> int:
    """Predict every record batch (the rows ``data_filter`` keeps) and write the answers to ``sink``.

    Memory holds one batch at a time, whatever the input's size. Returns the rows written.
    """
    predict = predictor(model)
    answers = ((index, predict(frame)) for index, frame in modelled_batches(batches, columns, data_filter))
    return write_predictions(
        sink, answers, digest=digest, model_name=model_name, model_version=model_version, task=task
    )


def _answer_columns(task: str) -> tuple[str, ...]:
    return ("prediction",) if task == "regression" else ("label", "probability")


def output_folder(use_case: str, month: str, version: str, digest: str) -> str:
    return f"predictions/{use_case}/month={month}/v{version}-{digest[:12]}"


def score_snapshot(
    lake: Lake, use_case: UseCase, snapshot: snapshots.Snapshot, ref: ModelRef, model: Any = None
) -> dict[str, Any]:
    """Score ``snapshot`` with the version ``ref`` and write its predictions file atomically.

    Returns the output's description (what :func:`publish` checks and points at); the
    month's ``CURRENT.json`` is not touched here.
    """
    model = model if model is not None else load_model(ref.uri)
    columns = model_inputs(model)
    path = f"{output_folder(use_case.name, snapshot.month, ref.version, snapshot.digest)}/{DATA_FILE}"
    source = lake.open_parquet(snapshot.data_path)
    try:
        read = read_columns(use_case, columns, source.schema_arrow.names)
        batches = source.iter_batches(batch_size=use_case.serving.batch_rows, columns=read)
        with lake.open_atomic(path) as sink:
            rows = score_batches(
                model,
                batches,
                sink,
                columns=columns,
                digest=snapshot.digest,
                model_name=ref.name,
                model_version=ref.version,
                task=use_case.task,
                data_filter=use_case.data.filter,
            )
    finally:
        source.close()
    log.info("scored %s rows of %s %s with %s into %s", rows, use_case.name, snapshot.month, ref.uri, path)
    return output_record(lake, use_case, snapshot, ref, path, rows, target="local")


def output_record(
    lake: Lake,
    use_case: UseCase,
    snapshot: snapshots.Snapshot,
    ref: ModelRef,
    path: str,
    rows: int,
    target: str,
) -> dict[str, Any]:
    return {
        "use_case": use_case.name,
        "month": snapshot.month,
        "path": path,
        "uri": lake.uri(path),
        "rows": rows,
        "model": ref.to_dict(),
        "snapshot_digest": snapshot.digest,
        "snapshot_rows": snapshot.rows,
        "data_filter": use_case.data.filter,
        "target": target,
    }


def publish(lake: Lake, output: dict[str, Any]) -> dict[str, Any]:
    """Make a scored output the month's current predictions, after checking it is complete.

    Complete means: the file exists, holds one row per modelled snapshot row, and its rows carry
    the model version and snapshot digest the output claims. Otherwise nothing moves and
    the previous predictions stay current.
    """
    path = output["path"]
    if not lake.exists(path):
        raise RuntimeError(f"cannot publish {lake.uri(path)}: the file does not exist; re-run the scoring")
    meta = lake.open_parquet(path)
    try:
        rows = meta.metadata.num_rows
        first = meta.read_row_group(0, columns=["model_version", "snapshot_digest"]) if rows else None
    finally:
        meta.close()
    # One prediction per modelled row: every snapshot row, unless the spec filters rows.
    expected = output["rows"] if output.get("data_filter") else output["snapshot_rows"]
    if rows != expected or rows > output["snapshot_rows"]:
        raise RuntimeError(
            f"cannot publish {lake.uri(path)}: it holds {rows} predictions where {expected} rows of the "
            f"snapshot ({output['snapshot_rows']} rows) are modelled; the previous predictions stay "
            "current; re-run the month"
        )
    if first is not None and (
        str(first["model_version"][0].as_py()) != str(output["model"]["version"])
        or first["snapshot_digest"][0].as_py() != output["snapshot_digest"]
    ):
        raise RuntimeError(f"cannot publish {lake.uri(path)}: its rows name another model or snapshot")
    record = {**output, "rows": rows, "published_at": datetime.now(UTC).isoformat()}
    lake.write_json(f"predictions/{output['use_case']}/month={output['month']}/{POINTER}", record)
    return record


def current_predictions(lake: Lake, use_case: str, month: str) -> dict[str, Any] | None:
    """The record of the month's current predictions, or ``None`` when it has none."""
    pointer = f"predictions/{use_case}/month={month}/{POINTER}"
    return lake.read_json(pointer) if lake.exists(pointer) else None


def read_predictions(lake: Lake, use_case: str, month: str, columns: list[str] | None = None) -> pa.Table:
    """The month's current predictions as a table."""
    record = current_predictions(lake, use_case, month)
    if record is None:
        raise FileNotFoundError(f"{use_case} has no predictions for {month}: run {use_case}_batch_score")
    return lake.read_parquet(record["path"], columns=columns)


# -- SageMaker Batch Transform -----------------------------------------------------------------
# For months too large for one machine the DAG hands the job to SageMaker: the snapshot is
# staged as JSON Lines parts, each line one trip, which the serving image answers line for
# line at /invocations; SageMaker keeps each part's order (SplitType and AssembleWith Line),
# so answers are matched to rows by position and written in the same layout as above.
TRANSFORM_CONTENT_TYPE = "application/jsonlines"


def signature_inputs(ref: ModelRef) -> list[str]:
    """The input columns of a registered version, read from its metadata without loading it."""
    import mlflow
    from mlflow.models import get_model_info

    mlflow.set_tracking_uri(settings.tracking_uri())
    signature = get_model_info(ref.uri).signature
    schema = signature.inputs if signature is not None else None
    if schema is None or not schema.has_input_names():
        raise ValueError(f"{ref.uri} was logged without an input signature; log it with one to score it")
    return list(schema.input_names())


def stage_transform_input(
    lake: Lake, use_case: UseCase, snapshot: snapshots.Snapshot, ref: ModelRef
) -> dict[str, Any]:
    """Write the snapshot's model inputs as JSON Lines parts for a transform job."""
    if not lake.root_uri.startswith("s3://"):
        raise ValueError(
            f"serving.target sagemaker needs the lake in S3, but it is {lake.root_uri}; "
            "set MLPLATFORM_LAKE_URI to the lake bucket or use serving.target local"
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
            parts.append({"name": name, "rows": len(frame)})
    finally:
        source.close()
    return {
        "input": lake.uri(f"{folder}/input/"),
        "output": lake.uri(f"{folder}/output/"),
        "output_path": f"{folder}/output",
        "positions_path": f"{folder}/positions",
        "parts": parts,
        "rows": sum(p["rows"] for p in parts),
    }


def transform_request(
    use_case: UseCase, ref: ModelRef, snapshot: snapshots.Snapshot, staged: dict[str, Any], client: Any
) -> dict[str, Any]:
    """The SageMakerTransformOperator config: the SageMaker model (if new) and the job."""
    model = sagemaker.model_request(use_case, ref, sagemaker.serving_image(), sagemaker.execution_role())
    # Re-runs of a month reuse the name; the operator then appends a timestamp.
    job = f"{sagemaker.endpoint_name(use_case)}-{snapshot.month}-v{ref.version}-{snapshot.digest[:8]}"
    output: dict[str, Any] = {
        "S3OutputPath": staged["output"],
        "Accept": TRANSFORM_CONTENT_TYPE,
        "AssembleWith": "Line",
    }
    if kms := settings.get("MLPLATFORM_SERVING_KMS_KEY_ARN"):
        output["KmsKeyId"] = kms
    transform = {
        "TransformJobName": job[:63],
        "ModelName": model["ModelName"],
        "BatchStrategy": "MultiRecord",
        "MaxPayloadInMB": 6,
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": staged["input"]}},
            "ContentType": TRANSFORM_CONTENT_TYPE,
            "SplitType": "Line",
            "CompressionType": "None",
        },
        "TransformOutput": output,
        "TransformResources": {"InstanceType": use_case.serving.instance_type, "InstanceCount": 1},
        "Tags": model["Tags"],
    }
    config: dict[str, Any] = {"Transform": transform}
    if sagemaker.existing(client.describe_model, ModelName=model["ModelName"]) is None:
        config["Model"] = model
    return config


def collect_transform_output(
    lake: Lake, use_case: UseCase, snapshot: snapshots.Snapshot, ref: ModelRef, staged: dict[str, Any]
) -> dict[str, Any]:
    """Turn a finished transform job's output into the month's predictions file."""
    import pandas as pd

    def answers() -> Iterator[Any]:
        for part in staged["parts"]:
            path = f"{staged['output_path']}/{part['name']}.out"
            if not lake.exists(path):
                raise RuntimeError(
                    f"transform output {lake.uri(path)} is missing: the job did not answer every part; "
                    "see the job's CloudWatch logs, then re-run the month"
                )
            frame = pd.read_json(io.BytesIO(lake.read_bytes(path)), lines=True)
            if len(frame) != part["rows"]:
                raise RuntimeError(
                    f"transform output {lake.uri(path)} has {len(frame)} answers for {part['rows']} rows; "
                    "re-run the month"
                )
            positions = lake.read_parquet(f"{staged['positions_path']}/{part['name']}.parquet")
            yield positions["row_index"].to_numpy(), frame

    path = f"{output_folder(use_case.name, snapshot.month, ref.version, snapshot.digest)}/{DATA_FILE}"
    with lake.open_atomic(path) as sink:
        rows = write_predictions(
            sink,
            answers(),
            digest=snapshot.digest,
            model_name=ref.name,
            model_version=ref.version,
            task=use_case.task,
        )
    return output_record(lake, use_case, snapshot, ref, path, rows, target="sagemaker")


# -- any file, outside Airflow ----------------------------------------------------------------
def _normalised_batches(
    source: pq.ParquetFile, columns: list[str], batch_rows: int
) -> Iterator[pa.RecordBatch]:
    """Record batches of the model's input columns; raw TLC files are normalised batch by batch."""
    from mlplatform.core import tlc

    names = source.schema_arrow.names
    if {"tpep_pickup_datetime", "lpep_pickup_datetime"} & set(names):
        for batch in source.iter_batches(batch_size=batch_rows):
            table = tlc.normalise(pa.Table.from_batches([batch]))
            yield from table.select(columns).to_batches()
        return
    if missing := [c for c in columns if c not in names]:
        raise ValueError(
            f"input lacks column(s) the model needs: {', '.join(missing)}; pass a TLC trip file or "
            "normalised trips (mlplatform.core.tlc.normalise)"
        )
    yield from source.iter_batches(batch_size=batch_rows, columns=columns)


def score_file(
    model_uri: str, input_path: str, output_path: str, batch_rows: int = 250_000
) -> dict[str, Any]:
    """Score a parquet file (a TLC file of any year, or normalised trips) into ``output_path``.

    Row ids are built from the SHA-256 of the input file, as the DAG builds them from the
    snapshot digest. The output appears only when complete.
    """
    import fsspec

    fs, path = fsspec.core.url_to_fs(input_path)
    sha = hashlib.sha256()
    with fs.open(path, "rb") as handle:
        while chunk := handle.read(8 << 20):
            sha.update(chunk)
    digest = sha.hexdigest()
    out_parent, _, out_name = output_path.rstrip("/").rpartition("/")
    out = Lake(out_parent or ".")
    name = version = None
    if model_uri.startswith("models:/"):
        name, _, version = model_uri.removeprefix("models:/").partition("/")
        if "@" in name:  # an alias: pin the version it points at now, and record it
            name, _, alias = name.partition("@")
            ref = resolve(name, alias)
            version, model_uri = ref.version, ref.uri
        version = version if version and version.isdigit() else None
    model = load_model(model_uri)
    columns = model_inputs(model)
    with pq.ParquetFile(fs.open(path, "rb")) as source, out.open_atomic(out_name) as sink:
        rows = score_batches(
            model,
            _normalised_batches(source, columns, batch_rows),
            sink,
            columns=columns,
            digest=digest,
            model_name=name,
            model_version=version,
            task=model_task(model),
        )
    return {
        "input": input_path,
        "output": output_path,
        "rows": rows,
        "input_digest": digest,
        "model": model_uri,
    }
