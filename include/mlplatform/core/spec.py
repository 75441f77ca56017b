"""Use-case specs: one YAML file per model, loaded into validated, typed objects.

A use case is data, not code. ``include/mlplatform/use_cases/<name>.yaml`` says what the
model predicts, from which data, under which contract, gates and thresholds; an optional
``<name>.py`` beside it builds the scikit-learn pipeline. Every DAG is generated from these
specs, so adding a model never means writing DAG code.

Specs can also live outside the package: ``MLPLATFORM_USE_CASES_DIR`` names more folders
(separated by ``os.pathsep``) searched after ``use_cases/``, so a team adds a use case to
the bundle without editing ``mlplatform``. A spec's model module is looked up beside the
spec first, then in the package's ``use_cases/``.

A bad spec fails at load time with a message that names the file and the field.
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.util
import os
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from mlplatform.core import months

USE_CASES_DIR = Path(__file__).parents[1] / "use_cases"
USE_CASES_DIR_VARIABLE = "MLPLATFORM_USE_CASES_DIR"
"""Environment variable naming more spec folders (``os.pathsep``-separated)."""

Month = Annotated[str, Field(pattern=rf"^{months.MONTH_PATTERN}$", description="A month as YYYY-MM.")]


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
        "validated from every listed type whose raw file landed; the first is the primary type.",
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


class SpecError(ValueError):
    """A use-case spec is missing, unreadable or invalid."""


class Target(StrictModel):
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
    range_: tuple[float, float] | None = Field(
        None,
        alias="range",
        description="Regression: the modelling range, (low, high) inclusive. Only trips whose target "
        "lies in it are trained on, validated on and monitored (e.g. trips of 1 to 60 minutes); the "
        "rows it excludes are counted and logged.",
    )

    @field_validator("range_")
    @classmethod
    def _ordered_range(cls, bounds: tuple[float, float] | None) -> tuple[float, float] | None:
        if bounds is not None and not bounds[0] < bounds[1]:
            raise ValueError("range must be (low, high) with low < high")
        return bounds


class Features(StrictModel):
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


Hyperparameter = bool | int | float | str | None
"""A value the spec gives one of the estimator's parameters."""


class Model(StrictModel):
    module: str = Field(description="Model module in use_cases/ that builds the estimator.")
    family: str = Field(description="Default model family the module offers (e.g. hist_gradient_boosting).")
    baseline: str = Field(description="Baseline family every first model must beat (e.g. linear).")
    hyperparameters: dict[str, Hyperparameter] = Field(default_factory=dict)
    search: dict[str, list[Hyperparameter]] = Field(
        default_factory=dict, description="Small, bounded grid tried on top of the hyperparameters."
    )
    max_search_trials: int = Field(4, ge=1, le=32)


class Training(StrictModel):
    window_months: int = Field(ge=1, le=36, description="Months of validated data a model trains on.")
    validation_months: int = Field(1, ge=1, le=6, description="Newest months held out for validation.")
    sample_rows: int | None = Field(None, ge=1000, description="Cap on training rows (uniform sample).")
    on_new_data: Literal["retrain", "first_model"] = Field(
        "retrain",
        description="What a newly validated month does: `retrain` trains a challenger on each; "
        "`first_model` trains only while there is no champion, later retrains come from monitoring.",
    )


class Gates(StrictModel):
    min_relative_improvement: float = Field(
        ge=0,
        le=1,
        description="Minimum effect: the lower bound of the challenger's relative improvement over the "
        "champion (interval at `confidence`) must reach this.",
    )
    max_slice_regression: float = Field(
        ge=0,
        le=1,
        description="No slice may be worse than the champion by more: the upper bound of its "
        "degradation interval (at `confidence`) must stay within this.",
    )
    confidence: float = Field(
        0.95,
        gt=0.5,
        lt=1,
        description="Confidence of the paired-bootstrap intervals the improvement and slice gates read.",
    )
    bootstrap_resamples: int = Field(
        2000, ge=200, le=20_000, description="Paired-bootstrap resamples behind each interval."
    )
    rollback_cooldown_days: float = Field(
        7,
        ge=0,
        description="After a rollback, another rollback (not forced by a person) is refused for this "
        "long, so champion and previous champion do not flap.",
    )
    slices: tuple[str, ...] = Field(default=(), description="Columns whose values define evaluation slices.")
    max_latency_ms: float = Field(gt=0, description="Per-row prediction latency budget (batch of 1000).")
    max_model_size_mb: float = Field(gt=0)
    approval_timeout_hours: float = Field(
        24, gt=0, description="Level 3: unanswered approval means rejected."
    )


class Monitoring(StrictModel):
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
    live_max_windows: int = Field(
        6,
        ge=1,
        description="Labelled windows a challenger is compared with the champion on live traffic "
        "before it is retired for not being better with confidence.",
    )
    shadow_previous_windows: int = Field(
        3,
        ge=0,
        description="Labelled windows after a promotion during which the previous champion is scored "
        "in shadow, so a champion worse on live labels is rolled back.",
    )


class Schedules(StrictModel):
    """Cron or preset of the time-scheduled stages; the others follow the Assets they read."""

    ingest: str | None = Field("@monthly", description="When a raw month is landed (validation follows it).")
    batch_score: str | None = Field("@monthly", description="When the last full month is scored.")


ServingTarget = Literal["local", "sagemaker"]


class Serving(StrictModel):
    mode: Literal["batch", "endpoint", "both"]
    target: ServingTarget | None = Field(
        None,
        description="Pin where models serve and batch scoring runs; empty: the environment decides "
        "(serving_target).",
    )
    challenger_share: Fraction = Field(0.0, description="A/B: share of requests sent to the challenger.")
    batch_rows: int = Field(250_000, ge=1000, description="Record-batch size when scoring.")
    instance_type: str = "ml.m5.large"


class UseCase(StrictModel):
    """A complete, validated use-case spec."""

    _model_file: Path = PrivateAttr()

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
        if self.task == "classification" and self.target.range_ is not None:
            raise ValueError("target.range applies to regression targets; remove it or use data.filter")
        metric = self.monitoring.performance_metric
        if (self.task == "regression") != (metric in ("rmse", "mae")):
            raise ValueError(f"monitoring.performance_metric {metric!r} does not fit a {self.task} task")
        return self

    @model_validator(mode="after")
    def _model_module_exists(self, info: ValidationInfo) -> UseCase:
        folder = (info.context or {}).get("folder")
        file = f"{self.model.module}.py"
        found = [d / file for d in (folder, USE_CASES_DIR) if d is not None and (d / file).is_file()]
        if not found:
            beside = f"{folder / file} nor " if folder is not None else ""
            raise ValueError(f"model.module {self.model.module!r}: no file {beside}use_cases/{file}")
        self._model_file = found[0]
        return self

    @property
    def model_file(self) -> Path:
        """The model module's file: beside the spec, else in the package's ``use_cases/``."""
        return self._model_file


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


def parse_spec(raw: dict[str, Any], source: str = "<spec>", folder: Path | None = None) -> UseCase:
    """Validate a spec given as a mapping; ``source`` names it in error messages.

    ``folder`` is where the spec file lives: its model module is looked up there first.
    """
    if not isinstance(raw, dict):
        raise SpecError(f"{source}: a spec must be a YAML mapping, got {type(raw).__name__}")
    try:
        return UseCase.model_validate(raw, context={"folder": folder})
    except ValidationError as exc:
        raise SpecError(f"{source}: invalid use-case spec\n{_describe(exc)}") from None


def load_spec_file(path: Path) -> UseCase:
    """Load and validate one spec file."""
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SpecError(f"{path}: cannot read spec: {exc}") from None
    spec = parse_spec(raw, str(path), path.parent)
    if spec.name != path.stem:
        raise SpecError(f"{path}: name: {spec.name!r} must equal the file name {path.stem!r}")
    return spec


def use_case_dirs() -> list[Path]:
    """Folders holding specs: the package's ``use_cases/``, then those ``MLPLATFORM_USE_CASES_DIR`` names."""
    extra = [Path(p).expanduser() for p in os.getenv(USE_CASES_DIR_VARIABLE, "").split(os.pathsep) if p]
    for folder in extra:
        if not folder.is_dir():
            raise SpecError(f"{USE_CASES_DIR_VARIABLE}: {folder} is not a folder; fix or unset the variable")
    return [USE_CASES_DIR, *(f for f in extra if f.resolve() != USE_CASES_DIR.resolve())]


def spec_files() -> dict[str, Path]:
    """Every spec file by use-case name, across :func:`use_case_dirs`; a name in two folders is an error."""
    files: dict[str, Path] = {}
    for folder in use_case_dirs():
        for path in sorted(folder.glob("*.yaml")):
            if path.stem in files:
                raise SpecError(
                    f"use case {path.stem!r} is defined twice: {files[path.stem]} and {path}; rename one"
                )
            files[path.stem] = path
    return files


def load_spec(name: str) -> UseCase:
    """The spec of the use case ``name`` from ``use_cases/`` or a ``MLPLATFORM_USE_CASES_DIR`` folder."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise SpecError(f"use case name {name!r} is not a valid name")
    files = spec_files()
    if name not in files:
        known = ", ".join(sorted(files)) or "none"
        searched = ", ".join(str(d) for d in use_case_dirs())
        raise SpecError(f"no use case {name!r}: no {name}.yaml in {searched} (known: {known})")
    return _load_cached(files[name])


@functools.cache
def _load_cached(path: Path) -> UseCase:
    return load_spec_file(path)


def use_case_names() -> list[str]:
    """Names of every use case, shipped or in a ``MLPLATFORM_USE_CASES_DIR`` folder, sorted."""
    return sorted(spec_files())


def load_all() -> list[UseCase]:
    """Every use case, validated."""
    return [load_spec(name) for name in use_case_names()]


def model_families(use_case: UseCase) -> tuple[str, ...]:
    """The model families the use case's model module offers (its ``FAMILIES``), read without importing it.

    Help texts list them; importing the module would import scikit-learn just to print help.
    Empty when the module does not declare ``FAMILIES`` as a literal.
    """
    tree = ast.parse(use_case.model_file.read_text(), str(use_case.model_file))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "FAMILIES" for t in node.targets
        ):
            try:
                return tuple(str(f) for f in ast.literal_eval(node.value))
            except ValueError:
                return ()
    return ()


def model_module(use_case: UseCase) -> ModuleType:
    """The use case's model module: ``mlplatform.use_cases.<module>``, or the file beside an outside spec.

    A module from outside the package is imported as ``mlplatform_use_cases.<module>`` and
    registered with cloudpickle to be pickled by value, so a model artifact trained from it
    loads where that folder is absent (serving, batch scoring).
    """
    path = use_case.model_file
    if path.parent.resolve() == USE_CASES_DIR.resolve():
        return importlib.import_module(f"mlplatform.use_cases.{path.stem}")
    name = f"mlplatform_use_cases.{path.stem}"
    module = sys.modules.get(name)
    if module is not None and Path(module.__file__ or "").resolve() == path.resolve():
        return module
    loader_spec = importlib.util.spec_from_file_location(name, path)
    if loader_spec is None or loader_spec.loader is None:
        raise SpecError(f"model.module {use_case.model.module!r}: cannot import {path}")
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules.setdefault("mlplatform_use_cases", ModuleType("mlplatform_use_cases"))
    sys.modules[name] = module
    loader_spec.loader.exec_module(module)
    import cloudpickle

    cloudpickle.register_pickle_by_value(module)
    return module


def serving_target(use_case: UseCase, environment: str) -> ServingTarget:
    """Where ``use_case`` serves and batch-scores in ``environment`` (``local`` or ``aws``).

    The one place that decides it, so no spec edit moves a use case between environments:
    a spec's ``serving.target`` pins it; otherwise ``aws`` means SageMaker (endpoints, Batch
    Transform, training and processing jobs) and ``local`` the serving app and in-process work.
    """
    if use_case.serving.target is not None:
        return use_case.serving.target
    if environment not in ("local", "aws"):
        raise ValueError(f"environment must be 'local' or 'aws', got {environment!r}")
    return "sagemaker" if environment == "aws" else "local"
