"""Arrow column helpers the row rules and the duplicate detector share.

A rule's mask is an Arrow boolean array, True where a row breaks the rule. These helpers
keep one convention: a value that is null (or NaN) never breaks a rule by comparison;
only ``missing_key`` looks for it, with :func:`missing`.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def missing(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Null, or NaN in a float column."""
    return pc.is_null(column, nan_is_null=True)


def hits(condition: pa.ChunkedArray) -> pa.ChunkedArray:
    """A comparison as a mask: a row whose inputs are null does not break the rule."""
    return pc.fill_null(condition, False)


def out_of_range(column: pa.ChunkedArray, low: float, high: float) -> pa.ChunkedArray:
    """Below ``low`` or above ``high`` (null and NaN are neither)."""
    return hits(pc.or_(pc.less(column, low), pc.greater(column, high)))


def outside(column: pa.ChunkedArray, allowed: Iterable[int]) -> pa.ChunkedArray:
    """Present, but not one of the ``allowed`` codes (an empty code is allowed)."""
    return pc.and_(pc.is_valid(column), pc.invert(pc.is_in(column, pa.array(list(allowed), column.type))))


def filled(column: pa.ChunkedArray) -> np.ndarray:
    """A column as numpy values, nulls as zeros (no copy for one chunk without nulls)."""
    if pa.types.is_timestamp(column.type):
        column = column.cast(pa.int64())
    if column.null_count:
        column = column.fill_null(pa.scalar(0, column.type))
    values: np.ndarray = column.to_numpy()
    return values


def count(mask: pa.ChunkedArray) -> int:
    """How many rows a mask flags."""
    return int(pc.sum(mask, min_count=0).as_py())
