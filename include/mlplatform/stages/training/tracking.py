"""Tracking: one training run logged to MLflow with what a reviewer needs to trust it.

Params, validation metrics overall and per slice (``promotion.slices``), the baseline's
metrics on the same rows, dataset lineage (``mlflow.log_input``, one input per snapshot,
with its SHA-256), plots, the code version and the Airflow run id, and the model as a
:class:`~mlplatform.core.modelling.TripModel` pyfunc with signature and input example.

The plots a reviewer reads beside the run are drawn by scikit-learn's display classes
(:func:`figures`):

- ``plots/predicted_vs_actual.png``: :class:`~sklearn.metrics.PredictionErrorDisplay`
  (regression) or :class:`~sklearn.calibration.CalibrationDisplay` (classification);
- ``plots/residuals_by_hour.png``: the residuals by pickup hour (where a model is biased);
- ``plots/feature_importance.png``: :func:`~sklearn.inspection.permutation_importance` of
  each feature on validation rows.

The logged model is self-contained: the package's pure core (``mlplatform/core``, which by
the layer contract imports nothing else of the package) travels with it as MLflow
``code_paths``, so a process with only the serving image's libraries loads and runs it. A
process that already imported ``mlplatform`` keeps its own copy: MLflow only appends the
model's code folder to ``sys.path``, and modules already imported are not reloaded.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlplatform.adapters.lake import Lake
from mlplatform.core import modelling
from mlplatform.core.modelling import TripModel, input_columns, input_defaults
from mlplatform.core.records import TrainedRun
from mlplatform.core.spec import Hyperparameter, UseCase
from mlplatform.stages.training.dataset import SAMPLE_SEED, TrainingInput, TrainingSet, read_set, sample
from mlplatform.stages.training.fitting import Fitted, ModelEvaluation, primary_metric, train_frames

if TYPE_CHECKING:
    from matplotlib.figure import Figure


# -- plots ----------------------------------------------------------------------------------------
SHOWN_ROWS = 5000
"""Validation rows drawn (a uniform sample): enough for the shapes, quick to draw."""


def _predicted_vs_actual(use_case: UseCase, y: np.ndarray, answer: pd.DataFrame) -> Figure:
    import matplotlib.pyplot as plt
    from sklearn.calibration import CalibrationDisplay
    from sklearn.metrics import PredictionErrorDisplay

    fig, ax = plt.subplots(figsize=(6, 6))
    if use_case.task == "regression":
        PredictionErrorDisplay.from_predictions(
            y,
            answer["prediction"].to_numpy(),
            kind="actual_vs_predicted",
            subsample=None,
            ax=ax,
            scatter_kwargs={"s": 3, "alpha": 0.3},
        )
        unit = use_case.target.unit
        ax.set(
            xlabel=f"predicted ({unit})", ylabel=f"actual ({unit})", title="Predicted vs actual (validation)"
        )
    else:
        CalibrationDisplay.from_predictions(y, answer["probability"].to_numpy(), n_bins=10, ax=ax)
        ax.set(xlabel="predicted probability", ylabel="observed share", title="Calibration (validation)")
    return fig


def _residuals_by_hour(featured: pd.DataFrame, residual: np.ndarray) -> Figure:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    frame = pd.DataFrame({"pickup hour": featured["pickup_hour"].to_numpy(), "residual": residual})
    frame.boxplot(column="residual", by="pickup hour", ax=ax, showfliers=False, grid=False)
    ax.axhline(0, color="black", linewidth=1)
    fig.suptitle("")
    ax.set(xlabel="pickup hour", ylabel="actual - predicted", title="Residuals by pickup hour")
    return fig


def _feature_importance(use_case: UseCase, fitted: Fitted, featured: pd.DataFrame, y: np.ndarray) -> Figure:
    import matplotlib.pyplot as plt
    from sklearn.inspection import permutation_importance

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
        max_samples=min(2000, len(featured)),
    )
    means = pd.Series(importance.importances_mean, index=columns).sort_values()
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(columns) + 1))
    means.plot.barh(ax=ax)
    ax.set(xlabel=f"increase in {metric} when shuffled", title="Permutation importance (validation)")
    fig.tight_layout()
    return fig


def figures(use_case: UseCase, fitted: Fitted, valid: pd.DataFrame) -> dict[str, Figure]:
    """The run's figures by artifact path (matplotlib figures; the caller closes them)."""
    import matplotlib

    matplotlib.use("Agg")
    shown = sample(valid, SHOWN_ROWS)
    featured = modelling.trip_features(shown)
    y = shown[use_case.target.column].to_numpy(dtype=float)
    answer = fitted.model.answer(featured)
    answered = answer["prediction"] if use_case.task == "regression" else answer["probability"]
    return {
        "plots/predicted_vs_actual.png": _predicted_vs_actual(use_case, y, answer),
        "plots/residuals_by_hour.png": _residuals_by_hour(featured, y - answered.to_numpy()),
        "plots/feature_importance.png": _feature_importance(use_case, fitted, featured, y),
    }


# -- the run ---------------------------------------------------------------------------------------
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


def pip_requirements() -> list[str]:
    """The libraries a logged model needs, pinned to the versions it was trained with."""
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for package in ("mlflow", "scikit-learn", "pandas", "numpy", "pyarrow", "cloudpickle"):
        try:
            pins.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            continue
    return pins


def snapshot_input(ref: TrainingInput) -> Any:
    """An MLflow dataset input for one lineage entry (a validated snapshot or a raw file)."""
    import warnings

    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        source = resolve_dataset_source(ref.uri)
    name = f"validated/{ref.month}" if ref.month else ref.uri.rstrip("/").rsplit("/", 1)[-1]
    if ref.validation_from:  # one month in both roles: MLflow keeps one input per name
        name += f"{' from' if ref.role == 'validation' else ' before'} {ref.validation_from[:10]}"
    # MLflow keeps at most 36 characters of a digest: the full SHA-256 goes in the tags.
    return MetaDataset(source, name=name, digest=ref.digest[:32])  # type: ignore[abstract]


def model_signature(use_case: UseCase, model: TripModel, example: pd.DataFrame) -> Any:
    """The MLflow signature a model is logged with: the input columns of ``example`` and the
    model's answer to them. Inputs with a default (:func:`mlplatform.core.modelling.input_defaults`)
    are optional, so requests may leave them out."""
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types.schema import ColSpec, Schema

    example = example[input_columns(use_case.features.all)].reset_index(drop=True)
    signature = infer_signature(example, model.predict(example).reset_index(drop=True))
    optional = input_defaults(use_case)
    inputs = Schema(
        [
            ColSpec(spec.type, spec.name, required=spec.name not in optional)
            for spec in signature.inputs.inputs
        ]
    )
    return ModelSignature(inputs=inputs, outputs=signature.outputs, params=signature.params)


def run_params(
    use_case: UseCase, fitted: Fitted, evaluation: ModelEvaluation, assembled: TrainingSet | None
) -> dict[str, Hyperparameter]:
    """The run's params (``None`` values are not logged; MLflow logs each as its ``str``)."""
    return {
        "family": fitted.family,
        "baseline_family": use_case.model.baseline,
        "train_rows": assembled.train_rows if assembled else None,
        "validation_rows": evaluation.rows,
        "window_months": assembled.window_months if assembled else None,
        "train_months": ",".join(assembled.train_months) if assembled and assembled.train_months else None,
        "validation_months": (
            ",".join(assembled.validation_months) if assembled and assembled.validation_months else None
        ),
        "sample_rows": use_case.training.sample_rows,
        "search_trials": len(fitted.search),
        "target_range": str(list(use_case.target.range_)) if use_case.target.range_ else None,
        **{f"hp.{k}": v for k, v in sorted(fitted.params.items())},
    }


def run_metrics(
    fitted: Fitted, evaluation: ModelEvaluation, baseline: ModelEvaluation, assembled: TrainingSet | None
) -> dict[str, float]:
    """The run's metrics: validation overall and per slice, the baseline's, rows left out."""
    outside = assembled.rows_outside_range if assembled else {}
    return {
        **evaluation.as_metrics("val_"),
        **baseline.as_metrics("baseline_val_", with_slices=False),
        **{f"rows_outside_range.{role}": float(n) for role, n in outside.items()},
        "fit_seconds": fitted.seconds,
    }


def _log_lineage(lineage: tuple[TrainingInput, ...]) -> None:
    import mlflow

    for ref in lineage:
        where = {"month": ref.month} if ref.month else {"file": ref.uri}
        if ref.validation_from:
            where["validation_from"] = ref.validation_from
        mlflow.log_input(
            snapshot_input(ref),
            context=ref.role,
            tags={"sha256": ref.digest, "rows": str(ref.rows), **where},
        )


def _log_model(use_case: UseCase, fitted: Fitted, valid: pd.DataFrame) -> Any:
    import mlflow

    from mlplatform.adapters.pyfunc import TripPyfunc, model_code

    example = valid[input_columns(use_case.features.all)].head(5).reset_index(drop=True)
    with tempfile.TemporaryDirectory(prefix="mlplatform-model-code-") as folder:
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=TripPyfunc(fitted.model),
            signature=model_signature(use_case, fitted.model, example),
            input_example=example,
            pip_requirements=pip_requirements(),
            code_paths=model_code(Path(folder)),
            metadata={"use_case": use_case.name, "task": use_case.task, "family": fitted.family},
        )


def log_run(
    use_case: UseCase,
    fitted: Fitted,
    evaluation: ModelEvaluation,
    baseline: ModelEvaluation,
    valid: pd.DataFrame,
    *,
    assembled: TrainingSet | None = None,
    reason: str = "",
    airflow_run_id: str | None = None,
    extra_tags: dict[str, str] | None = None,
) -> TrainedRun:
    """Log one training run to the tracking server; returns the run, its model and its metric."""
    import matplotlib.pyplot as plt
    import mlflow

    from mlplatform.adapters import settings

    mlflow.set_tracking_uri(settings.tracking_uri())
    mlflow.set_experiment(use_case.name)
    tags = {
        "mlplatform.use_case": use_case.name,
        "mlplatform.code_version": code_version(),
        "mlplatform.reason": reason or "manual",
        "mlplatform.family": fitted.family,
        **({"airflow.run_id": airflow_run_id} if airflow_run_id else {}),
        **(extra_tags or {}),
    }
    params = run_params(use_case, fitted, evaluation, assembled)
    with mlflow.start_run(run_name=f"{use_case.name}-{fitted.family}", tags=tags) as run:
        mlflow.log_params({k: v for k, v in params.items() if v is not None})
        mlflow.log_metrics(run_metrics(fitted, evaluation, baseline, assembled))
        lineage = assembled.lineage if assembled else ()
        _log_lineage(lineage)
        mlflow.log_dict(
            {
                "search": [trial.to_dict() for trial in fitted.search],
                "chosen": fitted.params,
                "lineage": [ref.to_dict() for ref in lineage],
            },
            "training.json",
        )
        mlflow.log_dict(use_case.model_dump(mode="json", by_alias=True), "spec.json")
        for path, figure in figures(use_case, fitted, valid).items():
            mlflow.log_figure(figure, path)
        plt.close("all")
        info = _log_model(use_case, fitted, valid)
    metric = primary_metric(use_case)
    values = {"val_": evaluation.overall.get(metric), "baseline_val_": baseline.overall.get(metric)}
    return TrainedRun(
        run.info.run_id,
        info.model_uri,
        fitted.family,
        metric,
        {f"{prefix}{metric}": float(value) for prefix, value in values.items() if value is not None},
    )


def fit_and_log(
    lake: Lake,
    use_case: UseCase,
    assembled: TrainingSet,
    *,
    family: str | None = None,
    reason: str = "",
    airflow_run_id: str | None = None,
    extra_tags: dict[str, str] | None = None,
) -> TrainedRun:
    """Fit on an assembled training set (:func:`~mlplatform.stages.training.assemble_training_set`)
    and log the run."""
    train_uri, validation_uri = assembled.set_uris()
    train, valid = read_set(lake, train_uri), read_set(lake, validation_uri)
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
