"""The data lake: one storage layer over ``file://`` (embedded default) and ``s3://`` URIs.

Layout below the lake root (``MLPLATFORM_LAKE_URI``), partitioned by dataset or use case
and by month::

    raw/<dataset>/month=YYYY-MM/<taxi>_tripdata_YYYY-MM.parquet   as delivered, never rewritten
    validated/<use case>/month=YYYY-MM/<digest>/data.parquet       immutable snapshots
    validated/<use case>/month=YYYY-MM/<digest>/manifest.json
    validated/<use case>/month=YYYY-MM/CURRENT.json                which snapshot is current
    quarantine/<use case>/month=YYYY-MM/...                        rejected rows and breach records
    features/<use case>/...                                        reference feature sets
    predictions/<use case>/month=YYYY-MM/...                       batch scores and serving logs
    monitoring/<use case>/...                                      metric history and reports

Every write is atomic: a reader sees the old object or the new one, never a part. On a
local file system an object is written to a hidden temporary name in the same folder and
renamed; on S3 an object only becomes visible when its upload completes. Multi-object
outputs (a snapshot) publish a small pointer last, so readers never follow a half-written
set. The layer is plain fsspec, which is what Airflow's ``ObjectStoragePath`` wraps: the
same code runs inside a task, in the command line and in the serving app, with AWS
credentials from the usual chain (the MWAA execution role in AWS, ``AWS_ENDPOINT_URL``
for S3-compatible stores).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import posixpath
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from mlplatform.adapters import settings

ZONES = ("raw", "validated", "quarantine", "features", "predictions", "monitoring")


@dataclass(frozen=True)
class Entry:
    """One object in the lake."""

    path: str  # relative to the lake root
    size: int


class Lake:
    """Atomic reads and writes of lake objects by path relative to the root URI."""

    def __init__(self, root_uri: str | None = None, **storage_options: Any) -> None:
        self.root_uri = (root_uri or settings.lake_uri()).rstrip("/")
        self.fs, self._root = fsspec.core.url_to_fs(self.root_uri, **storage_options)
        protocols = self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,)
        self._local = "file" in protocols

    def __repr__(self) -> str:
        return f"Lake({self.root_uri!r})"

    # -- paths ------------------------------------------------------------------------------
    def _full(self, path: str) -> str:
        clean = posixpath.normpath(path.strip("/"))
        if clean.startswith("..") or clean == ".":
            raise ValueError(f"lake path {path!r} escapes the lake root")
        return f"{self._root}/{clean}"

    def uri(self, path: str) -> str:
        """Full URI of a lake path (what tasks pass to each other through XCom)."""
        return f"{self.root_uri}/{path.strip('/')}"

    def relative(self, uri: str) -> str:
        """The lake path of a full URI inside this lake."""
        prefix = self.root_uri + "/"
        if not uri.startswith(prefix):
            raise ValueError(f"{uri} is not inside the lake {self.root_uri}")
        return uri[len(prefix) :]

    @staticmethod
    def raw_path(dataset: str, taxi_type: str, month: str) -> str:
        return f"raw/{dataset}/month={month}/{taxi_type}_tripdata_{month}.parquet"

    # -- reading ----------------------------------------------------------------------------
    def exists(self, path: str) -> bool:
        return self.fs.exists(self._full(path))

    def read_bytes(self, path: str) -> bytes:
        return self.fs.cat_file(self._full(path))

    def read_json(self, path: str) -> Any:
        return json.loads(self.read_bytes(path))

    def read_parquet(self, path: str, columns: list[str] | None = None) -> pa.Table:
        with self.fs.open(self._full(path), "rb") as handle:
            return pq.read_table(handle, columns=columns)

    def open_parquet(self, path: str) -> pq.ParquetFile:
        """A parquet file for streaming record batches; close it when done."""
        return pq.ParquetFile(self.fs.open(self._full(path), "rb"))

    def digest(self, path: str) -> str:
        """SHA-256 of an object's bytes, streamed."""
        sha = hashlib.sha256()
        with self.fs.open(self._full(path), "rb") as handle:
            while chunk := handle.read(8 << 20):
                sha.update(chunk)
        return sha.hexdigest()

    def list(self, prefix: str = "") -> Iterator[Entry]:
        """Every visible object below ``prefix``, sorted; hidden temporaries are skipped."""
        base = self._full(prefix) if prefix else self._root
        if not self.fs.exists(base):
            return
        found = self.fs.find(base, detail=True)
        root = self._root.rstrip("/") + "/"
        for full, info in sorted(found.items()):
            rel = full[len(root) :] if full.startswith(root) else full
            if any(part.startswith(".") for part in rel.split("/")):
                continue
            yield Entry(rel, int(info.get("size") or 0))

    # -- writing ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def open_atomic(self, path: str) -> Iterator[Any]:
        """A binary handle whose content appears at ``path`` only if the block succeeds.

        Local files are written under a hidden temporary name and renamed into place; an
        S3 upload that fails is aborted, so no partial object is ever visible.
        """
        full = self._full(path)
        if not self._local:
            handle = self.fs.open(full, "wb")
            try:
                yield handle
            except BaseException:
                handle.discard()
                handle.closed = True  # discarded: nothing left to flush when it is collected
                raise
            handle.close()
            return
        parent = posixpath.dirname(full)
        self.fs.makedirs(parent, exist_ok=True)
        tmp = f"{parent}/.tmp-{uuid.uuid4().hex}-{posixpath.basename(full)}"
        try:
            with self.fs.open(tmp, "wb") as handle:
                yield handle
            self.fs.mv(tmp, full)
        finally:
            if self.fs.exists(tmp):
                self.fs.rm(tmp)

    def write_bytes(self, path: str, data: bytes) -> str:
        """Write an object atomically; returns its URI."""
        with self.open_atomic(path) as handle:
            handle.write(data)
        return self.uri(path)

    def write_json(self, path: str, obj: Any) -> str:
        return self.write_bytes(path, json.dumps(obj, indent=2, sort_keys=True, default=str).encode())

    def write_parquet(self, path: str, table: pa.Table, **kwargs: Any) -> str:
        buffer = io.BytesIO()
        pq.write_table(table, buffer, **kwargs)
        return self.write_bytes(path, buffer.getvalue())

    def write_if_absent(self, path: str, data: bytes) -> bool:
        """Write only when nothing is there yet (raw data is never overwritten)."""
        if self.exists(path):
            return False
        self.write_bytes(path, data)
        return True

    def remove(self, path: str, recursive: bool = False) -> None:
        full = self._full(path)
        if self.fs.exists(full):
            self.fs.rm(full, recursive=recursive)


def inventory(lake: Lake) -> dict[str, list[Entry]]:
    """The lake's objects grouped by zone (raw, validated, ...)."""
    return {zone: list(lake.list(zone)) for zone in ZONES}
