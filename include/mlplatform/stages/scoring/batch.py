"""Local batch scoring: a parquet file streamed through a registered model into one file.

The model is loaded once (:func:`load_model`) and called directly (:func:`predictor`). A
month's snapshot, checked against its contract and the model's signature (:func:`check_month`,
a :class:`CheckedSnapshot`), is scored by :func:`score_snapshot`: read in record batches of
``serving.batch_rows``; each batch's modelled rows (the spec's ``data.filter``) are answered
and written as one row group of
``predictions/<use case>/month=YYYY-MM/v<version>-<digest12>/predictions.parquet``,
atomically: a failed run leaves the previous file untouched. :func:`score_file` scores any
TLC or normalised trip file the same way outside Airflow (``mlplatform score``).

Publishing (:func:`publish`): a complete predictions file becomes the month's current one,
``CURRENT.json``, only once it has one row per modelled snapshot row; superseded outputs
stay where they are, addressed by model version and snapshot digest.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mlplatform.adapters import settings, snapshots
from mlplatform.adapters.lake import Lake
from mlplatform.adapters.registry import resolve
from mlplatform.core import months
from mlplatform.core.records import ModelRef, Record, ScoredOutput
from mlplatform.core.spec import UseCase

log = logging.getLogger(__name__)

DATA_FILE = "predictions.parquet"


# -- the model -------------------------------------------------------------------------------
def load_model(uri: str) -> Any:
    """Load an MLflow pyfunc (a :class:`~mlplatform.adapters.pyfunc.TripPyfunc`) from any MLflow URI."""
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
    from mlplatform.adapters.pyfunc import trip_model
    from mlplatform.core.modelling import input_columns

    return input_columns(trip_model(model).features)


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


def model_task(model: Any) -> str:
    """``regression`` or ``classification``: which answer columns the model returns."""
    from mlplatform.adapters.pyfunc import trip_model

    try:
        return trip_model(model).task
    except TypeError:  # not a TripModel: a regressor is the only other shape we accept
        return "regression"


def predictor(model: Any) -> Any:
    """The fastest correct predict callable of a pyfunc.

    A :class:`~mlplatform.core.modelling.TripModel` is called directly: the input was already
    checked (against the data contract here, against the signature in the serving app), so
    the pyfunc wrapper's second schema pass would only cost time. The callable takes a frame
    of the model's inputs and returns its answer frame.
    """
    from mlplatform.adapters.pyfunc import trip_model

    try:
        return trip_model(model).predict
    except TypeError:
        return model.predict


# -- a month's snapshot --------------------------------------------------------------------------
class InputRejected(RuntimeError):
    """A month may not be scored: its snapshot is missing or failed its data contract."""


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


@dataclass(frozen=True)
class CheckedSnapshot(Record):
    """A month's snapshot that passed its data contract and has the model's inputs: what the
    batch-score DAG's ``check_contract`` hands the tasks that score it."""

    month: str
    digest: str
    rows: int

    def read(self, lake: Lake, use_case: UseCase) -> snapshots.Snapshot:
        return snapshots.read_snapshot(lake, use_case.name, self.month, self.digest)


def check_month(lake: Lake, use_case: UseCase, month: str, model: ModelRef) -> CheckedSnapshot:
    """The month's snapshot, checked against its contract and the inputs of ``model``'s signature.

    Raises :class:`InputRejected` with what is wrong and what to do otherwise.
    """
    snapshot = checked_snapshot(lake, use_case, month, signature_inputs(model))
    return CheckedSnapshot(month, snapshot.digest, snapshot.rows)


def answer_columns(task: str) -> tuple[str, ...]:
    """The model's answer columns: ``prediction``, or ``label`` and ``probability``."""
    return ("prediction",) if task == "regression" else ("label", "probability")


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
) -> Iterator[tuple[np.ndarray, pd.DataFrame]]:
    """Per batch: the rows the use case models (its ``data.filter``) as a frame of ``columns``,
    with their positions in the input (the ``row_index`` of their predictions)."""
    from mlplatform.core.modelling import modelled_rows

    offset = 0
    for batch in batches:
        frame = batch.to_pandas()
        frame.index = range(offset, offset + len(frame))
        offset += len(frame)
        if data_filter:
            frame = modelled_rows(frame, data_filter)
        if len(frame):
            yield frame.index.to_numpy(np.int64), frame[columns]


def write_predictions(
    sink: Any,
    answers: Iterable[tuple[np.ndarray, pd.DataFrame]],
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
                **{c: pa.array(frame[c].to_numpy(), schema.field(c).type) for c in answer_columns(task)},
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


def output_folder(use_case: str, month: str, version: str, digest: str) -> str:
    """The lake folder of one month's output by one model version on one snapshot."""
    return f"predictions/{use_case}/month={month}/v{version}-{digest[:12]}"


def output_path(use_case: str, snapshot: snapshots.Snapshot, ref: ModelRef) -> str:
    """The predictions file of ``snapshot`` scored by ``ref``."""
    return f"{output_folder(use_case, snapshot.month, ref.version, snapshot.digest)}/{DATA_FILE}"


def scored_output(
    lake: Lake,
    use_case: UseCase,
    snapshot: snapshots.Snapshot,
    ref: ModelRef,
    path: str,
    rows: int,
    target: str,
) -> ScoredOutput:
    """The record of a predictions file just written (not yet published)."""
    return ScoredOutput(
        use_case=use_case.name,
        month=snapshot.month,
        path=path,
        uri=lake.uri(path),
        rows=rows,
        model=ref,
        snapshot_digest=snapshot.digest,
        snapshot_rows=snapshot.rows,
        data_filter=use_case.data.filter,
        target=target,
    )


def score_snapshot(
    lake: Lake, use_case: UseCase, snapshot: snapshots.Snapshot, ref: ModelRef, model: Any = None
) -> ScoredOutput:
    """Score ``snapshot`` with the version ``ref`` and write its predictions file atomically.

    Returns the output's record (what :func:`~mlplatform.stages.scoring.publish` checks and
    points at); the month's ``CURRENT.json`` is not touched here.
    """
    model = model if model is not None else load_model(ref.uri)
    columns = model_inputs(model)
    path = output_path(use_case.name, snapshot, ref)
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
    return scored_output(lake, use_case, snapshot, ref, path, rows, target="local")


# -- any file, outside Airflow ---------------------------------------------------------------------
def normalised_batches(
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


def _file_digest(fs: Any, path: str) -> str:
    sha = hashlib.sha256()
    with fs.open(path, "rb") as handle:
        while chunk := handle.read(8 << 20):
            sha.update(chunk)
    return sha.hexdigest()


def _pinned(model_uri: str) -> tuple[str, str | None, str | None]:
    """``(uri, name, version)``: an alias URI pinned to the version it points at now."""
    if not model_uri.startswith("models:/"):
        return model_uri, None, None
    name, _, version = model_uri.removeprefix("models:/").partition("/")
    if "@" in name:  # an alias: pin the version it points at now, and record it
        name, _, alias = name.partition("@")
        ref = resolve(name, alias)
        version, model_uri = ref.version, ref.uri
    return model_uri, name, version if version and version.isdigit() else None


def score_file(
    model_uri: str, input_path: str, output_path: str, batch_rows: int = 250_000
) -> dict[str, Any]:
    """Score a parquet file (a TLC file of any year, or normalised trips) into ``output_path``.

    Row ids are built from the SHA-256 of the input file, as the DAG builds them from the
    snapshot digest. The output appears only when complete.
    """
    import fsspec

    fs, path = fsspec.core.url_to_fs(input_path)
    digest = _file_digest(fs, path)
    out_parent, _, out_name = output_path.rstrip("/").rpartition("/")
    out = Lake(out_parent or ".")
    model_uri, name, version = _pinned(model_uri)
    model = load_model(model_uri)
    columns = model_inputs(model)
    # A local file is read by Arrow natively: Arrow's I/O threads never call back into Python
    # file objects, which can abort the interpreter at exit.
    local = "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))
    opened = pq.ParquetFile(path) if local else pq.ParquetFile(fs.open(path, "rb"), pre_buffer=False)
    with opened as source, out.open_atomic(out_name) as sink:
        rows = score_batches(
            model,
            normalised_batches(source, columns, batch_rows),
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


POINTER = "CURRENT.json"


def pointer_path(use_case: str, month: str) -> str:
    """The lake path of the month's ``CURRENT.json``."""
    return f"predictions/{use_case}/month={month}/{POINTER}"


def publish(lake: Lake, output: ScoredOutput | Mapping[str, Any]) -> ScoredOutput:
    """Make a scored output the month's current predictions, after checking it is complete.

    Complete means: the file exists, holds one row per modelled snapshot row, and its rows carry
    the model version and snapshot digest the output claims. Otherwise nothing moves and
    the previous predictions stay current. ``output`` may be the record or its XCom form.
    """
    if not isinstance(output, ScoredOutput):
        output = ScoredOutput.from_dict(output)
    path = output.path
    if not lake.exists(path):
        raise RuntimeError(f"cannot publish {lake.uri(path)}: the file does not exist; re-run the scoring")
    meta = lake.open_parquet(path)
    try:
        rows = meta.metadata.num_rows
        first = meta.read_row_group(0, columns=["model_version", "snapshot_digest"]) if rows else None
    finally:
        meta.close()
    # One prediction per modelled row: every snapshot row, unless the spec filters rows.
    expected = output.expected_rows
    if rows != expected or rows > output.snapshot_rows:
        raise RuntimeError(
            f"cannot publish {lake.uri(path)}: it holds {rows} predictions where {expected} rows of the "
            f"snapshot ({output.snapshot_rows} rows) are modelled; the previous predictions stay "
            "current; re-run the month"
        )
    if first is not None and (
        str(first["model_version"][0].as_py()) != str(output.model.version)
        or first["snapshot_digest"][0].as_py() != output.snapshot_digest
    ):
        raise RuntimeError(f"cannot publish {lake.uri(path)}: its rows name another model or snapshot")
    record = dataclasses.replace(output, rows=rows, published_at=datetime.now(UTC).isoformat())
    lake.write_json(pointer_path(output.use_case, output.month), record.to_dict())
    return record


def current_predictions(lake: Lake, use_case: str, month: str) -> ScoredOutput | None:
    """The record of the month's current predictions, or ``None`` when it has none."""
    pointer = pointer_path(use_case, month)
    return ScoredOutput.from_dict(lake.read_json(pointer)) if lake.exists(pointer) else None


def read_predictions(lake: Lake, use_case: str, month: str, columns: list[str] | None = None) -> pa.Table:
    """The month's current predictions as a table."""
    record = current_predictions(lake, use_case, month)
    if record is None:
        raise FileNotFoundError(f"{use_case} has no predictions for {month}: run {use_case}_batch_score")
    return lake.read_parquet(record.path, columns=columns)
