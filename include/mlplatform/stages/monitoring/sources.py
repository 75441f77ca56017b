"""The lake data a monitoring window reads: modelled snapshot rows with their ground truth,
the serving log, and reproducible uniform samples of either.

Every measure of :mod:`mlplatform.stages.monitoring` starts from these readers, so a
window's rows are chosen, filtered and sampled the same way for performance and drift.
"""

from __future__ import annotations

import re
import zlib

import numpy as np
import pandas as pd
import pyarrow as pa

from mlplatform.adapters import snapshots
from mlplatform.adapters.lake import Lake
from mlplatform.core.spec import UseCase

ACTUAL = "actual"
"""Column holding the ground truth once predictions are joined to outcomes."""


def seed(*parts: str) -> int:
    """A sampling seed derived from ``parts``: the same window samples the same rows every run."""
    return zlib.crc32("|".join(parts).encode())


def sample(frame: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    """At most ``rows`` rows of ``frame``, drawn uniformly with ``seed``, in their original order."""
    return frame if len(frame) <= rows else frame.sample(rows, random_state=seed).sort_index()


def answer_column(use_case: UseCase) -> str:
    """The column holding the model's answer: ``prediction``, or a classifier's ``probability``."""
    return "prediction" if use_case.task == "regression" else "probability"


def _referenced(use_case: UseCase, schema: list[str]) -> list[str]:
    """Snapshot columns the spec's ``data.filter`` and ``target.expression`` mention."""
    text = f"{use_case.data.filter or ''} {use_case.target.expression or ''}"
    return [c for c in schema if re.search(rf"\b{re.escape(c)}\b", text)]


def modelled_frame(
    lake: Lake, use_case: UseCase, snapshot: snapshots.Snapshot, columns: list[str], with_truth: bool = False
) -> pd.DataFrame:
    """The snapshot's rows the use case models (``data.filter``), indexed by row position.

    ``with_truth`` adds the ground truth (``target.column`` or ``target.expression``) as
    :data:`ACTUAL`; it is NaN where the snapshot cannot tell it.
    """
    from mlplatform.core.features import modelled_rows, target_values

    schema = list(snapshot.manifest.get("schema") or {})
    extra = _referenced(use_case, schema)
    target = use_case.target.column
    if with_truth and use_case.target.expression is None and target in schema:
        extra.append(target)
    wanted = list(dict.fromkeys([*columns, *extra]))
    frame = modelled_rows(snapshots.read_table(lake, snapshot, wanted).to_pandas(), use_case.data.filter)
    out = frame[columns].copy()
    if with_truth:
        try:
            out[ACTUAL] = target_values(frame, target, use_case.target.expression).astype(float)
        except ValueError:  # the month's data does not carry the outcome (yet)
            out[ACTUAL] = np.nan
    return out


def serving_log(lake: Lake, use_case: str, window: str) -> pd.DataFrame | None:
    """Every logged real-time prediction for a trip that began in the window.

    The log is partitioned by the month a prediction was served, which is the trip's
    month in production; replays of past trips land in later folders, so every folder
    from the window on is read and rows are kept by pickup month.
    """
    folders: dict[str, list[str]] = {}
    for entry in lake.list(f"predictions/{use_case}/serving"):
        month = entry.path.split("/")[3].removeprefix("month=")
        if entry.path.endswith(".parquet") and month >= window:
            folders.setdefault(month, []).append(entry.path)
    frames = []
    for month, files in sorted(folders.items()):
        frame = pa.concat_tables(
            [lake.read_parquet(p) for p in files], promote_options="permissive"
        ).to_pandas()
        if "pickup_datetime" in frame:
            # A failed request without a readable pickup time counts where it was served.
            pickup = pd.to_datetime(frame["pickup_datetime"]).dt.strftime("%Y-%m").fillna(month)
            frame = frame[pickup == window]
        elif month != window:
            continue
        frames.append(frame)
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else None
