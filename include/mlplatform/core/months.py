"""Months, the unit every partition, schedule and window of the platform is keyed on.

A month is a ``YYYY-MM`` string everywhere: in the lake's paths, DAG params, specs and
records. This module is the one place that parses, checks and does arithmetic on them.
"""

from __future__ import annotations

import re
from datetime import datetime

MONTH_PATTERN = r"\d{4}-(0[1-9]|1[0-2])"
"""A month as ``YYYY-MM`` (a regular expression without anchors)."""
_MONTH = re.compile(MONTH_PATTERN)


def is_month(value: object) -> bool:
    """Whether ``value`` is a month string ``YYYY-MM``."""
    return isinstance(value, str) and _MONTH.fullmatch(value) is not None


def check(value: object, what: str = "month") -> str:
    """``value`` if it is a month; else a ``ValueError`` that names ``what``."""
    if not is_month(value):
        raise ValueError(f"{what} must be a month as YYYY-MM, got {value!r}")
    return str(value)


def of(moment: datetime) -> str:
    """The month ``moment`` falls in."""
    return f"{moment.year:04d}-{moment.month:02d}"


def shift(month: str, delta: int) -> str:
    """The month ``delta`` months after ``month`` (before it when negative)."""
    year, mon = map(int, month.split("-"))
    y, m = divmod(year * 12 + mon - 1 + delta, 12)
    return f"{y:04d}-{m + 1:02d}"


def sequence(start: str, count: int) -> list[str]:
    """``count`` consecutive months from ``start``."""
    return [shift(start, i) for i in range(count)]


def start_of(month: str) -> datetime:
    """Midnight of the month's first day (naive: TLC's New York wall clock)."""
    year, mon = map(int, month.split("-"))
    return datetime(year, mon, 1)


def end_of(month: str) -> datetime:
    """Midnight of the first day of the next month: the month's exclusive end."""
    return start_of(shift(month, 1))
