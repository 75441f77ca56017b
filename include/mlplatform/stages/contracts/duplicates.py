"""The duplicate detector behind the ``duplicate_row`` rule: trips that repeat an earlier trip.

Two trips are the same trip when they agree on :data:`~mlplatform.stages.contracts.rules.DUPLICATE_KEY`.
A 3M-row month is checked in well under a second, without sorting it or hashing it twice;
:func:`duplicated` marks the same rows as pandas' ``duplicated(keep="first")``.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from mlplatform.stages.contracts.arrays import filled
from mlplatform.stages.contracts.rules import DUPLICATE_KEY


def duplicate_rows(trips: pa.Table) -> np.ndarray:
    """Rows of ``trips`` that repeat an earlier row on every column of the duplicate key."""
    return duplicated([filled(trips.column(name)) for name in DUPLICATE_KEY])


def duplicated(keys: list[np.ndarray]) -> np.ndarray:
    """Rows equal on every key to an earlier row: hashed, narrowed, then confirmed exactly.

    Each row's keys are hashed to 64 bits. Counting hashes per bucket (their top bits, one
    pass of ``np.bincount``) keeps the rows that share a bucket, a small share of the
    month; among those, only rows whose hash repeats are compared key by key. Nothing
    sorts or hashes the whole month a second time.
    """
    import pandas as pd

    n = keys[0].size
    out = np.zeros(n, dtype=bool)
    if n < 2:
        return out
    words = [k.view(np.uint64) if k.dtype.itemsize == 8 else k.astype(np.uint64) for k in keys]
    digest = np.full(n, 0xCBF29CE484222325, dtype=np.uint64)
    for word in words:  # FNV-1a over 64-bit words; wraps by design
        digest ^= word
        digest *= np.uint64(0x100000001B3)
    # 8-16 buckets a row, at most 2^24 (128 MB of counts; ~5 a row for 3M rows): few shared by chance
    bits = int(min(24, max(8, np.ceil(np.log2(n)) + 3)))
    bucket = (digest >> np.uint64(64 - bits)).astype(np.intp)
    shared = np.flatnonzero(np.bincount(bucket, minlength=1 << bits)[bucket] > 1)
    candidates = shared[pd.Series(digest[shared]).duplicated(keep=False).to_numpy()]
    if not candidates.size:
        return out
    frame = pd.DataFrame({i: w[candidates] for i, w in enumerate(words)})
    out[candidates[frame.duplicated(keep="first").to_numpy()]] = True
    return out
