"""Training: from validated snapshots to a tracked model run in MLflow.

The train DAG runs three steps as tasks, passing URIs and ids; the command line
(``mlplatform train``) runs the same functions in one process on any TLC files.

1. :func:`assemble_training_set`: the current validated snapshots of the spec's window
   (``training.window_months``), split by time: the newest ``training.validation_months``
   are held out for validation, the older months are trained on (uniformly sampled down
   to ``training.sample_rows``). A retrain after a breach can start at the breached month
   (``since``): with too few months left, their last days are held out instead. Only the
   rows the spec models (``data.filter``) and the target (``target.column`` or
   ``target.expression``) are kept, and of those only the trips whose target lies in the
   spec's modelling range (``target.range``, e.g. 1 to 60 minutes), in training and
   validation alike; the rows the range leaves out are counted, logged and tracked
   (``rows_outside_range.<role>``). Written to the lake as
   ``features/<use case>/training/<key>/{train,validation}.parquet`` with the lineage
   (month, digest, rows of every snapshot) beside them.
2. :func:`fit`: the baseline family and the chosen family (by default the spec's
   ``model.family``) from the use case's model module. The default family gets a small,
   bounded hyperparameter search (``model.search``, at most ``model.max_search_trials``
   trials) scored on a random fifth of a training subsample, never on the validation
   months; the best is refitted on the whole training sample.
3. :func:`log_run`: params, validation metrics overall and per slice
   (``promotion.slices``), the baseline's metrics on the same rows, dataset lineage
   (``mlflow.log_input``, one input per snapshot, with its SHA-256), plots, the code
   version and the Airflow run id, and the model as a :class:`~mlplatform.core.modelling.TripModel`
   pyfunc with signature and input example. Registration is :mod:`mlplatform.adapters.registry`'s.

Metric names: ``val_<metric>`` overall, ``val_<metric>.<slice column>.<value>`` per
slice, ``baseline_val_<metric>`` for the baseline, ``rows_outside_range.training`` and
``rows_outside_range.validation`` for the labelled rows ``target.range`` left out (the
range itself is the ``target_range`` param).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import random
import re
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlplatform.adapters import snapshots
from mlplatform.adapters.lake import Lake
from mlplatform.core import features, tlc
from mlplatform.core.metrics import LOWER_IS_BETTER, score
from mlplatform.core.modelling import TripModel, build_estimator, input_columns, input_defaults
from mlplatform.core.months import check as check_month
from mlplatform.core.months import end_of
from mlplatform.core.spec import UseCase

if TYPE_CHECKING:
    from mlplatform.adapters.snapshots import Snapshot

# Airflow workers and this machine share cores with other work; OpenMP threads that spin
# while waiting (libgomp's default) slow scikit-learn's gradient boosting several-fold
# when the cores are busy. Passive waiting costs nothing when they are idle. This only
# takes effect when OpenMP is first loaded after this import, which is the case in a task.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

log = logging.getLogger(__name__)

SEARCH_ROWS = 200_000
"""Training rows the hyperparameter search fits on (a uniform subsample)."""
MAX_VALIDATION_ROWS = 250_000
"""Validation rows evaluated (a uniform sample of the held-out months beyond this)."""
MIN_SLICE_ROWS = 100
"""Slices with fewer validation rows are not scored: their metrics would be noise."""
SAMPLE_SEED = 0
VALIDATION_DAYS = 8
"""A split within months (see :func:`select_window`) validates on their last days."""


# -- metrics ----------------------------------------------------------------------------------
def primary_metric(use_case: UseCase) -> str:
    """The metric models are compared on: the spec's ``monitoring.performance_metric``."""
    return use_case.monitoring.performance_metric


def _metric_key(text: str) -> str:
    return re.sub(r"[^\w.\-]", "_", str(text))


@dataclass
class Evaluation:
    """Metrics of one model on one frame: overall and per slice (``column=value``)."""

    overall: dict[str, float]
    slices: dict[str, dict[str, float]] = field(default_factory=dict)
    rows: int = 0

    def as_metrics(self, prefix: str = "val_", with_slices: bool = True) -> dict[str, float]:
        out = {f"{prefix}{name}": value for name, value in self.overall.items()}
        if with_slices:
            for key, values in self.slices.items():
                column, value = key.split("=", 1)
                for name, metric in values.items():
                    if name != "rows":
                        out[f"{prefix}{name}.{column}.{_metric_key(value)}"] = metric
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"overall": self.overall, "slices": self.slices, "rows": self.rows}


def evaluate(use_case: UseCase, model: TripModel, featured: pd.DataFrame, y: pd.Series) -> Evaluation:
    """Score ``model`` on trips with derived features, overall and per ``promotion.slices``."""
    answer = model.answer(featured)
    result = Evaluation(score(use_case.task, y, answer), rows=len(featured))
    for column in use_case.promotion.slices:
        for value, index in featured.groupby(column, observed=True).groups.items():
            if len(index) < MIN_SLICE_ROWS:
                continue
            metrics = score(use_case.task, y.loc[index], answer.loc[index])
            result.slices[f"{column}={value}"] = {**metrics, "rows": float(len(index))}
    return result


# -- the training set -------------------------------------------------------------------------
def _expression_columns(*expressions: str | None) -> list[str]:
    names = set(tlc.NORMALISED_SCHEMA.names)
    found: list[str] = []
    for expression in filter(None, expressions):
        for token in re.findall(r"[A-Za-z_]\w*", expression):
            if token in names and token not in found:
                found.append(token)
    return found


def source_columns(use_case: UseCase) -> list[str]:
    """Normalised columns training reads: model inputs plus what the filter and target need."""
    columns = input_columns(use_case.features.all)
    extra = _expression_columns(use_case.data.filter, use_case.target.expression)
    if use_case.target.expression is None:
        extra.append(use_case.target.column)
    return [*columns, *(c for c in extra if c not in columns)]


def labelled(trips: pd.DataFrame, use_case: UseCase) -> pd.DataFrame:
    """The modelled rows of normalised ``trips``: model inputs plus the target column, for
    the trips whose target is known and within the spec's ``target.range``."""
    return labelled_and_excluded(trips, use_case)[0]


def labelled_and_excluded(trips: pd.DataFrame, use_case: UseCase) -> tuple[pd.DataFrame, int]:
    """:func:`labelled` rows, and how many labelled rows ``target.range`` left out."""
    rows = features.modelled_rows(trips, use_case.data.filter)
    target = features.target_values(rows, use_case.target.column, use_case.target.expression)
    out = rows[input_columns(use_case.features.all)].copy()
    out[use_case.target.column] = target
    out = out[target.notna()]
    keep = features.in_target_range(out[use_case.target.column], use_case.target.range_)
    return out[keep].reset_index(drop=True), int((~keep).sum())


def _report_range(use_case: UseCase, role: str, kept: int, excluded: int) -> None:
    if use_case.target.range_ is None:
        return
    low, high = use_case.target.range_
    share = 100 * excluded / max(kept + excluded, 1)
    where = f"target.range [{low:g}, {high:g}] {use_case.target.unit}"
    log.info(
        "%s %s rows: %d within %s, %d (%.2f%%) outside it left out",
        use_case.name,
        role,
        kept,
        where,
        excluded,
        share,
    )


def sample(frame: pd.DataFrame, rows: int | None) -> pd.DataFrame:
    """A uniform sample of ``rows`` rows of ``frame`` (all of it when smaller), in its order."""
    if rows is None or len(frame) <= rows:
        return frame
    return frame.sample(rows, random_state=SAMPLE_SEED).sort_index().reset_index(drop=True)


@dataclass(frozen=True)
class SnapshotRef:
    """A snapshot a model trained or was validated on."""

    month: str
    digest: str
    rows: int
    uri: str
    role: str  # "training" or "validation"

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def select_window(
    available: list[Snapshot], window_months: int, validation_months: int, since: str | None = None
) -> tuple[list[Snapshot], list[Snapshot]]:
    """The (training, validation) snapshots: the newest ``window_months``, split by time.

    ``since`` (a month) keeps only that month and later ones: a retrain after monitoring saw
    the data change learns the new regime alone. When that leaves too few months to hold
    whole months out, both lists are the same months and :func:`split_within` divides
    their trips by pickup time.
    """
    if since is not None:
        check_month(since, "since")
        newer = [s for s in available if s.month >= since]
        if not newer:
            months = ", ".join(s.month for s in available) or "none"
            raise ValueError(
                f"no validated month from {since} on to train on (validated: {months}); "
                "validate that month first (the <use case>_validate DAG)"
            )
        if len(newer) <= validation_months:
            window = newer[-window_months:]
            return window, window
        available = newer
    if len(available) < validation_months + 1:
        months = ", ".join(s.month for s in available) or "none"
        raise ValueError(
            f"training needs at least {validation_months + 1} months of validated data "
            f"({validation_months} held out for validation), but only these are validated: {months}; "
            "validate more months first (the <use case>_validate DAG)"
        )
    if window_months <= validation_months:
        raise ValueError(
            f"window_months ({window_months}) must exceed training.validation_months ({validation_months})"
        )
    window = available[-window_months:]
    return window[:-validation_months], window[-validation_months:]


def split_time(months: list[str]) -> datetime:
    """Where a split within ``months`` starts validation: ``VALIDATION_DAYS`` before their end."""
    return end_of(max(months)) - timedelta(days=VALIDATION_DAYS)


def split_within(frame: pd.DataFrame, cutoff: datetime) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Trips picked up before ``cutoff`` (training) and from it on (validation)."""
    late = pd.to_datetime(frame["pickup_datetime"]) >= pd.Timestamp(cutoff)
    return frame[~late].reset_index(drop=True), frame[late].reset_index(drop=True)


def new_data_decision(lake: Lake, use_case: UseCase, has_champion: bool) -> tuple[bool, str]:
    """Whether a newly validated month should train a challenger, and why (or why not)."""
    needed = use_case.training.validation_months + 1
    validated = len(snapshots.current_snapshots(lake, use_case.name))
    if validated < needed:
        return False, f"{validated} validated month(s); training needs {needed}"
    if use_case.training.on_new_data == "first_model" and has_champion:
        return False, "a champion exists and training.on_new_data is first_model: monitoring decides retrains"
    return True, f"{validated} validated months; training.on_new_data is {use_case.training.on_new_data}"


def assemble_training_set(
    lake: Lake, use_case: UseCase, key: str, window_months: int | None = None, since: str | None = None
) -> dict[str, Any]:
    """Write the training and validation sets of ``use_case`` to the lake; returns their URIs.

    ``key`` names the output folder (the train DAG passes its run id), so a retried task
    overwrites its own output and nothing else. ``since``: see :func:`select_window`.
    """
    window_months = window_months or use_case.training.window_months
    available = snapshots.current_snapshots(lake, use_case.name)
    train_snaps, valid_snaps = select_window(
        available, window_months, use_case.training.validation_months, since
    )
    columns = source_columns(use_case)

    def read(snaps: list[Snapshot]) -> pd.DataFrame:
        frames = [snapshots.read_table(lake, s, columns).to_pandas() for s in snaps]
        return pd.concat(frames, ignore_index=True)

    cutoff = None
    if train_snaps == valid_snaps:
        cutoff = split_time([s.month for s in valid_snaps])
        train, valid = split_within(read(train_snaps), cutoff)
    else:
        train, valid = read(train_snaps), read(valid_snaps)
    train, train_excluded = labelled_and_excluded(train, use_case)
    valid, valid_excluded = labelled_and_excluded(valid, use_case)
    _report_range(use_case, "training", len(train), train_excluded)
    _report_range(use_case, "validation", len(valid), valid_excluded)
    train = sample(train, use_case.training.sample_rows)
    valid = sample(valid, MAX_VALIDATION_ROWS)
    if len(train) == 0 or len(valid) == 0:
        raise ValueError(
            f"no modelled rows to train on for {use_case.name} in months "
            f"{', '.join(s.month for s in train_snaps + valid_snaps)}: check data.filter in the spec"
        )
    folder = f"features/{use_case.name}/training/{_metric_key(key)}"
    split = {} if cutoff is None else {"validation_from": cutoff.isoformat()}
    lineage = [
        {**SnapshotRef(s.month, s.digest, s.rows, lake.uri(s.data_path), role).to_dict(), **split}
        for role, snaps in (("training", train_snaps), ("validation", valid_snaps))
        for s in snaps
    ]
    result = {
        "use_case": use_case.name,
        "train_uri": lake.write_parquet(f"{folder}/train.parquet", _to_arrow(train)),
        "validation_uri": lake.write_parquet(f"{folder}/validation.parquet", _to_arrow(valid)),
        "train_rows": len(train),
        "validation_rows": len(valid),
        "rows_outside_range": {"training": train_excluded, "validation": valid_excluded},
        "window_months": window_months,
        "since": since,
        "validation_from": split.get("validation_from"),
        "train_months": [s.month for s in train_snaps],
        "validation_months": [s.month for s in valid_snaps],
        "lineage": lineage,
    }
    lake.write_json(f"{folder}/lineage.json", result)
    return result


def _to_arrow(frame: pd.DataFrame) -> Any:
    import pyarrow as pa

    return pa.Table.from_pandas(frame, preserve_index=False)


def read_set(lake: Lake, uri: str) -> pd.DataFrame:
    return lake.read_parquet(lake.relative(uri)).to_pandas()


# -- fitting ----------------------------------------------------------------------------------
@dataclass
class Fitted:
    """What :func:`fit` produced."""

    family: str
    params: dict[str, Any]
    model: TripModel
    baseline: TripModel
    search: list[dict[str, Any]]
    seconds: float


def search_trials(use_case: UseCase) -> list[dict[str, Any]]:
    """The hyperparameter combinations tried: the grid, or a fixed sample of it when larger."""
    grid = use_case.model.search
    combos = [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]
    limit = use_case.model.max_search_trials
    if len(combos) > limit:
        combos = random.Random(SAMPLE_SEED).sample(combos, limit)
    return combos or [{}]


def _trip_model(use_case: UseCase, estimator: Any) -> TripModel:
    return TripModel(
        estimator, use_case.features.all, use_case.task, use_case.target.labels, input_defaults(use_case)
    )


def _search_score(use_case: UseCase, estimator: Any, featured: pd.DataFrame, y: pd.Series) -> float:
    metric = primary_metric(use_case)
    value = score(use_case.task, y, _trip_model(use_case, estimator).answer(featured))[metric]
    return value if LOWER_IS_BETTER[metric] else -value


def fit(use_case: UseCase, train: pd.DataFrame, family: str | None = None) -> Fitted:
    """Fit the baseline and ``family`` (default: the spec's) on a labelled training frame."""
    started = time.perf_counter()
    family = family or use_case.model.family
    featured = features.trip_features(train)
    X, y = featured[list(use_case.features.all)], train[use_case.target.column]

    baseline = build_estimator(use_case, use_case.model.baseline).fit(X, y)
    search: list[dict[str, Any]] = []
    params: dict[str, Any] = {}
    if family == use_case.model.family:
        params = dict(use_case.model.hyperparameters)
        trials = search_trials(use_case)
        if len(trials) > 1:
            subset = sample(featured.assign(_y=y.to_numpy()), SEARCH_ROWS)
            holdout = subset.sample(frac=0.2, random_state=SAMPLE_SEED)
            inner = subset.drop(holdout.index)
            for trial in trials:
                candidate = {**params, **trial}
                estimator = build_estimator(use_case, family, candidate)
                estimator.fit(inner[list(use_case.features.all)], inner["_y"])
                value = _search_score(use_case, estimator, holdout, holdout["_y"])
                search.append({"params": trial, primary_metric(use_case): abs(value), "_rank": value})
            best = min(search, key=lambda s: s["_rank"])
            params = {**params, **best["params"]}
            for entry in search:
                entry.pop("_rank")
    if family == use_case.model.baseline and not params:
        model = baseline
    else:
        model = build_estimator(use_case, family, params).fit(X, y)
    return Fitted(
        family,
        params,
        _trip_model(use_case, model),
        _trip_model(use_case, baseline),
        search,
        time.perf_counter() - started,
    )


def validate(use_case: UseCase, fitted: Fitted, valid: pd.DataFrame) -> tuple[Evaluation, Evaluation]:
    """Evaluations of the model and of the baseline on the same validation rows."""
    featured = features.trip_features(valid)
    y = valid[use_case.target.column]
    return evaluate(use_case, fitted.model, featured, y), evaluate(use_case, fitted.baseline, featured, y)


def train_frames(
    use_case: UseCase, train: pd.DataFrame, valid: pd.DataFrame, family: str | None = None
) -> tuple[Fitted, Evaluation, Evaluation]:
    """Fit on labelled ``train`` and evaluate on labelled ``valid`` (no tracking)."""
    fitted = fit(use_case, train, family)
    evaluation, baseline = validate(use_case, fitted, valid)
    return fitted, evaluation, baseline


# -- tracking ---------------------------------------------------------------------------------
def bundle_tags(ti: Any) -> dict[str, str]:
    """The DAG bundle a task runs from and its version (a Git commit for ``GitDagBundle``;
    ``unversioned`` for ``LocalDagBundle``), as MLflow tags."""
    bundle = getattr(ti, "bundle_instance", None)
    if bundle is None:
        return {}
    version = bundle.version
    if version is None and bundle.supports_versioning:
        version = bundle.get_current_version()
    version = getattr(version, "version", version)  # some bundles return a BundleVersion
    return {"airflow.bundle_name": bundle.name, "airflow.bundle_version": str(version or "unversioned")}


def code_version() -> str:
    """The git commit of the code when run from a checkout, else the package version."""
    from mlplatform.adapters import settings

    try:
        found = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=settings.REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
        return found.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        from importlib.metadata import PackageNotFoundError, version

        try:
            return f"mlplatform=={version('mlplatform')}"
        except PackageNotFoundError:
            return "unknown"


def _pip_requirements() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for package in ("mlflow", "scikit-learn", "pandas", "numpy", "pyarrow", "cloudpickle"):
        try:
            pins.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            continue
    return pins


def _plots(use_case: UseCase, fitted: Fitted, valid: pd.DataFrame) -> dict[str, Any]:
    """Figures a reviewer wants: predicted vs actual, residuals by hour, feature importance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.inspection import permutation_importance

    shown = sample(valid, 5000)
    featured = features.trip_features(shown)
    y = shown[use_case.target.column].to_numpy(dtype=float)
    answer = fitted.model.answer(featured)
    figures: dict[str, Any] = {}

    fig, ax = plt.subplots(figsize=(6, 6))
    if use_case.task == "regression":
        predicted = answer["prediction"].to_numpy()
        ax.scatter(y, predicted, s=3, alpha=0.3)
        top = float(np.quantile(np.concatenate([y, predicted]), 0.995))
        ax.plot([0, top], [0, top], color="black", linewidth=1)
        ax.set(xlim=(0, top), ylim=(0, top), xlabel=f"actual ({use_case.target.unit})")
        ax.set(ylabel=f"predicted ({use_case.target.unit})", title="Predicted vs actual (validation)")
        residual = y - predicted
    else:
        probability = answer["probability"].to_numpy()
        bins = np.clip((probability * 10).astype(int), 0, 9)
        frame = pd.DataFrame({"bin": bins, "p": probability, "y": y}).groupby("bin").mean()
        ax.plot([0, 1], [0, 1], color="black", linewidth=1)
        ax.plot(frame["p"], frame["y"], marker="o")
        ax.set(xlabel="predicted probability", ylabel="observed share", title="Calibration (validation)")
        residual = y - probability
    figures["plots/predicted_vs_actual.png"] = fig

    fig, ax = plt.subplots(figsize=(8, 4))
    by_hour = pd.DataFrame({"hour": featured["pickup_hour"].to_numpy(), "residual": residual})
    groups = [g["residual"].to_numpy() for _, g in by_hour.groupby("hour")]
    ax.boxplot(groups, showfliers=False)
    ax.set_xticks(range(1, len(groups) + 1), [str(h) for h, _ in by_hour.groupby("hour")])
    ax.axhline(0, color="black", linewidth=1)
    ax.set(xlabel="pickup hour", ylabel="actual - predicted", title="Residuals by pickup hour")
    figures["plots/residuals_by_hour.png"] = fig

    metric = primary_metric(use_case)
    scoring = {"rmse": "neg_root_mean_squared_error", "mae": "neg_mean_absolute_error"}.get(
        metric, "neg_log_loss" if use_case.task == "classification" else "r2"
    )
    columns = list(use_case.features.all)
    importance = permutation_importance(
        fitted.model.estimator,
        featured[columns],
        y,
        scoring=scoring,
        n_repeats=3,
        random_state=SAMPLE_SEED,
        max_samples=min(2000, len(shown)),
    )
    order = np.argsort(importance.importances_mean)
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(columns) + 1))
    ax.barh(np.array(columns)[order], importance.importances_mean[order])
    ax.set(xlabel=f"increase in {metric} when shuffled", title="Permutation importance (validation)")
    fig.tight_layout()
    figures["plots/feature_importance.png"] = fig
    return figures


def _snapshot_input(ref: dict[str, Any]) -> Any:
    import warnings

    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        source = resolve_dataset_source(ref["uri"])
    name = f"validated/{ref['month']}" if "month" in ref else ref["uri"].rstrip("/").rsplit("/", 1)[-1]
    if ref.get("validation_from"):  # one month in both roles: MLflow keeps one input per name
        name += f"{' from' if ref['role'] == 'validation' else ' before'} {ref['validation_from'][:10]}"
    # MLflow keeps at most 36 characters of a digest: the full SHA-256 goes in the tags.
    return MetaDataset(source, name=name, digest=ref["digest"][:32])


def model_signature(use_case: UseCase, model: TripModel, example: pd.DataFrame) -> Any:
    """The MLflow signature a model is logged with: the input columns of ``example`` and the
    model's answer to them. Inputs with a default (:func:`mlplatform.core.modelling.input_defaults`)
    are optional, so requests may leave them out."""
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types.schema import ColSpec, Schema

    example = example[input_columns(use_case.features.all)].reset_index(drop=True)
    signature = infer_signature(example, model.predict(None, example).reset_index(drop=True))
    optional = input_defaults(use_case)
    inputs = Schema(
        [
            ColSpec(spec.type, spec.name, required=spec.name not in optional)
            for spec in signature.inputs.inputs
        ]
    )
    return ModelSignature(inputs=inputs, outputs=signature.outputs, params=signature.params)


def log_run(
    use_case: UseCase,
    fitted: Fitted,
    evaluation: Evaluation,
    baseline: Evaluation,
    valid: pd.DataFrame,
    *,
    assembled: dict[str, Any] | None = None,
    reason: str = "",
    airflow_run_id: str | None = None,
    extra_tags: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Log one training run to the tracking server; returns ``run_id``, ``model_uri``, metrics."""
    import mlflow

    from mlplatform.adapters import settings

    mlflow.set_tracking_uri(settings.tracking_uri())
    mlflow.set_experiment(use_case.name)
    assembled = assembled or {}
    tags = {
        "mlplatform.use_case": use_case.name,
        "mlplatform.code_version": code_version(),
        "mlplatform.reason": reason or "manual",
        "mlplatform.family": fitted.family,
    }
    if airflow_run_id:
        tags["airflow.run_id"] = airflow_run_id
    tags.update(extra_tags or {})
    params: dict[str, Any] = {
        "family": fitted.family,
        "baseline_family": use_case.model.baseline,
        "train_rows": int(assembled.get("train_rows", 0)) or None,
        "validation_rows": evaluation.rows,
        "window_months": assembled.get("window_months"),
        "train_months": ",".join(assembled.get("train_months", [])) or None,
        "validation_months": ",".join(assembled.get("validation_months", [])) or None,
        "sample_rows": use_case.training.sample_rows,
        "search_trials": len(fitted.search),
        "target_range": list(use_case.target.range_) if use_case.target.range_ else None,
        **{f"hp.{k}": v for k, v in sorted(fitted.params.items())},
    }
    metrics = {
        **evaluation.as_metrics("val_"),
        **baseline.as_metrics("baseline_val_", with_slices=False),
        **{
            f"rows_outside_range.{role}": float(n)
            for role, n in assembled.get("rows_outside_range", {}).items()
        },
        "fit_seconds": fitted.seconds,
    }
    example = valid[input_columns(use_case.features.all)].head(5).reset_index(drop=True)
    signature = model_signature(use_case, fitted.model, example)
    with mlflow.start_run(run_name=f"{use_case.name}-{fitted.family}", tags=tags) as run:
        mlflow.log_params({k: v for k, v in params.items() if v is not None})
        mlflow.log_metrics(metrics)
        for ref in assembled.get("lineage", []):
            where = {"month": ref["month"]} if "month" in ref else {"file": ref["uri"]}
            if ref.get("validation_from"):
                where["validation_from"] = ref["validation_from"]
            mlflow.log_input(
                _snapshot_input(ref),
                context=ref["role"],
                tags={"sha256": ref["digest"], "rows": str(ref["rows"]), **where},
            )
        mlflow.log_dict(
            {"search": fitted.search, "chosen": fitted.params, "lineage": assembled.get("lineage", [])},
            "training.json",
        )
        mlflow.log_dict(use_case.model_dump(mode="json", by_alias=True), "spec.json")
        for path, figure in _plots(use_case, fitted, valid).items():
            mlflow.log_figure(figure, path)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=fitted.model,
            signature=signature,
            input_example=example,
            pip_requirements=_pip_requirements(),
            metadata={"use_case": use_case.name, "task": use_case.task, "family": fitted.family},
        )
    import matplotlib.pyplot as plt

    plt.close("all")
    metric = primary_metric(use_case)
    return {
        "run_id": run.info.run_id,
        "model_uri": info.model_uri,
        "family": fitted.family,
        "metric": metric,
        f"val_{metric}": evaluation.overall.get(metric),
        f"baseline_val_{metric}": baseline.overall.get(metric),
    }


def fit_and_log(
    lake: Lake,
    use_case: UseCase,
    assembled: dict[str, Any],
    *,
    family: str | None = None,
    reason: str = "",
    airflow_run_id: str | None = None,
    extra_tags: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Fit on an assembled training set (:func:`assemble_training_set`) and log the run."""
    train = read_set(lake, assembled["train_uri"])
    valid = read_set(lake, assembled["validation_uri"])
    fitted, evaluation, baseline = train_frames(use_case, train, valid, family)
    return log_run(
        use_case,
        fitted,
        evaluation,
        baseline,
        valid,
        assembled=assembled,
        reason=reason,
        airflow_run_id=airflow_run_id,
        extra_tags=extra_tags,
    )


def read_tlc_files(use_case: UseCase, paths: list[str]) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Labelled rows of raw TLC files (any taxi type and year; paths or URIs) and their lineage
    (which counts, per file, the labelled rows ``target.range`` left out)."""
    import hashlib

    import fsspec
    import pyarrow as pa
    import pyarrow.parquet as pq

    frames, lineage = [], []
    for path in paths:
        with fsspec.open(path, "rb") as handle:
            data = handle.read()
        try:
            table = pq.read_table(pa.BufferReader(data))
        except Exception as exc:  # pyarrow raises several types for a file that is not parquet
            raise ValueError(f"{path} is not a readable parquet file: {exc}") from None
        normalised = tlc.normalise(table, expected=use_case.data.taxi_types)
        rows, excluded = labelled_and_excluded(
            normalised.select(source_columns(use_case)).to_pandas(), use_case
        )
        frames.append(rows)
        lineage.append(
            {
                "uri": path,
                "digest": hashlib.sha256(data).hexdigest(),
                "rows": table.num_rows,
                "rows_outside_range": excluded,
            }
        )
    return pd.concat(frames, ignore_index=True), lineage


def train_files(
    use_case: UseCase,
    train_paths: list[str],
    valid_paths: list[str],
    *,
    family: str | None = None,
    track: bool = False,
    reason: str = "",
) -> dict[str, Any]:
    """Train on raw TLC files and validate on others, with the code the train DAG runs.

    Returns :func:`summary`; with ``track`` the run is also logged to the tracking server
    (the files as dataset inputs with their SHA-256), without registering a version.
    """
    train, train_lineage = read_tlc_files(use_case, train_paths)
    valid, valid_lineage = read_tlc_files(use_case, valid_paths)
    outside = {
        "training": sum(f["rows_outside_range"] for f in train_lineage),
        "validation": sum(f["rows_outside_range"] for f in valid_lineage),
    }
    _report_range(use_case, "training", len(train), outside["training"])
    _report_range(use_case, "validation", len(valid), outside["validation"])
    train = sample(train, use_case.training.sample_rows)
    valid = sample(valid, MAX_VALIDATION_ROWS)
    fitted, evaluation, baseline = train_frames(use_case, train, valid, family)
    result = summary(fitted, evaluation, baseline)
    result.update(train_rows=len(train), validation_rows=len(valid), rows_outside_range=outside)
    result.update(train_files=train_lineage, validation_files=valid_lineage)
    if track:
        lineage = [
            {**f, "role": role}
            for role, files in (("training", train_lineage), ("validation", valid_lineage))
            for f in files
        ]
        assembled = {"train_rows": len(train), "lineage": lineage, "rows_outside_range": outside}
        logged = log_run(use_case, fitted, evaluation, baseline, valid, assembled=assembled, reason=reason)
        result.update(run_id=logged["run_id"], model_uri=logged["model_uri"])
    return result


def summary(fitted: Fitted, evaluation: Evaluation, baseline: Evaluation) -> dict[str, Any]:
    """A JSON-able account of a training (what the command line prints)."""
    return json.loads(
        json.dumps(
            {
                "family": fitted.family,
                "params": fitted.params,
                "fit_seconds": round(fitted.seconds, 2),
                "validation": evaluation.to_dict(),
                "baseline": baseline.overall,
                "search": fitted.search,
            },
            default=float,
        )
    )
