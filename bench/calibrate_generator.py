"""Derive the generator's calibration tables from real TLC months.

Reads real green trip-record files (by default the 2021-01..03 fixtures in
``tests/fixtures/real_tlc/``) and writes the small tables the generator ships with
(``include/mlplatform/calibration/``):

- ``green_zone_pairs.parquet``: every zone pair seen at least ``--min-pair-trips`` times,
  with its trip counts (metered records and records with blank codes) and median distance;
- ``green.json``: pickup and dropoff counts per zone, zone positions fitted to the pairs'
  road distances, travel speeds by pickup borough, weekday/weekend and hour, slowness per
  zone, the spread of distances within a pair, hourly volume, anomaly shares and code mixes.

The duration tables are fitted to the generator's own duration function
(:func:`mlplatform.core.generator.moving_minutes`), so generated durations match real ones by
borough and hour while staying a known function of the features plus noise.

    .venv/bin/python bench/calibrate_generator.py [--real tests/fixtures/real_tlc]
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mlplatform.core import generator, tlc

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "real_tlc"
OUT = ROOT / "include" / "mlplatform" / "calibration"
DETOUR = 1.25
"""Road miles per straight-line mile, for fitting zone positions to road distances."""


def load(folder: Path) -> tuple[pd.DataFrame, list[dict]]:
    frames, sources = [], []
    for path in sorted(folder.glob("green_tripdata_*.parquet")):
        trips = tlc.normalise(pq.read_table(path), "green").to_pandas()
        frames.append(trips)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        sources.append({"file": path.name, "rows": len(trips), "sha256_16": digest})
    if not frames:
        raise SystemExit(f"no green_tripdata_*.parquet in {folder}; see tests/fixtures/real_tlc/README.md")
    trips = pd.concat(frames, ignore_index=True)
    trips["blank"] = trips.payment_type.isna()
    trips["hour"] = trips.pickup_datetime.dt.hour
    trips["weekend"] = trips.pickup_datetime.dt.dayofweek >= 5
    ok = trips.pu_location_id.between(1, tlc.N_ZONES) & trips.do_location_id.between(1, tlc.N_ZONES)
    return trips[ok].reset_index(drop=True), sources


def zone_pairs(trips: pd.DataFrame, min_trips: int) -> pd.DataFrame:
    by_pair = trips.groupby(["pu_location_id", "do_location_id"])
    pairs = pd.DataFrame(
        {
            "coded": by_pair.blank.apply(lambda b: int((~b).sum())),
            "blank": by_pair.blank.sum().astype(int),
            # Zero distances are odometer gaps, not short trips: leave them out of the median.
            "miles": by_pair.trip_distance.apply(lambda d: d[(d > 0) & (d < 300)].median()),
        }
    ).reset_index()
    pairs = pairs[(pairs.coded + pairs.blank >= min_trips) & pairs.miles.notna()]
    pairs["miles"] = pairs.miles.clip(0.1, 80.0).round(2)
    return pairs.rename(columns={"pu_location_id": "pu", "do_location_id": "do"}).reset_index(drop=True)


def zone_positions(pairs: pd.DataFrame, steps: int = 4000) -> np.ndarray:
    """Zone positions (miles) whose distances, times :data:`DETOUR`, match the pairs' road miles."""
    start = np.array(generator.borough_layout())  # boroughs where they are, zones spread inside
    xy = start.copy()
    fit = pairs[(pairs.pu != pairs.do) & (pairs.pu <= 263) & (pairs.do <= 263) & (pairs.miles > 0.3)]
    i, j = fit.pu.to_numpy(), fit.do.to_numpy()
    target = fit.miles.to_numpy() / DETOUR
    weight = np.log1p(fit.coded + fit.blank).to_numpy() / target  # relative error counts
    rate = 0.05
    for _ in range(steps):
        delta = xy[i] - xy[j]
        dist = np.linalg.norm(delta, axis=1) + 1e-9
        g = (weight * (dist - target) / dist)[:, None] * delta
        grad = np.zeros_like(xy)
        np.add.at(grad, i, g)
        np.add.at(grad, j, -g)
        counts = np.bincount(np.concatenate([i, j]), minlength=len(xy))[:, None] + 1.0
        xy -= rate * grad / counts
    seen = np.zeros(len(xy), bool)
    seen[np.concatenate([i, j])] = True
    xy[~seen] = start[~seen]
    return np.round(xy, 3)


def duration_tables(trips: pd.DataFrame, rounds: int = 4) -> tuple[np.ndarray, np.ndarray, float]:
    """Free speeds by (pickup borough, weekend, hour) and slowness by zone, fitted by medians."""
    d = trips.trip_distance.to_numpy()
    minutes = trips.duration_min.to_numpy()
    pu, do = trips.pu_location_id.to_numpy(), trips.do_location_id.to_numpy()
    clean = (d >= 0.3) & (d <= 60) & (minutes >= 1) & (minutes <= 180)
    moving = minutes - generator.fixed_minutes(pu, do)
    clean &= moving > 0.5
    d, moving, pu, do = d[clean], moving[clean], pu[clean], do[clean]
    hour, weekend = trips.hour.to_numpy()[clean], trips.weekend.to_numpy()[clean].astype(int)
    borough = generator.borough_codes()[pu]
    implied = generator.moving_minutes(d, np.ones_like(d)) / moving  # speed before zone slowness
    slow = np.ones(tlc.N_ZONES + 1)
    cell = (borough * 2 + weekend) * 24 + hour
    n_cells = len(tlc.BOROUGHS) * 2 * 24
    for _ in range(rounds):
        adjusted = implied * np.sqrt(slow[pu] * slow[do])
        frame = pd.DataFrame({"cell": cell, "v": adjusted, "wh": weekend * 24 + hour, "b": borough})
        speed = frame.groupby("cell").v.median().reindex(range(n_cells))
        size = frame.groupby("cell").size().reindex(range(n_cells)).fillna(0)
        # Thin cells: the hour's speed over all boroughs, scaled by the borough's ratio.
        by_hour = frame.groupby("wh").v.median().reindex(range(48)).to_numpy()
        ratio = (
            (frame.groupby("b").v.median() / frame.v.median()).reindex(range(len(tlc.BOROUGHS))).fillna(1.0)
        )
        fallback = np.array([by_hour[c % 48] * ratio.iloc[c // 48] for c in range(n_cells)])
        table = np.where(size.to_numpy() >= 40, speed.to_numpy(), fallback)
        predicted = table[cell] / np.sqrt(slow[pu] * slow[do])
        log_ratio = np.log(predicted / implied)  # > 0: the zone is slower than its cell says
        both = pd.DataFrame({"z": np.concatenate([pu, do]), "r": np.concatenate([log_ratio, log_ratio])})
        stats = both.groupby("z").r.agg(["median", "size"])
        shrunk = stats["median"] * stats["size"] / (stats["size"] + 200.0)
        slow = slow * np.exp(shrunk.reindex(range(tlc.N_ZONES + 1)).fillna(0.0).to_numpy())
        slow = np.clip(slow, 0.6, 1.8)
    residual = np.log(table[cell] / np.sqrt(slow[pu] * slow[do]) / implied)
    spread = float(1.4826 * np.median(np.abs(residual - np.median(residual))))
    return table.reshape(len(tlc.BOROUGHS), 2, 24), slow, spread


def distance_spread(trips: pd.DataFrame, pairs: pd.DataFrame) -> dict[str, float]:
    """Robust standard deviation of log(distance / pair median), within and across zones."""
    merged = trips.merge(
        pairs[["pu", "do", "miles"]], left_on=["pu_location_id", "do_location_id"], right_on=["pu", "do"]
    )
    merged = merged[(merged.trip_distance > 0) & (merged.trip_distance < 300)]
    log_ratio = np.log(merged.trip_distance / merged.miles)
    same = merged.pu_location_id == merged.do_location_id

    def robust(x: pd.Series) -> float:
        return round(float(1.4826 * np.median(np.abs(x - np.median(x)))), 4)

    return {"same_zone": robust(log_ratio[same]), "other": robust(log_ratio[~same])}


def shares(values: pd.Series) -> dict[str, float]:
    counts = values.dropna().astype(int).value_counts(normalize=True).sort_index()
    return {str(k): round(float(v), 5) for k, v in counts.items() if v >= 1e-4}


def calibrate(folder: Path, min_pair_trips: int) -> tuple[pd.DataFrame, dict]:
    trips, sources = load(folder)
    pairs = zone_pairs(trips, min_pair_trips)
    xy = zone_positions(pairs)
    speed, slow, residual_sigma = duration_tables(trips)
    coded = trips[~trips.blank]
    zero = trips.trip_distance == 0
    minutes = trips.duration_min
    kept = minutes <= 720  # what the contract keeps; longer trips are meters left running
    hours = trips.groupby(["weekend", "hour"]).size().unstack(fill_value=0)
    days = trips.pickup_datetime.dt.normalize().drop_duplicates()
    per_day = {w: int((days.dt.dayofweek >= 5).eq(bool(w)).sum()) for w in (0, 1)}

    def zone_counts(column: str, blank: bool) -> list[int]:
        part = trips[trips.blank == blank][column]
        return part.value_counts().reindex(range(tlc.N_ZONES + 1), fill_value=0).astype(int).tolist()

    table = {
        "source": sources,
        "rows": len(trips),
        "blank_share": round(float(trips.blank.mean()), 4),
        "pair_coverage": {
            "coded": round(float(pairs.coded.sum() / (~trips.blank).sum()), 4),
            "blank": round(float(pairs.blank.sum() / trips.blank.sum()), 4),
        },
        "pickups": {
            "coded": zone_counts("pu_location_id", False),
            "blank": zone_counts("pu_location_id", True),
        },
        "dropoffs": {
            "coded": zone_counts("do_location_id", False),
            "blank": zone_counts("do_location_id", True),
        },
        "zone_xy_miles": xy.tolist(),
        "detour": DETOUR,
        "speed_mph": np.round(speed, 3).tolist(),
        "zone_slowness": np.round(slow, 4).tolist(),
        "duration_log_residual_sigma": round(residual_sigma, 4),
        "distance_log_sigma": distance_spread(trips, pairs),
        # Trips per hour, per day of each kind (weekday, weekend day).
        "hourly_trips": {
            "weekday": (hours.loc[False] / per_day[0]).round(2).tolist(),
            "weekend": (hours.loc[True] / per_day[1]).round(2).tolist(),
        },
        "anomalies": {
            "zero_distance": {
                "coded": round(float(zero[~trips.blank].mean()), 5),
                "blank": round(float(zero[trips.blank].mean()), 5),
            },
            "no_trip_share_of_zero_distance": round(float((minutes[zero] < 1).mean()), 4),
            "under_1_min": round(float((minutes < 1).mean()), 5),
            "over_120_min_kept": round(float(((minutes > 120) & kept).mean()), 5),
            "over_720_min": round(float((~kept).mean()), 5),
            "non_positive_duration": round(float((minutes <= 0).mean()), 5),
        },
        "codes": {
            "vendor": {"coded": shares(coded.vendor_id), "blank": shares(trips[trips.blank].vendor_id)},
            "passenger_count": shares(coded.passenger_count),
            "rate_code": shares(coded.rate_code_id),
            "payment_type": shares(coded.payment_type),
            "trip_type": shares(coded.trip_type),
            "store_and_fwd_y": round(float((coded.store_and_fwd_flag == "Y").mean()), 5),
        },
    }
    return pairs, table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, default=FIXTURES, help="folder with green_tripdata_*.parquet")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--min-pair-trips", type=int, default=3)
    args = parser.parse_args()
    pairs, table = calibrate(args.real, args.min_pair_trips)
    args.out.mkdir(parents=True, exist_ok=True)
    arrow = pa.table(
        {
            "pu": pa.array(pairs.pu, pa.int16()),
            "do": pa.array(pairs["do"], pa.int16()),
            "coded": pa.array(pairs.coded, pa.int32()),
            "blank": pa.array(pairs.blank, pa.int32()),
            "miles": pa.array(pairs.miles, pa.float32()),
        }
    )
    pq.write_table(arrow, args.out / "green_zone_pairs.parquet", compression="zstd", compression_level=19)
    (args.out / "green.json").write_text(json.dumps(table, separators=(",", ":")) + "\n")
    sizes = {p.name: p.stat().st_size for p in sorted(args.out.glob("green*"))}
    print(json.dumps({"pairs": len(pairs), "rows": table["rows"], "bytes": sizes}, indent=2))


if __name__ == "__main__":
    main()
