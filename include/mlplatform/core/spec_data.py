"""The data side of a use-case spec: where the raw data comes from, and the contract it must meet.

:mod:`mlplatform.core.spec` assembles these sections with the others into a ``UseCase``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

TaxiType = Literal["yellow", "green"]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
TimezoneAware = Literal["convert", "reject"]
"""What to do with zone-tagged timestamps: convert them to New York wall-clock time, or reject the file."""


class StrictModel(BaseModel):
    """A spec section: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class DataSource(StrictModel):
    """Where the raw data comes from and what shape it has."""

    dataset: str = Field(description="Raw dataset name: the folder under raw/ in the lake.")
    taxi_types: tuple[TaxiType, ...] = Field(
        min_length=1,
        description="TLC trip-record flavours the use case reads (yellow, green or both). A month is "
        "validated from every listed type whose raw file landed; the first is the primary type. "
        "The older single key `taxi_type: yellow` is accepted and means `taxi_types: [yellow]`.",
    )
    schema_name: Literal["tlc_trip"] = Field(
        "tlc_trip", alias="schema", description="Normalised schema the raw files are read into."
    )
    filter: str | None = Field(
        None, description="Optional pandas query selecting the rows this use case models (e.g. card trips)."
    )
    timezone_aware: TimezoneAware = Field(
        "convert",
        description="Timestamps tagged with a time zone (Spark writes UTC instants): `convert` them to "
        "New York wall-clock time, TLC's convention, or `reject` the file (a contract breach). Naive "
        "timestamps are New York wall-clock times either way.",
    )

    @model_validator(mode="before")
    @classmethod
    def _single_taxi_type(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and "taxi_type" in raw:
            if "taxi_types" in raw:
                raise ValueError("give either taxi_types (a list) or the older taxi_type, not both")
            raw = {k: v for k, v in raw.items() if k != "taxi_type"} | {"taxi_types": [raw["taxi_type"]]}
        return raw

    @field_validator("taxi_types")
    @classmethod
    def _distinct(cls, types: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(types)) != len(types):
            raise ValueError(f"taxi_types lists a type twice: {list(types)}")
        return types

    @property
    def taxi_type(self) -> TaxiType:
        """The primary taxi type (the first listed): what one generated month holds."""
        return self.taxi_types[0]


class Contract(StrictModel):
    suite: str = Field(description="Great Expectations suite guarding this data.")
    max_bad_row_share: Fraction = Field(
        description="Quarantine bad rows and go on below this share; halt above."
    )
    volume_band: tuple[float, float] = Field(
        description="Allowed row count as a multiple of the recent median month, (low, high)."
    )
    pickup_tolerance_hours: float = Field(
        0.0,
        ge=0,
        description="Hours before and after the month a pickup may fall and still belong to it; 0 "
        "quarantines trips that began the evening before the month (TLC files them by dropoff).",
    )
    max_trip_minutes: float = Field(
        720.0, gt=0, description="Longest plausible trip; longer rows are quarantined."
    )
    max_trip_miles: float = Field(
        300.0, gt=0, description="Longest plausible trip distance; longer rows are quarantined."
    )
    idle_trip_minutes: float = Field(
        60.0, gt=0, description="Trips longer than this must average at least min_average_mph."
    )
    min_average_mph: float = Field(
        2.0, ge=0, description="Slowest plausible average speed of a trip over idle_trip_minutes."
    )
    trend_jump_factor: float = Field(
        3.0,
        gt=1,
        description="A rule whose quarantine share exceeds this many times its trailing median of "
        "previous months (and trend_jump_floor) raises a warning naming it (not a breach).",
    )
    trend_jump_floor: Fraction = Field(
        0.002,
        description="Shares below this never count as a jump, so rules that quarantine a handful of "
        "rows do not flap.",
    )

    @field_validator("volume_band")
    @classmethod
    def _ordered(cls, band: tuple[float, float]) -> tuple[float, float]:
        if not 0 < band[0] < 1 < band[1]:
            raise ValueError("volume_band must be (low, high) with 0 < low < 1 < high")
        return band
