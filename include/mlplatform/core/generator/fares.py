"""The codes and the metered fare of generated trips, and their layout in TLC's file format.

Codes (vendor, rate code, payment type, passengers, flags) follow the calibrated mixes;
fares are consistent with each trip's distance, time, zones and hour, with the surcharges
of the month's rules. Records with blank codes (flex or dispatched trips) leave the
driver-entered fields and their surcharges blank.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from mlplatform.core import tlc
from mlplatform.core.generator.world import AIRPORTS, borough_codes, world


def _draw(rng: np.random.Generator, shares: dict[str, float], n: int) -> np.ndarray:
    codes = np.array([float(k) for k in shares])
    p = np.array(list(shares.values()))
    return rng.choice(codes, size=n, p=p / p.sum()).astype(np.int64)


def _codes(
    rng: np.random.Generator, taxi_type: str, rate: np.ndarray, blank: np.ndarray
) -> dict[str, np.ndarray]:
    """Rate code, payment type, passengers, vendor, store-and-forward flag and trip type."""
    n = len(rate)
    if taxi_type == "green":
        codes = world().green["codes"]
        drawn = _draw(rng, codes["rate_code"], n)
        rate = np.where(rate == 1, drawn, rate)  # negotiated fares are common in green cabs
        payment = _draw(rng, codes["payment_type"], n)
        passengers = _draw(rng, codes["passenger_count"], n)
        vendor = np.where(
            blank, _draw(rng, codes["vendor"]["blank"], n), _draw(rng, codes["vendor"]["coded"], n)
        )
        flag = rng.random(n) < codes["store_and_fwd_y"]
        trip_type = _draw(rng, codes["trip_type"], n)
    else:
        rate = np.where(rng.random(n) < 0.004, 5, rate)
        payment = rng.choice([1, 2, 3, 4], size=n, p=[0.74, 0.23, 0.02, 0.01])
        passengers = rng.choice([1, 2, 3, 4, 5, 6], size=n, p=[0.74, 0.15, 0.04, 0.03, 0.02, 0.02])
        vendor = rng.choice([1, 2], size=n, p=[0.3, 0.7])
        flag = rng.random(n) < 0.005
        trip_type = np.where(rng.random(n) < 0.03, 2, 1)
    return {
        "vendor": vendor,
        "passengers": passengers,
        "rate": rate,
        "flag": flag,
        "payment": np.where(blank, 0, payment),
        "blank": blank,
        "trip_type": trip_type,
    }


def _tips(
    rng: np.random.Generator, pu: np.ndarray, distance: np.ndarray, hour: np.ndarray, weekend: np.ndarray
) -> np.ndarray:
    """The tip share of each fare.

    Card tips are generous (>= 20%) more often at night, in Manhattan, for short trips. Nearly
    all yellow pickups are in Manhattan, so the hour, airport and distance effects carry the
    signal: a perfect model reaches an ROC AUC of about 0.65 on yellow months.
    """
    n = len(pu)
    manhattan = borough_codes()[pu] == tlc.BOROUGHS.index("Manhattan")
    logit = (
        -0.2
        + 0.6 * manhattan
        + 0.8 * ((hour >= 20) | (hour < 4))
        - 0.8 * np.isin(pu, AIRPORTS)
        - 0.08 * np.clip(distance, 0, 20)
        + 0.4 * weekend
    )
    generous = rng.random(n) < 1.0 / (1.0 + np.exp(-logit))
    return np.where(
        generous, rng.choice([0.2, 0.22, 0.25, 0.3], size=n), rng.choice([0.0, 0.1, 0.15, 0.18], size=n)
    )


def money_and_codes(
    rng: np.random.Generator,
    taxi_type: str,
    month: str,
    pu: np.ndarray,
    do: np.ndarray,
    distance: np.ndarray,
    minutes: np.ndarray,
    hour: np.ndarray,
    weekend: np.ndarray,
    blank: np.ndarray,
) -> dict[str, np.ndarray]:
    """Codes and the metered fare breakdown, consistent with distance and time."""
    n = len(pu)
    b = borough_codes()
    manhattan = tlc.BOROUGHS.index("Manhattan")
    jfk = (pu == 132) | (do == 132)
    newark = (pu == 1) | (do == 1)
    rate = np.where(jfk & ((b[pu] == manhattan) | (b[do] == manhattan)), 2, 1)
    out = _codes(rng, taxi_type, np.where(newark, 3, rate), blank)
    rate = out["rate"]
    fare = np.where(rate == 2, 70.0, 3.0 + 3.5 * distance + 0.35 * minutes)
    fare = np.round(np.where(rate == 3, fare + 20.0, fare), 2)
    extra = np.where(~weekend & (hour >= 16) & (hour < 20), 2.5, 0.0) + np.where(
        (hour >= 20) | (hour < 6), 1.0, 0.0
    )
    mta_tax = np.full(n, 0.5)
    improvement = np.full(n, 1.0)
    congestion = np.where((b[pu] == manhattan) | (b[do] == manhattan), 2.5, 0.0)
    if taxi_type == "green":
        congestion = np.where(rng.random(n) < 0.3, congestion, 0.0)
    airport_fee = np.where(np.isin(pu, (132, 138)), 1.75, 0.0)
    # Half the trips between Manhattan/Brooklyn and the rest cross a tolled bridge or tunnel.
    core = (manhattan, tlc.BOROUGHS.index("Brooklyn"))
    crossing = np.isin(b[pu], core) != np.isin(b[do], core)
    tolls = np.where(crossing & (rng.random(n) < 0.5), 6.94, 0.0)
    cbd = np.where(b[do] == manhattan, 0.75, 0.0) if month >= "2025-01" else np.zeros(n)
    # Blank-code records leave the driver-entered surcharges blank: they do not count in the total.
    congestion = np.where(blank, 0.0, congestion)
    airport_fee = np.where(blank, 0.0, airport_fee)
    tip = np.where(out["payment"] == 1, np.round(fare * _tips(rng, pu, distance, hour, weekend), 2), 0.0)
    total = np.round(fare + extra + mta_tax + improvement + congestion + tip + tolls + cbd, 2)
    if taxi_type == "yellow":
        total = np.round(total + airport_fee, 2)
    out.update(fare=fare, extra=extra, mta_tax=mta_tax, tip=tip, tolls=tolls, improvement=improvement)
    out.update(total=total, congestion=congestion, airport_fee=airport_fee, cbd=cbd)
    return out


def publication_schema(taxi_type: tlc.TaxiType, month: str, generation: tlc.Generation) -> pa.Schema:
    """The Arrow schema of TLC's file for ``month``: its generation's (see :func:`tlc.raw_schema`;
    green files up to 2022 carry ``ehail_fee`` typed ``null``, as the real 2021 months do)."""
    return tlc.raw_schema(taxi_type, generation)


def to_arrow(c: dict[str, np.ndarray], schema: pa.Schema) -> pa.Table:
    blank = c["blank"]
    n = len(c["pu"])
    flags = pa.DictionaryArray.from_arrays(
        pa.array(c["flag"].astype(np.int8), mask=blank), pa.array(["N", "Y"])
    ).cast(pa.string())
    # Green records with blank codes have no payment type either; yellow ones say 0 (flex fare).
    green = "lpep_pickup_datetime" in schema.names
    payment = pa.array(c["payment"], mask=blank) if green else c["payment"]
    values = {
        "VendorID": c["vendor"],
        "tpep_pickup_datetime": c["pickup"],
        "lpep_pickup_datetime": c["pickup"],
        "tpep_dropoff_datetime": c["dropoff"],
        "lpep_dropoff_datetime": c["dropoff"],
        "passenger_count": pa.array(c["passengers"], mask=blank),
        "trip_distance": c["distance"],
        "RatecodeID": pa.array(c["rate"], mask=blank),
        "store_and_fwd_flag": flags,
        "PULocationID": c["pu"],
        "DOLocationID": c["do"],
        "payment_type": payment,
        "fare_amount": c["fare"],
        "extra": c["extra"],
        "mta_tax": c["mta_tax"],
        "tip_amount": c["tip"],
        "tolls_amount": c["tolls"],
        "improvement_surcharge": c["improvement"],
        "total_amount": c["total"],
        "congestion_surcharge": pa.array(c["congestion"], mask=blank),
        "Airport_fee": pa.array(c["airport_fee"], mask=blank),
        "airport_fee": pa.array(c["airport_fee"], mask=blank),
        "cbd_congestion_fee": c["cbd"],
        "ehail_fee": pa.nulls(n, pa.float64()),
        "trip_type": pa.array(c["trip_type"], mask=blank),
    }
    arrays = []
    for f in schema:
        value = values[f.name]
        if pa.types.is_null(f.type):  # a column TLC published without a single value
            arrays.append(pa.nulls(n))
        elif pa.types.is_timestamp(f.type):
            arrays.append(pa.array(value, pa.int64()).cast(f.type))
        else:
            arrays.append(
                pa.array(value).cast(f.type) if not isinstance(value, pa.Array) else value.cast(f.type)
            )
    return pa.Table.from_arrays(arrays, schema=schema)
