"""Contract validation of a month against its floor and against a Great Expectations peer.

The step is what the validate DAG's ``check_contract`` task runs,
:func:`mlplatform.stages.contracts.validate_month`: read the raw file from the lake, normalise it,
compute the row rules, run the GX checkpoint over the month's contract profile (which
rebuilds Data Docs), write the validated snapshot and any quarantined rows. It runs on two
months:

- ``generated``: a yellow month of ``--rows`` rows (3M, the size of a real yellow month);
- ``real``: a real NYC TLC green month (``--real``, January 2021 from the test fixtures,
  76,518 rows), under the same contract for green taxis.

Each month is measured against, in the same run:

- ``read_s``: reading the raw file from the lake into an Arrow table;
- ``floor_s``: what any validation that publishes a snapshot has to do: read, normalise
  (:func:`mlplatform.core.tlc.normalise`), encode the snapshot with the same settings
  (:func:`mlplatform.adapters.snapshots.encode`, also reported alone as ``encode_s``) and store it;
  no row rules, no checkpoint;
- ``gx_peer_s``: what a Great Expectations user would write: read, normalise, convert to
  pandas, and validate the frame in a GX Core ephemeral context with the row rules of
  :data:`mlplatform.stages.contracts.rules.ROW_RULES` as row-level expectations, with ``COMPLETE``
  results so the unexpected row indices can be quarantined. GX checks a column or a pair
  at a time, so the peer derives in pandas what the rules combine: the fare residual
  (expected within $0.05; the contract also accepts totals that TLC's surcharge rates
  explain, so on that rule the peer does less work and flags more rows) and the average
  speed (expected at least ``min_average_mph`` where the trip is longer than
  ``idle_trip_minutes``, a GX row condition). GX's compound uniqueness flags every copy of
  a duplicated trip where the contract keeps the first. The peer stores nothing, and its
  context, suite and validation definition are built before timing (``gx_peer_setup_s``).
  ``gx_peer_rule_counts`` checks it found the same rows.

Targets, on both months: the step within 1.5x of its floor (``step_to_floor``), and at
least 10x faster than the GX peer (``gx_peer_to_step``). On a small month the step's fixed
costs (the checkpoint and Data Docs, ``fixed_s``) dominate; ``notes`` says when a target
cannot be met while the checkpoint costs what it does.

The measurements are interleaved (read, floor, step, peer, then again) so that load from
other processes falls on all of them; each figure is the median of ``--repeat`` rounds
(``--peer-repeat`` for the peer). Each step run uses a fresh lake, so it writes a new
snapshot; a warm-up run per month opens the GX context and renders Data Docs once, as a
worker's first month does. The real month is timed whatever the contract decides
(``contract``); when it breaches, the step stops before the row rules, so the same rows
cast to the types the contract accepts (``tlc.raw_schema``) are measured too, as
``real_cast``.

``--bad-share`` corrupts that share of the generated rows (negative distances) so the month
passes with rows quarantined, as real months do; the default is a clean month. ``--large``
validates a raw yellow file (a real yellow month, say) in place of the generated one.

    .venv/bin/python bench/bench_validate.py [--rows 3000000] [--repeat 3] [--peer-repeat 2]
        [--real tests/fixtures/real_tlc/green_tripdata_2021-01.parquet] [--bad-share 0.02]
        [--large yellow_tripdata_YYYY-MM.parquet]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import resource
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from mlplatform.adapters import settings, snapshots
from mlplatform.adapters.lake import Lake
from mlplatform.core import generator, spec, tlc
from mlplatform.core.spec import UseCase
from mlplatform.stages import contracts, ingest

GENERATED_MONTH = "2024-03"
REAL_MONTH_FILE = settings.REPO_ROOT / "tests" / "fixtures" / "real_tlc" / "green_tripdata_2021-01.parquet"
FLOOR_TARGET = 1.5
"""The step within this many times its floor."""
PEER_TARGET = 10
"""The step at least this many times faster than the GX peer."""
FARE_PARTS = tuple(c for c in tlc.FARE_PARTS if c != "fare_amount")
"""What ``total_amount`` adds up besides ``fare_amount`` (the ``fare_inconsistent`` rule)."""


@dataclass
class Month:
    """One raw month to validate, and the use case it is validated under."""

    name: str
    month: str
    raw: bytes
    use_case: UseCase


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3_000_000, help="rows of the generated month")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of read, floor and step")
    parser.add_argument("--peer-repeat", type=int, default=2, help="rounds that also time the GX peer")
    parser.add_argument("--real", type=Path, default=REAL_MONTH_FILE, help="a real TLC green_tripdata file")
    parser.add_argument(
        "--large", type=Path, help="a raw yellow TLC file to validate instead of generating --rows rows"
    )
    parser.add_argument("--use-case", default="taxi_trip_duration")
    parser.add_argument("--bad-share", type=float, default=0.0, help="share of generated rows to corrupt")
    args = parser.parse_args()
    use_case = spec.load_spec(args.use_case)

    if args.large:
        large = Month("large", _month_of(args.large), args.large.read_bytes(), use_case)
    else:
        table = generator.generate_month(use_case.data.taxi_type, GENERATED_MONTH, args.rows, seed=0).table
        if args.bad_share:
            table = generator.corrupt(table, "negative_distance", args.bad_share, seed=0)
        large = Month("generated", GENERATED_MONTH, _parquet(table), use_case)
        del table
    green = use_case.model_copy(update={"data": use_case.data.model_copy(update={"taxi_types": ("green",)})})
    months = [large, Month("real", _month_of(args.real), args.real.read_bytes(), green)]

    started = time.perf_counter()
    import great_expectations  # noqa: F401

    figures: dict[str, Any] = {"gx_import_s": round(time.perf_counter() - started, 2)}
    with tempfile.TemporaryDirectory() as tmp:
        for month in months:
            figures[month.name] = _bench_month(month, Path(tmp) / month.name, args)
            if month.name == "real" and figures["real"]["contract"] == "breach":
                cast = pq.read_table(pa.BufferReader(month.raw)).cast(tlc.raw_schema("green", "legacy"))
                cast_month = Month("real_cast", month.month, _parquet(cast), green)
                figures["real_cast"] = _bench_month(cast_month, Path(tmp) / cast_month.name, args)
    figures["targets"] = {
        name: {
            f"step_within_{FLOOR_TARGET}x_floor": _verdict(f["step_to_floor"] <= FLOOR_TARGET),
            f"{PEER_TARGET}x_faster_than_gx_peer": _verdict(f["gx_peer_to_step"] >= PEER_TARGET),
        }
        for name, f in figures.items()
        if isinstance(f, dict) and "step_to_floor" in f
    }
    figures["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    figures["cpus"] = os.cpu_count()
    figures["load_average_1m"] = round(os.getloadavg()[0], 2)
    print(json.dumps(figures, indent=2))


def _bench_month(month: Month, folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Read, floor, step and GX peer of one month, interleaved; medians and their ratios."""
    use_case, data = month.use_case, month.use_case.data
    root = folder / "great_expectations"  # results and Data Docs stay out of the repo
    shutil.copytree(
        settings.REPO_ROOT / "great_expectations", root, ignore=shutil.ignore_patterns("uncommitted")
    )
    contracts.sync_context(root, [use_case])  # the suite for this month's taxi type
    lakes = iter(range(1_000))

    def landed() -> tuple[Lake, str]:
        lake = Lake((folder / f"lake{next(lakes)}").as_uri())
        return lake, ingest.land_bytes(lake, data.dataset, data.taxi_type, month.month, month.raw).path

    lake, _ = landed()
    warm = contracts.validate_month(lake, use_case, month.month, root)  # opens the context, renders Data Docs
    started = time.perf_counter()
    peer = _GxPeer(use_case, month.month)
    peer_setup = time.perf_counter() - started
    warm_rows = pq.read_table(pa.BufferReader(month.raw)).slice(0, 1_000)
    peer.validate(tlc.normalise(warm_rows, data.taxi_type).to_pandas())  # GX imports its metrics once

    read, floor, encode, step, runs, peer_times = [], [], [], [], [], []
    for i in range(max(args.repeat, args.peer_repeat)):
        lake, path = landed()
        started = time.perf_counter()
        lake.read_parquet(path)
        read.append(time.perf_counter() - started)
        floor_s, encode_s = _floor(lake, path, data.taxi_type)
        floor.append(floor_s)
        encode.append(encode_s)
        started = time.perf_counter()
        outcome = contracts.validate_month(lake, use_case, month.month, root)
        step.append(time.perf_counter() - started)
        runs.append(outcome)
        if i < args.peer_repeat:
            seconds, peer_counts = peer.run(*landed())
            peer_times.append(seconds)

    median_run = sorted(range(len(step)), key=step.__getitem__)[len(step) // 2]
    timings = runs[median_run]["timings"]
    read_s, floor_s, step_s, peer_s = map(statistics.median, (read, floor, step, peer_times))
    fixed_s = timings.get("checkpoint", 0.0)
    figures: dict[str, Any] = {
        "month": month.month,
        "taxi_type": data.taxi_type,
        "rows": warm["rows"],
        "raw_file_mb": round(len(month.raw) / 1e6, 2),
        "contract": warm["severity"],
        "breaches": warm["breaches"],
        "quarantined_rows": warm["quarantined_rows"],
        "read_s": _round(read_s),
        "floor_s": _round(floor_s),
        "encode_s": _round(statistics.median(encode)),
        "step_s": _round(step_s),
        "step_to_floor": round(step_s / floor_s, 2),
        "steps_s": timings,
        "fixed_s": fixed_s,
        "step_without_fixed_to_floor": round((step_s - fixed_s) / floor_s, 2),
        "gx_peer_s": _round(peer_s),
        "gx_peer_to_step": round(peer_s / step_s, 1),
        "gx_peer_setup_s": _round(peer_setup),
        "gx_peer_rule_counts": {
            rule: {"contract": warm["rule_counts"].get(rule, 0), "gx_peer": n}
            for rule, n in peer_counts.items()
            if n or warm["rule_counts"].get(rule)
        },
        "rounds": {"step_s": list(map(_round, step)), "gx_peer_s": list(map(_round, peer_times))},
    }
    encode_s = statistics.median(encode)
    notes = []
    if fixed_s - encode_s > (FLOOR_TARGET - 1) * floor_s:  # the checkpoint overlaps the encoding
        notes.append(
            f"the checkpoint ({fixed_s:.2f} s whatever the month's size) outlasts the snapshot encoding "
            f"it overlaps ({encode_s:.2f} s) by more than the {FLOOR_TARGET - 1:.1f}x floor "
            f"({(FLOOR_TARGET - 1) * floor_s:.2f} s) the target leaves for row rules and checkpoint: "
            "on a month this small the floor target cannot be met while the checkpoint costs that much"
        )
    if fixed_s > peer_s / PEER_TARGET:
        notes.append(
            f"the checkpoint alone ({fixed_s:.2f} s) exceeds a {PEER_TARGET}th of the GX peer "
            f"({peer_s / PEER_TARGET:.2f} s): the peer target cannot be met while the checkpoint "
            "costs that much"
        )
    if notes:
        figures["notes"] = notes
    return figures


def _floor(lake: Lake, path: str, taxi_type: tlc.TaxiType) -> tuple[float, float]:
    """Seconds to read, normalise, encode and store the month's snapshot; and to encode alone."""
    started = time.perf_counter()
    trips = tlc.normalise(lake.read_parquet(path), taxi_type)
    encoding = time.perf_counter()
    encoded = snapshots.encode(trips)
    encoded_s = time.perf_counter() - encoding
    lake.write_bytes(f"validated/floor/{encoded.digest}/data.parquet", memoryview(encoded.data))
    return time.perf_counter() - started, encoded_s


class _GxPeer:
    """The contract's row rules as GX Core row-level expectations over a pandas frame."""

    def __init__(self, use_case: UseCase, month: str) -> None:
        import great_expectations as gx
        import pandas as pd
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self.taxi_type = use_case.data.taxi_type
        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(globally=False)
        batch = (
            context.data_sources.add_pandas("peer")
            .add_dataframe_asset("trips")
            .add_batch_definition_whole_dataframe("month")
        )
        self.rules: list[str] = []  # the contract rule each expectation stands for, in order
        suite = context.suites.add(
            gx.ExpectationSuite(name="trip_rows", expectations=self._expectations(use_case, month, pd))
        )
        self.rule_of = {e.id: rule for e, rule in zip(suite.expectations, self.rules, strict=True)}
        self.definition = context.validation_definitions.add(
            gx.ValidationDefinition(name="trip_rows", data=batch, suite=suite)
        )

    def _expectations(self, use_case: UseCase, month: str, pd: Any) -> list[Any]:
        import great_expectations.expectations as gxe
        from great_expectations.expectations.row_conditions import Column

        c = use_case.contract
        lo, hi = (
            pd.Timestamp(us, unit="us") for us in contracts.month_window_us(month, c.pickup_tolerance_hours)
        )
        zones = {"min_value": contracts.ZONE_IDS[0], "max_value": contracts.ZONE_IDS[1]}
        tolerance = contracts.FARE_TOLERANCE
        between = gxe.ExpectColumnValuesToBeBetween
        in_set = gxe.ExpectColumnValuesToBeInSet
        by_rule: dict[str, list[Any]] = {
            "missing_key": [gxe.ExpectColumnValuesToNotBeNull(column=k) for k in contracts.KEY_COLUMNS],
            "pickup_outside_month": [
                between(column="pickup_datetime", min_value=lo, max_value=hi, strict_max=True)
            ],
            "dropoff_not_after_pickup": [
                gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                    column_A="dropoff_datetime",
                    column_B="pickup_datetime",
                    or_equal=False,
                    ignore_row_if="either_value_is_missing",
                )
            ],
            "implausible_duration": [between(column="duration_min", max_value=c.max_trip_minutes)],
            "idle_trip": [
                between(
                    column="average_mph",
                    min_value=c.min_average_mph,
                    row_condition=Column("duration_min") > c.idle_trip_minutes,
                )
            ],
            "implausible_distance": [
                between(column="trip_distance", min_value=0, max_value=c.max_trip_miles)
            ],
            "zero_distance": [gxe.ExpectColumnValuesToNotBeInSet(column="trip_distance", value_set=[0.0])],
            "unknown_zone": [
                between(column="pu_location_id", **zones),
                between(column="do_location_id", **zones),
            ],
            "unknown_payment_type": [in_set(column="payment_type", value_set=list(contracts.PAYMENT_TYPES))],
            "unknown_rate_code": [in_set(column="rate_code_id", value_set=list(contracts.RATE_CODES))],
            "unknown_vendor": [in_set(column="vendor_id", value_set=list(contracts.VENDORS))],
            "negative_fare": [between(column="fare_amount", min_value=0)],
            "fare_inconsistent": [between(column="fare_residual", min_value=-tolerance, max_value=tolerance)],
            "invalid_store_and_fwd_flag": [
                in_set(column="store_and_fwd_flag", value_set=list(contracts.FLAGS))
            ],
            "duplicate_row": [gxe.ExpectCompoundColumnsToBeUnique(column_list=list(contracts.DUPLICATE_KEY))],
        }
        if uncovered := [rule for rule in contracts.RULE_NAMES if rule not in by_rule]:
            raise NotImplementedError(
                f"the GX peer has no expectation for row rule(s) {uncovered}: add them to _GxPeer"
            )
        by_rule = {rule: by_rule[rule] for rule in contracts.RULE_NAMES}
        expectations = []
        for rule, group in by_rule.items():
            self.rules += [rule] * len(group)
            expectations += group
        return expectations

    def run(self, lake: Lake, path: str) -> tuple[float, dict[str, int]]:
        """Seconds to read, normalise and validate the month; rows breaking each rule."""
        started = time.perf_counter()
        counts = self.validate(tlc.normalise(lake.read_parquet(path), self.taxi_type).to_pandas())
        return time.perf_counter() - started, counts

    def validate(self, frame: Any) -> dict[str, int]:
        """Validate a normalised pandas frame; rows breaking each rule (their union is quarantined)."""
        # GX checks one column (or a pair) at a time, so the rules that combine more columns read
        # columns derived here. An empty part counts as 0; an empty fare or total leaves the
        # residual empty, which GX does not check.
        frame["fare_residual"] = (
            frame["total_amount"] - frame["fare_amount"] - frame[list(FARE_PARTS)].fillna(0.0).sum(axis=1)
        )
        frame["average_mph"] = 60.0 * frame["trip_distance"] / frame["duration_min"]
        result = self.definition.run(
            batch_parameters={"dataframe": frame}, result_format={"result_format": "COMPLETE"}
        )
        by_rule: dict[str, set[int]] = {rule: set() for rule in contracts.RULE_NAMES}
        for r in result.results:  # not in the suite's order
            rule = self.rule_of[r.expectation_config.id]
            if r.exception_info and r.exception_info.get("raised_exception"):
                message = r.exception_info["exception_message"]
                raise RuntimeError(f"the GX peer's expectation for {rule} could not run: {message}")
            by_rule[rule].update(r.result.get("unexpected_index_list") or ())
        frame.drop(index=list(set().union(*by_rule.values())))  # the rows that pass
        return {rule: len(rows) for rule, rows in by_rule.items()}


def _month_of(path: Path) -> str:
    """The month in a TLC file name (``yellow_tripdata_2024-03.parquet``)."""
    found = re.search(r"(\d{4}-\d{2})\.parquet$", path.name)
    if not found:
        raise SystemExit(f"{path}: name the file like TLC does (<taxi>_tripdata_YYYY-MM.parquet)")
    return found.group(1)


def _parquet(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def _round(seconds: float) -> float:
    return round(seconds, 3)


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


if __name__ == "__main__":
    main()
