"""core/months.py: the one place months are parsed, checked and shifted."""

from __future__ import annotations

from datetime import datetime

import pytest

from mlplatform.core import months


@pytest.mark.parametrize("value", ["2024-01", "1999-12", "2031-10"])
def test_months_are_yyyy_mm(value: str) -> None:
    assert months.is_month(value) and months.check(value) == value


@pytest.mark.parametrize("value", ["2024-13", "2024-00", "2024-1", "24-01", " 2024-01", 202401, None])
def test_anything_else_is_refused_with_what_it_is(value: object) -> None:
    assert not months.is_month(value)
    with pytest.raises(ValueError, match=r"window must be a month as YYYY-MM, got"):
        months.check(value, "window")


def test_arithmetic_crosses_years_both_ways() -> None:
    assert months.shift("2024-12", 1) == "2025-01"
    assert months.shift("2024-01", -1) == "2023-12"
    assert months.shift("2024-03", -27) == "2021-12"
    assert months.sequence("2024-11", 3) == ["2024-11", "2024-12", "2025-01"]


def test_bounds_are_new_york_wall_clock_midnights() -> None:
    assert months.of(datetime(2024, 2, 29, 23, 59)) == "2024-02"
    assert months.start_of("2024-02") == datetime(2024, 2, 1)
    assert months.end_of("2024-12") == datetime(2025, 1, 1)
