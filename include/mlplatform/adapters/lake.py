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
    alerts/outbox/<id>.json                                        alerts queued, not yet delivered
    alerts/sent/<id>.json                                          alerts delivered
    alerts/failed/<id>.json                                        alerts Slack refused (4xx), with why
    alerts/claims/<id>/<try>/<n>.json                              which flusher is delivering an alert
    registry/history/<model>/<time>-<alias>-<version>-<id>.json   alias moves, append-only, one per event

Every write is atomic: a reader sees the old object or the new one, never a part. On a
local file system an object is written to a hidden temporary name in the same folder
(``.<name>.tmp-<host>-<pid>-<random>``) and renamed; on S3 an object only becomes visible
when its upload completes. A writer killed mid-write (SIGKILL, an out-of-memory kill, a
lost machine) leaves its temporary behind: hidden from :meth:`Lake.list`, and swept as
stale by the next write to the same folder or by :meth:`Lake.sweep` once its process is
dead or it is older than :data:`TEMP_GRACE_SECONDS` (S3 has no temporaries: the bucket's
lifecycle rule aborts incomplete multipart uploads). Multi-object
outputs (a snapshot) publish a small pointer last, so readers never follow a half-written
set. Creating an object only if it is absent (:meth:`Lake.write_if_absent`) is atomic as
well: of writers racing for one path exactly one creates it (a local hard link, which
fails on an existing name; on S3 a conditional PutObject); the alerts' claims rely on it.
The layer is plain fsspec, which is what Airflow's ``ObjectStoragePath`` wraps: the
same code runs inside a task, in the command line and in the serving app, with AWS
credentials from the usual chain (the MWAA execution role in AWS, ``AWS_ENDPOINT_URL``
for S3-compatible stores).
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import hashlib
import io
import json
import os
import posixpath
import re
import secrets
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from mlplatform.adapters import settings
from mlplatform.core import tlc

ZONES = ("raw", "validated", "quarantine", "features", "predictions", "monitoring")

# A temporary this old is stale whoever wrote it: no lake write takes an hour, and a writer on
# another machine (whose process cannot be checked from here) is given that long.
TEMP_GRACE_SECONDS = 3600.0

# Which machine wrote a temporary: its process id only means something on the same host.
_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
_TEMP = re.compile(r"^\.(?P<name>.+)\.tmp-(?P<host>[0-9a-f]{8})-(?P<pid>\d+)-[0-9a-f]{8}$")
# Temporaries named by earlier releases (``.tmp-<uuid>-<name>``): stale by age only.
_OLD_TEMP = re.compile(r"^\.tmp-[0-9a-f]{32}-.+$")

Bytes = bytes | bytearray | memoryview

AlertState = Literal["outbox", "sent", "failed"]
ALERT_FOLDERS: dict[str, str] = {state: f"alerts/{state}" for state in ("outbox", "sent", "failed")}
"""The alerts' outbox, and where delivered and refused alerts move (:mod:`.alerts`)."""


CLAIMS_FOLDER = "alerts/claims"
"""Who is delivering a queued alert: one atomically created claim per try (:mod:`.alerts`)."""

HISTORY_FOLDER = "registry/history"
"""Registry alias moves, one JSON file per event, never rewritten (:mod:`.registry`)."""


def temp_name(name: str) -> str:
    """The hidden name an object called ``name`` is written under before it is renamed."""
    return f".{name}.tmp-{_HOST}-{os.getpid()}-{secrets.token_hex(4)}"


def is_temp(name: str) -> bool:
    """Whether a file name is an atomic write's temporary (of any release)."""
    return bool(_TEMP.match(name) or _OLD_TEMP.match(name))


def is_stale_temp(name: str, age_seconds: float, grace_seconds: float = TEMP_GRACE_SECONDS) -> bool:
    """Whether a temporary can be removed: its writer is dead, or it is older than the grace.

    A writer is known dead only when the temporary was written on this host by a process
    that is gone; this process's own temporaries are in use until the grace passes.
    """
    found = _TEMP.match(name)
    if found is None:
        return bool(_OLD_TEMP.match(name)) and age_seconds > grace_seconds
    if age_seconds > grace_seconds:
        return True
    pid = int(found["pid"])
    return found["host"] == _HOST and pid != os.getpid() and not _process_alive(pid)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


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
        return f"raw/{dataset}/month={month}/{tlc.file_name(taxi_type, month)}"

    @staticmethod
    def alert_path(state: AlertState, alert_id: str) -> str:
        """Where an alert is kept: ``alerts/<outbox|sent|failed>/<id>.json``."""
        return f"{ALERT_FOLDERS[state]}/{alert_id}.json"

    @staticmethod
    def alert_claim_path(alert_id: str, name: str = "") -> str:
        """Where the claims on a queued alert are kept: ``alerts/claims/<id>/<name>``."""
        folder = f"{CLAIMS_FOLDER}/{alert_id}"
        return f"{folder}/{name}" if name else folder

    @staticmethod
    def alias_history_path(model_name: str, event_id: str = "") -> str:
        """Where a model's alias events are kept (one ``<event id>.json`` each, the id sorting by time)."""
        folder = f"{HISTORY_FOLDER}/{model_name}"
        return f"{folder}/{event_id}.json" if event_id else folder

    # -- reading ----------------------------------------------------------------------------
    def exists(self, path: str) -> bool:
        return bool(self.fs.exists(self._full(path)))

    def read_bytes(self, path: str) -> bytes:
        return bytes(self.fs.cat_file(self._full(path)))

    def read_json(self, path: str) -> Any:
        return json.loads(self.read_bytes(path))

    # Arrow reads local files itself, and remote objects without pre-buffering. Arrow's own
    # threads then never call back into Python: one that does (to read a Python file object)
    # while the interpreter exits is ended inside C++ and aborts the process with
    # "terminate called without an active exception" after the work is done.
    def read_parquet(self, path: str, columns: list[str] | None = None) -> pa.Table:
        if self._local:
            with pq.ParquetFile(self._full(path)) as source:
                return source.read(columns=columns)
        with self.fs.open(self._full(path), "rb") as handle:
            return pq.read_table(handle, columns=columns, pre_buffer=False)

    def open_parquet(self, path: str) -> pq.ParquetFile:
        """A parquet file for streaming record batches; close it when done."""
        if self._local:
            return pq.ParquetFile(self._full(path))
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
        self._sweep_folder(parent)
        tmp = f"{parent}/{temp_name(posixpath.basename(full))}"
        try:
            with self.fs.open(tmp, "wb") as handle:
                yield handle
            self.fs.mv(tmp, full)
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            raise OSError(
                exc.errno,
                f"the lake is full: {path} was not written (its previous version, if any, is kept and "
                f"nothing partial is left); free space under {self.root_uri}",
            ) from exc
        finally:
            if self.fs.exists(tmp):
                self.fs.rm(tmp)

    def write_bytes(self, path: str, data: Bytes) -> str:
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

    def write_if_absent(self, path: str, data: Bytes) -> bool:
        """Create ``path`` with ``data`` only if nothing is there yet; returns whether it did.

        Atomic: of writers creating the same path at once, exactly one succeeds and the
        others get ``False`` (so an alert's claim has one owner). A local object is written
        under a temporary name and hard-linked into place, which fails if the name exists
        (``O_EXCL`` semantics, with the content complete when it appears); an S3 object is a
        conditional PutObject (``If-None-Match: *``).
        """
        full = self._full(path)
        if not self._local:
            try:
                self.fs.pipe_file(full, bytes(data), mode="create")
            except FileExistsError:
                return False
            return True
        parent = posixpath.dirname(full)
        self.fs.makedirs(parent, exist_ok=True)
        self._sweep_folder(parent)
        tmp = f"{parent}/{temp_name(posixpath.basename(full))}"
        try:
            with builtins.open(tmp, "xb") as handle:
                handle.write(data)
            os.link(tmp, full)
        except FileExistsError:
            return False
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)
        return True

    def remove(self, path: str, recursive: bool = False) -> None:
        full = self._full(path)
        if self.fs.exists(full):
            self.fs.rm(full, recursive=recursive)

    # -- leftovers of killed writers ----------------------------------------------------------
    def sweep(self, prefix: str = "", grace_seconds: float = TEMP_GRACE_SECONDS) -> builtins.list[str]:
        """Remove the stale temporaries below ``prefix`` (see :func:`is_stale_temp`).

        Stages call it on the folders they write before writing, so a run cleans up after
        the killed attempts before it. Returns the lake paths removed; on S3 there is
        nothing to sweep.
        """
        base = self._full(prefix) if prefix else self._root
        if not self._local or not self.fs.isdir(base):
            return []
        root = self._root.rstrip("/") + "/"
        found = self.fs.find(base, detail=True)
        removed = [p for p, info in sorted(found.items()) if self._remove_if_stale(p, info, grace_seconds)]
        return [p[len(root) :] if p.startswith(root) else p for p in removed]

    def _sweep_folder(self, folder: str) -> None:
        """Remove the stale temporaries directly in ``folder`` (each local write does, cheaply)."""
        for info in self.fs.ls(folder, detail=True):
            if info.get("type") == "file":
                self._remove_if_stale(info["name"], info, TEMP_GRACE_SECONDS)

    def _remove_if_stale(self, full: str, info: dict[str, Any], grace_seconds: float) -> bool:
        name = posixpath.basename(full)
        if not is_temp(name):
            return False
        age = time.time() - float(info.get("mtime") or 0.0)
        if not is_stale_temp(name, age, grace_seconds):
            return False
        with contextlib.suppress(FileNotFoundError):  # another sweeper got there first
            self.fs.rm_file(full)
        return True


def inventory(lake: Lake) -> dict[str, list[Entry]]:
    """The lake's objects grouped by zone (raw, validated, ...)."""
    return {zone: list(lake.list(zone)) for zone in ZONES}
