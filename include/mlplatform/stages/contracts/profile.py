"""The month's contract profile: the one row the checkpoint validates.

It holds what reading the month's files found (unreadable files, unlisted taxi types,
missing, mistyped, unexpected or entirely empty columns; :data:`NONE` where there is no
problem), the row count, the share of bad rows and how many rows break each row rule.
The suite's expectations (:mod:`mlplatform.stages.contracts.suite`) are written against
these columns; a problem names its file when the month has several.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mlplatform.core import tlc
from mlplatform.core.spec import UseCase
from mlplatform.stages.contracts.money import MoneyFindings
from mlplatform.stages.contracts.raw import RawFile, RawRead
from mlplatform.stages.contracts.rules import KEY_COLUMNS

NONE = "none"
"""Profile value of a problem column when there is no problem."""


def contract_profile(
    files: Sequence[RawFile],
    reads: Sequence[RawRead],
    use_case: UseCase,
    rule_counts: dict[str, int],
    bad_row_share: float,
    money: MoneyFindings | None = None,
) -> dict[str, Any]:
    """The profile of a month whose ``files`` were read as ``reads``, with the row rules' counts
    and what its money columns say as a whole (:mod:`.money`)."""
    money = money or MoneyFindings()
    pairs = list(zip(files, reads, strict=True))

    def named(f: RawFile) -> str:  # a problem names its file when there are several
        return f"{f.path.rsplit('/', 1)[-1]}: " if len(files) > 1 else ""

    def listed(found: Sequence[tuple[RawFile, str]], sep: str = "; ") -> str:
        return sep.join(f"{named(f)}{problem}" for f, problem in found) or NONE

    all_null = [
        (f, c)
        for f, r in pairs
        if r.trips is not None and r.trips.num_rows
        for c in KEY_COLUMNS
        if r.trips.column(c).null_count == r.trips.num_rows
    ]
    unlisted = [
        (
            f,
            f"{r.taxi_type} trips but {use_case.name} expects {' or '.join(f.taxi_types)} "
            f"(the schema tells: {r.evidence}): a {r.taxi_type} file named or landed as "
            f"{' or '.join(f.taxi_types)}",
        )
        for f, r in pairs
        if r.taxi_type is not None and r.taxi_type not in f.taxi_types
    ]
    misnamed = [
        (f, f"{f.path.rsplit('/', 1)[-1]} is named {kind} but holds {r.taxi_type} trips "
         f"(the schema tells: {r.evidence}); its rows are judged as {r.taxi_type}")
        for f, r in pairs
        if r.taxi_type in f.taxi_types
        and (kind := _named_taxi_type(f.path)) is not None
        and kind != r.taxi_type
    ]  # fmt: skip
    return {
        "file_problem": listed([(f, r.file_problem) for f, r in pairs if r.file_problem]),
        "unlisted_taxi_type": listed(unlisted),
        **{
            f"{kind}_columns": listed(_columns(pairs, f"{kind}_columns"))
            for kind in ("missing", "mistyped", "unexpected")
        },
        "all_null_columns": listed(all_null, sep=", "),
        "money_units": money.cents or NONE,
        "empty_surcharge_columns": "; ".join(money.empty_surcharges) or NONE,
        "misnamed_files": "; ".join(problem for _, problem in misnamed) or NONE,
        "row_count": sum(r.rows for r in reads),
        "bad_row_share": bad_row_share,
        **{f"rows_{name}": n for name, n in rule_counts.items()},
    }


def _named_taxi_type(path: str) -> str | None:
    """The taxi type a TLC file name says (``green_tripdata_2023-01.parquet``: green), if any."""
    name = tlc.parse_file_name(path.rsplit("/", 1)[-1])
    return None if name is None else name.taxi_type


def _columns(pairs: Sequence[tuple[RawFile, RawRead]], problem: str) -> list[tuple[RawFile, str]]:
    """Each file's columns with ``problem`` (a :class:`RawRead` field), where it has any."""
    return [(f, ", ".join(getattr(r, problem))) for f, r in pairs if getattr(r, problem)]
