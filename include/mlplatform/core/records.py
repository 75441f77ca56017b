"""Records one stage hands another: typed values with an explicit JSON form.

Each record has ``to_dict()`` (what goes into XCom, the lake or registry tags) and
``from_dict()`` (read back from there). The JSON form is the contract between stages and
with the records already written; readers use the record's fields and accessors instead
of digging into the dict.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ModelRef:
    """One registered model version, as resolved from an alias at a point in time."""

    name: str
    version: str
    alias: str | None = None
    run_id: str | None = None
    source: str | None = None  # where the version's artifacts are stored

    @property
    def uri(self) -> str:
        """The version's URI: pinned, unlike ``models:/<name>@<alias>``."""
        return f"models:/{self.name}/{self.version}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form for XCom."""
        return {
            "name": self.name,
            "version": self.version,
            "alias": self.alias,
            "run_id": self.run_id,
            "source": self.source,
            "uri": self.uri,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelRef:
        return cls(
            data["name"], str(data["version"]), data.get("alias"), data.get("run_id"), data.get("source")
        )


@dataclass(frozen=True)
class Gate:
    """One promotion gate's verdict on a model version.

    ``interval`` is the evidence a statistical gate read (an
    :class:`mlplatform.core.evidence.Interval` as a dict: ``point``, ``low``, ``high``,
    ``confidence``, ``resamples``, ``rows``); ``None`` for gates that compare a value with a
    budget.
    """

    name: str
    passed: bool
    detail: str
    interval: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "passed": self.passed, "detail": self.detail}
        if self.interval is not None:
            out["interval"] = dict(self.interval)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Gate:
        interval = data.get("interval")
        return cls(
            str(data["name"]),
            bool(data["passed"]),
            str(data["detail"]),
            None if interval is None else dict(interval),
        )


ALIAS_ACTIONS = ("promote", "rollback", "retire", "register")
"""Why an alias moves: a promotion, a rollback, a decision that retires it, a new version."""


@dataclass(frozen=True)
class AliasEvent:
    """One move of one registry alias, recorded before the alias moves.

    ``version`` is where the alias points after the move (``None``: removed) and
    ``from_version`` where it pointed before. ``by`` is who or what moved it (the DAG run,
    the approver of a level-3 promotion, the command line's user@host), ``reason`` and
    ``evidence`` why (the decision, the intervals and rows it read), ``gates`` the gate
    table, ``run_id`` the run that moved it. ``cooldown_until`` is set by a rollback: until
    then another rollback that no person forces is refused.
    """

    event_id: str
    at: str  # ISO 8601, UTC
    model_name: str
    alias: str
    action: str
    version: str | None
    from_version: str | None
    by: str
    run_id: str | None = None
    reason: str = ""
    evidence: Mapping[str, Any] = field(default_factory=dict)
    gates: tuple[Gate, ...] = ()
    cooldown_until: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "at": self.at,
            "model_name": self.model_name,
            "alias": self.alias,
            "action": self.action,
            "version": self.version,
            "from_version": self.from_version,
            "by": self.by,
            "run_id": self.run_id,
            "reason": self.reason,
            "evidence": dict(self.evidence),
            "gates": [gate.to_dict() for gate in self.gates],
            "cooldown_until": self.cooldown_until,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AliasEvent:
        """Read an event back; a field it lacks is named in the error."""
        try:

            def optional(key: str) -> str | None:
                value = data.get(key)
                return None if value is None else str(value)

            return cls(
                event_id=str(data["event_id"]),
                at=str(data["at"]),
                model_name=str(data["model_name"]),
                alias=str(data["alias"]),
                action=str(data["action"]),
                version=optional("version"),
                from_version=optional("from_version"),
                by=str(data["by"]),
                run_id=optional("run_id"),
                reason=str(data.get("reason") or ""),
                evidence=dict(data.get("evidence") or {}),
                gates=tuple(Gate.from_dict(g) for g in data.get("gates") or ()),
                cooldown_until=optional("cooldown_until"),
            )
        except KeyError as missing:
            raise ValueError(f"an alias event needs the field {missing}") from None


# Measurements an assessment only has once its improvement gate could be computed.
_MEASURED = ("improvement", "latency_ms_per_row", "size_mb")


@dataclass(frozen=True)
class Assessment:
    """A model version measured against the promotion gates of its use case.

    ``candidate`` and ``champion`` are evaluations as training reports them
    (``{"overall": {metric: value}, "slices": ..., "rows": n}``); ``reference`` is what the
    candidate was compared with (``{"kind": ..., <metric>: value}``), ``None`` when nothing was.
    """

    model_name: str
    version: str
    run_id: str | None
    champion_version: str | None
    metric: str
    maturity_level: int
    gates: tuple[Gate, ...] = ()
    evaluated_on: tuple[str, ...] = ()
    rows: int = 0
    candidate: Mapping[str, Any] = field(default_factory=dict)
    champion: Mapping[str, Any] | None = None
    reference: Mapping[str, Any] | None = None
    improvement: float | None = None
    latency_ms_per_row: float | None = None
    size_mb: float | None = None
    evidence: Mapping[str, Any] | None = None  # intervals read by the gates: overall, per slice

    @property
    def passed(self) -> bool:
        """Whether every gate passed."""
        return all(gate.passed for gate in self.gates)

    @property
    def candidate_value(self) -> float | None:
        """The candidate's overall value of the primary metric, if it was evaluated."""
        value = (self.candidate.get("overall") or {}).get(self.metric)
        return float(value) if isinstance(value, int | float) else None

    @property
    def reference_kind(self) -> str:
        """What the candidate was compared with (``-`` when nothing)."""
        return str((self.reference or {}).get("kind", "-"))

    @property
    def reference_value(self) -> float:
        """The reference's value of the primary metric (NaN when there is none)."""
        return float((self.reference or {}).get(self.metric, float("nan")))

    def failed_gates(self) -> list[str]:
        """``name: detail`` of every gate that failed."""
        return [f"{gate.name}: {gate.detail}" for gate in self.gates if not gate.passed]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: the keys in the order they were always written, optional ones only when set."""
        out: dict[str, Any] = {
            "model_name": self.model_name,
            "version": self.version,
            "run_id": self.run_id,
            "champion_version": self.champion_version,
            "metric": self.metric,
            "maturity_level": self.maturity_level,
            "evaluated_on": list(self.evaluated_on),
            "rows": self.rows,
            "candidate": dict(self.candidate),
        }
        if self.champion is not None:
            out["champion"] = dict(self.champion)
        out["reference"] = None if self.reference is None else dict(self.reference)
        for key in _MEASURED:
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.evidence is not None:
            out["evidence"] = dict(self.evidence)
        out["gates"] = [gate.to_dict() for gate in self.gates]
        out["passed"] = self.passed
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Assessment:
        """Read an assessment back (keys it does not know, such as ``summary_md``, are ignored)."""
        champion_version = data.get("champion_version")
        return cls(
            model_name=str(data["model_name"]),
            version=str(data["version"]),
            run_id=data.get("run_id"),
            champion_version=None if champion_version is None else str(champion_version),
            metric=str(data["metric"]),
            maturity_level=int(data["maturity_level"]),
            gates=tuple(Gate.from_dict(g) for g in data.get("gates", ())),
            evaluated_on=tuple(data.get("evaluated_on", ())),
            rows=int(data.get("rows", 0)),
            candidate=dict(data.get("candidate") or {}),
            champion=data.get("champion"),
            reference=data.get("reference"),
            improvement=data.get("improvement"),
            latency_ms_per_row=data.get("latency_ms_per_row"),
            size_mb=data.get("size_mb"),
            evidence=data.get("evidence"),
        )


# Fields every scored output record has, as batch scoring has always written them.
_SCORED_REQUIRED = ("use_case", "month", "path", "uri", "rows", "model", "snapshot_digest", "snapshot_rows")


@dataclass(frozen=True)
class ScoredOutput:
    """One month's predictions file, as batch scoring wrote it and publishing points at it.

    ``path`` is relative to the lake, ``uri`` absolute; ``rows`` counts the predictions
    (the modelled rows of the snapshot: all of them unless the spec has a ``data.filter``);
    ``target`` says where the scoring ran (``local`` or ``sagemaker``). ``published_at`` is
    set once the file became the month's current predictions (``CURRENT.json``).
    """

    use_case: str
    month: str
    path: str
    uri: str
    rows: int
    model: ModelRef
    snapshot_digest: str
    snapshot_rows: int
    data_filter: str | None = None
    target: str = "local"
    published_at: str | None = None

    @property
    def expected_rows(self) -> int:
        """Predictions a complete file holds: one per modelled snapshot row."""
        return self.rows if self.data_filter else self.snapshot_rows

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (XCom and ``CURRENT.json``); ``published_at`` only once published."""
        out: dict[str, Any] = {
            "use_case": self.use_case,
            "month": self.month,
            "path": self.path,
            "uri": self.uri,
            "rows": self.rows,
            "model": self.model.to_dict(),
            "snapshot_digest": self.snapshot_digest,
            "snapshot_rows": self.snapshot_rows,
            "data_filter": self.data_filter,
            "target": self.target,
        }
        if self.published_at is not None:
            out["published_at"] = self.published_at
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScoredOutput:
        """Read an output back from XCom or ``CURRENT.json``; a record that lacks a field
        raises ``ValueError`` naming it."""
        if missing := [key for key in _SCORED_REQUIRED if key not in data]:
            raise ValueError(
                f"scored output record lacks {', '.join(missing)} (has: {', '.join(data) or 'nothing'}); "
                "it was not written by batch scoring: re-run the month's batch scoring"
            )
        return cls(
            use_case=str(data["use_case"]),
            month=str(data["month"]),
            path=str(data["path"]),
            uri=str(data["uri"]),
            rows=int(data["rows"]),
            model=ModelRef.from_dict(data["model"]),
            snapshot_digest=str(data["snapshot_digest"]),
            snapshot_rows=int(data["snapshot_rows"]),
            data_filter=data.get("data_filter"),
            target=str(data.get("target", "local")),
            published_at=data.get("published_at"),
        )


@dataclass(frozen=True)
class BreachRecord:
    """One monitored metric past its threshold, and whether a retrain would fix it."""

    metric: str
    value: float
    threshold: float
    kind: str  # performance | drift | quality | serving
    message: str
    retrain: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "value": self.value,
            "threshold": self.threshold,
            "kind": self.kind,
            "message": self.message,
            "retrain": self.retrain,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BreachRecord:
        return cls(
            str(data["metric"]),
            float(data["value"]),
            float(data["threshold"]),
            str(data["kind"]),
            str(data["message"]),
            bool(data["retrain"]),
        )


@dataclass(frozen=True)
class MonitoringRecord:
    """What monitoring found for one window (a month), as ``metrics.json`` in the lake holds it.

    Two verdicts, read separately:

    - ``model_status``: the model's verdict, ``ok``, ``breach`` or ``pending`` (performance
      waits for ground truth), from performance, drift and the window's data quality. The
      retrain decision, the closed loop and the MLOps page's model verdict read only this.
    - ``serving_status``: the endpoint's verdict, ``ok``, ``breach`` or ``unmeasured`` (no
      real-time traffic in the window), from the error rate and p99 latency the serving app
      measured. An operations signal: it alerts operations, never retrains, and never makes
      the model breach (latency depends on how busy the machine is, not on the model).

    ``status`` is kept for readers of the single status of older records; it is the model
    status. Records stored before the split load with both verdicts derived from their
    ``breach_details`` (a breach of kind ``serving`` is the endpoint's).
    ``details`` (per slice, variant and feature), ``sources``, ``reference`` and
    ``thresholds`` are open-ended JSON for the page and the people reading it; ``model`` is
    the champion the window was judged against (``name``, ``version``, ``run_id``, ``url``).
    The links are filled in once the record's report and MLflow run exist.
    """

    use_case: str
    window: str
    model_status: str
    metrics: dict[str, float]
    breach_details: tuple[BreachRecord, ...] = ()
    pending: tuple[str, ...] = ()
    sources: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    reference: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] | None = None
    thresholds: dict[str, Any] = field(default_factory=dict)
    computed_at: str = ""
    report_url: str | None = None
    airflow_run_url: str | None = None
    mlflow_run_id: str | None = None
    mlflow_run_url: str | None = None
    record_uri: str | None = None  # where the record is stored; not part of the stored form
    serving_status: str = "unmeasured"

    @property
    def status(self) -> str:
        """The single status of records before the split: the model status."""
        return self.model_status

    @property
    def breaches(self) -> list[str]:
        """Every breached metric, model and serving, in threshold order."""
        return [b.metric for b in self.breach_details]

    @property
    def model_breaches(self) -> list[BreachRecord]:
        """The breaches that make the model's verdict (performance, drift, data quality)."""
        return [b for b in self.breach_details if b.kind not in SERVING_KINDS]

    @property
    def serving_breaches(self) -> list[BreachRecord]:
        """The endpoint's breaches (error rate, latency): alerted to operations, never retrained."""
        return [b for b in self.breach_details if b.kind in SERVING_KINDS]

    @property
    def model_version(self) -> str | None:
        return None if self.model is None else str(self.model["version"])

    def to_dict(self) -> dict[str, Any]:
        """The stored form (``metrics.json``); ``record_uri`` is added where it is known."""
        stored: dict[str, Any] = {
            "use_case": self.use_case,
            "window": self.window,
            "status": self.model_status,  # the single status older readers know
            "model_status": self.model_status,
            "serving_status": self.serving_status,
            "metrics": dict(self.metrics),
            "breaches": self.breaches,
            "breach_details": [b.to_dict() for b in self.breach_details],
            "pending": list(self.pending),
            "sources": dict(self.sources),
            "details": dict(self.details),
            "reference": dict(self.reference),
            "model": None if self.model is None else dict(self.model),
            "thresholds": dict(self.thresholds),
            "computed_at": self.computed_at,
            "report_url": self.report_url,
            "airflow_run_url": self.airflow_run_url,
            "mlflow_run_id": self.mlflow_run_id,
            "mlflow_run_url": self.mlflow_run_url,
        }
        if self.record_uri is not None:
            stored["record_uri"] = self.record_uri
        return stored

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MonitoringRecord:
        """Read a stored record; a field it lacks is named in the error.

        Records written before the two verdicts have one ``status``, which a serving breach
        could set to ``breach``: their model and serving statuses are derived from their
        breaches, so an old latency breach does not read as a model breach.
        """
        try:
            found = tuple(BreachRecord.from_dict(b) for b in data.get("breach_details") or ())
            metrics = dict(data.get("metrics") or {})
            model_status = data.get("model_status") or _old_model_status(str(data["status"]), found)
            serving_status = data.get("serving_status") or _old_serving_status(metrics, found)
            return cls(
                use_case=str(data["use_case"]),
                window=str(data["window"]),
                model_status=str(model_status),
                serving_status=str(serving_status),
                metrics=metrics,
                breach_details=found,
                pending=tuple(str(p) for p in data.get("pending") or ()),
                sources=dict(data.get("sources") or {}),
                details=dict(data.get("details") or {}),
                reference=dict(data.get("reference") or {}),
                model=None if data.get("model") is None else dict(data["model"]),
                thresholds=dict(data.get("thresholds") or {}),
                computed_at=str(data.get("computed_at") or ""),
                report_url=data.get("report_url"),
                airflow_run_url=data.get("airflow_run_url"),
                mlflow_run_id=data.get("mlflow_run_id"),
                mlflow_run_url=data.get("mlflow_run_url"),
                record_uri=data.get("record_uri"),
            )
        except KeyError as missing:
            raise ValueError(f"a monitoring record needs the field {missing}") from None


SERVING_KINDS = ("serving",)
"""Breach kinds that are the endpoint's (operations), not the model's."""
SERVING_METRICS = ("error_rate", "p99_latency_ms")
"""The serving health figures the serving status is judged on."""


def _old_model_status(status: str, found: tuple[BreachRecord, ...]) -> str:
    if any(b.kind not in SERVING_KINDS for b in found):
        return "breach"
    return "ok" if status == "breach" else status  # breached on serving health alone


def _old_serving_status(metrics: Mapping[str, Any], found: tuple[BreachRecord, ...]) -> str:
    if any(b.kind in SERVING_KINDS for b in found):
        return "breach"
    return "ok" if any(name in metrics for name in SERVING_METRICS) else "unmeasured"
