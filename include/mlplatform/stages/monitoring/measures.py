"""What a window's predictions were worth: performance measured on delayed ground truth and
estimated before it, data quality, serving health.

Batch predictions (``predictions/<uc>/month=M/CURRENT.json``) are joined on
``row_index`` to the target of the snapshot they scored; real-time predictions from the
serving log are joined on the trip key to the snapshot of the month each trip began.
Outcomes arrive later than predictions: a source without any has no performance yet,
and says why (``no_predictions`` or ``no_ground_truth``). Metrics are computed per
window, per slice (``promotion.slices``) and per variant (``batch``, ``champion``,
``challenger``) with :func:`mlplatform.core.metrics.score`, the scoring training uses.

**Before the labels: direct loss estimation (DLE) of the champion's RMSE.** TLC publishes
a trip's duration about two months after the trip. Until then a window's RMSE is unknown,
but the features and the model's predictions are there. Direct loss estimation (NannyML's
DLE for regression) learns, on a *labelled* reference window the model did not train on,
how large the model's squared error tends to be given the features and the prediction
(:func:`fit_loss_estimator`); the estimated RMSE of an unlabelled window is then
``sqrt(mean of the predicted squared errors)`` over its trips. It sees shifts in the mix of
trips (more airport trips, longer distances: rows where the model errs more), not a change
of the relation between features and duration (concept drift), which only the labels show.
That is why an estimated breach warns and only a measured one acts. NannyML itself
resolves against the project's pins but would bring about forty packages (LightGBM,
XGBoost, a telemetry client) for one regressor: the method is small, so it is implemented
here with scikit-learn's histogram gradient boosting, the family the platform already ships.
:func:`estimate` applies it to a window (``estimated_rmse``, fitted on the newest labelled
earlier window) and, once the labels arrive, keeps it beside the measured RMSE with
``estimate_error``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, TypedDict

import numpy as np
import numpy.typing as npt
import pandas as pd

from mlplatform.adapters import alerts, snapshots
from mlplatform.adapters.lake import Lake
from mlplatform.core import metrics as model_metrics
from mlplatform.core import months
from mlplatform.core.modelling import in_target_range, input_columns, input_defaults, trip_features
from mlplatform.core.records import MonitoringRecord
from mlplatform.core.spec import UseCase
from mlplatform.stages import scoring
from mlplatform.stages.monitoring.history import read_record
from mlplatform.stages.monitoring.sources import (
    ACTUAL,
    Champion,
    answer_column,
    modelled_frame,
    reference_metric,
    sample,
    seed,
    serving_log,
    version_metrics,
)

MAX_EVAL_ROWS = 500_000
"""Predictions joined to ground truth per source; beyond it a uniform sample is as exact."""
MIN_SLICE_ROWS = 30
REPORTED_METRICS = ("rmse", "mae", "log_loss", "roc_auc")
"""The metrics monitoring reports: those a spec can monitor (``monitoring.performance_metric``).
The others :func:`mlplatform.core.metrics.score` computes are left out of records and history."""


# -- joining predictions to outcomes ----------------------------------------------------------
def batch_outcomes(lake: Lake, use_case: UseCase, window: str) -> tuple[pd.DataFrame | None, str]:
    """Batch predictions of the window joined on ``row_index`` to their snapshot's ground truth.

    Returns the joined rows (``variant`` = ``batch``) and, when there are none, why:
    ``no_predictions`` or ``no_ground_truth``.
    """
    record = scoring.current_predictions(lake, use_case.name, window)
    if record is None:
        return None, "no_predictions"
    answer = answer_column(use_case)
    predictions = lake.read_parquet(record.path, columns=["row_index", answer, "model_version"]).to_pandas()
    try:
        snap = snapshots.read_snapshot(lake, use_case.name, window, record.snapshot_digest)
    except FileNotFoundError:
        return None, "no_ground_truth"
    truth = modelled_frame(lake, use_case, snap, input_columns(use_case.features.all), with_truth=True)
    predictions = sample(predictions, MAX_EVAL_ROWS, seed(window, "batch"))
    predictions["model_version"] = predictions["model_version"].astype(str)
    joined = predictions.join(truth, on="row_index", how="inner").assign(variant="batch")
    joined = joined[joined[ACTUAL].notna()].reset_index(drop=True)
    return (joined, "") if len(joined) else (None, "no_ground_truth")


def _trip_key(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    key = pd.DataFrame(index=frame.index)
    for column in columns:
        values = frame[column]
        if column.endswith("datetime"):
            key[column] = pd.to_datetime(values).astype("datetime64[us]")
        elif column.endswith("_id"):
            key[column] = values.astype("int64")
        elif not pd.api.types.is_numeric_dtype(values):
            key[column] = values.astype(str)  # e.g. the taxi type
        else:
            key[column] = values.astype(float).round(4)
    return key


def _answered(use_case: UseCase, logged: pd.DataFrame) -> pd.DataFrame | None:
    """The served requests that got an answer, keyed by trip, with answer, variant and version."""
    if "status" in logged:  # failed requests count in serving health, not in performance
        logged = logged[logged["status"] == 200]
        if not len(logged):
            return None
    defaults = {k: v for k, v in input_defaults(use_case).items() if k not in logged}
    if defaults:  # a request may leave these out; the model answered with their default
        logged = logged.assign(**defaults)
    answer, keys = answer_column(use_case), input_columns(use_case.features.all)
    if missing := [c for c in [*keys, answer, "variant"] if c not in logged]:
        raise ValueError(
            f"the {use_case.name} serving log lacks column(s) {', '.join(missing)}: it was written by "
            "another version of the serving app; monitor a window it logged, or redeploy serving"
        )
    served = _trip_key(logged, keys)
    served[answer] = logged[answer].to_numpy()
    served["variant"] = logged["variant"].to_numpy()
    served["model_version"] = logged["model_version"].astype(str).to_numpy()
    return served


def serving_outcomes(
    lake: Lake, use_case: UseCase, logged: pd.DataFrame | None
) -> tuple[pd.DataFrame | None, str]:
    """Served predictions joined on the trip key to the snapshot of the month each trip began."""
    if logged is None or not len(logged):
        return None, "no_predictions"
    served = _answered(use_case, logged)
    if served is None:
        return None, "no_predictions"
    keys = input_columns(use_case.features.all)
    truths = []
    for month in sorted({months.of(t) for t in served["pickup_datetime"].dropna()}):
        if (snap := snapshots.current_snapshot(lake, use_case.name, month)) is not None:
            frame = modelled_frame(lake, use_case, snap, keys, with_truth=True)
            truth = _trip_key(frame, keys)
            truth[ACTUAL] = frame[ACTUAL].to_numpy()
            truths.append(truth.drop_duplicates(keys))
    if not truths:
        return None, "no_ground_truth"
    joined = served.merge(pd.concat(truths, ignore_index=True), on=keys, how="inner")
    joined = joined[joined[ACTUAL].notna()]
    return (joined, "") if len(joined) else (None, "no_ground_truth")


# -- performance ------------------------------------------------------------------------------
def outcome_scores(use_case: UseCase, rows: pd.DataFrame) -> dict[str, float]:
    """The task's :data:`REPORTED_METRICS` on outcome rows, and their number ``n``.

    ``rows`` hold the truth in :data:`ACTUAL` (classifiers: 1 for the positive class) and
    the model's answer (:func:`answer_column`).
    """
    n = len(rows)
    if not n:  # every outcome outside the modelling range: nothing to score
        unscored = ("rmse", "mae") if use_case.task == "regression" else ("log_loss",)
        return {**dict.fromkeys(unscored, float("nan")), "n": n}
    scores = model_metrics.score(use_case.task, rows[ACTUAL], rows[[answer_column(use_case)]])
    return {**{k: v for k, v in scores.items() if k in REPORTED_METRICS}, "n": n}


@dataclass(frozen=True)
class Performance:
    """Scores of predictions joined to outcomes (each with their number ``n``): overall, per
    slice (``column=value``) and per variant; the outcomes outside the modelling range, and
    the model versions that made the predictions."""

    overall: dict[str, float]
    slices: dict[str, dict[str, float]]
    variants: dict[str, dict[str, float]]
    outside_range: int
    versions: list[str]


def performance(use_case: UseCase, outcomes: pd.DataFrame) -> Performance:
    """Overall, per-slice and per-variant metrics of predictions joined to outcomes.

    Only outcomes in the spec's modelling range (``target.range``) are scored, as in training
    and validation, so production metrics compare with the validation metric; the rest are
    counted in ``outside_range``.
    """
    keep = in_target_range(outcomes[ACTUAL], use_case.target.range_)
    frame = trip_features(outcomes[keep])
    slices = {}
    for column in use_case.promotion.slices:
        if column not in frame:
            continue
        for value, rows in frame.groupby(column, observed=True):
            if len(rows) >= MIN_SLICE_ROWS:
                slices[f"{column}={value}"] = outcome_scores(use_case, rows)
    return Performance(
        overall=outcome_scores(use_case, frame),
        slices=slices,
        variants={str(v): outcome_scores(use_case, rows) for v, rows in frame.groupby("variant")},
        outside_range=int((~keep).sum()),
        versions=sorted(set(frame["model_version"].astype(str))),
    )


def measure_performance(
    lake: Lake,
    use_case: UseCase,
    window: str,
    logged: pd.DataFrame | None,
    client: Any,
    found: Champion | None,
) -> tuple[dict[str, float], dict[str, dict[str, dict[str, float]]], dict[str, str]]:
    """Metrics on delayed ground truth, their details (``slices`` and ``variants``), and why
    a source had none.

    The headline is the champion's: batch predictions, else what serving's champion
    answered. It is compared with the validation metric of the version that made the
    predictions, as training logged it.
    """
    metric = use_case.monitoring.performance_metric
    batch, batch_why = batch_outcomes(lake, use_case, window)
    served, served_why = serving_outcomes(lake, use_case, logged)
    sources = {"batch": batch_why, "serving": served_why}
    headline = batch
    if headline is None and served is not None:
        champion_rows = served[served["variant"] == "champion"]
        headline = champion_rows if len(champion_rows) else served
    if headline is None:
        return {}, {}, sources
    perf = performance(use_case, headline)
    metrics = {k: v for k, v in perf.overall.items() if k != "n"}
    metrics["n_outcomes"] = perf.overall["n"]
    metrics["n_outside_range"] = perf.outside_range
    details = {"slices": perf.slices, "variants": perf.variants}
    if served is not None:
        details["variants"].update(performance(use_case, served).variants)
    versions = perf.versions
    if len(versions) == 1 and (found is None or versions[0] != found.version):
        ref_metrics = version_metrics(client, use_case.model_name, versions[0])
    else:
        ref_metrics = found.metrics if found else {}
    if (reference := reference_metric(ref_metrics, metric)) is not None and metric in metrics:
        metrics[f"{metric}_reference"] = reference
        metrics[f"{metric}_degradation"] = model_metrics.relative_degradation(
            metric, metrics[metric], reference
        )
    return metrics, details, sources


# -- data quality and serving health --------------------------------------------------------------
def data_quality(lake: Lake, use_case: UseCase, window: str) -> dict[str, float | None]:
    """The window's contract result and quarantined share, from the snapshot manifest and quarantine."""
    snap = snapshots.current_snapshot(lake, use_case.name, window)
    if snap is None:
        return {}
    contract = snap.manifest.get("contract") or {}
    out: dict[str, float | None] = {"contract_success": contract.get("success")}  # a bool, or unknown
    share = contract.get("bad_row_share")
    if share is None:
        quarantined = 0
        for entry in lake.list(f"quarantine/{use_case.name}/month={window}"):
            if entry.path.endswith(".parquet"):
                meta = lake.open_parquet(entry.path)
                try:
                    quarantined += meta.metadata.num_rows
                finally:
                    meta.close()
        total = snap.rows + quarantined
        share = quarantined / total if total else 0.0
    out["quarantined_share"] = float(share)
    return out


def serving_health(logged: pd.DataFrame | None) -> dict[str, float]:
    """Requests, error rate and p99 latency per request, from the serving log (and capture).

    The log records every request with its HTTP ``status`` (failed ones as one row each);
    a status of 400 or more is an error. Logs written before statuses were recorded give
    no error rate.
    """
    if logged is None or not len(logged) or "request_id" not in logged:
        return {}
    requests = logged.drop_duplicates("request_id")
    out = {"requests": float(len(requests))}
    # SageMaker's capture records no latency (CloudWatch has it): only logged latencies count.
    latencies = requests["latency_ms"].astype(float).dropna() if "latency_ms" in requests else None
    if latencies is not None and len(latencies):
        out["p99_latency_ms"] = float(np.percentile(latencies, 99))
    if "status" in requests:
        out["error_rate"] = float((requests["status"].astype(int) >= 400).mean())
    return out


# -- the estimate before labels ----------------------------------------------------------------
PREDICTION = "__prediction__"
MIN_REFERENCE_ROWS = 1000
"""Labelled reference trips below which no estimator is fitted (the estimate would be noise)."""
SEED = 20240101


@dataclass(frozen=True)
class LossEstimator:
    """A regressor from (features, prediction) to the model's squared error, fitted on a labelled window."""

    model: Any
    columns: tuple[str, ...]
    categories: dict[str, list[Any]]
    reference_rmse: float
    reference_rows: int

    def _matrix(self, features: pd.DataFrame, prediction: npt.ArrayLike) -> pd.DataFrame:
        return _encode(features, prediction, self.columns, self.categories)

    def squared_errors(self, features: pd.DataFrame, prediction: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """The expected squared error of each trip (clipped at 0: a squared error is never negative)."""
        predicted = self.model.predict(self._matrix(features, prediction))
        return np.clip(np.asarray(predicted, dtype=np.float64), 0.0, None)

    def estimate_rmse(self, features: pd.DataFrame, prediction: npt.ArrayLike) -> float:
        """The window's estimated RMSE: the root of the mean expected squared error of its trips."""
        if not len(features):
            return math.nan
        return float(math.sqrt(self.squared_errors(features, prediction).mean()))


def _encode(
    features: pd.DataFrame,
    prediction: npt.ArrayLike,
    columns: tuple[str, ...],
    categories: dict[str, list[Any]],
) -> pd.DataFrame:
    """Numeric columns as they are, categorical ones as codes of the reference's categories
    (a category the reference never saw is missing, which the trees route on their own)."""
    out = pd.DataFrame(index=features.index)
    for column in columns:
        if column in categories:
            coded = pd.Categorical(features[column].astype(str), categories=categories[column]).codes
            out[column] = np.where(coded < 0, np.nan, coded).astype(np.float64)
        else:
            out[column] = pd.to_numeric(features[column], errors="coerce").astype(np.float64)
    out[PREDICTION] = np.asarray(prediction, dtype=np.float64)
    return out


def fit_loss_estimator(
    features: pd.DataFrame,
    prediction: npt.ArrayLike,
    actual: npt.ArrayLike,
    columns: list[str] | None = None,
    seed: int = SEED,
) -> LossEstimator:
    """Fit the squared-error regressor on a labelled reference window.

    ``features`` are the model's inputs (:func:`mlplatform.core.modelling.trip_features`),
    ``prediction`` its answers and ``actual`` the truth, row for row. The reference must be
    trips the model did not train on, or the estimate learns its training error.
    """
    from sklearn.ensemble import HistGradientBoostingRegressor

    y, p = np.asarray(actual, dtype=np.float64), np.asarray(prediction, dtype=np.float64)
    if not (len(features) == len(y) == len(p)):
        raise ValueError(
            f"features, predictions and truth need as many rows: {len(features)}, {len(p)}, {len(y)}"
        )
    keep = np.isfinite(y) & np.isfinite(p)
    if int(keep.sum()) < MIN_REFERENCE_ROWS:
        raise ValueError(
            f"a loss estimator needs at least {MIN_REFERENCE_ROWS} labelled reference trips, "
            f"got {int(keep.sum())}"
        )
    chosen = tuple(columns or features.columns)
    frame = features.loc[keep]
    categories = {
        c: sorted(frame[c].astype(str).unique())
        for c in chosen
        if not pd.api.types.is_numeric_dtype(frame[c]) or isinstance(frame[c].dtype, pd.CategoricalDtype)
    }
    squared = (p[keep] - y[keep]) ** 2
    model = HistGradientBoostingRegressor(
        loss="squared_error", learning_rate=0.05, max_iter=300, max_leaf_nodes=31, min_samples_leaf=100,
        early_stopping=True, validation_fraction=0.2, n_iter_no_change=20, random_state=seed,
    )  # fmt: skip
    model.fit(_encode(frame, p[keep], chosen, categories), squared)
    return LossEstimator(model, chosen, categories, float(math.sqrt(squared.mean())), int(keep.sum()))


def estimate_error(estimated: float | None, realised: float | None) -> float | None:
    """How far an estimate was from the RMSE measured once the labels arrived, relative to the
    measured one (``+0.05``: the estimate was 5% too high); ``None`` when either is missing."""
    if estimated is None or realised is None or not math.isfinite(estimated) or not realised:
        return None
    return float(estimated / realised - 1)


REFERENCE_LOOKBACK = 6
"""Earlier windows searched for a labelled reference to fit the loss estimator on."""


def labelled_rows(use_case: UseCase, outcomes: pd.DataFrame) -> pd.DataFrame:
    """The outcome rows performance scores: truth known and in the modelling range."""
    keep = outcomes[ACTUAL].notna() & in_target_range(outcomes[ACTUAL], use_case.target.range_)
    return outcomes[keep.to_numpy()]


def _unlabelled_rows(lake: Lake, use_case: UseCase, window: str) -> pd.DataFrame | None:
    """The champion's answers of a window without ground truth, with their inputs: batch predictions
    joined to their snapshot's features, else what serving's champion answered."""
    columns, answer = input_columns(use_case.features.all), answer_column(use_case)
    record = scoring.current_predictions(lake, use_case.name, window)
    if record is not None:
        from mlplatform.adapters import snapshots

        try:
            snap = snapshots.read_snapshot(lake, use_case.name, window, record.snapshot_digest)
            predictions = lake.read_parquet(record.path, columns=["row_index", answer]).to_pandas()
            frame = modelled_frame(lake, use_case, snap, columns)
            return predictions.join(frame, on="row_index", how="inner")
        except FileNotFoundError:
            pass
    logged = serving_log(lake, use_case.name, window)
    if logged is None or "variant" not in logged or answer not in logged:
        return None
    if "status" in logged:
        logged = logged[logged["status"] == 200]
    rows = logged[logged["variant"] == "champion"]
    return rows if len(rows) and all(c in rows for c in columns) else None


def _reference_rows(lake: Lake, use_case: UseCase, window: str) -> tuple[str, pd.DataFrame] | None:
    for back in range(1, REFERENCE_LOOKBACK + 1):
        earlier = months.shift(window, -back)
        joined, _ = batch_outcomes(lake, use_case, earlier)
        if joined is not None and len(rows := labelled_rows(use_case, joined)) >= 1000:
            return earlier, rows
    return None


class EstimateDetails(TypedDict, total=False):
    """What the record's ``details.estimate`` says of a window's estimated RMSE: ``measured``
    (labelled: the estimate made before and the realised value), ``unavailable`` (and why) or
    ``estimated`` (how, from what, and a ``warning`` when it would breach)."""

    status: Literal["measured", "unavailable", "estimated"]
    estimated_rmse: float
    realised_rmse: float | None
    reason: str
    method: str
    reference_window: str
    reference_rows: int
    rows: int
    estimated_degradation: float
    warning: str


def estimate(
    lake: Lake,
    use_case: UseCase,
    record: MonitoringRecord,
    champion_metrics: dict[str, float],
    alert: bool = True,
) -> tuple[dict[str, float], EstimateDetails]:
    """``estimated_rmse`` (and, once labelled, ``estimate_error``) and the estimate's details;
    an estimate that would breach warns (``alert``)."""
    window, features = record.window, list(use_case.features.all)
    if "rmse" in record.metrics:  # labelled: keep the estimate made before, and how far it was
        before = read_record(lake, use_case.name, window)
        made = (before.metrics if before else {}).get("estimated_rmse")
        if made is None:
            return {}, {}
        error = estimate_error(made, record.metrics["rmse"])
        shown = EstimateDetails(status="measured", estimated_rmse=made, realised_rmse=record.metrics["rmse"])
        return {"estimated_rmse": made, **({"estimate_error": error} if error is not None else {})}, shown
    found = _reference_rows(lake, use_case, window)
    rows = _unlabelled_rows(lake, use_case, window)
    if found is None or rows is None or not len(rows):
        return {}, EstimateDetails(
            status="unavailable", reason="no labelled reference window or no predictions"
        )
    reference_window, reference = found
    answer = answer_column(use_case)
    estimator = fit_loss_estimator(
        trip_features(reference)[features], reference[answer].to_numpy(), reference[ACTUAL].to_numpy()
    )
    value = estimator.estimate_rmse(trip_features(rows)[features], rows[answer].to_numpy(float))
    details = EstimateDetails(
        status="estimated",
        method="direct loss estimation",
        reference_window=reference_window,
        reference_rows=estimator.reference_rows,
        rows=len(rows),
    )
    validated = reference_metric(champion_metrics, "rmse")
    if validated:
        degradation = value / validated - 1
        details["estimated_degradation"] = degradation
        if degradation > use_case.monitoring.max_relative_degradation:
            details["warning"] = (
                f"estimated RMSE {value:.3f} is {degradation:.1%} above the validation RMSE {validated:.3f} "
                f"(limit {use_case.monitoring.max_relative_degradation:.0%}): a warning until the labels "
                "measure it"
            )
            if alert:
                alerts.send(
                    alerts.Alert(
                        title=f"{use_case.name} {window}: estimated RMSE would breach (labels pending)",
                        severity="warning",
                        lines=(details["warning"],),
                    )
                )
    return {"estimated_rmse": value}, details
