"""What a window's figures mean and what happens next: breaches, verdicts, retrain, alerts, live decisions.

- **Breaches** (:func:`breaches`): the spec's monitoring thresholds as a rule table. Each
  rule in :data:`THRESHOLD_RULES` names the metric it reads, the spec field that gives its
  limit, the comparison that breaches it and the kind of breach. Only ``performance`` and
  ``drift`` breaches ask for retraining (:data:`mlplatform.core.records.RETRAIN_KINDS`): a
  data-quality or serving breach is alerted, but a new model would not fix it. Serving
  breaches (error rate, p99 latency) are the endpoint's, not the model's: they set the
  window's serving status and alert operations, and never make the model status breach.
- **Verdicts** (:func:`model_status`, :func:`serving_status`): the window's two statuses.
- **The retrain** (:func:`retrain_decision`): the rule of :mod:`mlplatform.core.retrain`
  applied with the retrains the monitor triggered, kept in
  ``monitoring/<uc>/retrain_state.json``; the cooldown
  (``monitoring.retrain_cooldown_hours``) is measured from the last of them.
- **Alerts**: :func:`breach_alert` when the model breached (performance, drift, data
  quality): what breached, value against threshold, and whether a retrain was triggered;
  :func:`operations_alert` when the endpoint breached (error rate, p99 latency as the
  serving app measured them): its own title, the endpoint and its figures, no retrain,
  since a new model would not make a busy or failing server faster. Both are sent through
  the platform's one alerting module, :mod:`mlplatform.adapters.alerts`.

**Production truth decides** (:func:`assess_window`, called once per window by
:func:`.window.monitor`): champion against challenger, rollback on quality, and the RMSE
estimated before the labels.

- **Challenger in shadow.** When a window's batch predictions have their ground truth, the
  ``challenger`` alias scores the same trips with scoring's predictor (and so does the
  champion, when it is not the version that scored the batch).
  The paired squared errors of the window are stored as sums
  (``monitoring/<uc>/live/challenger-v<N>.json``, one entry per window, so a re-run
  replaces its window) and :func:`mlplatform.core.evidence.decide` reads all windows so far:
  ``promote``, ``retire``, ``keep`` or ``insufficient``, with the interval and trips. Level
  4 acts through the registry's alias moves (the promotion stage's own path to the
  aliases, recorded in the alias history: monitoring may not import the promotion stage),
  level 3 marks the decision ``ask`` and the monitor DAG asks a person through the promote
  DAG's approval (:func:`approval_asks`), level 2 records it. A challenger
  whose version is gone from the registry is retired with an alert.
- **Rollback on quality.** For ``monitoring.shadow_previous_windows`` labelled windows after
  a promotion, ``previous_champion`` is scored in shadow the same way
  (``previous-v<P>-after-v<N>.json``); when the champion is worse than it with confidence
  (:func:`mlplatform.core.evidence.regressed`), level 4 rolls back (the registry's rollback,
  with the evidence and ``promotion.rollback_cooldown_days`` against flapping), level 3
  asks through the promote DAG's approval; both alert with the evidence.
- **Before the labels.** A window whose performance waits for ground truth gets
  ``estimated_rmse`` (:func:`.measures.estimate`, fitted on the newest labelled earlier window);
  ``details["estimate"]`` says it is an estimate and warns when it would breach. Once the
  labels arrive the estimate is kept beside the measured RMSE with ``estimate_error``.
  Only a measured breach acts.

Regression use cases monitored on RMSE only: the comparison is on squared errors.
"""

from __future__ import annotations

import dataclasses
import logging
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Literal

import pandas as pd

from mlplatform.adapters import alerts, registry
from mlplatform.adapters.lake import Lake
from mlplatform.core import evidence, retrain
from mlplatform.core.records import (
    SERVING_METRICS,
    Breach,
    LiveAsk,
    LiveConf,
    LiveEvidence,
    MonitoringRecord,
    Record,
)
from mlplatform.core.retrain import LastTrigger, RetrainDecision
from mlplatform.core.spec import UseCase
from mlplatform.stages import scoring
from mlplatform.stages.monitoring.drift import predict
from mlplatform.stages.monitoring.measures import batch_outcomes, estimate, labelled_rows
from mlplatform.stages.monitoring.sources import ACTUAL, answer_column, version_metrics

BreachKind = Literal["performance", "drift", "quality", "serving"]


COMPARISONS: dict[str, Callable[[float, float], bool]] = {">": operator.gt, "<": operator.lt}
"""How a rule's value crosses its limit."""


@dataclass(frozen=True)
class ThresholdRule:
    """One threshold: ``reads`` breaches when ``reads <breached_when> limit``.

    In ``name``, ``reads``, ``reports`` and ``relative_to``, ``{metric}`` stands for the
    spec's ``monitoring.performance_metric``. ``limit`` is a spec field (``section.field``)
    or a fixed number. The breach carries the value of ``reports`` (default: ``reads``)
    and, for a limit relative to a reference, ``relative_to`` × (1 + limit) as its
    threshold. ``message`` is formatted with ``name``, ``value``, ``limit``, ``reported``,
    ``reference`` and the spec's ``monitoring`` section.
    """

    name: str
    reads: str
    limit: str | float
    breached_when: Literal[">", "<"]
    kind: BreachKind
    message: str
    reports: str | None = None
    relative_to: str | None = None


THRESHOLD_RULES: tuple[ThresholdRule, ...] = (
    ThresholdRule(
        "{metric}",
        "{metric}_degradation",
        "monitoring.max_relative_degradation",
        ">",
        "performance",
        "{name} {reported:.4g} is {value:.1%} worse than the champion's {reference:.4g} at training "
        "(limit {limit:.0%})",
        reports="{metric}",
        relative_to="{metric}_reference",
    ),
    ThresholdRule(
        "drift_share",
        "drift_share",
        "monitoring.drifted_share_threshold",
        ">",
        "drift",
        "{value:.0%} of features drifted (limit {limit:.0%}; a feature drifts above a distance of "
        "{monitoring.drift_threshold})",
    ),
    ThresholdRule(
        "prediction_drift",
        "prediction_drift",
        "monitoring.prediction_drift_threshold",
        ">",
        "drift",
        "prediction drift {value:.3f} (limit {limit})",
    ),
    ThresholdRule(  # success reads as 1.0, failure as 0.0
        "contract", "contract_success", 1.0, "<", "quality", "the window's snapshot failed its data contract"
    ),
    ThresholdRule(
        "quarantined_share",
        "quarantined_share",
        "contract.max_bad_row_share",
        ">",
        "quality",
        "{value:.1%} of the window's rows were quarantined (limit {limit:.0%})",
    ),
    ThresholdRule(
        "error_rate",
        "error_rate",
        "monitoring.max_error_rate",
        ">",
        "serving",
        "serving error rate {value:.2%} (limit {limit:.2%})",
    ),
    ThresholdRule(
        "p99_latency_ms",
        "p99_latency_ms",
        "monitoring.max_p99_latency_ms",
        ">",
        "serving",
        "serving p99 latency {value:.0f} ms (limit {limit:.0f} ms)",
    ),
)
"""Every threshold a window is held to, in the order its breaches are reported."""


def spec_limit(use_case: UseCase, limit: str | float) -> Any:
    """The value of a rule's ``limit``: a spec field such as ``monitoring.max_error_rate``, or the number."""
    if not isinstance(limit, str):
        return limit
    section, name = limit.split(".")
    return getattr(getattr(use_case, section), name)


def breaches(use_case: UseCase, metrics: Mapping[str, float | None]) -> list[Breach]:
    """The rules of :data:`THRESHOLD_RULES` the metrics cross; a metric not measured breaches nothing."""
    named = {"metric": use_case.monitoring.performance_metric}
    found = []
    for rule in THRESHOLD_RULES:
        value, limit = metrics.get(rule.reads.format(**named)), spec_limit(use_case, rule.limit)
        if value is None or not COMPARISONS[rule.breached_when](float(value), limit):
            continue
        name = rule.name.format(**named)
        shown = metrics.get(rule.reports.format(**named)) if rule.reports else value
        if shown is None:  # the figure a breach reports was not measured: nothing to report
            continue
        reported = float(shown)
        reference = metrics[rule.relative_to.format(**named)] if rule.relative_to else None
        threshold = reference * (1 + limit) if reference is not None else limit
        message = rule.message.format(
            name=name,
            value=value,
            limit=limit,
            reported=reported,
            reference=reference,
            monitoring=use_case.monitoring,
        )
        found.append(Breach(name, reported, threshold, rule.kind, message))
    return found


# -- the verdicts ------------------------------------------------------------------------------
def model_status(found: list[Breach], pending: list[str], metric: str) -> str:
    """The model's verdict: ``breach`` on a performance, drift or data-quality breach, else
    ``pending`` while the performance metric waits for ground truth, else ``ok``. Serving
    breaches do not count: how fast the endpoint answered says nothing about the model."""
    if any(not b.serving for b in found):
        return "breach"
    return "pending" if metric in pending else "ok"


def serving_status(found: list[Breach], metrics: Mapping[str, object]) -> str:
    """The endpoint's verdict from its error rate and p99 latency: ``breach``, ``ok``, or
    ``unmeasured`` when the window had no real-time traffic."""
    if any(b.serving for b in found):
        return "breach"
    return "ok" if any(name in metrics for name in SERVING_METRICS) else "unmeasured"


# -- the retrain -------------------------------------------------------------------------------
KEPT_TRIGGERS = 50
"""Triggered retrains remembered in the state's ``history``."""


@dataclass(frozen=True)
class WindowSummary(Record):
    """A monitored window's verdicts as the monitor DAG's `evaluate` hands them on (XCom): the
    alert, retrain and approval tasks and the retrain trigger's templates read it. ``status`` is
    the model status, kept for readers of the single status; ``backfill``: the run recomputes
    history, so it alerts, retrains and asks nothing."""

    window: str
    status: str
    model_status: str
    serving_status: str
    breaches: tuple[str, ...]
    serving_breaches: tuple[str, ...]
    record_uri: str | None
    report_url: str | None
    mlflow_run_url: str | None
    backfill: bool

    @classmethod
    def of(cls, record: MonitoringRecord, backfill: bool) -> WindowSummary:
        """The summary of the window's record: its model and serving breaches named apart."""
        return cls(
            window=record.window,
            status=record.model_status,
            model_status=record.model_status,
            serving_status=record.serving_status,
            breaches=tuple(b.metric for b in record.model_breaches),
            serving_breaches=tuple(b.metric for b in record.serving_breaches),
            record_uri=record.record_uri,
            report_url=record.report_url,
            mlflow_run_url=record.mlflow_run_url,
            backfill=backfill,
        )


def state_path(use_case: str) -> str:
    return f"monitoring/{use_case}/retrain_state.json"


@dataclass(frozen=True)
class Trigger(Record):
    """One retrain the monitor triggered: when, for which window and why, and the two runs."""

    triggered_at: str  # ISO 8601, UTC
    window: str
    reason: str
    train_run_id: str | None
    monitor_run_id: str | None


@dataclass(frozen=True)
class RetrainState(Record):
    """``retrain_state.json``: the last retrain the monitor triggered, and the ones before it
    (the last :data:`KEPT_TRIGGERS`, ``history``, oldest first)."""

    last_triggered_at: str
    window: str
    reason: str
    train_run_id: str | None
    monitor_run_id: str | None
    history: tuple[Trigger, ...] = ()

    @property
    def last(self) -> LastTrigger:
        return LastTrigger(datetime.fromisoformat(self.last_triggered_at), self.window)


def retrain_decision(
    lake: Lake, use_case: UseCase, record: MonitoringRecord, active_train_runs: int, now: datetime
) -> RetrainDecision:
    """Whether this window's breaches start a retrain now (:func:`mlplatform.core.retrain.on_breaches`)."""
    state = read_state(lake, use_case.name)
    last = None if state is None else state.last
    return retrain.on_breaches(use_case, record, active_train_runs, last, now)


def read_state(lake: Lake, use_case: str) -> RetrainState | None:
    """The retrains the monitor triggered; ``None`` before the first (or when the state was emptied)."""
    stored = lake.read_json(state_path(use_case)) if lake.exists(state_path(use_case)) else {}
    return RetrainState.from_dict(stored) if stored else None


def record_trigger(
    lake: Lake,
    use_case: str,
    window: str,
    reason: str,
    train_run_id: str | None,
    monitor_run_id: str | None,
    now: datetime,
) -> dict[str, Any]:
    """Note a triggered retrain in ``retrain_state.json`` (the last :data:`KEPT_TRIGGERS` are kept);
    returns the state's JSON form."""
    before = read_state(lake, use_case)
    entry = Trigger(now.isoformat(), window, reason, train_run_id, monitor_run_id)
    history = (*(before.history if before else ()), entry)[-KEPT_TRIGGERS:]
    state = RetrainState(entry.triggered_at, window, reason, train_run_id, monitor_run_id, history)
    lake.write_json(state_path(use_case), state.to_dict())
    return state.to_dict()


# -- the alerts --------------------------------------------------------------------------------
def alert_text(
    use_case: UseCase, record: MonitoringRecord, decision: RetrainDecision
) -> tuple[str, list[str]]:
    """The alert's title and lines: what breached, value against threshold, what happens next."""
    title = f"{use_case.name} monitoring breach in {record.window}"
    lines = [f"*{b.metric}*: {b.message}" for b in record.model_breaches]
    train = f"{use_case.name}_train"
    if decision.retrain:
        lines.append(f"Retraining: triggered `{train}` ({decision.reason})")
    else:
        lines.append(f"Retraining: not triggered ({decision.why_not})")
    return title, lines


def alert_links(record: MonitoringRecord) -> dict[str, str]:
    links = {
        "Drift report": record.report_url,
        "Airflow run": record.airflow_run_url,
        "MLflow monitoring run": record.mlflow_run_url,
        "Champion model": (record.model or {}).get("url"),
    }
    return {k: v for k, v in links.items() if v}


def breach_alert(use_case: UseCase, record: MonitoringRecord, decision: RetrainDecision) -> Any:
    """The Slack alert of a breached window: what breached, value against threshold, what happens next."""
    from mlplatform.adapters.alerts import Alert

    title, lines = alert_text(use_case, record, decision)
    metric = use_case.monitoring.performance_metric
    facts = {"Window": record.window, "Model status": record.model_status}
    if metric in record.metrics:
        facts[metric] = f"{record.metrics[metric]:.4g}"
    if "drift_share" in record.metrics:
        facts["Drifted features"] = f"{record.metrics['drift_share']:.0%}"
    if record.model_version is not None:
        facts["Champion"] = f"version {record.model_version}"
    return Alert(title=title, severity="breach", lines=tuple(lines), fields=facts, links=alert_links(record))


def send_alert(use_case: UseCase, record: MonitoringRecord, decision: RetrainDecision) -> bool:
    """Post the breach alert to Slack through the platform's one alerting module.

    Never raises (an alert that cannot be delivered is logged): the retrain it announces
    still happens. Returns whether it was delivered.
    """
    from mlplatform.adapters import alerts

    return alerts.send(breach_alert(use_case, record, decision))


def endpoints(use_case: UseCase, record: MonitoringRecord) -> list[str]:
    """Where the window's real-time traffic was served: the serving app, SageMaker's endpoint."""
    from mlplatform.adapters import sagemaker, settings

    found = [f"{settings.get('MLPLATFORM_SERVING_URL').rstrip('/')}/predict"]
    if record.metrics.get("capture_lines"):
        found.append(f"SageMaker endpoint {sagemaker.endpoint_name(use_case)}")
    return found


def operations_alert(use_case: UseCase, record: MonitoringRecord) -> Any:
    """The operations alert of a window whose endpoint breached: error rate or p99 latency.

    Its own title (not a monitoring breach: the model is not at fault), the endpoint, the
    figures against their limits, and no retrain.
    """
    from mlplatform.adapters.alerts import Alert

    served = endpoints(use_case, record)
    title = f"{use_case.name} serving endpoint out of bounds in {record.window}"
    lines = [f"*{b.metric}*: {b.message}" for b in record.serving_breaches]
    lines.append(f"Endpoint: {', '.join(served)}")
    lines.append(
        "No retrain: latency and errors are the endpoint's (load, capacity, a failing "
        f"dependency), not the model's. The model's status is {record.model_status}."
    )
    facts = {"Window": record.window, "Endpoint": ", ".join(served)}
    for name, unit in (("p99_latency_ms", " ms"), ("error_rate", ""), ("requests", "")):
        if name in record.metrics:
            value = record.metrics[name]
            facts[name] = f"{value:.2%}" if name == "error_rate" else f"{value:.0f}{unit}"
    links = {"Airflow run": record.airflow_run_url, "MLflow monitoring run": record.mlflow_run_url}
    return Alert(title=title, severity="warning", lines=tuple(lines), fields=facts, links=links)


def send_operations_alert(use_case: UseCase, record: MonitoringRecord) -> bool:
    """Post the operations alert (never raises; it is queued in the outbox until delivered)."""
    from mlplatform.adapters import alerts

    return alerts.send(operations_alert(use_case, record))


log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class LiveVerdict(Record):
    """One live comparison of a window, as the record's ``details["live"]`` keeps it.

    ``challenger``: the challenger ``version`` against the champion; ``rollback``: the
    ``champion`` against the ``previous`` champion (``outcome`` ``promote`` means roll back).
    The decision of :mod:`mlplatform.core.evidence` with its evidence, whether it ``acted``
    (level 4) and, at level 3, what it ``ask``s a person to approve. A challenger gone from
    the registry is retired without evidence.
    """

    omitted_when_none: ClassVar[tuple[str, ...]] = (
        "version", "champion", "previous", "interval", "trips", "windows", "minimum_effect", "ask",
    )  # fmt: skip

    version: str | None = None
    champion: str | None = None
    previous: str | None = None
    outcome: str
    reason: str
    interval: Mapping[str, float | int] | None = None
    trips: int | None = None
    windows: tuple[str, ...] | None = None
    trips_needed: int | None = None
    minimum_effect: float | None = None
    acted: bool = False
    ask: str | None = None

    @classmethod
    def of(
        cls,
        decision: evidence.LiveDecision,
        version: str | None = None,
        champion: str | None = None,
        previous: str | None = None,
    ) -> LiveVerdict:
        """The verdict of ``decision`` on the challenger ``version``, or on the ``champion``
        against the ``previous`` one."""
        d = decision
        return cls(
            version=version, champion=champion, previous=previous, outcome=d.outcome, reason=d.reason,
            interval=d.interval.to_dict(), trips=d.trips, windows=d.windows, trips_needed=d.trips_needed,
            minimum_effect=d.minimum_effect,
        )  # fmt: skip

    def evidence(self, comparison: str) -> LiveEvidence:
        """What the verdict rests on, to travel with an ask (``comparison``: its key in the record)."""
        return LiveEvidence(
            self.interval, self.trips or 0, self.windows or (), self.minimum_effect, comparison
        )


@dataclass(frozen=True)
class ApprovalRun(Record):
    """A promote run that asks about a live decision: what `trigger_approval` is expanded with."""

    trigger_run_id: str
    conf: LiveConf


def live_path(use_case: str, name: str) -> str:
    return f"monitoring/{use_case}/live/{name}.json"


def applies(use_case: UseCase) -> bool:
    return use_case.task == "regression" and use_case.monitoring.performance_metric == "rmse"


# -- paired evidence --------------------------------------------------------------------------------
def answers(use_case: UseCase, rows: pd.DataFrame, version: str) -> Any | None:
    """``version``'s answers on the window's trips: the batch answers when it scored the batch,
    else scored in shadow now with scoring's predictor; ``None`` when the version is gone."""
    if "model_version" in rows and (rows["model_version"].astype(str) == version).all():
        return rows[answer_column(use_case)].to_numpy(float)
    model = _load(use_case, version)
    return None if model is None else predict(use_case, model, rows)


def window_sums(use_case: UseCase, rows: pd.DataFrame, reference: Any, candidate: Any) -> evidence.PairedSums:
    """Paired sums of one window: two models' answers on exactly the same labelled trips."""
    return evidence.PairedSums.of(rows[ACTUAL], reference, candidate)


def accumulate(
    lake: Lake, path: str, window: str, sums: evidence.PairedSums
) -> tuple[evidence.PairedSums, list[str]]:
    """Store the window's sums (replacing a re-run's) and return the total over every window so far."""
    stored = lake.read_json(path) if lake.exists(path) else {"windows": {}}
    stored["windows"][window] = sums.to_dict()
    lake.write_json(path, stored)
    windows = sorted(stored["windows"])
    return evidence.PairedSums.total(
        evidence.PairedSums.from_dict(stored["windows"][w]) for w in windows
    ), windows


def _load(use_case: UseCase, version: str) -> Any | None:
    """The registered version's model, or ``None`` when the version is gone from the registry."""
    try:
        return scoring.load_model(f"models:/{use_case.model_name}/{version}")
    except Exception as exc:  # MLflow raises its own, OSError or a 404 wrapped: all mean "gone"
        log.warning("%s version %s could not be loaded: %s", use_case.model_name, version, exc)
        return None


def _alert(
    use_case: UseCase, severity: Any, title: str, lines: list[str], decision: evidence.LiveDecision
) -> None:
    facts = {
        "Use case": use_case.name,
        "Improvement": decision.interval.percent() if decision.trips else "-",
        "Labelled trips": f"{decision.trips:,}",
        "Windows": ", ".join(decision.windows) or "-",
    }
    alerts.send(alerts.Alert(title=title, severity=severity, lines=tuple(lines), fields=facts))


# -- the challenger ---------------------------------------------------------------------------------
def challenger_decision(
    lake: Lake, use_case: UseCase, window: str, rows: pd.DataFrame, client: Any, run_id: str | None
) -> LiveVerdict | None:
    """Shadow-score the challenger on the window's labelled trips, decide on all windows so far, act."""
    version = registry.alias_version(client, use_case.model_name, registry.CHALLENGER)
    if version is None:
        return None
    champion = registry.alias_version(client, use_case.model_name, registry.CHAMPION)
    reference = None if champion is None else answers(use_case, rows, champion)
    if reference is None:
        return None  # no champion to compare with
    candidate = answers(use_case, rows, version)
    if candidate is None:
        gone = LiveVerdict(
            version=version, outcome="retire", reason=f"version {version} is gone from the registry"
        )
        if use_case.maturity_level <= 2:  # level 2 (and backfills) record it only
            return gone
        why = {"by": "monitor", "run_id": run_id, "reason": gone.reason}
        registry.retire_challenger(client, use_case.model_name, version, why)
        alerts.send(
            alerts.Alert(
                title=f"{use_case.name}: challenger version {version} is gone from the registry, retired",
                severity="warning",
                lines=(f"`challenger` pointed at version {version}, which no longer loads; alias removed.",),
            )
        )
        return dataclasses.replace(gone, acted=True)
    total, windows = accumulate(
        lake,
        live_path(use_case.name, f"challenger-v{version}"),
        window,
        window_sums(use_case, rows, reference, candidate),
    )
    decision = evidence.decide(
        total,
        use_case.promotion.min_relative_improvement,
        windows,
        max_windows=use_case.monitoring.live_max_windows,
        confidence=use_case.promotion.confidence,
    )
    acted = _act_on_challenger(use_case, version, decision, client, run_id)
    asks = use_case.maturity_level == 3 and decision.outcome in ("promote", "retire")
    # At level 3 the monitor DAG asks through the promote DAG's approval.
    return dataclasses.replace(
        LiveVerdict.of(decision, version=version), acted=acted, ask=decision.outcome if asks else None
    )


def _act_on_challenger(
    use_case: UseCase, version: str, decision: evidence.LiveDecision, client: Any, run_id: str | None
) -> bool:
    level, name = use_case.maturity_level, use_case.model_name
    if decision.outcome not in ("promote", "retire"):
        return False
    evidence = {"live": decision.to_dict()}
    why = {"by": "monitor", "run_id": run_id, "reason": decision.reason, "evidence": evidence}
    verb = "promoted" if decision.outcome == "promote" else "retired"
    if level >= 4:
        if decision.outcome == "promote":
            champion = registry.alias_version(client, name, registry.CHAMPION)
            registry.promote(name, version, {**why, "expected_champion": champion}, client)
        else:
            registry.retire_challenger(client, name, version, why)
        _alert(use_case, "info", f"{use_case.name}: challenger version {version} {verb} on live evidence",
               [decision.reason], decision)  # fmt: skip
        return True
    return False  # level 3 asks (the record's "ask"), level 2 records the decision


# -- rollback on quality ------------------------------------------------------------------------------
def rollback_decision(
    lake: Lake, use_case: UseCase, window: str, rows: pd.DataFrame, client: Any, run_id: str | None
) -> LiveVerdict | None:
    """Score ``previous_champion`` in shadow for a few windows after a promotion; roll back (or ask)
    when the champion is worse with confidence."""
    name = use_case.model_name
    previous = registry.alias_version(client, name, registry.PREVIOUS)
    current = registry.alias_version(client, name, registry.CHAMPION)
    if previous is None or current is None:
        return None
    path = live_path(use_case.name, f"previous-v{previous}-after-v{current}")
    stored = lake.read_json(path)["windows"] if lake.exists(path) else {}
    if window not in stored and len(stored) >= use_case.monitoring.shadow_previous_windows:
        return None  # the watch after this promotion is over
    mine, theirs = answers(use_case, rows, current), answers(use_case, rows, previous)
    if mine is None or theirs is None:
        return None
    total, windows = accumulate(lake, path, window, window_sums(use_case, rows, mine, theirs))
    decision = evidence.regressed(total, windows)
    out = LiveVerdict.of(decision, champion=current, previous=previous)
    if decision.outcome != "promote" or use_case.maturity_level <= 2:
        return out  # level 2 (and backfills) record the regression; a person reads the record
    lines = [f"Champion version {current} is worse than version {previous} on live labels.", decision.reason]
    if use_case.maturity_level >= 4:
        try:
            registry.rollback(
                name, "monitor", run_id, reason=decision.reason, evidence={"live": decision.to_dict()},
                cooldown_days=use_case.promotion.rollback_cooldown_days,
            )  # fmt: skip
            out = dataclasses.replace(out, acted=True)
            lines.append(f"Rolled back to version {previous}.")
        except registry.PromotionError as refused:  # within the cooldown: alert, do not flap
            lines.append(f"Not rolled back: {refused}")
    else:
        # The monitor DAG asks through the promote DAG's approval.
        out = dataclasses.replace(out, ask="rollback")
        lines.append(f"Asked for approval: the rollback waits in {use_case.name}_promote's approval.")
    _alert(use_case, "breach", f"{use_case.name}: champion version {current} regressed on live labels",
           lines, decision)  # fmt: skip
    return out


# -- level 3: what to ask -------------------------------------------------------------------------------
def approval_asks(record: MonitoringRecord) -> list[LiveAsk]:
    """The live decisions of the window's record that ask for a person's approval (level 3)."""
    found = {key: LiveVerdict.from_dict(v) for key, v in (record.details.get("live") or {}).items()}
    return [
        LiveAsk(v.ask, str(v.version if key == "challenger" else v.champion), v.reason, v.evidence(key))
        for key, v in sorted(found.items())
        if v.ask
    ]


def approval_runs(record: MonitoringRecord) -> list[ApprovalRun]:
    """The promote runs (run id and conf) that ask about the window's live decisions."""
    return [ApprovalRun(ask.run_id, ask.conf(record.window)) for ask in approval_asks(record)]


# -- one window -----------------------------------------------------------------------------------------
def assess_window(
    lake: Lake,
    use_case: UseCase,
    record: MonitoringRecord,
    client: Any,
    run_id: str | None = None,
    act: bool = True,
) -> MonitoringRecord:
    """The record with the estimate before labels and the live decisions of its window added.

    ``act=False`` (a backfill recomputing history) records the decisions as level 2 does:
    nothing moves and nothing is alerted.
    """
    if not applies(use_case):
        return record
    if not act:
        use_case = use_case.model_copy(update={"maturity_level": min(use_case.maturity_level, 2)})
    metrics, details = dict(record.metrics), dict(record.details)
    champion_metrics = {}
    if record.model_version is not None:
        champion_metrics = version_metrics(client, use_case.model_name, record.model_version)
    found, shown = estimate(lake, use_case, record, champion_metrics, alert=act)
    metrics.update(found)
    if shown:
        details["estimate"] = shown
    joined, _ = batch_outcomes(lake, use_case, record.window) if "rmse" in record.metrics else (None, "")
    if joined is not None and len(rows := labelled_rows(use_case, joined)):
        decided: dict[str, LiveVerdict] = {}
        if (
            challenger := challenger_decision(lake, use_case, record.window, rows, client, run_id)
        ) is not None:
            decided["challenger"] = challenger
        promoted_now = challenger is not None and challenger.outcome == "promote" and challenger.acted
        # The window that promoted the challenger is not evidence against it: the watch starts after.
        if not promoted_now and (
            rollback := rollback_decision(lake, use_case, record.window, rows, client, run_id)
        ):
            decided["rollback"] = rollback
        if decided:
            details["live"] = {key: verdict.to_dict() for key, verdict in decided.items()}
    return dataclasses.replace(record, metrics=metrics, details=details)
