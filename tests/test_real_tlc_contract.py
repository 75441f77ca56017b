"""The data contract on real TLC months: every month passes, each pathology is quarantined.

The fixtures are TLC's own green files of 2021-01..03 (the 2012 fares) and 2023-01 (the
first month of the fare change of 2022-12-19), ``tests/fixtures/real_tlc``, typed as TLC
published them (``ehail_fee: null``). Each is landed in a lake and validated the way the
validate DAG does it, one month after the other, so the later months are also checked
against the volume and the rule shares of the earlier ones. The counts asserted here are the
figures each rule's ``meta.calibration`` cites (``great_expectations/expectations/nyc_tlc_trips.json``).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from mlplatform import cli
from mlplatform.adapters import snapshots
from mlplatform.adapters.lake import Lake
from mlplatform.core import spec, tlc
from mlplatform.stages import contracts, ingest

REPO = Path(__file__).resolve().parents[1]
REAL = REPO / "tests" / "fixtures" / "real_tlc"
MONTHS = ("2021-01", "2021-02", "2021-03", "2023-01")
USE_CASE = spec.load_spec("taxi_trip_duration")
MAX_MONTH_SHARE, MAX_RULE_SHARE = 0.08, 0.01
"""What a usual real month may quarantine: in all, and by any rule but ``zero_distance``."""

# month -> rows, quarantined rows, rows per rule, rows per fare reading (the calibration figures)
COUNTS: dict[str, tuple[int, int, dict[str, int], dict[str, int]]] = {
    "2021-01": (
        76518, 2913,
        {"pickup_outside_month": 3, "dropoff_not_after_pickup": 66, "implausible_duration": 140,
         "idle_trip": 195, "implausible_distance": 55, "zero_distance": 2553, "negative_fare": 134,
         "fare_inconsistent": 90},
        {"improvement_surcharge_excluded": 1, "congestion_surcharge_in_extra": 1627,
         "congestion_surcharge_unitemised": 522},
    ),
    "2021-02": (
        64572, 2632,
        {"pickup_outside_month": 2, "dropoff_not_after_pickup": 69, "implausible_duration": 88,
         "idle_trip": 180, "implausible_distance": 29, "zero_distance": 2056, "negative_fare": 111,
         "fare_inconsistent": 362},
        {"improvement_surcharge_excluded": 1, "congestion_surcharge_in_extra": 1428,
         "congestion_surcharge_unitemised": 485},
    ),
    "2021-03": (
        83827, 3071,
        {"dropoff_not_after_pickup": 86, "implausible_duration": 140, "idle_trip": 223,
         "implausible_distance": 24, "zero_distance": 2751, "negative_fare": 147, "fare_inconsistent": 67},
        {"improvement_surcharge_excluded": 2, "congestion_surcharge_in_extra": 1751,
         "congestion_surcharge_unitemised": 566},
    ),
    "2023-01": (
        68211, 3774,
        {"pickup_outside_month": 4, "dropoff_not_after_pickup": 61, "implausible_duration": 203,
         "idle_trip": 363, "implausible_distance": 35, "zero_distance": 3350, "negative_fare": 176,
         "fare_inconsistent": 54},
        {"improvement_surcharge_excluded": 9090, "congestion_surcharge_in_extra": 2341,
         "congestion_surcharge_unitemised": 1407},
    ),
}  # fmt: skip


def raw_file(month: str) -> Path:
    return REAL / f"green_tripdata_{month}.parquet"


@pytest.fixture(scope="module")
def validated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The three months landed as green files and validated in order, as the DAG would."""
    root = tmp_path_factory.mktemp("gx") / "great_expectations"
    shutil.copytree(REPO / "great_expectations", root, ignore=shutil.ignore_patterns("uncommitted"))
    patch = pytest.MonkeyPatch()
    patch.setenv("MLPLATFORM_GX_ROOT", str(root))
    lake = Lake((tmp_path_factory.mktemp("lake")).as_uri())
    outcomes, digests = {}, {}
    for month in MONTHS:
        landed = ingest.land_bytes(lake, USE_CASE.data.dataset, "green", month, raw_file(month).read_bytes())
        digests[month] = landed.digest
        outcomes[month] = contracts.validate_month(lake, USE_CASE, month)
    yield {"lake": lake, "outcomes": outcomes, "digests": digests}
    patch.undo()


def quarantined(world: dict[str, Any], month: str) -> dict[int, set[str]]:
    """The month's quarantined rows: source row -> reasons."""
    lake = world["lake"]
    rows = lake.read_parquet(lake.relative(world["outcomes"][month].quarantine.rows_uri))
    reasons = rows.column("quarantine_reason").to_pylist()
    return {
        int(r): set(q.split(";")) for r, q in zip(rows.column("source_row").to_pylist(), reasons, strict=True)
    }


def real_trips(month: str):
    return tlc.normalise(pq.read_table(raw_file(month)), "green")


@pytest.mark.parametrize("month", MONTHS)
def test_every_real_month_passes_with_a_justified_quarantine(validated: dict, month: str) -> None:
    outcome = validated["outcomes"][month]
    assert outcome.success and outcome.severity == "quarantine", outcome.summary
    assert not outcome.breaches and not outcome.warnings and not outcome.jumps
    rows, bad, rule_counts, reading_counts = COUNTS[month]
    assert (outcome.rows, outcome.quarantined_rows) == (rows, bad)
    assert dict(outcome.rule_counts) == rule_counts and dict(outcome.reading_counts) == reading_counts
    assert outcome.bad_row_share <= MAX_MONTH_SHARE < USE_CASE.contract.max_bad_row_share
    shares = {rule: n / rows for rule, n in rule_counts.items() if rule != "zero_distance"}
    assert max(shares.values()) <= MAX_RULE_SHARE, shares
    assert contracts.alert_for(outcome) is None  # a usual month: no Slack message
    lake = validated["lake"]
    snapshot = snapshots.current_snapshot(lake, USE_CASE.name, month)
    assert snapshot.rows == outcome.rows - outcome.quarantined_rows
    assert snapshot.manifest["contract"]["volume"]["checked"] is (month != "2021-01")
    # the raw file is only read
    raw = Lake.raw_path(USE_CASE.data.dataset, "green", month)
    assert lake.digest(raw) == validated["digests"][month]
    assert lake.read_bytes(raw) == raw_file(month).read_bytes()


def test_the_null_typed_column_is_accepted_and_empty(validated: dict) -> None:
    assert pq.read_schema(raw_file("2021-01")).field("ehail_fee").type.id == 0  # null
    snapshot = snapshots.current_snapshot(validated["lake"], USE_CASE.name, "2021-01")
    table = snapshots.read_table(validated["lake"], snapshot, ["ehail_fee", "taxi_type"])
    assert table.column("ehail_fee").null_count == snapshot.rows
    assert set(table.column("taxi_type").to_pylist()) == {"green"}


def _rows(mask) -> list[int]:
    return np.flatnonzero(np.asarray(mask)).tolist()


def test_zero_distance_with_a_real_duration_is_quarantined(validated: dict) -> None:
    trips = real_trips("2021-01")
    rows = _rows(
        pc.and_(pc.equal(trips.column("trip_distance"), 0.0), pc.greater(trips.column("duration_min"), 5.0))
    )
    assert len(rows) > 1000
    reasons = quarantined(validated, "2021-01")
    assert all("zero_distance" in reasons[r] for r in rows)


def test_idle_trips_of_hours_are_quarantined(validated: dict) -> None:
    trips = real_trips("2021-02")
    duration, distance = trips.column("duration_min").to_numpy(), trips.column("trip_distance").to_numpy()
    rows = _rows((duration > 120) & (duration <= 720) & (distance > 0) & (distance < 2 * duration / 60))
    assert len(rows) > 20
    reasons = quarantined(validated, "2021-02")
    assert all(reasons[r] >= {"idle_trip"} for r in rows)


def test_negative_fares_are_quarantined_as_refunds_whose_totals_add_up(validated: dict) -> None:
    trips = real_trips("2021-03")
    rows = _rows(pc.less(trips.column("fare_amount"), 0.0))
    assert len(rows) > 100
    reasons = quarantined(validated, "2021-03")
    assert all("negative_fare" in reasons[r] for r in rows)
    assert sum("fare_inconsistent" in reasons[r] for r in rows) <= 1


def test_a_trip_across_midnight_into_the_month_is_quarantined(validated: dict) -> None:
    trips = real_trips("2021-01")
    start = pc.strptime("2021-01-01", format="%Y-%m-%d", unit="us")
    pickup, dropoff = trips.column("pickup_datetime"), trips.column("dropoff_datetime")
    rows = _rows(pc.and_(pc.less(pickup, start), pc.greater_equal(dropoff, start)))
    assert len(rows) == 1  # picked up on 31 December, dropped off on 1 January
    assert "pickup_outside_month" in quarantined(validated, "2021-01")[rows[0]]


def test_green_congestion_surcharges_are_not_fare_errors(validated: dict) -> None:
    """Vendor 1 puts the $2.75 in `extra` as well as in its column; dispatched rows leave the column empty."""
    trips = real_trips("2021-01")
    parts = [c for c in tlc.FARE_PARTS if c in trips.column_names]
    frame = trips.select([*parts, "total_amount"]).to_pandas().fillna(0.0)
    residual = (frame["total_amount"] - frame[parts].sum(axis=1)).round(2)
    surcharged = np.flatnonzero(residual.abs().sub(2.75).abs().to_numpy() < 0.005).tolist()
    assert len(surcharged) > 2000
    reasons = quarantined(validated, "2021-01")
    assert not any("fare_inconsistent" in reasons.get(r, set()) for r in surcharged)


def test_cli_validate_prints_the_quarantine_share_per_rule(
    validated: dict, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLPLATFORM_LAKE_URI", validated["lake"].root_uri)
    assert cli.main(["validate", str(raw_file("2021-02")), "--use-case", USE_CASE.name]) == 0
    out = capsys.readouterr().out
    assert "PASSED with 2,632 rows quarantined (4.08%)" in out
    rows = {line.split()[1]: line.split()[3:6:2] for line in out.splitlines() if line.startswith("│")}
    assert rows["zero_distance"] == ["2,056", "3.18%"] and rows["fare_inconsistent"] == ["362", "0.56%"]


def test_the_improvement_surcharge_vendor_1_leaves_out_of_the_total_is_a_reading(validated: dict) -> None:
    """Green 2023-01: vendor 1 itemises the $1.00 of 2022-12-19 but leaves it out of `total_amount`."""
    trips = real_trips("2023-01")
    parts = [c for c in tlc.FARE_PARTS if c in trips.column_names]
    frame = trips.select([*parts, "total_amount", "vendor_id"]).to_pandas().fillna(0.0)
    residual = (frame["total_amount"] - frame[parts].sum(axis=1)).round(2)
    short = residual.isin([-1.00, -3.75])  # the surcharge out; with the congestion surcharge in extra too
    assert short.sum() == 6760 + 2330 and set(frame["vendor_id"][short]) == {1}
    reasons = quarantined(validated, "2023-01")
    assert not any("fare_inconsistent" in reasons.get(r, set()) for r in np.flatnonzero(short.to_numpy()))
    assert validated["outcomes"]["2023-01"].reading_counts["improvement_surcharge_excluded"] == 9090


def test_the_stored_outcomes_hold_the_counts_the_trend_reads(validated: dict) -> None:
    trend = contracts.lake_trend(validated["lake"], USE_CASE)
    by = {(t.month, t.rule): t for t in trend}
    assert {t.month for t in trend} == set(MONTHS)
    for month, (rows, _, rule_counts, reading_counts) in COUNTS.items():
        assert all(
            by[month, rule].count == n and by[month, rule].rows == rows for rule, n in rule_counts.items()
        )
        for reading, n in reading_counts.items():
            assert by[month, "fare_reading." + reading].count == n
    assert not any(t.jump for t in trend)


def test_contracts_report_prints_the_month_by_rule_table_of_a_folder(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    assert cli.main(["contracts", "report", str(REAL), "--use-case", USE_CASE.name]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[1]: line.split()[3::2] for line in out.splitlines() if line.startswith("│")}
    assert lines["rows"] == ["76,518", "64,572", "83,827", "68,211"]
    assert lines["zero_distance"] == ["3.34%", "3.18%", "3.28%", "4.91%"]
    assert lines["fare_inconsistent"] == ["0.12%", "0.56%", "0.08%", "0.08%"]
    assert lines["fare_reading.improvement_surcharge_excluded"] == ["0.00%", "0.00%", "0.00%", "13.33%"]
    assert "missing_key" not in lines  # rules that hit nothing in any month are left out
    assert not any("▲" in line for line in out.splitlines() if line.startswith("│"))  # no jump


def test_contracts_report_json_from_a_folder_and_from_the_lake_agree(
    validated: dict, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli.main(["contracts", "report", str(REAL), "--use-case", USE_CASE.name, "--json"]) == 0
    from_files = json.loads(capsys.readouterr().out)
    monkeypatch.setenv("MLPLATFORM_LAKE_URI", validated["lake"].root_uri)
    assert cli.main(["contracts", "report", "--lake", "--use-case", USE_CASE.name, "--json"]) == 0
    from_lake = json.loads(capsys.readouterr().out)
    assert from_files == from_lake
    assert len(from_lake) == len(MONTHS) * (len(contracts.RULE_NAMES) + 3)  # + the three readings seen
    assert {"month": "2023-01", "rule": "fare_inconsistent", "rows": 68211, "count": 54,
            "share": 54 / 68211, "severity": "quarantine", "jump": False} in from_lake  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["contracts", "report"], "give either a folder of TLC files or --lake"),
        (["contracts", "report", "/no/such/folder"], "/no/such/folder is not a folder: it does not exist"),
        (["contracts", "report", str(REAL), "--lake"], "not both"),
    ],
)
def test_contracts_report_says_what_it_cannot_report(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err


def test_contracts_report_of_a_folder_without_tlc_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.txt").write_text("no trips here")
    assert cli.main(["contracts", "report", str(tmp_path), "--use-case", USE_CASE.name]) == 2
    assert "holds no yellow or green TLC file" in capsys.readouterr().err
