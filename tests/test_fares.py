"""TLC's dated fare table (``core/fares.py``): one test per regime, look-ups and their errors."""

from __future__ import annotations

import datetime as dt
import itertools

import numpy as np
import pytest

from mlplatform.core import fares
from mlplatform.core.fares import SCHEDULES, schedule_at, schedule_codes


@pytest.mark.parametrize("taxi_type", ["yellow", "green"])
def test_2012_fares_before_the_congestion_surcharge(taxi_type: str) -> None:
    s = schedule_at(taxi_type, dt.date(2019, 1, 15))
    assert (s.initial_charge, s.per_unit, s.night_surcharge, s.peak_surcharge) == (2.50, 0.50, 0.50, 1.00)
    assert (s.mta_tax, s.improvement_surcharge, s.congestion_surcharge, s.airport_fee) == (
        0.50,
        0.30,
        0.0,
        0.0,
    )
    assert (s.jfk_flat_fare, s.newark_surcharge, s.cbd_congestion_fee) == (52.00, 17.50, 0.0)
    assert s.start == dt.date(2019, 1, 1) and s.end == dt.date(2019, 2, 2)
    assert "2012-09-04" in s.source


@pytest.mark.parametrize(("taxi_type", "congestion"), [("yellow", 2.50), ("green", 2.75)])
def test_congestion_surcharge_from_2019_02_02(taxi_type: str, congestion: float) -> None:
    assert schedule_at(taxi_type, dt.datetime(2019, 2, 1, 23, 59)).congestion_surcharge == 0.0
    s = schedule_at(taxi_type, dt.datetime(2019, 2, 2, 0, 0))
    assert s.congestion_surcharge == congestion and s.improvement_surcharge == 0.30
    assert "congestion" in s.source


def test_airport_fee_on_yellow_pickups_only_from_2021_04_05() -> None:
    assert schedule_at("yellow", dt.date(2021, 4, 4)).airport_fee == 0.0
    assert schedule_at("yellow", dt.date(2021, 4, 5)).airport_fee == 1.25
    assert schedule_at("green", dt.date(2021, 4, 5)).airport_fee == 0.0
    assert schedule_at("yellow", dt.date(2021, 1, 10)).initial_charge == 2.50


@pytest.mark.parametrize("taxi_type", ["yellow", "green"])
def test_fare_change_of_2022_12_19(taxi_type: str) -> None:
    before = schedule_at(taxi_type, dt.datetime(2022, 12, 18, 23, 59, 59))
    s = schedule_at(taxi_type, dt.datetime(2022, 12, 19))
    assert before.improvement_surcharge == 0.30 and before.jfk_flat_fare == 52.00
    assert (s.initial_charge, s.per_unit, s.night_surcharge, s.peak_surcharge) == (3.00, 0.70, 1.00, 2.50)
    assert (s.improvement_surcharge, s.jfk_flat_fare, s.newark_surcharge, s.mta_tax) == (
        1.00,
        70.00,
        20.00,
        0.50,
    )
    assert s.airport_fee == (1.75 if taxi_type == "yellow" else 0.0)
    assert s.congestion_surcharge == (2.50 if taxi_type == "yellow" else 2.75)
    assert s.cbd_congestion_fee == 0.0 and "2022-12-19" in s.source


@pytest.mark.parametrize("taxi_type", ["yellow", "green"])
def test_cbd_congestion_toll_from_2025_01_05(taxi_type: str) -> None:
    assert schedule_at(taxi_type, dt.date(2025, 1, 4)).cbd_congestion_fee == 0.0
    s = schedule_at(taxi_type, dt.date(2025, 1, 5))
    assert s.cbd_congestion_fee == 0.75 and s.end is None and s.initial_charge == 3.00
    assert "MTA" in s.source
    assert schedule_at(taxi_type, dt.date(2031, 6, 1)) is s


def test_table_is_contiguous_per_taxi_type_and_names_its_sources() -> None:
    for taxi_type in fares.TAXI_TYPES:
        rows = [s for s in SCHEDULES if s.taxi_type == taxi_type]
        assert rows[0].start == fares.TABLE_START and rows[-1].end is None
        assert all(a.end == b.start for a, b in itertools.pairwise(rows))
    assert all(s.source and s.minimum_fare == s.initial_charge for s in SCHEDULES)


def test_schedule_codes_index_the_table_per_pickup() -> None:
    pickups = np.array(
        ["2019-01-31T23:00", "2022-12-18T23:59", "2022-12-19T00:00", "2025-01-05T08:00"],
        dtype="datetime64[us]",
    )
    codes = schedule_codes("green", pickups)
    assert [SCHEDULES[c].taxi_type for c in codes] == ["green"] * 4
    assert [SCHEDULES[c].start for c in codes] == [
        dt.date(2019, 1, 1),
        dt.date(2021, 4, 5),
        dt.date(2022, 12, 19),
        dt.date(2025, 1, 5),
    ]
    assert schedule_codes("yellow", pickups[:0]).size == 0


def test_bad_look_ups_say_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="unknown taxi type 'fhv'"):
        schedule_at("fhv", dt.date(2023, 1, 1))
    with pytest.raises(ValueError, match="table starts on 2019-01-01"):
        schedule_at("yellow", dt.date(2018, 12, 31))
    with pytest.raises(ValueError, match="before the TLC fare table starts"):
        schedule_codes("green", np.array(["2009-01-01T00:00"], dtype="datetime64[us]"))
    with pytest.raises(ValueError, match="missing"):
        schedule_codes("green", np.array(["NaT"], dtype="datetime64[us]"))
    with pytest.raises(ValueError, match="unknown taxi type"):
        schedule_codes("Yellow", np.array(["2023-01-01T00:00"], dtype="datetime64[us]"))
