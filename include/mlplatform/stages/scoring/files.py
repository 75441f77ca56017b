"""Scoring any parquet file outside Airflow (``mlplatform score``), with the DAG's code."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from mlplatform.adapters.lake import Lake
from mlplatform.adapters.registry import resolve
from mlplatform.stages.scoring.batch import score_batches
from mlplatform.stages.scoring.model import load_model, model_inputs, model_task


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
