"""Production monitoring: performance on delayed ground truth, drift, data quality, serving health.

For one use case and one window (a month) :func:`evaluate_window` gathers what production
did and compares it with what the champion promised at training time:

- **performance**: batch predictions (``predictions/<uc>/month=M/CURRENT.json``) joined
  on ``row_index`` to the target column of the snapshot they scored, and real-time
  predictions from the serving log (``predictions/<uc>/serving/month=M/``) joined on the
  trip key to the snapshot of the month the trip happened in. Outcomes arrive later than
  predictions: rows whose month has no validated snapshot yet have no ground truth, and a
  window without any is ``pending``, never a false alarm. Metrics per window, per slice
  (``promotion.slices``) and per variant (``batch``, ``champion``, ``challenger``).
- **drift**: each feature of the window against a sample of the champion's training
  months (normed Wasserstein distance for numeric features, Jensen-Shannon distance for
  categorical ones, computed by Evidently), the share of drifted features, and drift of
  the champion's predictions over the same two samples. Evidently's HTML report is kept
  in the lake and in MLflow for a person to open.
- **data quality**: the contract result and quarantined share of the window's snapshot.
- **serving health**: error rate and p99 latency per request from the serving log.

:func:`breaches` compares the metrics with the spec's ``monitoring`` thresholds. Only
performance and drift breaches ask for retraining; a data-quality or serving breach is
alerted but a new model would not fix it. :func:`retrain_decision` applies the cooldown
and de-duplication (``monitoring/<uc>/retrain_state.json``).

Lake layout written here::

    monitoring/<uc>/history/window=YYYY-MM/metrics.json   one record per window
    monitoring/<uc>/history.parquet                        one row per window and metric
    monitoring/<uc>/reports/window=YYYY-MM/drift_report.html
    monitoring/<uc>/retrain_state.json                     retrains the monitor triggered
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import sys
import zlib
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from mlplatform.adapters import settings, snapshots
from mlplatform.adapters.lake import Lake
from mlplatform.core.features import in_target_range, trip_features
from mlplatform.core.modelling import input_columns, input_defaults
from mlplatform.core.spec import UseCase
from mlplatform.stages import scoring

log = logging.getLogger(__name__)

SAMPLE_ROWS = 20_000
"""Rows sampled from the reference and from the window for drift: enough for distances
around 0.02 to be noise, few enough for a report in seconds."""
MAX_EVAL_ROWS = 500_000
"""Predictions joined to ground truth per source; beyond it a uniform sample is as exact."""
MIN_SLICE_ROWS = 30
MIN_DRIFT_ROWS = 1_000
"""A window with fewer trips has no drift figures: distances between small samples are
mostly sampling noise (about 1/sqrt(rows)), which would read as drift."""
TOP_CATEGORIES = 30
"""High-cardinality categories beyond the reference's most frequent ones are pooled as
``other``: thousands of rare zone pairs would otherwise read as drift from sampling alone."""
LOWER_IS_BETTER = {"rmse": True, "mae": True, "log_loss": True, "roc_auc": False}
RETRAIN_KINDS = ("performance", "drift")


# -- months --------------------------------------------------------------------------------
def month_of(moment: datetime) -> str:
    return f"{moment.year:04d}-{moment.month:02d}"


def shift_month(month: str, delta: int) -> str:
    year, mon = map(int, month.split("-"))
    y, m = divmod(year * 12 + mon - 1 + delta, 12)
    return f"{y:04d}-{m + 1:02d}"


def check_month(month: str) -> str:
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", str(month)):
        raise ValueError(f"window must be a month as YYYY-MM, got {month!r}")
    return month


# -- the champion and its training reference -----------------------------------------------
@dataclass
class Champion:
    """The version serving now, and what its training run recorded."""

    name: str
    version: str
    run_id: str | None
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    url: str = ""
    model: Any = field(default=None, repr=False)


def model_url(name: str, version: str) -> str:
    return f"{settings.tracking_uri().rstrip('/')}/#/models/{name}/versions/{version}"


def champion(use_case: UseCase, client: Any = None, load: bool = True) -> Champion | None:
    """The ``champion`` version with its run's metrics and params; ``None`` when none is set."""
    try:
        client = client or scoring.registry_client()
        ref = scoring.resolve(use_case.model_name, "champion", client)
    except scoring.ModelNotFound:
        return None
    found = Champion(ref.name, ref.version, ref.run_id, url=model_url(ref.name, ref.version))
    if ref.run_id:
        run = client.get_run(ref.run_id)
        found.metrics = dict(run.data.metrics)
        found.params = {**run.data.params, **run.data.tags}
    if load:
        found.model = scoring.load_model(ref.uri)
    return found


def version_metrics(client: Any, name: str, version: str) -> dict[str, float]:
    """Metrics of the training run of any registered version (empty when it has none)."""
    try:
        run_id = client.get_model_version(name, str(version)).run_id
        return dict(client.get_run(run_id).data.metrics) if run_id else {}
    except Exception:  # a deleted version or run: no reference to compare with
        return {}


_METRIC_KEYS = ("val_{m}", "validation_{m}", "val.{m}", "validation.{m}", "validation/{m}", "{m}_val", "{m}")


def reference_metric(metrics: dict[str, float], metric: str) -> float | None:
    """The validation value of ``metric`` a training run logged, under the names training uses."""
    for pattern in _METRIC_KEYS:
        if (value := metrics.get(pattern.format(m=metric))) is not None:
            return float(value)
    return None


_MONTH = re.compile(r"\d{4}-(?:0[1-9]|1[0-2])")
_MONTH_KEYS = ("train_months", "training_months", "training.months", "data.train_months", "train.months")


def reference_months(
    use_case: UseCase, window: str, params: dict[str, str], available: list[str]
) -> list[str]:
    """The months the champion trained on, else the ``training.window_months`` before the window."""
    for key in _MONTH_KEYS:
        if raw := params.get(key):
            months = _MONTH.findall(raw)
            if ".." in raw and len(months) == 2:
                months = [shift_month(months[0], i) for i in range(_span(*months) + 1)]
            chosen = [m for m in months if m in available and m != window]
            if chosen:
                return chosen
    before = [m for m in available if m < window]
    return before[-use_case.training.window_months :]


def _span(first: str, last: str) -> int:
    (y1, m1), (y2, m2) = map(int, first.split("-")), map(int, last.split("-"))
    return (y2 * 12 + m2) - (y1 * 12 + m1)


# -- reading data -------------------------------------------------------------------------
def _seed(*parts: str) -> int:
    return zlib.crc32("|".join(parts).encode())


def _sample(frame: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    return frame if len(frame) <= rows else frame.sample(rows, random_state=seed).sort_index()


ACTUAL = "actual"
"""Column holding the ground truth once predictions are joined to outcomes."""


def _referenced(use_case: UseCase, schema: list[str]) -> list[str]:
    """Snapshot columns the spec's ``data.filter`` and ``target.expression`` mention."""
    text = f"{use_case.data.filter or ''} {use_case.target.expression or ''}"
    return [c for c in schema if re.search(rf"\b{re.escape(c)}\b", text)]


def modelled_frame(
    lake: Lake, use_case: UseCase, snapshot: snapshots.Snapshot, columns: list[str], with_truth: bool = False
) -> pd.DataFrame:
    """The snapshot's rows the use case models (``data.filter``), indexed by row position.

    ``with_truth`` adds the ground truth (``target.column`` or ``target.expression``) as
    :data:`ACTUAL`; it is NaN where the snapshot cannot tell it.
    """
    from mlplatform.core.features import modelled_rows, target_values

    schema = list(snapshot.manifest.get("schema") or {})
    extra = _referenced(use_case, schema)
    target = use_case.target.column
    if with_truth and use_case.target.expression is None and target in schema:
        extra.append(target)
    wanted = list(dict.fromkeys([*columns, *extra]))
    frame = modelled_rows(snapshots.read_table(lake, snapshot, wanted).to_pandas(), use_case.data.filter)
    out = frame[columns].copy()
    if with_truth:
        try:
            out[ACTUAL] = target_values(frame, target, use_case.target.expression).astype(float)
        except ValueError:  # the month's data does not carry the outcome (yet)
            out[ACTUAL] = np.nan
    return out


def reference_sample(
    lake: Lake, use_case: UseCase, months: list[str], columns: list[str], rows: int = SAMPLE_ROWS
) -> pd.DataFrame | None:
    """A uniform sample of ``rows`` modelled trips over the reference months, the same every run."""
    parts = []
    for month in months:
        if (snap := snapshots.current_snapshot(lake, use_case.name, month)) is not None:
            frame = modelled_frame(lake, use_case, snap, columns)
            parts.append(_sample(frame, rows, _seed(month, snap.digest)))
    if not parts:
        return None
    return _sample(pd.concat(parts, ignore_index=True), rows, _seed(*months))


def serving_log(lake: Lake, use_case: str, window: str) -> pd.DataFrame | None:
    """Every logged real-time prediction for a trip that began in the window.

    The log is partitioned by the month a prediction was served, which is the trip's
    month in production; replays of past trips land in later folders, so every folder
    from the window on is read and rows are kept by pickup month.
    """
    folders: dict[str, list[str]] = {}
    for entry in lake.list(f"predictions/{use_case}/serving"):
        month = entry.path.split("/")[3].removeprefix("month=")
        if entry.path.endswith(".parquet") and month >= window:
            folders.setdefault(month, []).append(entry.path)
    frames = []
    for month, files in sorted(folders.items()):
        frame = pa.concat_tables(
            [lake.read_parquet(p) for p in files], promote_options="permissive"
        ).to_pandas()
        if "pickup_datetime" in frame:
            # A failed request without a readable pickup time counts where it was served.
            pickup = pd.to_datetime(frame["pickup_datetime"]).dt.strftime("%Y-%m").fillna(month)
            frame = frame[pickup == window]
        elif month != window:
            continue
        frames.append(frame)
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else None


def window_of_run(window: str | None, data_interval_end: datetime | None) -> str:
    """The window a run evaluates: ``window`` if given, else the last full month before the
    run was due (a run due on 1 April evaluates March), as batch scoring does."""
    if window:
        return check_month(window)
    if data_interval_end is None:
        raise ValueError(
            "this run has no data interval (triggered without a logical date): "
            "trigger it with the `window` param, YYYY-MM"
        )
    return shift_month(month_of(data_interval_end), -1)


# -- performance -------------------------------------------------------------------------
def answer_column(use_case: UseCase) -> str:
    return "prediction" if use_case.task == "regression" else "probability"


def score(use_case: UseCase, truth: pd.Series, answer: pd.Series) -> dict[str, float]:
    """The task's metrics on rows with ground truth (classifiers: truth is 1 for the positive class)."""
    n = len(truth)
    if use_case.task == "regression":
        error = answer.to_numpy(float) - truth.to_numpy(float)
        return {"rmse": float(np.sqrt(np.mean(error**2))), "mae": float(np.mean(np.abs(error))), "n": n}
    from sklearn.metrics import log_loss, roc_auc_score

    y = truth.to_numpy(float).astype(int)
    p = np.clip(answer.to_numpy(float), 1e-6, 1 - 1e-6)
    out = {"log_loss": float(log_loss(y, p, labels=[0, 1])), "n": n}
    if 0 < y.sum() < n:
        out["roc_auc"] = float(roc_auc_score(y, p))
    return out


def batch_outcomes(lake: Lake, use_case: UseCase, window: str) -> tuple[pd.DataFrame | None, str]:
    """Batch predictions of the window joined on ``row_index`` to their snapshot's ground truth.

    Returns the joined rows (``variant`` = ``batch``) and, when there are none, why:
    ``no_predictions`` or ``no_ground_truth``.
    """
    record = scoring.current_predictions(lake, use_case.name, window)
    if record is None:
        return None, "no_predictions"
    answer = answer_column(use_case)
    predictions = lake.read_parquet(
        record["path"], columns=["row_index", answer, "model_version"]
    ).to_pandas()
    try:
        snap = snapshots.read_snapshot(lake, use_case.name, window, record["snapshot_digest"])
    except FileNotFoundError:
        return None, "no_ground_truth"
    truth = modelled_frame(lake, use_case, snap, input_columns(use_case.features.all), with_truth=True)
    predictions = _sample(predictions, MAX_EVAL_ROWS, _seed(window, "batch"))
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


def serving_outcomes(
    lake: Lake, use_case: UseCase, logged: pd.DataFrame | None
) -> tuple[pd.DataFrame | None, str]:
    """Served predictions joined on the trip key to the snapshot of the month each trip began."""
    if logged is None or not len(logged):
        return None, "no_predictions"
    answer = answer_column(use_case)
    keys = input_columns(use_case.features.all)
    if "status" in logged:  # failed requests count in serving health, not in performance
        logged = logged[logged["status"] == 200]
        if not len(logged):
            return None, "no_predictions"
    defaults = {k: v for k, v in input_defaults(use_case).items() if k not in logged}
    if defaults:  # a request may leave these out; the model answered with their default
        logged = logged.assign(**defaults)
    if missing := [c for c in [*keys, answer, "variant"] if c not in logged]:
        raise ValueError(
            f"the {use_case.name} serving log lacks column(s) {', '.join(missing)}: it was written by "
            "another version of the serving app; monitor a window it logged, or redeploy serving"
        )
    served = _trip_key(logged, keys)
    served[answer] = logged[answer].to_numpy()
    served["variant"] = logged["variant"].to_numpy()
    served["model_version"] = logged["model_version"].astype(str).to_numpy()
    truths = []
    for month in sorted({month_of(t) for t in served["pickup_datetime"].dropna()}):
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


def performance(use_case: UseCase, outcomes: pd.DataFrame) -> dict[str, Any]:
    """Overall, per-slice and per-variant metrics of predictions joined to outcomes.

    Only outcomes in the spec's modelling range (``target.range``) are scored, as in training
    and validation, so production metrics compare with the validation metric; the rest are
    counted in ``outside_range``.
    """
    answer = answer_column(use_case)
    keep = in_target_range(outcomes[ACTUAL], use_case.target.range_)
    frame = trip_features(outcomes[keep])
    out: dict[str, Any] = {"overall": score(use_case, frame[ACTUAL], frame[answer]), "slices": {}}
    out["outside_range"] = int((~keep).sum())
    for column in use_case.promotion.slices:
        if column not in frame:
            continue
        for value, rows in frame.groupby(column, observed=True):
            if len(rows) >= MIN_SLICE_ROWS:
                out["slices"][f"{column}={value}"] = score(use_case, rows[ACTUAL], rows[answer])
    out["variants"] = {
        str(v): score(use_case, rows[ACTUAL], rows[answer]) for v, rows in frame.groupby("variant")
    }
    out["versions"] = sorted(set(frame["model_version"].astype(str)))
    return out


# -- drift ---------------------------------------------------------------------------------
@dataclass
class DriftResult:
    scores: dict[str, float]
    drifted: list[str]
    share: float
    prediction_drift: float | None
    snapshot: Any = field(default=None, repr=False)  # the Evidently snapshot, for the HTML report


def _pool_categories(reference: pd.Series, current: pd.Series) -> tuple[pd.Series, pd.Series]:
    ref, cur = reference.astype(str), current.astype(str)
    top = set(ref.value_counts().index[:TOP_CATEGORIES])
    return ref.where(ref.isin(top), "other"), cur.where(cur.isin(top), "other")


def drift(
    use_case: UseCase,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    reference_predictions: np.ndarray | None = None,
    current_predictions: np.ndarray | None = None,
) -> DriftResult:
    """Per-feature drift scores, the drifted share and prediction drift, with Evidently.

    ``reference`` and ``current`` are normalised trips (features are derived here).
    Numeric features use the normed Wasserstein distance, categorical ones the
    Jensen-Shannon distance; a feature drifted when its score exceeds ``drift_threshold``.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    numeric, categorical = list(use_case.features.numeric), list(use_case.features.categorical)
    ref, cur = trip_features(reference)[numeric + categorical], trip_features(current)[numeric + categorical]
    ref[numeric], cur[numeric] = ref[numeric].astype(float), cur[numeric].astype(float)
    for column in categorical:
        ref[column], cur[column] = _pool_categories(ref[column], cur[column])
    numbers = list(numeric)
    metrics: list[Any] = [
        DataDriftPreset(
            columns=numeric + categorical,
            num_method="wasserstein",
            cat_method="jensenshannon",
            threshold=use_case.monitoring.drift_threshold,
            drift_share=use_case.monitoring.drifted_share_threshold,
        )
    ]
    if reference_predictions is not None and current_predictions is not None:
        ref["prediction"], cur["prediction"] = reference_predictions, current_predictions
        numbers.append("prediction")
        metrics.append(
            ValueDrift(
                column="prediction",
                method="wasserstein",
                threshold=use_case.monitoring.prediction_drift_threshold,
            )
        )
    definition = DataDefinition(numerical_columns=numbers, categorical_columns=categorical)
    report = Report(metrics)
    snap = report.run(
        Dataset.from_pandas(cur.reset_index(drop=True), data_definition=definition),
        Dataset.from_pandas(ref.reset_index(drop=True), data_definition=definition),
    )
    scores: dict[str, float] = {}
    for metric in snap.dict()["metrics"]:
        config = metric.get("config") or {}
        if str(config.get("type", "")).endswith(":ValueDrift"):
            scores[config["column"]] = float(metric["value"])
    prediction_drift = scores.pop("prediction", None)
    features = numeric + categorical
    drifted = [f for f in features if scores.get(f, 0.0) > use_case.monitoring.drift_threshold]
    return DriftResult(scores, drifted, len(drifted) / len(features), prediction_drift, snap)


def predict(use_case: UseCase, model: Any, trips: pd.DataFrame) -> np.ndarray:
    """The champion's answers for trips (``prediction``, or the positive-class probability)."""
    inputs = trips[input_columns(use_case.features.all)]
    call = (lambda f: model.predict(None, f)) if hasattr(model, "estimator") else scoring.predictor(model)
    return call(inputs)[answer_column(use_case)].to_numpy(float)


# -- data quality and serving health ------------------------------------------------------------
def data_quality(lake: Lake, use_case: UseCase, window: str) -> dict[str, Any]:
    """The window's contract result and quarantined share, from the snapshot manifest and quarantine."""
    snap = snapshots.current_snapshot(lake, use_case.name, window)
    if snap is None:
        return {}
    contract = snap.manifest.get("contract") or {}
    out: dict[str, Any] = {"contract_success": contract.get("success")}
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
    """Requests, error rate and p99 latency per request, from the serving log.

    The log records every request with its HTTP ``status`` (failed ones as one row each);
    a status of 400 or more is an error. Logs written before statuses were recorded give
    no error rate.
    """
    if logged is None or not len(logged) or "request_id" not in logged:
        return {}
    requests = logged.drop_duplicates("request_id")
    out = {"requests": float(len(requests))}
    if "latency_ms" in requests:
        out["p99_latency_ms"] = float(np.percentile(requests["latency_ms"].astype(float), 99))
    if "status" in requests:
        out["error_rate"] = float((requests["status"].astype(int) >= 400).mean())
    return out


# -- thresholds ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Breach:
    metric: str
    value: float
    threshold: float
    kind: str  # performance | drift | quality | serving
    message: str

    @property
    def retrain(self) -> bool:
        return self.kind in RETRAIN_KINDS


def relative_degradation(metric: str, value: float, reference: float) -> float:
    """How much worse ``value`` is than ``reference``, as a fraction (negative: better)."""
    if not reference:
        return 0.0
    change = (value - reference) / abs(reference)
    return change if LOWER_IS_BETTER[metric] else -change


def breaches(use_case: UseCase, metrics: dict[str, Any]) -> list[Breach]:
    """Every threshold of the spec's ``monitoring`` section that the metrics cross."""
    m, out = use_case.monitoring, []
    metric = m.performance_metric
    if (worse := metrics.get(f"{metric}_degradation")) is not None and worse > m.max_relative_degradation:
        out.append(
            Breach(
                metric,
                metrics[metric],
                metrics[f"{metric}_reference"] * (1 + m.max_relative_degradation),
                "performance",
                f"{metric} {metrics[metric]:.4g} is {worse:.1%} worse than the champion's "
                f"{metrics[f'{metric}_reference']:.4g} at training (limit {m.max_relative_degradation:.0%})",
            )
        )
    if (share := metrics.get("drift_share")) is not None and share > m.drifted_share_threshold:
        out.append(
            Breach(
                "drift_share",
                share,
                m.drifted_share_threshold,
                "drift",
                f"{share:.0%} of features drifted (limit {m.drifted_share_threshold:.0%}; a feature drifts "
                f"above a distance of {m.drift_threshold})",
            )
        )
    if (pred := metrics.get("prediction_drift")) is not None and pred > m.prediction_drift_threshold:
        out.append(
            Breach(
                "prediction_drift",
                pred,
                m.prediction_drift_threshold,
                "drift",
                f"prediction drift {pred:.3f} (limit {m.prediction_drift_threshold})",
            )
        )
    if metrics.get("contract_success") is False:
        out.append(Breach("contract", 0.0, 1.0, "quality", "the window's snapshot failed its data contract"))
    if (
        share := metrics.get("quarantined_share")
    ) is not None and share > use_case.contract.max_bad_row_share:
        out.append(
            Breach(
                "quarantined_share",
                share,
                use_case.contract.max_bad_row_share,
                "quality",
                f"{share:.1%} of the window's rows were quarantined "
                f"(limit {use_case.contract.max_bad_row_share:.0%})",
            )
        )
    if (rate := metrics.get("error_rate")) is not None and rate > m.max_error_rate:
        out.append(Breach("error_rate", rate, m.max_error_rate, "serving", f"serving error rate {rate:.2%}"))
    if (p99 := metrics.get("p99_latency_ms")) is not None and p99 > m.max_p99_latency_ms:
        out.append(
            Breach(
                "p99_latency_ms",
                p99,
                m.max_p99_latency_ms,
                "serving",
                f"serving p99 latency {p99:.0f} ms (limit {m.max_p99_latency_ms:.0f} ms)",
            )
        )
    return out


# -- one window ------------------------------------------------------------------------------
def _flat(prefix: str, values: dict[str, Any]) -> dict[str, float]:
    return {f"{prefix}{k}": float(v) for k, v in values.items() if isinstance(v, int | float)}


def measure_performance(
    lake: Lake,
    use_case: UseCase,
    window: str,
    logged: pd.DataFrame | None,
    client: Any,
    found: Champion | None,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """Metrics on delayed ground truth, their details, and why a source had none.

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
    metrics: dict[str, Any] = {k: v for k, v in perf["overall"].items() if k != "n"}
    metrics["n_outcomes"] = perf["overall"]["n"]
    metrics["n_outside_range"] = perf["outside_range"]
    details = {"slices": perf["slices"], "variants": perf["variants"]}
    if served is not None:
        details["variants"].update(performance(use_case, served)["variants"])
    versions = perf["versions"]
    if len(versions) == 1 and (found is None or versions[0] != found.version):
        ref_metrics = version_metrics(client, use_case.model_name, versions[0])
    else:
        ref_metrics = found.metrics if found else {}
    if (reference := reference_metric(ref_metrics, metric)) is not None and metric in metrics:
        metrics[f"{metric}_reference"] = reference
        metrics[f"{metric}_degradation"] = relative_degradation(metric, metrics[metric], reference)
    return metrics, details, sources


def measure_drift(
    lake: Lake, use_case: UseCase, window: str, logged: pd.DataFrame | None, found: Champion | None
) -> tuple[DriftResult | None, list[str], int]:
    """Drift of the window's trips (its snapshot, else what serving saw) from the training data.

    Returns the result (``None`` without enough data on either side), the reference
    months and the reference rows sampled.
    """
    columns = input_columns(use_case.features.all)
    available = [s.month for s in snapshots.current_snapshots(lake, use_case.name)]
    months = reference_months(use_case, window, found.params if found else {}, available)
    reference = reference_sample(lake, use_case, months, columns)
    snap = snapshots.current_snapshot(lake, use_case.name, window)
    if snap is not None:
        current = modelled_frame(lake, use_case, snap, columns)
        current = _sample(current, SAMPLE_ROWS, _seed(window, snap.digest))
    elif logged is not None and all(c in logged for c in columns):
        current = _sample(logged[columns], SAMPLE_ROWS, _seed(window, "serving"))
    else:
        current = None
    rows = 0 if reference is None else len(reference)
    if reference is None or current is None or len(current) < MIN_DRIFT_ROWS:
        return None, months, rows
    model = found.model if found else None
    answers = (
        (predict(use_case, model, reference), predict(use_case, model, current)) if model else (None, None)
    )
    return drift(use_case, reference, current, *answers), months, rows


def evaluate_window(
    lake: Lake, use_case: UseCase, window: str, client: Any = None, found: Champion | None = None
) -> tuple[dict[str, Any], DriftResult | None]:
    """Every metric of one window, its breaches and status (nothing is written here).

    The record has the shape the MLOps page reads: ``window``, ``status`` (``ok``,
    ``breach`` or ``pending``), ``metrics``, ``breaches``, plus ``details`` (per slice,
    variant and feature), ``breach_details``, ``pending`` and ``model``. Performance
    without ground truth makes the window ``pending`` unless something else breached.
    """
    check_month(window)
    client = client or scoring.registry_client()
    found = found if found is not None else champion(use_case, client)
    metric = use_case.monitoring.performance_metric
    logged = serving_log(lake, use_case.name, window)
    metrics, details, sources = measure_performance(lake, use_case, window, logged, client, found)
    result, months, reference_rows = measure_drift(lake, use_case, window, logged, found)
    pending = [] if metric in metrics else [metric]
    if metric in metrics and f"{metric}_reference" not in metrics:
        pending.append(f"{metric}_reference")
    if result is None:
        pending.append("drift_share")
    else:
        metrics.update(drift_share=result.share, drifted_features=len(result.drifted))
        if result.prediction_drift is not None:
            metrics["prediction_drift"] = result.prediction_drift
        details.update(features=result.scores, drifted=result.drifted)
    metrics.update(data_quality(lake, use_case, window))
    metrics.update(serving_health(logged))
    found_breaches = breaches(use_case, metrics)
    record = {
        "use_case": use_case.name,
        "window": window,
        "status": "breach" if found_breaches else ("pending" if metric in pending else "ok"),
        "metrics": metrics,
        "breaches": [b.metric for b in found_breaches],
        "breach_details": [{**asdict(b), "retrain": b.retrain} for b in found_breaches],
        "pending": pending,
        "sources": sources,
        "details": details,
        "reference": {"months": months, "rows": reference_rows},
        "model": (
            {"name": found.name, "version": found.version, "run_id": found.run_id, "url": found.url}
            if found
            else None
        ),
        "thresholds": use_case.monitoring.model_dump(),
        "computed_at": datetime.now(UTC).isoformat(),
    }
    return record, result


# -- writing the history ------------------------------------------------------------------------
def record_path(use_case: str, window: str) -> str:
    return f"monitoring/{use_case}/history/window={window}/metrics.json"


def report_path(use_case: str, window: str) -> str:
    return f"monitoring/{use_case}/reports/window={window}/drift_report.html"


def write_report(lake: Lake, use_case: UseCase, window: str, result: DriftResult | None) -> str | None:
    """Evidently's HTML drift report in the lake; returns its lake path."""
    if result is None or result.snapshot is None:
        return None
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "drift_report.html"
        result.snapshot.save_html(str(local))
        path = report_path(use_case.name, window)
        lake.write_bytes(path, local.read_bytes())
    return path


def history_rows(record: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per metric of a record: headline, per slice, per variant and per feature."""
    values = _flat("", record["metrics"])
    details = record.get("details") or {}
    for group in ("slices", "variants"):
        for name, scores in (details.get(group) or {}).items():
            values.update(_flat(f"{group[:-1]}[{name}].", scores))
    values.update(_flat("drift.", details.get("features") or {}))
    return [
        {
            "window": record["window"],
            "metric": name,
            "value": value,
            "status": record["status"],
            "computed_at": record["computed_at"],
        }
        for name, value in sorted(values.items())
    ]


def write_history(lake: Lake, record: dict[str, Any]) -> str:
    """Store the window's record and replace its rows in ``history.parquet`` (atomic rewrite)."""
    use_case, window = record["use_case"], record["window"]
    lake.write_json(record_path(use_case, window), record)
    path = f"monitoring/{use_case}/history.parquet"
    rows = pd.DataFrame(history_rows(record), columns=["window", "metric", "value", "status", "computed_at"])
    if lake.exists(path):
        old = lake.read_parquet(path).to_pandas()
        rows = pd.concat([old[old["window"] != window], rows], ignore_index=True)
    rows = rows.sort_values(["window", "metric"], ignore_index=True)
    return lake.write_parquet(path, pa.Table.from_pandas(rows, preserve_index=False))


def read_history(lake: Lake, use_case: str) -> pd.DataFrame:
    path = f"monitoring/{use_case}/history.parquet"
    return lake.read_parquet(path).to_pandas() if lake.exists(path) else pd.DataFrame()


def _mlflow_key(name: str) -> str:
    """A metric name MLflow accepts: ``slice[pu_borough=Queens].rmse`` -> ``slice/pu_borough/Queens.rmse``."""
    name = name.replace("[", "/").replace("]", "").replace("=", "/")
    return re.sub(r"[^A-Za-z0-9_\-./ ]", "_", name)


def log_to_mlflow(
    lake: Lake, use_case: UseCase, record: dict[str, Any], report: str | None, client: Any = None
) -> dict[str, str]:
    """One MLflow run per window in ``<use case>-monitoring`` (re-runs reuse it); returns its ids."""
    import tempfile
    from pathlib import Path

    client = client or scoring.registry_client()
    name = f"{use_case.name}-monitoring"
    experiment = client.get_experiment_by_name(name)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(name)
    window = record["window"]
    found = client.search_runs([experiment_id], f"tags.`mlplatform.window` = '{window}'", max_results=1)
    run_id = (
        found[0].info.run_id
        if found
        else client.create_run(
            experiment_id, run_name=f"window={window}", tags={"mlplatform.window": window}
        ).info.run_id
    )
    step = int(window.replace("-", ""))
    for row in history_rows(record):
        client.log_metric(run_id, _mlflow_key(row["metric"]), row["value"], step=step)
    for key, value in {
        "status": record["status"],
        "breaches": ",".join(record["breaches"]) or "none",
    }.items():
        client.set_tag(run_id, f"mlplatform.{key}", value)
    if record.get("model"):
        client.set_tag(run_id, "mlplatform.champion_version", record["model"]["version"])
    with tempfile.TemporaryDirectory() as tmp:
        import json

        (Path(tmp) / "metrics.json").write_text(json.dumps(record, indent=2, default=str))
        client.log_artifact(run_id, str(Path(tmp) / "metrics.json"))
        if report:
            (Path(tmp) / "drift_report.html").write_bytes(lake.read_bytes(report))
            client.log_artifact(run_id, str(Path(tmp) / "drift_report.html"))
    with contextlib.redirect_stdout(sys.stderr):  # MLflow prints the run's link; stdout is for results
        client.set_terminated(run_id)
    base = settings.tracking_uri().rstrip("/")
    return {"run_id": run_id, "url": f"{base}/#/experiments/{experiment_id}/runs/{run_id}"}


def monitor(
    lake: Lake, use_case: UseCase, window: str, client: Any = None, airflow_run_url: str | None = None
) -> dict[str, Any]:
    """Evaluate one window and write everything: report, MLflow run, record and history."""
    client = client or scoring.registry_client()
    record, result = evaluate_window(lake, use_case, window, client)
    report = write_report(lake, use_case, window, result)
    record["report_url"] = lake.uri(report) if report else None
    record["airflow_run_url"] = airflow_run_url
    mlflow_run = log_to_mlflow(lake, use_case, record, report, client)
    record["mlflow_run_id"], record["mlflow_run_url"] = mlflow_run["run_id"], mlflow_run["url"]
    write_history(lake, record)
    record["record_uri"] = lake.uri(record_path(use_case.name, window))
    log.info("%s %s: %s %s", use_case.name, window, record["status"], record["breaches"])
    return record


# -- retraining: cooldown and de-duplication ---------------------------------------------------
def state_path(use_case: str) -> str:
    return f"monitoring/{use_case}/retrain_state.json"


@dataclass(frozen=True)
class Decision:
    retrain: bool
    reason: str
    why_not: str = ""


def retrain_reason(record: dict[str, Any]) -> str:
    """What a retrain is for, in one line (the train DAG's conf ``reason``)."""
    wanted = [b for b in record.get("breach_details", []) if b["retrain"]]
    return f"{record['window']}: " + "; ".join(b["message"] for b in wanted) if wanted else ""


def retrain_decision(
    lake: Lake, use_case: UseCase, record: dict[str, Any], active_train_runs: int, now: datetime
) -> Decision:
    """Whether this window's breaches start a retrain now.

    No when nothing that a new model fixes breached, when a train run is queued or
    running, or within ``retrain_cooldown_hours`` of the last retrain the monitor
    triggered. The cooldown runs on wall-clock time: it limits how often models are
    rebuilt, whatever window is being evaluated.
    """
    reason = retrain_reason(record)
    if not reason:
        return Decision(False, "", "no performance or drift breach")
    if active_train_runs:
        return Decision(False, reason, f"a {use_case.name}_train run is already queued or running")
    state = read_state(lake, use_case.name)
    if last := state.get("last_triggered_at"):
        until = datetime.fromisoformat(last) + timedelta(hours=use_case.monitoring.retrain_cooldown_hours)
        if now < until:
            return Decision(
                False,
                reason,
                f"cooldown: the last retrain was triggered at {last} (window {state.get('window')}); "
                f"the next one may start after {until.isoformat()}",
            )
    return Decision(True, reason)


def read_state(lake: Lake, use_case: str) -> dict[str, Any]:
    return lake.read_json(state_path(use_case)) if lake.exists(state_path(use_case)) else {}


def record_trigger(
    lake: Lake,
    use_case: str,
    window: str,
    reason: str,
    train_run_id: str | None,
    monitor_run_id: str,
    now: datetime,
) -> dict[str, Any]:
    """Note a triggered retrain in ``retrain_state.json`` (the last 50 are kept)."""
    state = read_state(lake, use_case)
    entry = {
        "triggered_at": now.isoformat(),
        "window": window,
        "reason": reason,
        "train_run_id": train_run_id,
        "monitor_run_id": monitor_run_id,
    }
    history = [*state.get("history", []), entry][-50:]
    new = {"last_triggered_at": entry["triggered_at"], **entry, "history": history}
    new.pop("triggered_at")
    lake.write_json(state_path(use_case), new)
    return new


# -- alerts -------------------------------------------------------------------------------------
def alert_text(use_case: UseCase, record: dict[str, Any], decision: Decision) -> tuple[str, list[str]]:
    """The alert's title and lines: what breached, value against threshold, what happens next."""
    title = f"{use_case.name} monitoring breach in {record['window']}"
    lines = [f"*{b['metric']}*: {b['message']}" for b in record["breach_details"]]
    train = f"{use_case.name}_train"
    if decision.retrain:
        lines.append(f"Retraining: triggered `{train}` ({decision.reason})")
    else:
        lines.append(f"Retraining: not triggered ({decision.why_not})")
    return title, lines


def alert_links(record: dict[str, Any]) -> dict[str, str]:
    links = {
        "Drift report": record.get("report_url"),
        "Airflow run": record.get("airflow_run_url"),
        "MLflow monitoring run": record.get("mlflow_run_url"),
        "Champion model": (record.get("model") or {}).get("url"),
    }
    return {k: v for k, v in links.items() if v}


def breach_alert(use_case: UseCase, record: dict[str, Any], decision: Decision) -> Any:
    """The Slack alert of a breached window: what breached, value against threshold, what happens next."""
    from mlplatform.adapters.alerts import Alert

    title, lines = alert_text(use_case, record, decision)
    metric = use_case.monitoring.performance_metric
    facts = {"Window": record["window"], "Status": record["status"]}
    if metric in record["metrics"]:
        facts[metric] = f"{record['metrics'][metric]:.4g}"
    if "drift_share" in record["metrics"]:
        facts["Drifted features"] = f"{record['metrics']['drift_share']:.0%}"
    if record.get("model"):
        facts["Champion"] = f"version {record['model']['version']}"
    return Alert(title=title, severity="breach", lines=tuple(lines), fields=facts, links=alert_links(record))


def send_alert(use_case: UseCase, record: dict[str, Any], decision: Decision) -> bool:
    """Post the breach alert to Slack through the platform's one alerting module.

    Never raises (an alert that cannot be delivered is logged): the retrain it announces
    still happens. Returns whether it was delivered.
    """
    from mlplatform.adapters import alerts

    return alerts.send(breach_alert(use_case, record, decision))


def summary(record: dict[str, Any]) -> str:
    """A short human-readable summary of a record (the command line prints it)."""
    out = io.StringIO()
    out.write(f"{record['use_case']} {record['window']}: {record['status']}\n")
    for name, value in sorted(record["metrics"].items()):
        out.write(f"  {name:<24} {value}\n")
    for b in record.get("breach_details", []):
        out.write(f"  BREACH {b['metric']}: {b['message']}\n")
    if record.get("pending"):
        out.write(f"  pending: {', '.join(record['pending'])}\n")
    if record.get("report_url"):
        out.write(f"  report: {record['report_url']}\n")
    return out.getvalue()
