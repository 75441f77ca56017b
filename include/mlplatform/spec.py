"""Use-case specs: one YAML file per model, loaded into validated, typed objects.

A use case is data, not code. ``include/mlplatform/use_cases/<name>.yaml`` says what the
model predicts, from which data, under which contract, gates and thresholds; an optional
``<name>.py`` beside it builds the scikit-learn pipeline. Every DAG is generated from these
specs, so adding a model never means writing DAG code.

A bad spec fails at load time with a message that names the file and the field.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

USE_CASES_DIR = Path(__file__).with_name("use_cases")

Month = Annotated[str, Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="A month as YYYY-MM.")]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


class SpecError(ValueError):
    """A use-case spec is missing, unreadable or invalid."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataSource(_Strict):
    """Where the raw data comes from and what shape it has."""

    dataset: str = Field(description="Raw dataset name: the folder under raw/ in the lake.")
    taxi_type: Literal["yellow", "green"] = Field(description="TLC trip-record flavour of the raw files.")
    schema_name: Literal["tlc_trip"] = Field(
        "tlc_trip", alias="schema", description="Normalised schema the raw files are read into."
    )
    filter: str | None = Field(
        None, description="Optional pandas query selecting the rows this use case models (e.g. card trips)."
    )


class Target(_Strict):
    column: str = Field(description="Column of the normalised data holding the label.")
    unit: str = Field(description="Unit answers are given in (e.g. minutes, or 'label' for classifiers).")
    labels: tuple[str, str] | None = Field(
        None, description="Classifiers: the names of the negative and positive class, in that order."
    )
    expression: str | None = Field(
        None,
        description="Optional pandas expression deriving the target from normalised columns when the "
        "data has no such column (classifiers: true means the positive class).",
    )


class Features(_Strict):
    numeric: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()

    @property
    def all(self) -> tuple[str, ...]:
        return self.numeric + self.categorical

    @model_validator(mode="after")
    def _not_empty_and_disjoint(self) -> Features:
        if not self.all:
            raise ValueError("at least one numeric or categorical feature is required")
        if overlap := set(self.numeric) & set(self.categorical):
            raise ValueError(f"features listed as both numeric and categorical: {sorted(overlap)}")
        return self


class Model(_Strict):
    module: str = Field(description="Model module in use_cases/ that builds the estimator.")
    family: str = Field(description="Default model family the module offers (e.g. hist_gradient_boosting).")
    baseline: str = Field(description="Baseline family every first model must beat (e.g. linear).")
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    search: dict[str, list[Any]] = Field(
        default_factory=dict, description="Small, bounded grid tried on top of the hyperparameters."
    )
    max_search_trials: int = Field(4, ge=1, le=32)


class Contract(_Strict):
    suite: str = Field(description="Great Expectations suite guarding this data.")
    max_bad_row_share: Fraction = Field(
        description="Quarantine bad rows and go on below this share; halt above."
    )
    volume_band: tuple[float, float] = Field(
        description="Allowed row count as a multiple of the recent median month, (low, high)."
    )
    pickup_tolerance_hours: float = Field(6.0, ge=0)
    max_trip_minutes: float = Field(
        720.0, gt=0, description="Longest plausible trip; longer rows are quarantined."
    )
    max_trip_miles: float = Field(
        300.0, gt=0, description="Longest plausible trip distance; longer rows are quarantined."
    )

    @field_validator("volume_band")
    @classmethod
    def _ordered(cls, band: tuple[float, float]) -> tuple[float, float]:
        if not 0 < band[0] < 1 < band[1]:
            raise ValueError("volume_band must be (low, high) with 0 < low < 1 < high")
        return band


class Training(_Strict):
    window_months: int = Field(ge=1, le=36, description="Months of validated data a model trains on.")
    validation_months: int = Field(1, ge=1, le=6, description="Newest months held out for validation.")
    sample_rows: int | None = Field(None, ge=1000, description="Cap on training rows (uniform sample).")
    on_new_data: Literal["retrain", "first_model"] = Field(
        "retrain",
        description="What a newly validated month does: `retrain` trains a challenger on each; "
        "`first_model` trains only while there is no champion, later retrains come from monitoring.",
    )


class Gates(_Strict):
    min_relative_improvement: float = Field(ge=0, le=1, description="Challenger must beat champion by this.")
    max_slice_regression: float = Field(
        ge=0, le=1, description="No slice may be worse than champion by more."
    )
    slices: tuple[str, ...] = Field(default=(), description="Columns whose values define evaluation slices.")
    max_latency_ms: float = Field(gt=0, description="Per-row prediction latency budget (batch of 1000).")
    max_model_size_mb: float = Field(gt=0)
    approval_timeout_hours: float = Field(
        24, gt=0, description="Level 3: unanswered approval means rejected."
    )


class Monitoring(_Strict):
    drift_threshold: float = Field(gt=0, description="Per-feature drift score above which a feature drifted.")
    drifted_share_threshold: Fraction = Field(description="Share of drifted features that is a breach.")
    prediction_drift_threshold: float = Field(gt=0)
    performance_metric: Literal["rmse", "mae", "log_loss", "roc_auc"]
    max_relative_degradation: float = Field(
        gt=0, description="Metric worse than at training by more: breach."
    )
    max_error_rate: Fraction = 0.01
    max_p99_latency_ms: float = Field(250, gt=0)
    retrain_cooldown_hours: float = Field(24, ge=0)


class Schedules(_Strict):
    validate_: str | None = Field("@monthly", alias="validate")
    batch_score: str | None = "@monthly"
    monitor: str | None = "@daily"


class Serving(_Strict):
    mode: Literal["batch", "endpoint", "both"]
    target: Literal["local", "sagemaker"] = "local"
    challenger_share: Fraction = Field(0.0, description="A/B: share of requests sent to the challenger.")
    batch_rows: int = Field(250_000, ge=1000, description="Record-batch size when scoring.")
    instance_type: str = "ml.m5.large"


class UseCase(_Strict):
    """A complete, validated use-case spec."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{2,40}$")
    description: str
    owner: str
    task: Literal["regression", "classification"]
    maturity_level: Literal[2, 3, 4]
    start_month: Month = Field(description="First month the schedules cover.")
    data: DataSource
    target: Target
    features: Features
    model: Model
    contract: Contract
    training: Training
    promotion: Gates
    monitoring: Monitoring
    schedules: Schedules = Schedules()
    serving: Serving

    @property
    def model_name(self) -> str:
        """Registered model name in MLflow."""
        return self.name

    @model_validator(mode="after")
    def _consistent(self) -> UseCase:
        if self.task == "classification" and self.target.labels is None:
            raise ValueError("target.labels is required for a classification use case")
        metric = self.monitoring.performance_metric
        if (self.task == "regression") != (metric in ("rmse", "mae")):
            raise ValueError(f"monitoring.performance_metric {metric!r} does not fit a {self.task} task")
        if not (USE_CASES_DIR / f"{self.model.module}.py").is_file():
            raise ValueError(f"model.module {self.model.module!r}: no file use_cases/{self.model.module}.py")
        return self


def _describe(error: ValidationError) -> str:
    lines = []
    for err in error.errors():
        field = ".".join(str(p) for p in err["loc"]) or "(top level)"
        kind = err["type"]
        if kind == "missing":
            lines.append(f"  {field}: required field is missing")
        elif kind == "extra_forbidden":
            lines.append(f"  {field}: unknown key (check the spelling against the spec reference)")
        else:
            got = err.get("input")
            shown = "" if isinstance(got, dict | list) else f" (got {got!r})"
            lines.append(f"  {field}: {err['msg']}{shown}")
    return "\n".join(lines)


def parse_spec(raw: dict[str, Any], source: str = "<spec>") -> UseCase:
    """Validate a spec given as a mapping; ``source`` names it in error messages."""
    if not isinstance(raw, dict):
        raise SpecError(f"{source}: a spec must be a YAML mapping, got {type(raw).__name__}")
    try:
        return UseCase.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(f"{source}: invalid use-case spec\n{_describe(exc)}") from None


def load_spec_file(path: Path) -> UseCase:
    """Load and validate one spec file."""
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SpecError(f"{path}: cannot read spec: {exc}") from None
    spec = parse_spec(raw, str(path))
    if spec.name != path.stem:
        raise SpecError(f"{path}: name: {spec.name!r} must equal the file name {path.stem!r}")
    return spec


@functools.cache
def load_spec(name: str) -> UseCase:
    """The spec of the use case ``name`` from ``use_cases/``."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise SpecError(f"use case name {name!r} is not a valid name")
    path = USE_CASES_DIR / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(use_case_names()) or "none"
        raise SpecError(f"no use case {name!r}: {path} does not exist (known: {known})")
    return load_spec_file(path)


def use_case_names() -> list[str]:
    """Names of every use case shipped in ``use_cases/``, sorted."""
    return sorted(p.stem for p in USE_CASES_DIR.glob("*.yaml"))


def load_all() -> list[UseCase]:
    """Every shipped use case, validated."""
    return [load_spec(name) for name in use_case_names()]
