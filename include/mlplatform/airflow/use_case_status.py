"""What the MLOps page knows about each use case: the state of every stage, as typed records.

:func:`collect` reads the registry (the aliased versions and their metrics) and the lake
(contract months, the latest training set and scored month, monitoring records, the alias
history) into a :class:`UseCaseStatus`. From it, :func:`incidents` picks the breaches that
stay listed (the rule in :mod:`mlplatform.airflow.mlops_page`), :func:`live_verdicts` the
latest live decisions on delayed labels (:func:`live_history` every one of them), and
:func:`tenures` each version's time under an alias.
:mod:`mlplatform.airflow.mlops_page` renders them; the plugin adds what only Airflow knows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from mlplatform.adapters import registry, snapshots
from mlplatform.adapters.lake import Lake
from mlplatform.core.evidence import Interval
from mlplatform.core.records import (
    SERVING_KINDS,
    SERVING_METRICS,
    AliasEvent,
    MonitoringRecord,
    ScoredOutput,
)
from mlplatform.core.spec import UseCase
from mlplatform.stages import contracts as contract_stage
from mlplatform.stages.monitoring.decision import LiveVerdict

ALIASES = ("champion", "challenger", "previous_champion")

# A contract month's states, and which of them are bad news.
PASSED, QUARANTINED, BREACHED, REFUSED = "passed", "quarantined", "breached", "refused"
_CONTRACT_STATES = {"pass": PASSED, "quarantine": QUARANTINED, "breach": BREACHED, "refused": REFUSED}
BAD_CONTRACT_STATES = (BREACHED, REFUSED)


def parse_time(value: Any) -> datetime | None:
    """An ISO time (naive ones are UTC) or epoch milliseconds (MLflow's), else ``None``."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1000, UTC) if value > 0 else None
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def version_label(version: str | None, aliases: Sequence[str] = ()) -> str:
    """``v7 (champion)``; ``v6 (previous_champion)``; ``v8`` without aliases."""
    if version is None:
        return "none"
    return f"v{version}" + (f" ({', '.join(aliases)})" if aliases else "")


def airflow_run_link(dag_id: str, run_id: str | None) -> str:
    """The Airflow UI's page of a dag run (its runs list without a run id), relative to ``/mlops/``."""
    base = f"../dags/{quote(dag_id, safe='')}/runs"
    return f"{base}/{quote(run_id, safe='')}" if run_id else base


# -- the facts ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Limits:
    """The spec's thresholds the charts draw, and the unit of the performance metric."""

    metric: str = "rmse"
    unit: str = ""
    max_relative_degradation: float | None = None
    drifted_share: float | None = None
    max_bad_row_share: float | None = None

    @classmethod
    def of(cls, use_case: UseCase) -> Limits:
        unit = use_case.target.unit if use_case.monitoring.performance_metric in ("rmse", "mae") else "score"
        return cls(
            metric=use_case.monitoring.performance_metric,
            unit=unit,
            max_relative_degradation=use_case.monitoring.max_relative_degradation,
            drifted_share=use_case.monitoring.drifted_share_threshold,
            max_bad_row_share=use_case.contract.max_bad_row_share,
        )


@dataclass(frozen=True)
class PendingApproval:
    """A person's decision the platform waits for: what, where to answer, and the gate table."""

    subject: str
    url: str
    body_md: str = ""


@dataclass(frozen=True)
class ModelVersion:
    """A registered model version as the page shows it: its aliases, metrics and audit tags."""

    version: str
    aliases: tuple[str, ...] = ()
    run_id: str | None = None
    created: Any = None  # epoch milliseconds (MLflow) or ISO text
    tags: Mapping[str, str] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return version_label(self.version, self.aliases)

    @property
    def promoted_at(self) -> str | None:
        return (
            self.tags.get("promotion.at") or self.tags.get("champion_since") or self.tags.get("decision.at")
        )

    @property
    def reason(self) -> str:
        return (
            self.tags.get("promotion.reason")
            or self.tags.get("decision.reason")
            or self.tags.get("reason", "")
        )

    @property
    def decision_run_id(self) -> str | None:
        run = self.tags.get("decision.run_id")
        return run if run and not run.startswith("cli:") else None


@dataclass(frozen=True)
class ContractMonth:
    """A month's newest contract verdict, from its snapshot manifest or its breach record."""

    month: str
    state: str  # passed | quarantined | breached | refused
    bad_row_share: float | None = None
    reasons: tuple[str, ...] = ()
    notices: tuple[str, ...] = ()
    jumps: tuple[str, ...] = ()  # rules whose share jumped above their usual range (these alert)
    data_docs_url: str | None = None
    recorded_at: str | None = None
    run_id: str | None = None

    @property
    def passed(self) -> bool:
        return self.state in (PASSED, QUARANTINED)

    @classmethod
    def from_contract(
        cls, month: str, block: Mapping[str, Any], recorded_at: Any = None, reasons: Sequence[str] = ()
    ) -> ContractMonth:
        """Read the ``contract`` block a manifest or breach record holds (older ones lack fields)."""
        severity = str(block.get("severity") or ("pass" if block.get("success", True) else "breach"))
        state = _CONTRACT_STATES.get(severity, severity)
        share = block.get("bad_row_share")
        if state == PASSED and any(dict(block.get("rule_counts") or {}).values()):
            state = QUARANTINED  # manifests written before severities
        return cls(
            month=month,
            state=state,
            bad_row_share=float(share) if isinstance(share, int | float) else None,
            reasons=tuple(str(r) for r in (reasons or block.get("breaches") or ())),
            notices=tuple(str(w) for w in block.get("warnings") or ()),
            jumps=tuple(str(j) for j in block.get("jumps") or ()),
            data_docs_url=block.get("data_docs_url"),
            recorded_at=str(recorded_at) if recorded_at else None,
            run_id=block.get("run_id"),
        )


@dataclass(frozen=True)
class TrainingSet:
    """The latest training set assembled: which months it trained and validated on."""

    train_months: tuple[str, ...]
    validation_months: tuple[str, ...]
    train_rows: int = 0
    validation_rows: int = 0

    @property
    def month(self) -> str:
        return (self.validation_months or self.train_months or ("?",))[-1]


@dataclass(frozen=True)
class Incident:
    """A breach (or refused month) the page lists at the top, open until a later month passes."""

    stage: str  # contract | model | serving
    month: str
    what: str
    reasons: tuple[str, ...]
    closed_by: str | None = None
    at: str | None = None
    links: tuple[tuple[str, str], ...] = ()  # (label, url); urls may still be lake locations

    @property
    def open(self) -> bool:
        return self.closed_by is None


@dataclass
class UseCaseStatus:
    name: str
    task: str
    maturity_level: int
    models: dict[str, ModelVersion] = field(default_factory=dict)
    contracts: list[ContractMonth] = field(default_factory=list)  # one per month, oldest first
    trend: list[contract_stage.RuleTrend] = field(default_factory=list)  # month x rule, oldest first
    training: TrainingSet | None = None
    scored: ScoredOutput | None = None
    monitoring: list[MonitoringRecord] = field(default_factory=list)  # oldest window first
    aliases: list[AliasEvent] = field(default_factory=list)  # applied alias moves, oldest first
    approvals: list[PendingApproval] = field(default_factory=list)
    limits: Limits = field(default_factory=Limits)
    errors: list[str] = field(default_factory=list)

    @property
    def contract(self) -> ContractMonth | None:
        """The latest month's verdict."""
        return self.contracts[-1] if self.contracts else None

    @property
    def quarantine(self) -> list[tuple[str, float]]:
        """(month, share of rows quarantined) of every month that passed."""
        return [
            (c.month, c.bad_row_share) for c in self.contracts if c.passed and c.bad_row_share is not None
        ]


# -- reading the lake and the registry ----------------------------------------------------------
def _model_facts(client: Any, name: str, version: str, aliases: tuple[str, ...]) -> ModelVersion | None:
    try:
        found = client.get_model_version(name, version)
    except Exception:  # deleted meanwhile: nothing to show
        return None
    metrics: dict[str, float] = {}
    if found.run_id:
        try:
            run = client.get_run(found.run_id)
            metrics = {k: v for k, v in run.data.metrics.items() if "/" not in k}
        except Exception:
            metrics = {}
    return ModelVersion(
        version=str(found.version),
        aliases=aliases,
        run_id=found.run_id,
        created=found.creation_timestamp,
        tags=dict(found.tags or {}),
        metrics=metrics,
    )


def registry_models(client: Any, name: str) -> dict[str, ModelVersion]:
    """The versions the aliases point at, keyed by alias; each version carries all its aliases."""
    try:
        aliases = dict(client.get_registered_model(name).aliases or {})
    except Exception:  # not registered yet
        return {}
    by_version: dict[str, list[str]] = {}
    for alias in ALIASES:
        if alias in aliases:
            by_version.setdefault(str(aliases[alias]), []).append(alias)
    models = {}
    for version, names in by_version.items():
        if (facts := _model_facts(client, name, version, tuple(names))) is not None:
            models.update(dict.fromkeys(names, facts))
    return models


def monitoring_history(lake: Lake, use_case: str) -> list[MonitoringRecord]:
    """Monitoring records (``monitoring/<use case>/history/*/metrics.json``), oldest first.

    Records written before a field existed are read with what they have (the oldest named
    their breached metrics only: each becomes a breach of its kind, so none reads as a pass);
    one that cannot be read at all is skipped.
    """
    records = []
    for entry in lake.list(f"monitoring/{use_case}/history"):
        if entry.path.endswith("/metrics.json"):
            try:
                stored = lake.read_json(entry.path)
                named = [str(m) for m in stored.get("breaches") or ()]
                details = stored.get("breach_details") or [_named_breach(m, stored) for m in named]
                status = "breach" if named else "ok"
                records.append(
                    MonitoringRecord.from_dict(
                        {"use_case": use_case, "status": status, **stored, "breach_details": details}
                    )
                )
            except Exception:
                continue
    return sorted(records, key=lambda r: r.window)


def _named_breach(metric: str, stored: Mapping[str, Any]) -> dict[str, Any]:
    kind = SERVING_KINDS[0] if metric in SERVING_METRICS else "drift" if "drift" in metric else "performance"
    value = (stored.get("metrics") or {}).get(metric, math.nan)
    return {
        "metric": metric,
        "value": value,
        "threshold": math.nan,
        "kind": kind,
        "message": metric,
        "retrain": False,
    }


def contract_months(lake: Lake, use_case: str) -> list[ContractMonth]:
    """Each month's newest contract verdict, oldest month first.

    Passing months are read from their current snapshot's manifest, breached ones from their
    breach records (``quarantine/<use case>/month=M/<digest>/breach.json``); when a month has
    both (a delivery breached, another passed), the newer one is the month's verdict, as in
    the contract stage's own trend (:func:`mlplatform.stages.contracts.lake_trend`), which
    the page charts; this reader keeps what the page says besides: reasons, notices, links.
    """
    found: dict[str, ContractMonth] = {}
    for snapshot in snapshots.current_snapshots(lake, use_case):
        block = snapshot.manifest.get("contract") or {}
        found[snapshot.month] = ContractMonth.from_contract(
            snapshot.month, block, snapshot.manifest.get("created_at")
        )
    for entry in lake.list(f"quarantine/{use_case}"):
        if not entry.path.endswith("/breach.json"):
            continue
        try:
            record = lake.read_json(entry.path)
            month = str(record.get("month") or entry.path.split("/")[2].removeprefix("month="))
            block = {"severity": record.get("severity", "breach"), **(record.get("contract") or {})}
            for key in ("run_id", "data_docs_url"):
                if record.get(key) and not block.get(key):
                    block[key] = record[key]
            breach = ContractMonth.from_contract(
                month, block, record.get("recorded_at"), tuple(record.get("what_broke") or ())
            )
        except Exception:
            continue
        current = found.get(month)
        if current is None or _later(breach.recorded_at, current.recorded_at):
            found[month] = breach
    return [found[m] for m in sorted(found)]


def _later(a: str | None, b: str | None) -> bool:
    first, second = parse_time(a), parse_time(b)
    return first is not None and (second is None or first > second)


def latest_training(lake: Lake, use_case: str) -> TrainingSet | None:
    """The training set with the latest validation month (``features/<use case>/training/*``)."""
    best: TrainingSet | None = None
    for entry in lake.list(f"features/{use_case}/training"):
        if not entry.path.endswith("/lineage.json"):
            continue
        try:
            data = lake.read_json(entry.path)
            found = TrainingSet(
                tuple(data.get("train_months") or ()),
                tuple(data.get("validation_months") or ()),
                int(data.get("train_rows") or 0),
                int(data.get("validation_rows") or 0),
            )
        except Exception:
            continue
        if best is None or found.month >= best.month:
            best = found
    return best


def latest_scored(lake: Lake, use_case: str) -> ScoredOutput | None:
    """The latest month's current predictions (``predictions/<use case>/month=M/CURRENT.json``)."""
    pointers = sorted(
        e.path for e in lake.list(f"predictions/{use_case}") if e.path.endswith("/CURRENT.json")
    )
    for path in reversed(pointers):
        try:
            return ScoredOutput.from_dict(lake.read_json(path))
        except Exception:
            continue
    return None


def collect(use_case: UseCase, lake: Lake, tracking_uri: str | None) -> UseCaseStatus:
    """The state of one use case; unreachable parts are reported in ``errors``, not raised."""
    status = UseCaseStatus(use_case.name, use_case.task, use_case.maturity_level, limits=Limits.of(use_case))
    if tracking_uri:
        try:
            from mlflow import MlflowClient

            status.models = registry_models(MlflowClient(tracking_uri=tracking_uri), use_case.model_name)
        except Exception as exc:
            status.errors.append(f"registry unreachable: {exc}")
    try:
        status.contracts = contract_months(lake, use_case.name)
        status.trend = contract_stage.lake_trend(lake, use_case)
        status.monitoring = monitoring_history(lake, use_case.name)
        status.training = latest_training(lake, use_case.name)
        status.scored = latest_scored(lake, use_case.name)
        status.aliases = registry.applied(registry.alias_events(use_case.model_name, lake))
    except Exception as exc:
        status.errors.append(f"lake unreachable: {exc}")
    return status


# -- production truth: live decisions and the alias history -------------------------------------
LIVE_WORDS = {
    "challenger": {
        "promote": "promote the challenger",
        "retire": "retire the challenger",
        "keep": "keep the challenger in shadow",
        "insufficient": "insufficient evidence yet",
    },
    "rollback": {
        "promote": "roll back to the previous champion",
        "keep": "keep the champion (no confident regression)",
        "insufficient": "insufficient evidence yet against the previous champion",
    },
}


@dataclass(frozen=True)
class WindowVerdict:
    """A window's live decision as the page and the loop's summary list it (read from the
    stored :class:`~mlplatform.stages.monitoring.decision.LiveVerdict`): ``kind`` is
    ``challenger`` (the challenger in shadow) or ``rollback`` (the champion against the
    previous one); ``version`` is the challenger's or, for a rollback, the previous champion's."""

    window: str
    kind: str
    outcome: str
    reason: str
    version: str | None
    trips: int = 0
    trips_needed: int | None = None
    interval: Interval | None = None
    acted: bool = False

    @classmethod
    def of(cls, window: str, kind: str, verdict: LiveVerdict) -> WindowVerdict:
        return cls(
            window=window,
            kind=kind,
            outcome=verdict.outcome,
            reason=verdict.reason,
            version=verdict.version if kind == "challenger" else verdict.previous,
            trips=verdict.trips or 0,
            trips_needed=verdict.trips_needed,
            interval=Interval.from_dict(verdict.interval) if verdict.interval else None,
            acted=verdict.acted,
        )

    @property
    def words(self) -> str:
        return LIVE_WORDS.get(self.kind, {}).get(self.outcome, self.outcome)

    @property
    def bad(self) -> bool:
        """A decision a person should look at: a rollback due, or a challenger to retire."""
        return (self.kind, self.outcome) in (("rollback", "promote"), ("challenger", "retire"))


def window_verdicts(record: MonitoringRecord) -> list[WindowVerdict]:
    """The live decisions a window's record holds (rollback first: it is the worse news)."""
    decided = record.details.get("live")
    if not isinstance(decided, Mapping):
        return []
    found = []
    for kind in ("rollback", "challenger"):
        if isinstance(decided.get(kind), Mapping):
            try:
                found.append(WindowVerdict.of(record.window, kind, LiveVerdict.from_dict(decided[kind])))
            except (KeyError, TypeError, ValueError):
                continue  # a damaged entry: the next window's record will say
    return found


def live_verdicts(records: Sequence[MonitoringRecord]) -> list[WindowVerdict]:
    """The live decisions of the newest window that has any."""
    for record in reversed(records):
        if found := window_verdicts(record):
            return found
    return []


def live_history(records: Sequence[MonitoringRecord]) -> list[WindowVerdict]:
    """Every live decision of every window, oldest window first: the trail of what production
    truth decided (the challengers promoted and retired, the rollbacks) and on what evidence."""
    return [verdict for record in records for verdict in window_verdicts(record)]


def tenures(events: Sequence[AliasEvent], alias: str) -> list[tuple[AliasEvent, str | None]]:
    """Each tenure of ``alias``: the applied move that set a version, and when the next move
    of the alias ended it (``None``: it still holds). A move that removed the alias starts none."""
    moves = [e for e in events if e.alias == alias]
    return [
        (e, moves[n + 1].at if n + 1 < len(moves) else None)
        for n, e in enumerate(moves)
        if e.version is not None
    ]


# -- the worst news -----------------------------------------------------------------------------
def _record_links(record: MonitoringRecord, dag_id: str) -> tuple[tuple[str, str], ...]:
    links = [("Airflow run", record.airflow_run_url or airflow_run_link(dag_id, None))]
    if record.report_url:
        links.append(("drift report", record.report_url))
    if record.mlflow_run_url:
        links.append(("MLflow run", record.mlflow_run_url))
    return tuple(links)


def _contract_incident(c: ContractMonth, dag_id: str) -> Incident:
    """A breached or refused month: its reasons, its validate run (else the runs list), Data Docs."""
    links = [("Airflow run", airflow_run_link(dag_id, c.run_id))]
    if c.data_docs_url:
        links.append(("Data Docs", c.data_docs_url))
    reasons = c.reasons or ("no reason recorded",)
    return Incident("contract", c.month, f"contract {c.state}", reasons, at=c.recorded_at, links=tuple(links))


def incidents(status: UseCaseStatus) -> list[Incident]:
    """Breaches across months, open ones first, newest first (the rule in the module docstring)."""
    validate = f"{status.name}_validate"
    monitor = f"{status.name}_monitor"
    contract_steps = [
        (c.month, c.passed, None if c.passed else _contract_incident(c, validate)) for c in status.contracts
    ]
    model_steps: list[tuple[str, bool, Incident | None]] = []
    serving_steps: list[tuple[str, bool, Incident | None]] = []
    for r in status.monitoring:
        links = _record_links(r, monitor)
        reasons = tuple(b.message for b in r.model_breaches) or ("model breached",)
        breached = Incident("model", r.window, "model breached", reasons, at=r.computed_at, links=links)
        model_steps.append(
            (r.window, r.model_status == "ok", breached if r.model_status == "breach" else None)
        )
        reasons = tuple(b.message for b in r.serving_breaches) or ("serving breached",)
        breached = Incident("serving", r.window, "serving breached", reasons, at=r.computed_at, links=links)
        serving_steps.append(
            (r.window, r.serving_status == "ok", breached if r.serving_status == "breach" else None)
        )
    found = [
        *_listed(contract_steps),
        *_listed(model_steps),
        *_listed(serving_steps),
    ]
    newest_first = sorted(found, key=lambda i: (i.month, i.stage), reverse=True)
    return sorted(newest_first, key=lambda i: not i.open)  # stable: open ones first


def _listed(steps: Sequence[tuple[str, bool, Incident | None]]) -> list[Incident]:
    """A stage's breaches that stay listed: the open ones, and its latest one even when closed."""
    ordered = sorted(steps, key=lambda s: s[0])
    listed: list[Incident] = []
    for n, (_, _, incident) in enumerate(ordered):
        if incident is None:
            continue
        closed_by = next((month for month, ok, _ in ordered[n + 1 :] if ok), None)
        listed.append(replace(incident, closed_by=closed_by))
    latest = listed[-1] if listed else None
    return [i for i in listed if i.open or i is latest]
