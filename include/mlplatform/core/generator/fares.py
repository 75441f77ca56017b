"""The codes and the money of generated trips, and their layout in TLC's file format.

Codes (vendor, rate code, payment type, passengers, flags) follow the calibrated mixes.
Money follows TLC's fare table (:mod:`mlplatform.core.fares`): each record is itemised by
the schedule in force at its pickup (initial charge and units for distance and slow time,
night and peak surcharges in ``extra``, MTA tax, improvement, congestion and CBD
surcharges, the airport fee on yellow airport pickups, JFK flat fare, Newark surcharge),
so a month that straddles a fare change is itemised by both. Records with blank codes (flex
or dispatched trips) leave the driver-entered fields and their surcharges blank. Unless a
month is clean, refunds and voids and the green vendors' itemisation quirks appear at the
shares of real months of the same regime (:mod:`~mlplatform.core.generator.pathologies`).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from mlplatform.core import fares, tlc
from mlplatform.core.generator import pathologies
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


_BRIDGE_TOLLS = (("2019-03-31", 6.12), ("2021-04-11", 6.55), ("2023-08-06", 6.94))
"""The MTA's E-ZPass toll on its bridges and tunnels, from each date: what ``tolls_amount``
shows for a crossing (real green months: $6.12 in 2021, $6.55 in 2023-01)."""
_MONEY = (
    "fare",
    "extra",
    "mta_tax",
    "tip",
    "tolls",
    "improvement",
    "total",
    "congestion",
    "airport_fee",
    "cbd",
)
_SCHEDULE_FIELDS = (
    "initial_charge",
    "per_unit",
    "night_surcharge",
    "peak_surcharge",
    "mta_tax",
    "improvement_surcharge",
    "congestion_surcharge",
    "airport_fee",
    "cbd_congestion_fee",
    "jfk_flat_fare",
    "newark_surcharge",
    "minimum_fare",
    "jfk_peak_surcharge",
    "laguardia_surcharge",
)


def _schedule_values(schedules: np.ndarray) -> dict[str, np.ndarray]:
    """Each fare-table field as an array over the records' schedule codes."""
    return {f: np.array([getattr(s, f) for s in fares.SCHEDULES])[schedules] for f in _SCHEDULE_FIELDS}


def _bridge_tolls(pickup_us: np.ndarray) -> np.ndarray:
    starts = np.array([np.datetime64(day, "us").astype(np.int64) for day, _ in _BRIDGE_TOLLS])
    amounts = np.array([amount for _, amount in _BRIDGE_TOLLS])
    return amounts[np.maximum(np.searchsorted(starts, pickup_us, side="right") - 1, 0)]


def _metered(
    s: dict[str, np.ndarray], rate: np.ndarray, distance: np.ndarray, minutes: np.ndarray
) -> np.ndarray:
    """The fare: the initial charge plus a unit per 1/5 mile or per minute below 12 mph (at
    least the minimum); the JFK flat fare; the Newark surcharge on top of the meter."""
    slow_minutes = np.clip(minutes - 60.0 * distance / 12.0, 0.0, None)
    units = np.floor(5.0 * distance + slow_minutes)
    fare = np.maximum(s["initial_charge"] + s["per_unit"] * units, s["minimum_fare"])
    fare = np.where(rate == 2, s["jfk_flat_fare"], fare)
    return np.where(rate == 3, fare + s["newark_surcharge"], fare)


def money_and_codes(
    rng: np.random.Generator,
    taxi_type: str,
    trips: dict[str, np.ndarray],
    clean: bool,
) -> dict[str, np.ndarray]:
    """Codes and the fare breakdown of each record, by the fare schedule in force at its pickup.

    ``trips`` holds ``pickup_us``, ``pu``, ``do``, ``distance`` (as recorded), ``minutes``
    (what the meter charged for: a meter left running charged the trip before it stood),
    ``hour``, ``weekend`` and ``blank``. Unless ``clean``, green records carry their
    vendors' itemisation quirks (:func:`_quirks`), and refunds and voids are negative in
    every money part (:func:`_refunds`), at the shares of their fare regime.
    """
    pu, do, blank, hour, weekend = (trips[k] for k in ("pu", "do", "blank", "hour", "weekend"))
    n = len(pu)
    b = borough_codes()
    manhattan = tlc.BOROUGHS.index("Manhattan")
    jfk = (pu == 132) | (do == 132)
    newark = (pu == 1) | (do == 1)
    rate = np.where(jfk & ((b[pu] == manhattan) | (b[do] == manhattan)), 2, 1)
    out = _codes(rng, taxi_type, np.where(newark, 3, rate), blank)
    rate = out["rate"]
    schedules = pathologies.schedule_codes(taxi_type, trips["pickup_us"])
    regime = pathologies.regime_codes(schedules)
    if not clean and taxi_type == "green":  # meters not yet set to a new rate of fare
        stale = pathologies.stale_meters(rng, schedules, regime, out["vendor"], trips["pickup_us"])
        schedules = np.where(stale, schedules - 1, schedules)
    s = _schedule_values(schedules)
    fare = _metered(s, rate, trips["distance"], trips["minutes"])
    fare = np.where(rate == 5, np.round(fare * rng.uniform(0.8, 1.2, n)), fare)  # negotiated
    peak = ~weekend & (hour >= 16) & (hour < 20)
    night = (hour >= 20) | (hour < 6)
    extra = np.where(
        rate == 2, peak * s["jfk_peak_surcharge"], night * s["night_surcharge"] + peak * s["peak_surcharge"]
    )
    extra = np.where(rate == 5, 0.0, extra) + s["laguardia_surcharge"] * ((pu == 138) | (do == 138))
    # The MTA tax is charged on metered trips within its region: not on Newark trips,
    # negotiated fares, or the dispatched service (records with blank codes).
    mta_tax = np.where(np.isin(rate, (3, 5)) | blank, 0.0, s["mta_tax"])
    touches_manhattan = (b[pu] == manhattan) | (b[do] == manhattan)
    owed = np.where(touches_manhattan, s["congestion_surcharge"], 0.0)
    if taxi_type == "green":  # green street hails that touch Manhattan mostly stay north of 96th Street
        owed = np.where(blank | (rng.random(n) < 0.3), owed, 0.0)
    # Blank-code records leave the driver-entered surcharges blank (see _quirks for where
    # their congestion surcharge goes).
    congestion = np.where(blank, 0.0, owed)
    airport_fee = np.where(np.isin(pu, (132, 138)) & ~blank, s["airport_fee"], 0.0)
    # Half the trips between Manhattan/Brooklyn and the rest cross a tolled bridge or tunnel.
    core = (manhattan, tlc.BOROUGHS.index("Brooklyn"))
    crossing = np.isin(b[pu], core) != np.isin(b[do], core)
    tolls = np.where(crossing & (rng.random(n) < 0.5), _bridge_tolls(trips["pickup_us"]), 0.0)
    # The CBD toll's zone (south of 60th Street) lies inside the congestion surcharge's.
    cbd = np.where(owed > 0, s["cbd_congestion_fee"], 0.0)
    tip = np.where(
        out["payment"] == 1, np.round(fare * _tips(rng, pu, trips["distance"], hour, weekend), 2), 0.0
    )
    improvement = s["improvement_surcharge"]
    total = fare + extra + mta_tax + improvement + congestion + tip + tolls + cbd + airport_fee
    out.update(fare=fare, extra=extra, mta_tax=mta_tax, tip=tip, tolls=tolls, improvement=improvement)
    out.update(total=total, congestion=congestion, airport_fee=airport_fee, cbd=cbd)
    if not clean:
        if taxi_type == "green":
            _quirks(rng, out, regime, np.where(blank, owed, 0.0))
        _refunds(rng, out, regime)
    for name in _MONEY:
        out[name] = np.round(out[name], 2)
    return out


def _quirks(
    rng: np.random.Generator, out: dict[str, np.ndarray], regime: np.ndarray, blank_owed: np.ndarray
) -> None:
    """TLC's green vendors' itemisation, at the shares of their regime's real months.

    Vendor 1 street hails show the congestion surcharge in ``extra`` as well as in its
    column, and (from the 2022-12-19 fares) the improvement surcharge inside ``mta_tax`` as
    well, each counted once in the total. Records with blank codes owe the surcharge too,
    with its column empty: some show it in ``extra``, some only in the total. (Meters still
    on the previous rate of fare are chosen in :func:`money_and_codes`.)
    """
    n = len(regime)
    street_v1 = (out["vendor"] == 1) & ~out["blank"]
    in_extra = street_v1 & (rng.random(n) < pathologies.quirk_share(regime, "vendor1_congestion_in_extra"))
    out["extra"] = out["extra"] + np.where(in_extra, out["congestion"], 0.0)
    in_mta = street_v1 & (rng.random(n) < pathologies.quirk_share(regime, "vendor1_improvement_in_mta_tax"))
    out["mta_tax"] = out["mta_tax"] + np.where(in_mta & (out["mta_tax"] > 0), out["improvement"], 0.0)
    # Only records that owe the surcharge can carry it: the shares are of all blank-code
    # records, so they are scaled to the records that owe it.
    owes = blank_owed > 0
    scale = out["blank"].sum() / max(int(owes.sum()), 1)
    total_only = scale * pathologies.quirk_share(regime, "blank_congestion_in_total_only")
    blank_total = owes & (rng.random(n) < total_only)
    extra_share = scale * pathologies.quirk_share(regime, "blank_congestion_in_extra")
    blank_extra = owes & ~blank_total & (rng.random(n) < extra_share)
    out["extra"] = out["extra"] + np.where(blank_extra, blank_owed, 0.0)
    out["total"] = out["total"] + np.where(blank_extra | blank_total, blank_owed, 0.0)


def _refunds(rng: np.random.Generator, out: dict[str, np.ndarray], regime: np.ndarray) -> None:
    """Refunds and voids at their regime's share: every money part negative, no tip, no toll;
    payment type 3 (no charge) or 4 (dispute), blank on records with blank codes."""
    n = len(regime)
    refund = rng.random(n) < pathologies.share(regime, "refund", out["blank"])
    out["payment"] = np.where(
        refund & ~out["blank"], pathologies.refund_payment_types(rng, regime), out["payment"]
    )
    out["tip"] = np.where(refund, 0.0, out["tip"])
    out["tolls"] = np.where(refund, 0.0, out["tolls"])
    parts = ("fare", "extra", "mta_tax", "improvement", "congestion", "airport_fee", "cbd")
    for name in parts:
        out[name] = np.where(refund, 0.0 - np.abs(out[name]), out[name])  # 0.0 - 0.0 is +0.0
    out["total"] = np.where(refund, sum(out[p] for p in parts), out["total"])


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
