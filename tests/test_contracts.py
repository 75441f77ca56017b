"""The data contract: GX suites in sync with the specs, severities, whole validations and bad input.

Every kind of bad delivery ends with the right severity, the raw file untouched, nothing
half-written to validated/, and (for breaches) an alert received over real HTTP. The row
rules on their own, without GX, are in ``test_contracts_rules.py``.
"""

from __future__ import annotations

import filecmp
import io
import json
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from mlplatform import cli
from mlplatform.adapters import alerts, snapshots
from mlplatform.adapters.lake import Lake
from mlplatform.core import generator, spec, tlc
from mlplatform.stages import contracts, ingest

USE_CASE = spec.load_spec("taxi_trip_duration")
YELLOW_ONLY = spec.load_spec("taxi_generous_tip")
MONTH = "2024-03"
ROWS = 4000
RATE, SEED = 0.01, 0
COMMITTED = Path(__file__).resolve().parents[1] / "great_expectations"


@pytest.fixture(scope="module")
def gx_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A copy of the committed context, so validation results and Data Docs stay out of the repo."""
    root = tmp_path_factory.mktemp("gx") / "great_expectations"
    shutil.copytree(COMMITTED, root, ignore=shutil.ignore_patterns("uncommitted"))
    patch = pytest.MonkeyPatch()
    patch.setenv("MLPLATFORM_GX_ROOT", str(root))
    yield root
    patch.undo()


@pytest.fixture
def sink(webhook_sink: Any) -> Any:
    webhook_sink.clear()
    return webhook_sink


def month_table(rows: int = ROWS, month: str = MONTH, seed: int = 1, kind: str = "yellow") -> pa.Table:
    return generator.generate_month(kind, month, rows, seed=seed, anomalies=False).table


def to_bytes(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def land(
    lake: Lake, data: bytes, month: str = MONTH, replace: bool = False, taxi_type: str = "yellow"
) -> str:
    d = USE_CASE.data
    return ingest.land_bytes(lake, d.dataset, taxi_type, month, data, replace=replace).path


def run_month(lake: Lake, month: str = MONTH, use_case: spec.UseCase = USE_CASE) -> contracts.ContractOutcome:
    """What the DAG's check_contract and report tasks do, without Airflow."""
    outcome = contracts.validate_month(lake, use_case, month)
    if (alert := contracts.alert_for(outcome)) is not None:
        alerts.send(alert)
    return outcome


def received(sink: Any) -> list[dict[str, Any]]:
    """The alerts the sink holds, read over HTTP."""
    with urllib.request.urlopen(f"{sink.url}/messages", timeout=10) as response:
        return json.load(response)


def validated(lake: Lake, month: str = MONTH) -> list[str]:
    return [e.path for e in lake.list(f"validated/{USE_CASE.name}/month={month}")]


# --- the committed context ---------------------------------------------------------------


def test_committed_context_is_in_sync_with_the_specs(tmp_path: Path) -> None:
    copy = tmp_path / "great_expectations"
    shutil.copytree(COMMITTED, copy, ignore=shutil.ignore_patterns("uncommitted"))
    contracts.sync_context(copy)
    changed = []
    for path in COMMITTED.rglob("*"):
        rel = path.relative_to(COMMITTED)
        if (
            path.is_file()
            and rel.parts[0] != "uncommitted"
            and not filecmp.cmp(path, copy / rel, shallow=False)
        ):
            changed.append(str(rel))
    added = [
        str(p.relative_to(copy))
        for p in copy.rglob("*.json")
        if "uncommitted" not in p.parts and not (COMMITTED / p.relative_to(copy)).exists()
    ]
    assert not changed and not added, (
        f"great_expectations/ is out of date with the specs (changed {changed}, missing {added}); "
        "run `.venv/bin/mlplatform contracts sync` and commit the result"
    )


def meta_of(check: str) -> dict[str, Any]:
    suite = json.loads((COMMITTED / "expectations" / f"{USE_CASE.contract.suite}.json").read_text())
    [meta] = [e["meta"] for e in suite["expectations"] if e["meta"]["check"] == check]
    return meta


def test_every_expectation_says_why_and_how_severe() -> None:
    suite = json.loads((COMMITTED / "expectations" / f"{USE_CASE.contract.suite}.json").read_text())
    gx_severity = {"breach": "critical", "row": "warning", "notice": "info"}
    checks = set()
    for expectation in suite["expectations"]:
        meta = expectation["meta"]
        assert len(meta["why"]) > 30 and meta["rule"], expectation
        assert expectation["severity"] == gx_severity[meta["severity"]]
        checks.add(meta["check"])
    assert set(contracts.RULE_NAMES) <= checks
    assert all(meta_of(c)["calibration"] for c in (*contracts.RULE_NAMES, "bad_row_share"))
    assert {
        "file_problem",
        "taxi_type",
        "missing_columns",
        "mistyped_columns",
        "volume",
        "bad_row_share",
    } <= checks
    for name in ("taxi_trip_duration", "taxi_generous_tip"):
        checkpoint = json.loads((COMMITTED / "checkpoints" / f"{name}_validate.json").read_text())
        assert checkpoint["actions"] == []  # the step renders its own result's page


# --- whole validations -------------------------------------------------------------------


def test_a_clean_month_is_validated_with_its_manifest(lake: Lake, gx_root: Path, sink: Any) -> None:
    raw = land(lake, to_bytes(month_table()))
    outcome = run_month(lake)
    assert outcome.severity == "pass" and outcome.success
    snapshot = snapshots.current_snapshot(lake, USE_CASE.name, MONTH)
    manifest = snapshot.manifest
    assert manifest["source"] == {"path": raw, "digest": lake.digest(raw), "rows": ROWS}
    contract = manifest["contract"]
    assert contract["success"] is True and contract["suite"] == "nyc_tlc_trips"
    assert contract["bad_row_share"] == 0 and contract["quarantined_rows"] == 0
    assert contract["statistics"]["unsuccessful_expectations"] == 0
    docs = Path(contract["data_docs_url"].removeprefix("file://"))
    assert docs.is_file() and str(docs).startswith(str(gx_root / "uncommitted" / "data_docs"))
    assert contracts.data_docs_index(gx_root).is_file()
    assert snapshot.rows == ROWS and received(sink) == []  # a clean pass only logs
    assert list(lake.list(f"quarantine/{USE_CASE.name}")) == []


def test_same_raw_file_is_a_no_op_and_a_changed_one_a_new_version(
    lake: Lake, gx_root: Path, sink: Any
) -> None:
    land(lake, to_bytes(month_table(seed=1)))
    first = run_month(lake).snapshot
    again = run_month(lake).snapshot
    assert first and again and first.created and not again.created and again.digest == first.digest
    assert len([p for p in validated(lake) if p.endswith("data.parquet")]) == 1

    raw = land(lake, to_bytes(month_table(seed=2)), replace=True)
    second = run_month(lake).snapshot
    assert second and second.created and second.digest != first.digest
    current = snapshots.current_snapshot(lake, USE_CASE.name, MONTH)
    assert current.digest == second.digest and current.manifest["source"]["digest"] == lake.digest(raw)
    assert snapshots.read_snapshot(lake, USE_CASE.name, MONTH, first.digest).rows == ROWS  # kept


def test_the_snapshot_encoded_during_the_checkpoint_is_the_validated_rows(lake: Lake, gx_root: Path) -> None:
    data = to_bytes(generator.corrupt(month_table(), "negative_distance", RATE, SEED))
    checked = contracts.evaluate(data, USE_CASE, MONTH, source_path="delivery.parquet")
    assert checked.encoded is None and checked.bad_rows  # only validate_month encodes ahead
    land(lake, data)
    outcome = run_month(lake)
    assert outcome.snapshot.digest == snapshots.encode(checked.valid).digest
    assert outcome.timings["snapshot_encode"] > 0


def test_quarantined_rows_keep_their_reasons_and_leave_the_snapshot(
    lake: Lake, gx_root: Path, sink: Any
) -> None:
    table = generator.corrupt(month_table(), "negative_distance", RATE, SEED)
    picked = np.flatnonzero(np.random.default_rng(SEED).random(ROWS) < RATE)
    land(lake, to_bytes(table))
    outcome = run_month(lake)
    assert outcome.severity == "quarantine" and outcome.quarantined_rows == picked.size
    rows = lake.read_parquet(lake.relative(outcome.quarantine.rows_uri))
    assert rows.column("source_row").to_pylist() == picked.tolist()
    assert set(rows.column("quarantine_reason").to_pylist()) == {"implausible_distance"}
    snapshot = snapshots.current_snapshot(lake, USE_CASE.name, MONTH)
    assert snapshot.rows == ROWS - picked.size
    assert snapshot.manifest["contract"]["quarantined_rows"] == picked.size
    assert min(snapshots.read_table(lake, snapshot, ["trip_distance"]).column(0).to_pylist()) >= 0
    assert snapshot.manifest["contract"]["rule_counts"] == {"implausible_distance": picked.size}
    assert received(sink) == []  # a usual quarantine stays in the stored outcome: no Slack message


def test_a_month_without_a_raw_file_says_how_to_land_it(lake: Lake, gx_root: Path) -> None:
    with pytest.raises(
        contracts.RawFileMissing, match="mlplatform ingest FILE --use-case taxi_trip_duration"
    ):
        contracts.validate_month(lake, USE_CASE, MONTH)


# --- bad input ---------------------------------------------------------------------------

# kind -> (how to make the file, expected severity, what the message or reason must name)
ROW_KINDS = {
    "negative_distance": "implausible_distance",
    "dropoff_before_pickup": "dropoff_not_after_pickup",
    "other_year": "pickup_outside_month",
    "future_dates": "pickup_outside_month",
    "duplicate_rows": "duplicate_row",
    "unknown_zones": "unknown_zone",
    "outliers": "implausible_distance",
    "non_utf8_flags": "invalid_store_and_fwd_flag",
}
BREACH_KINDS = {
    "missing_column": "missing: trip_distance",
    "renamed_column": "missing: pu_location_id (unexpected columns: PU_Location)",
    "wrong_type": "fare_amount is string",
    "all_null_column": "entirely empty: trip_distance",
    "null_burst": "too many bad rows",
    "negative_distance_in_20pct": "too many bad rows",
    "empty_file": "no rows",
    "zero_byte": "zero bytes",
    "truncated": "not a readable parquet file",
    "csv_as_parquet": "looks like text/CSV",
    # taxi_trip_duration reads both kinds; the generous-tip model reads yellow trips only
    "green_where_yellow_expected": "holds green trips but taxi_generous_tip expects yellow",
    "volume_10x": "volume far off history",
    "volume_tenth": "volume far off history",
}


def bad_file(kind: str) -> bytes:
    table = month_table()
    if kind in ROW_KINDS or kind in ("missing_column", "renamed_column", "wrong_type", "all_null_column"):
        return to_bytes(generator.corrupt(table, kind, RATE, SEED))
    if kind == "null_burst":
        return to_bytes(generator.corrupt(table, kind, 0.3, SEED))
    if kind == "negative_distance_in_20pct":
        return to_bytes(generator.corrupt(table, "negative_distance", 0.2, SEED))
    if kind in generator.FILE_CORRUPTIONS:
        return generator.corrupted_bytes(table, kind)
    if kind == "green_where_yellow_expected":
        return to_bytes(month_table(kind="green"))
    if kind == "volume_10x":
        return to_bytes(month_table(rows=10 * ROWS))
    if kind == "volume_tenth":
        return to_bytes(month_table(rows=ROWS // 10))
    if kind == "extra_columns":
        return to_bytes(generator.corrupt(table, kind))
    raise ValueError(kind)


def with_history(lake: Lake) -> None:
    """Two earlier validated months of the usual volume."""
    for month in ("2024-01", "2024-02"):
        trips = tlc.normalise(month_table(rows=100, month=month))
        manifest = {"source": {"path": "raw", "digest": "0", "rows": ROWS}, "contract": {"success": True}}
        snapshots.write_snapshot(lake, USE_CASE.name, month, trips, manifest)


@pytest.mark.parametrize("kind", sorted(ROW_KINDS))
def test_a_few_bad_rows_are_quarantined(kind: str, lake: Lake, gx_root: Path, sink: Any) -> None:
    with_history(lake)
    raw = land(lake, bad_file(kind))
    digest = lake.digest(raw)
    outcome = run_month(lake)
    assert outcome.severity == "quarantine", outcome.summary
    assert set(outcome.rule_counts) == {ROW_KINDS[kind]}, outcome.summary
    assert 0 < outcome.quarantined_rows <= 2 * RATE * ROWS
    assert lake.digest(raw) == digest
    rows = lake.read_parquet(lake.relative(outcome.quarantine.rows_uri))
    assert set(rows.column("quarantine_reason").to_pylist()) == {ROW_KINDS[kind]}
    snapshot = snapshots.current_snapshot(lake, USE_CASE.name, MONTH)
    assert snapshot.rows + rows.num_rows == outcome.rows
    assert not outcome.jumps and received(sink) == []  # two months of history judge no jump


@pytest.mark.parametrize("kind", sorted(BREACH_KINDS))
def test_a_breach_validates_nothing_keeps_the_raw_file_and_alerts(
    kind: str, lake: Lake, gx_root: Path, sink: Any
) -> None:
    with_history(lake)
    raw = land(lake, bad_file(kind))
    digest = lake.digest(raw)
    outcome = run_month(lake, use_case=YELLOW_ONLY if kind == "green_where_yellow_expected" else USE_CASE)
    assert outcome.severity == "breach" and not outcome.success
    assert any(BREACH_KINDS[kind] in b for b in outcome.breaches), outcome.breaches
    assert lake.digest(raw) == digest  # the raw file is untouched
    assert validated(lake) == [] and list(lake.list(f"validated/{YELLOW_ONLY.name}")) == []
    record = lake.read_json(lake.relative(outcome.breach_uri))
    assert record["what_broke"] == list(outcome.breaches) and record["source"]["digest"] == digest
    assert record["recorded_at"] and record["raw_file_kept"] is True
    [message] = received(sink)
    assert message["text"].startswith(":rotating_light: [breach]")
    body = json.dumps(message["blocks"])
    assert BREACH_KINDS[kind].split(" (")[0] in body and "Data Docs" in body


def test_green_and_yellow_files_of_a_month_are_validated_together(lake: Lake, gx_root: Path) -> None:
    yellow = land(lake, to_bytes(month_table(seed=1)))
    green = land(lake, to_bytes(month_table(rows=1000, seed=2, kind="green")), taxi_type="green")
    outcome = run_month(lake)
    assert outcome.severity == "pass" and outcome.rows == ROWS + 1000
    assert [f.path for f in outcome.source.files or ()] == [yellow, green]
    snapshot = snapshots.current_snapshot(lake, USE_CASE.name, MONTH)
    kinds = snapshots.read_table(lake, snapshot, ["taxi_type"]).column(0).to_pylist()
    assert snapshot.rows == ROWS + 1000 and kinds.count("green") == 1000
    # the month's identity is both deliveries: replacing one makes a new snapshot
    land(lake, to_bytes(month_table(rows=1000, seed=3, kind="green")), taxi_type="green", replace=True)
    assert run_month(lake).snapshot.digest != snapshot.digest


def test_a_file_landed_under_the_other_taxi_type_is_a_breach(lake: Lake, gx_root: Path) -> None:
    land(lake, to_bytes(month_table(kind="yellow")), taxi_type="green")
    outcome = run_month(lake)
    assert outcome.severity == "breach"
    assert "holds yellow trips but taxi_trip_duration expects green" in outcome.breaches[0]
    assert "schema tells: tpep_pickup_datetime, tpep_dropoff_datetime" in outcome.breaches[0]
    assert "(yellow columns)): a yellow file named or landed as green" in outcome.breaches[0]


def test_extra_columns_are_a_notice_not_a_failure(lake: Lake, gx_root: Path, sink: Any) -> None:
    land(lake, bad_file("extra_columns"))
    outcome = run_month(lake)
    assert outcome.severity == "pass" and list(outcome.warnings) == [
        "unexpected column(s) dropped: surprise_column"
    ]
    manifest = snapshots.current_snapshot(lake, USE_CASE.name, MONTH).manifest
    assert "surprise_column" not in manifest["schema"]
    assert manifest["contract"]["warnings"] == list(outcome.warnings)  # the page shows the notice
    assert received(sink) == []


def test_without_history_any_volume_passes(lake: Lake, gx_root: Path) -> None:
    land(lake, bad_file("volume_10x"))
    outcome = run_month(lake)
    assert outcome.success
    assert (
        snapshots.current_snapshot(lake, USE_CASE.name, MONTH).manifest["contract"]["volume"]["checked"]
        is False
    )


# --- money against TLC's fare table --------------------------------------------------------

MONEY = ("fare_amount", "extra", "mta_tax", "tip_amount", "tolls_amount", "improvement_surcharge",
         "total_amount", "congestion_surcharge", "Airport_fee")  # fmt: skip


def test_amounts_in_cents_breach_and_say_so(lake: Lake, gx_root: Path, sink: Any) -> None:
    table = month_table()
    for name in MONEY:  # every amount 100x: the totals still add up row by row
        i = table.schema.get_field_index(name)
        table = table.set_column(i, name, pc.multiply(table.column(name), 100.0))
    land(lake, to_bytes(table))
    outcome = run_month(lake)
    assert outcome.severity == "breach" and not validated(lake)
    [breach] = outcome.breaches
    assert breach.startswith(
        "money amounts look like cents, not dollars (mta_tax 50.00 where TLC charges $0.50"
    )
    assert "improvement_surcharge 100.00 where TLC charges $1.00" in breach
    [message] = received(sink)
    assert "look like cents" in json.dumps(message["blocks"])


def test_a_surcharge_column_empty_where_the_schedule_charges_it_is_a_notice(
    lake: Lake, gx_root: Path
) -> None:
    table = month_table()
    i = table.schema.get_field_index("congestion_surcharge")
    table = table.set_column(i, "congestion_surcharge", pa.nulls(table.num_rows, pa.float64()))
    land(lake, to_bytes(table))
    outcome = run_month(lake)
    assert outcome.success
    [notice] = outcome.warnings
    assert notice.startswith(f"surcharge column empty: congestion_surcharge is empty in all {ROWS:,} rows")
    assert "($2.50, yellow" in notice and "congestion_surcharge_unitemised" in notice
    charged = int(np.sum(np.asarray(month_table().column("congestion_surcharge")) > 0))
    # totals that include it add up as the unitemised reading, counted in the stored outcome
    assert outcome.reading_counts == {"congestion_surcharge_unitemised": charged}
    manifest = snapshots.current_snapshot(lake, USE_CASE.name, MONTH).manifest
    assert manifest["contract"]["reading_counts"] == {"congestion_surcharge_unitemised": charged}


def earlier_months(
    lake: Lake, distance_rows: int, months: tuple[str, ...] = ("2023-12", "2024-01", "2024-02")
) -> None:
    """Validated months whose stored outcome quarantined ``distance_rows`` implausible distances."""
    for month in months:
        trips = tlc.normalise(month_table(rows=100, month=month))
        block = {"success": True, "severity": "quarantine", "rows": ROWS,
                 "rule_counts": {"implausible_distance": distance_rows}}  # fmt: skip
        manifest = {"source": {"path": "raw", "digest": "0", "rows": ROWS}, "contract": block}
        snapshots.write_snapshot(lake, USE_CASE.name, month, trips, manifest)


def test_a_rule_whose_share_jumps_warns_on_slack_naming_it(lake: Lake, gx_root: Path, sink: Any) -> None:
    earlier_months(lake, distance_rows=4)  # 0.1% of rows, three months running
    land(lake, to_bytes(generator.corrupt(month_table(), "negative_distance", 0.02, SEED)))
    outcome = run_month(lake)
    assert outcome.severity == "quarantine" and outcome.success  # a warning, not a breach
    [jump] = outcome.jumps
    assert jump.startswith("implausible_distance jumped to 2.") and "trailing median of 0.10%" in jump
    [message] = received(sink)
    assert message["text"].startswith(":warning: [warning]") and "jumped" in message["text"]
    assert "implausible_distance jumped" in json.dumps(message["blocks"])
    manifest = snapshots.current_snapshot(lake, USE_CASE.name, MONTH).manifest
    assert manifest["contract"]["jumps"] == [jump]


def test_a_quarantine_within_its_usual_range_sends_no_slack_message(
    lake: Lake, gx_root: Path, sink: Any
) -> None:
    earlier_months(lake, distance_rows=80)  # 2% of rows, three months running
    land(lake, to_bytes(generator.corrupt(month_table(), "negative_distance", 0.02, SEED)))
    outcome = run_month(lake)
    assert outcome.severity == "quarantine" and not outcome.jumps
    assert received(sink) == []
    assert contracts.alert_for(outcome) is None


# --- the command line --------------------------------------------------------------------


def test_cli_validate_exits_0_on_pass_and_1_on_breach(
    tmp_path: Path, gx_root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLPLATFORM_LAKE_URI", (tmp_path / "empty-lake").as_uri())
    good = tmp_path / "backfill-2024-01_yellow_tripdata_2024-03.parquet"  # the month is the name's end
    good.write_bytes(to_bytes(month_table()))
    assert cli.main(["validate", str(good), "--use-case", USE_CASE.name]) == 0
    out = capsys.readouterr().out
    assert "taxi_trip_duration 2024-03: contract nyc_tlc_trips PASSED" in out and "docs" in out
    assert "month from the file name" in out

    bad = tmp_path / "delivery.parquet"
    bad.write_bytes(bad_file("csv_as_parquet"))
    assert cli.main(["validate", str(bad), "--use-case", USE_CASE.name, "--month", MONTH, "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["contract"]["success"] is False and "CSV" in result["contract"]["breaches"][0]

    assert cli.main(["validate", str(bad), "--use-case", USE_CASE.name]) == 2
    assert "pass --month" in capsys.readouterr().err


def test_a_yellow_file_named_green_is_judged_as_yellow_with_a_notice(
    tmp_path: Path, gx_root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLPLATFORM_LAKE_URI", (tmp_path / "empty-lake").as_uri())
    misnamed = tmp_path / "green_tripdata_2024-03.parquet"
    misnamed.write_bytes(to_bytes(month_table(kind="yellow")))
    assert cli.main(["validate", str(misnamed), "--use-case", USE_CASE.name, "--json"]) == 0
    [notice] = json.loads(capsys.readouterr().out)["contract"]["warnings"]
    assert notice == (
        "file named as the other taxi type: green_tripdata_2024-03.parquet is named green but holds "
        "yellow trips (the schema tells: tpep_pickup_datetime, tpep_dropoff_datetime, Airport_fee "
        "(yellow columns)); its rows are judged as yellow"
    )


# --- the outcome record -----------------------------------------------------------------

OUTCOME_KEYS = [
    "use_case", "month", "severity", "success", "summary", "breaches", "warnings", "rows",
    "quarantined_rows", "bad_row_share", "rule_counts", "source", "suite", "data_docs_url",
    "snapshot", "quarantine", "breach_uri", "timings", "reading_counts", "jumps",
]  # fmt: skip


def test_the_outcome_crosses_xcom_as_json_and_reads_back_the_same(lake: Lake, gx_root: Path) -> None:
    table = generator.corrupt(month_table(), "negative_distance", rate=RATE, seed=SEED)
    land(lake, to_bytes(table))
    outcome = run_month(lake)
    assert outcome.severity == "quarantine" and outcome.quarantine and outcome.snapshot
    as_json = json.loads(json.dumps(outcome.to_dict()))  # what XCom stores
    assert list(as_json) == OUTCOME_KEYS
    assert next(iter(as_json["timings"])) == "fetch"
    assert set(as_json["snapshot"]) == {"uri", "digest", "rows", "created"}
    assert set(as_json["quarantine"]) == {"rows_uri", "rows"}
    assert contracts.ContractOutcome.from_dict(as_json) == outcome
    assert contracts.alert_for(contracts.ContractOutcome.from_dict(as_json)) == contracts.alert_for(outcome)


def test_an_outcome_written_before_breach_uri_was_named_so_reads_back(lake: Lake, gx_root: Path) -> None:
    land(lake, bad_file("zero_byte"))
    outcome = contracts.validate_month(lake, USE_CASE, MONTH)
    assert outcome.breach_uri and outcome.breach_uri.endswith("/breach.json")
    as_json = json.loads(json.dumps(outcome.to_dict()))
    as_json["breach_record"] = as_json.pop("breach_uri")  # the key earlier runs wrote to XCom
    assert contracts.ContractOutcome.from_dict(as_json) == outcome


# --- time zones and months ----------------------------------------------------------------


SUMMER = "2024-07"
"""A month without a daylight-saving change: every New York wall-clock time is one instant."""


def as_spark_writes_it(table: pa.Table) -> pa.Table:
    """TLC's naive New York times as the instants they are, tagged UTC (Spark's timestamp type)."""
    for name in ("tpep_pickup_datetime", "tpep_dropoff_datetime"):
        instants = pc.assume_timezone(table.column(name), "America/New_York")
        column = instants.cast(pa.timestamp("us", tz="UTC"))
        table = table.set_column(table.schema.get_field_index(name), name, column)
    return table


def test_a_utc_tagged_file_is_validated_in_new_york_wall_clock_time(lake: Lake, gx_root: Path) -> None:
    naive = month_table(month=SUMMER)
    data = to_bytes(as_spark_writes_it(naive))
    assert pq.read_schema(io.BytesIO(data)).field("tpep_pickup_datetime").type == pa.timestamp("us", tz="UTC")
    land(lake, data, month=SUMMER)
    outcome = run_month(lake, SUMMER)
    assert outcome.success and "pickup_outside_month" not in outcome.rule_counts, outcome.summary
    snapshot = snapshots.current_snapshot(lake, USE_CASE.name, SUMMER)
    assert snapshot is not None
    pickups = snapshots.read_table(lake, snapshot, ["pickup_datetime"]).column("pickup_datetime")
    assert pickups.type == pa.timestamp("us")
    assert sorted(pickups.to_pylist()) == sorted(naive.column("tpep_pickup_datetime").to_pylist())


def test_a_spec_that_rejects_zone_tagged_files_breaches_with_the_reason(lake: Lake, gx_root: Path) -> None:
    raw = USE_CASE.model_dump(by_alias=True)
    raw["data"]["timezone_aware"] = "reject"
    rejecting = spec.parse_spec(raw, "rejecting", spec.USE_CASES_DIR)
    land(lake, to_bytes(as_spark_writes_it(month_table(month=SUMMER))), month=SUMMER)
    outcome = run_month(lake, SUMMER, use_case=rejecting)
    assert outcome.severity == "breach"
    assert any(
        "pickup_datetime is timestamp[us, tz=UTC]" in b and "data.timezone_aware: reject" in b
        for b in outcome.breaches
    ), outcome.breaches


def test_pickups_of_another_month_are_reported_as_a_month_mismatch(lake: Lake, gx_root: Path) -> None:
    land(lake, to_bytes(month_table(month="2024-01")))  # January's trips landed as March
    outcome = run_month(lake)
    assert outcome.severity == "breach"
    mismatch = [b for b in outcome.breaches if b.startswith("month mismatch")]
    assert mismatch and "pickups are in 2024-01" in mismatch[0] and "not in 2024-03" in mismatch[0]
