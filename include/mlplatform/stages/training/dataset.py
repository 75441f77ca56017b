"""Training sets: validated snapshots of a window, split by time, labelled, range-checked, sampled.

:func:`assemble_training_set` writes them to the lake as
``features/<use case>/training/<key>/{train,validation}.parquet`` with their lineage beside
them; :func:`read_tlc_files` builds the same labelled rows from raw TLC files, for training
outside Airflow.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, ClassVar

import pandas as pd

from mlplatform.adapters import snapshots
from mlplatform.adapters.lake import Lake
from mlplatform.core import modelling, retrain, tlc
from mlplatform.core.modelling import input_columns
from mlplatform.core.months import check as check_month
from mlplatform.core.months import end_of
from mlplatform.core.records import Record
from mlplatform.core.spec import UseCase

if TYPE_CHECKING:
    import pyarrow as pa

    from mlplatform.adapters.snapshots import Snapshot

log = logging.getLogger(__name__)

MAX_VALIDATION_ROWS = 250_000
"""Validation rows evaluated (a uniform sample of the held-out months beyond this)."""
SAMPLE_SEED = 0
"""Seed of every sample training draws, so a retried task draws the same rows."""
VALIDATION_DAYS = 8
"""A split within months (see :func:`select_window`) validates on their last days."""


def safe_key(text: str) -> str:
    """``text`` with every character MLflow and object stores dislike replaced by ``_``."""
    return re.sub(r"[^\w.\-]", "_", str(text))


def _expression_columns(*expressions: str | None) -> list[str]:
    names = set(tlc.NORMALISED_SCHEMA.names)
    found: list[str] = []
    for expression in filter(None, expressions):
        for token in re.findall(r"[A-Za-z_]\w*", expression):
            if token in names and token not in found:
                found.append(token)
    return found


def source_columns(use_case: UseCase) -> list[str]:
    """Normalised columns training reads: model inputs plus what the filter and target need."""
    columns = input_columns(use_case.features.all)
    extra = _expression_columns(use_case.data.filter, use_case.target.expression)
    if use_case.target.expression is None:
        extra.append(use_case.target.column)
    return [*columns, *(c for c in extra if c not in columns)]


def labelled(trips: pd.DataFrame, use_case: UseCase) -> pd.DataFrame:
    """The modelled rows of normalised ``trips``: model inputs plus the target column, for
    the trips whose target is known and within the spec's ``target.range``."""
    return labelled_and_excluded(trips, use_case)[0]


def labelled_and_excluded(trips: pd.DataFrame, use_case: UseCase) -> tuple[pd.DataFrame, int]:
    """:func:`labelled` rows, and how many labelled rows ``target.range`` left out."""
    rows = modelling.modelled_rows(trips, use_case.data.filter)
    target = modelling.target_values(rows, use_case.target.column, use_case.target.expression)
    out = rows[input_columns(use_case.features.all)].copy()
    out[use_case.target.column] = target
    out = out[target.notna()]
    keep = modelling.in_target_range(out[use_case.target.column], use_case.target.range_)
    return out[keep].reset_index(drop=True), int((~keep).sum())


def report_range(use_case: UseCase, role: str, kept: int, excluded: int) -> None:
    """Log how many rows of ``role`` (training, validation) the spec's ``target.range`` left out."""
    if use_case.target.range_ is None:
        return
    low, high = use_case.target.range_
    share = 100 * excluded / max(kept + excluded, 1)
    where = f"target.range [{low:g}, {high:g}] {use_case.target.unit}"
    log.info(
        "%s %s rows: %d within %s, %d (%.2f%%) outside it left out",
        use_case.name,
        role,
        kept,
        where,
        excluded,
        share,
    )


def sample(frame: pd.DataFrame, rows: int | None) -> pd.DataFrame:
    """A uniform sample of ``rows`` rows of ``frame`` (all of it when smaller), in its order."""
    if rows is None or len(frame) <= rows:
        return frame
    return frame.sample(rows, random_state=SAMPLE_SEED).sort_index().reset_index(drop=True)


# Keyword-only records: their fields are declared in the order their JSON form has always had.
@dataclass(frozen=True, kw_only=True)
class TrainingInput(Record):
    """One input a model trained or was validated on, with its SHA-256 and rows.

    A validated snapshot has its ``month`` and ``role`` (``training`` or ``validation``), and
    ``validation_from`` when one month is split by pickup time (:func:`split_within`); a raw
    TLC file (training outside Airflow) counts the labelled rows ``target.range`` left out.
    """

    omitted_when_none: ClassVar[tuple[str, ...]] = ("month", "role", "validation_from", "rows_outside_range")

    month: str | None = None
    digest: str
    rows: int
    uri: str
    role: str | None = None
    validation_from: str | None = None
    rows_outside_range: int | None = None


@dataclass(frozen=True, kw_only=True)
class TrainingSet(Record):
    """A training and a validation set, as :func:`assemble_training_set` wrote them to the lake
    (``lineage.json`` beside them holds this record).

    Training on raw files outside Airflow has no sets in the lake: ``train_uri`` and
    ``validation_uri`` are ``None`` then, and ``lineage`` names the files.
    """

    use_case: str
    train_uri: str | None = None
    validation_uri: str | None = None
    train_rows: int
    validation_rows: int
    rows_outside_range: dict[str, int]  # labelled rows target.range left out, by role
    window_months: int | None = None
    since: str | None = None
    validation_from: str | None = None
    train_months: tuple[str, ...] = ()
    validation_months: tuple[str, ...] = ()
    lineage: tuple[TrainingInput, ...] = ()

    def set_uris(self) -> tuple[str, str]:
        """The URIs of the training and the validation set in the lake."""
        if self.train_uri is None or self.validation_uri is None:
            raise ValueError(
                f"the training set of {self.use_case} was not written to the lake: assemble it first"
            )
        return self.train_uri, self.validation_uri


def select_window(
    available: list[Snapshot], window_months: int, validation_months: int, since: str | None = None
) -> tuple[list[Snapshot], list[Snapshot]]:
    """The (training, validation) snapshots: the newest ``window_months``, split by time.

    ``since`` (a month) keeps only that month and later ones: a retrain after monitoring saw
    the data change learns the new regime alone. When that leaves too few months to hold
    whole months out, both lists are the same months and :func:`split_within` divides
    their trips by pickup time.
    """
    if since is not None:
        check_month(since, "since")
        newer = [s for s in available if s.month >= since]
        if not newer:
            months = ", ".join(s.month for s in available) or "none"
            raise ValueError(
                f"no validated month from {since} on to train on (validated: {months}); "
                "validate that month first (the <use case>_validate DAG)"
            )
        if len(newer) <= validation_months:
            window = newer[-window_months:]
            return window, window
        available = newer
    if len(available) < validation_months + 1:
        months = ", ".join(s.month for s in available) or "none"
        raise ValueError(
            f"training needs at least {validation_months + 1} months of validated data "
            f"({validation_months} held out for validation), but only these are validated: {months}; "
            "validate more months first (the <use case>_validate DAG)"
        )
    if window_months <= validation_months:
        raise ValueError(
            f"window_months ({window_months}) must exceed training.validation_months ({validation_months})"
        )
    window = available[-window_months:]
    return window[:-validation_months], window[-validation_months:]


def split_time(months: list[str]) -> datetime:
    """Where a split within ``months`` starts validation: ``VALIDATION_DAYS`` before their end."""
    return end_of(max(months)) - timedelta(days=VALIDATION_DAYS)


def split_within(frame: pd.DataFrame, cutoff: datetime) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Trips picked up before ``cutoff`` (training) and from it on (validation)."""
    late = pd.to_datetime(frame["pickup_datetime"]) >= pd.Timestamp(cutoff)
    return frame[~late].reset_index(drop=True), frame[late].reset_index(drop=True)


def _read_snapshots(lake: Lake, snaps: list[Snapshot], columns: list[str]) -> pd.DataFrame:
    frames = [snapshots.read_table(lake, s, columns).to_pandas() for s in snaps]
    return pd.concat(frames, ignore_index=True)


def _lineage(
    lake: Lake, train_snaps: list[Snapshot], valid_snaps: list[Snapshot], validation_from: str | None
) -> tuple[TrainingInput, ...]:
    return tuple(
        TrainingInput(
            month=s.month,
            digest=s.digest,
            rows=s.rows,
            uri=lake.uri(s.data_path),
            role=role,
            validation_from=validation_from,
        )
        for role, snaps in (("training", train_snaps), ("validation", valid_snaps))
        for s in snaps
    )


def on_new_data(lake: Lake, use_case: UseCase) -> retrain.RetrainDecision:
    """Whether a newly validated month trains a challenger, given the validated months in the
    lake and whether the registry has a champion (:func:`mlplatform.core.retrain.on_new_data`)."""
    from mlplatform.adapters import registry

    has_champion = registry.alias_version(registry.client(), use_case.name, "champion") is not None
    return retrain.on_new_data(use_case, len(snapshots.current_snapshots(lake, use_case.name)), has_champion)


def assemble_training_set(
    lake: Lake, use_case: UseCase, key: str, window_months: int | None = None, since: str | None = None
) -> TrainingSet:
    """Write the training and validation sets of ``use_case`` to the lake, with their lineage.

    ``key`` names the output folder (the train DAG passes its run id), so a retried task
    overwrites its own output and nothing else. ``since``: see :func:`select_window`.
    """
    window_months = window_months or use_case.training.window_months
    available = snapshots.current_snapshots(lake, use_case.name)
    train_snaps, valid_snaps = select_window(
        available, window_months, use_case.training.validation_months, since
    )
    columns = source_columns(use_case)
    cutoff = None
    if train_snaps == valid_snaps:
        cutoff = split_time([s.month for s in valid_snaps])
        train, valid = split_within(_read_snapshots(lake, train_snaps, columns), cutoff)
    else:
        train, valid = (
            _read_snapshots(lake, train_snaps, columns),
            _read_snapshots(lake, valid_snaps, columns),
        )
    train, train_excluded = labelled_and_excluded(train, use_case)
    valid, valid_excluded = labelled_and_excluded(valid, use_case)
    report_range(use_case, "training", len(train), train_excluded)
    report_range(use_case, "validation", len(valid), valid_excluded)
    train = sample(train, use_case.training.sample_rows)
    valid = sample(valid, MAX_VALIDATION_ROWS)
    if len(train) == 0 or len(valid) == 0:
        raise ValueError(
            f"no modelled rows to train on for {use_case.name} in months "
            f"{', '.join(s.month for s in train_snaps + valid_snaps)}: check data.filter in the spec"
        )
    folder = f"features/{use_case.name}/training/{safe_key(key)}"
    validation_from = None if cutoff is None else cutoff.isoformat()
    assembled = TrainingSet(
        use_case=use_case.name,
        train_uri=lake.write_parquet(f"{folder}/train.parquet", _to_arrow(train)),
        validation_uri=lake.write_parquet(f"{folder}/validation.parquet", _to_arrow(valid)),
        train_rows=len(train),
        validation_rows=len(valid),
        rows_outside_range={"training": train_excluded, "validation": valid_excluded},
        window_months=window_months,
        since=since,
        validation_from=validation_from,
        train_months=tuple(s.month for s in train_snaps),
        validation_months=tuple(s.month for s in valid_snaps),
        lineage=_lineage(lake, train_snaps, valid_snaps, validation_from),
    )
    lake.write_json(f"{folder}/lineage.json", assembled.to_dict())
    return assembled


def _to_arrow(frame: pd.DataFrame) -> pa.Table:
    import pyarrow as pa

    return pa.Table.from_pandas(frame, preserve_index=False)


def read_set(lake: Lake, uri: str) -> pd.DataFrame:
    """A training or validation set :func:`assemble_training_set` wrote, by its URI."""
    return lake.read_parquet(lake.relative(uri)).to_pandas()


def read_tlc_files(use_case: UseCase, paths: list[str]) -> tuple[pd.DataFrame, list[TrainingInput]]:
    """Labelled rows of raw TLC files (any taxi type and year; paths or URIs) and their lineage
    (which counts, per file, the labelled rows ``target.range`` left out)."""
    import hashlib

    import fsspec
    import pyarrow as pa
    import pyarrow.parquet as pq

    frames, lineage = [], []
    for path in paths:
        with fsspec.open(path, "rb") as handle:
            data = handle.read()
        try:
            table = pq.read_table(pa.BufferReader(data))
        except Exception as exc:  # pyarrow raises several types for a file that is not parquet
            raise ValueError(f"{path} is not a readable parquet file: {exc}") from None
        normalised = tlc.normalise(table, expected=use_case.data.taxi_types)
        rows, excluded = labelled_and_excluded(
            normalised.select(source_columns(use_case)).to_pandas(), use_case
        )
        frames.append(rows)
        lineage.append(
            TrainingInput(
                uri=path,
                digest=hashlib.sha256(data).hexdigest(),
                rows=table.num_rows,
                rows_outside_range=excluded,
            )
        )
    return pd.concat(frames, ignore_index=True), lineage
