"""Records one stage hands another: typed values with one JSON form, written one way.

Every record is a frozen dataclass deriving :class:`Record`, which gives it ``to_dict()``
(what goes into XCom, the lake or registry tags) and ``from_dict()`` (read back from there,
validated by pydantic). The JSON form is the contract between stages and with the records
already written (``tests/fixtures/records`` holds a sample of each); readers use the
record's fields and accessors instead of digging into the dict.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self, TypeVar

from pydantic import ConfigDict, TypeAdapter

R = TypeVar("R")


class Record:
    """The one JSON mechanism of the package's records (mixed into frozen dataclasses).

    ``to_dict`` writes the fields in their declared order, nested records and tuples as
    JSON; a field named in ``omitted_when_none`` is left out while it is ``None``, and each
    property named in ``computed`` is written after the fields (and ignored when read
    back). The mapping field named ``flattened`` (metrics whose names depend on the use
    case) is written as its items, in the field's place, and read back from the keys no
    field or property has. ``from_dict`` ignores keys the record does not know (unless it
    has a ``flattened`` field), reads ``null`` as the
    field's default where it has one, coerces numbers stored where text is expected
    (a version written as ``7``), and names the fields a record lacks.
    """

    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]
    __pydantic_config__: ClassVar[ConfigDict] = ConfigDict(coerce_numbers_to_str=True)
    omitted_when_none: ClassVar[tuple[str, ...]] = ()
    computed: ClassVar[tuple[str, ...]] = ()
    flattened: ClassVar[str] = ""
    when_incomplete: ClassVar[str] = ""  # what to do about a record that lacks a field

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        out: dict[str, Any] = {}
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if value is None and item.name in self.omitted_when_none:
                continue
            if item.name == self.flattened:
                out.update(_json(value))
                continue
            out[item.name] = _json(value)
        for name in self.computed:
            out[name] = _json(getattr(self, name))
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Read a record back from its JSON form; ``ValueError`` names what is wrong."""
        known = {item.name: item for item in dataclasses.fields(cls)}
        given = {
            key: value
            for key, value in data.items()
            if key in known and not (value is None and _has_default(known[key]))
        }
        if cls.flattened:
            given[cls.flattened] = {
                key: value for key, value in data.items() if key not in known and key not in cls.computed
            }
        if missing := [name for name, item in known.items() if name not in given and not _has_default(item)]:
            raise ValueError(
                f"{cls.__name__} record lacks {', '.join(missing)} (has: {', '.join(data) or 'nothing'})"
                + (f"; {cls.when_incomplete}" if cls.when_incomplete else "")
            )
        return _adapter(cls).validate_python(given)


_ADAPTERS: dict[type[Any], TypeAdapter[Any]] = {}


def _adapter(kind: type[R]) -> TypeAdapter[R]:
    """The pydantic validator of one record class (built once)."""
    if kind not in _ADAPTERS:
        _ADAPTERS[kind] = TypeAdapter(kind)
    return _ADAPTERS[kind]


def _has_default(item: dataclasses.Field[Any]) -> bool:
    return item.default is not dataclasses.MISSING or item.default_factory is not dataclasses.MISSING


def _json(value: Any) -> Any:
    """A field's JSON form: records as their dicts, tuples as lists, mappings copied."""
    if isinstance(value, Record):
        return value.to_dict()
    if isinstance(value, tuple | list):
        return [_json(item) for item in value]
    if isinstance(value, Mapping):
        return {key: _json(item) for key, item in value.items()}
    return value


@dataclass(frozen=True)
class ModelRef(Record):
    """One registered model version, as resolved from an alias at a point in time."""

    computed: ClassVar[tuple[str, ...]] = ("uri",)

    name: str
    version: str
    alias: str | None = None
    run_id: str | None = None
    source: str | None = None  # where the version's artifacts are stored

    @property
    def uri(self) -> str:
        """The version's URI: pinned, unlike ``models:/<name>@<alias>``."""
        return f"models:/{self.name}/{self.version}"


@dataclass(frozen=True)
class TrainedRun(Record):
    """A training run logged to MLflow, as the Training job's ``trained.json`` and the train
    DAG's tasks hand it on: the run, its logged model, the family fitted and the primary
    ``metric`` on the validation rows, for the model and for the baseline.

    ``metrics`` are keyed by their MLflow names (``val_<metric>``, ``baseline_val_<metric>``)
    and written beside the other fields. ``model_name`` and ``version`` are set once the
    model is registered (:meth:`registered`), and only then written.
    """

    omitted_when_none: ClassVar[tuple[str, ...]] = ("model_name", "version")
    flattened: ClassVar[str] = "metrics"

    run_id: str
    model_uri: str
    family: str
    metric: str
    metrics: dict[str, float] = field(default_factory=dict)
    model_name: str | None = None
    version: str | None = None

    @property
    def value(self) -> float | None:
        """The model's value of the primary metric on the validation rows."""
        return self.metrics.get(f"val_{self.metric}")

    @property
    def baseline_value(self) -> float | None:
        """The baseline's value of the primary metric on the same rows."""
        return self.metrics.get(f"baseline_val_{self.metric}")

    def registered(self, version: ModelRef) -> TrainedRun:
        """This run once its model is registered as ``version``."""
        return dataclasses.replace(self, model_name=version.name, version=version.version)


@dataclass(frozen=True)
class Gate(Record):
    """One promotion gate's verdict on a model version.

    ``interval`` is the evidence a statistical gate read (an
    :class:`mlplatform.core.evidence.Interval` as a dict: ``point``, ``low``, ``high``,
    ``confidence``, ``resamples``, ``rows``); ``None`` for gates that compare a value with a
    budget.
    """

    omitted_when_none: ClassVar[tuple[str, ...]] = ("interval",)

    name: str
    passed: bool
    detail: str
    interval: Mapping[str, Any] | None = None


ALIAS_ACTIONS = ("promote", "rollback", "retire", "register")
"""Why an alias moves: a promotion, a rollback, a decision that retires it, a new version."""


@dataclass(frozen=True)
class AliasEvent(Record):
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


@dataclass(frozen=True)
class Assessment(Record):
    """A model version measured against the promotion gates of its use case.

    ``candidate`` and ``champion`` are evaluations as training reports them
    (``{"overall": {metric: value}, "slices": ..., "rows": n}``); ``reference`` is what the
    candidate was compared with (``{"kind": ..., <metric>: value}``), ``None`` when nothing was.
    ``improvement``, ``latency_ms_per_row`` and ``size_mb`` are only measured once the
    improvement gate could be computed; ``evidence`` holds the intervals the gates read
    (overall, per slice). The JSON form ends with the gate table and whether all passed.
    """

    omitted_when_none: ClassVar[tuple[str, ...]] = (
        "champion",
        "improvement",
        "latency_ms_per_row",
        "size_mb",
        "evidence",
    )
    computed: ClassVar[tuple[str, ...]] = ("passed",)

    model_name: str
    version: str
    run_id: str | None
    champion_version: str | None
    metric: str
    maturity_level: int
    evaluated_on: tuple[str, ...] = ()
    rows: int = 0
    candidate: Mapping[str, Any] = field(default_factory=dict)
    champion: Mapping[str, Any] | None = None
    reference: Mapping[str, Any] | None = None
    improvement: float | None = None
    latency_ms_per_row: float | None = None
    size_mb: float | None = None
    evidence: Mapping[str, Any] | None = None
    gates: tuple[Gate, ...] = ()

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


@dataclass(frozen=True)
class ScoredOutput(Record):
    """One month's predictions file, as batch scoring wrote it and publishing points at it.

    ``path`` is relative to the lake, ``uri`` absolute; ``rows`` counts the predictions
    (the modelled rows of the snapshot: all of them unless the spec has a ``data.filter``);
    ``target`` says where the scoring ran (``local`` or ``sagemaker``). ``published_at`` is
    set once the file became the month's current predictions (``CURRENT.json``), and only
    then written.
    """

    omitted_when_none: ClassVar[tuple[str, ...]] = ("published_at",)
    when_incomplete: ClassVar[str] = "it was not written by batch scoring: re-run the month's batch scoring"

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


APPROVAL_ANSWERS = ("Approve", "Reject")
"""The options a person asked to approve a level-3 promotion chooses from."""


@dataclass(frozen=True)
class Approval(Record):
    """A person's answer to a level-3 promotion request.

    ``by`` is who answered; ``None`` when nobody did before the request timed out (which
    rejects). The JSON form is ``{"approved": bool, "by": name}``.
    """

    approved: bool
    by: str | None = None

    @property
    def timed_out(self) -> bool:
        """Whether nobody answered: the request's timeout rejected it."""
        return self.by is None

    @classmethod
    def from_response(cls, response: Mapping[str, Any]) -> Approval:
        """The answer in the shape Airflow's approval task records it:
        ``{"chosen_options": ["Approve"], "responded_by_user": {"name": ..., "id": ...}}``
        (``responded_by_user`` is ``None`` after a timeout)."""
        user = response.get("responded_by_user") or None
        by = (user.get("name") or user.get("id")) if isinstance(user, Mapping) else None
        return cls(
            list(response.get("chosen_options") or []) == [APPROVAL_ANSWERS[0]],
            None if by is None else str(by),
        )


@dataclass(frozen=True)
class LiveEvidence(Record):
    """The live comparison a live decision rests on, as monitoring measured it on delayed labels.

    ``interval`` is the relative RMSE improvement of the candidate over the serving model (an
    :class:`mlplatform.core.evidence.Interval` as a dict), measured on ``trips`` paired
    labelled trips of the ``windows``; ``minimum_effect`` is the improvement a promotion must
    be sure of; ``live`` says which comparison: ``challenger`` (the challenger against the
    champion) or ``rollback`` (the previous champion against the champion).
    """

    omitted_when_none: ClassVar[tuple[str, ...]] = ("interval", "minimum_effect")

    interval: Mapping[str, float | int] | None = None
    trips: int = 0
    windows: tuple[str, ...] = ()
    minimum_effect: float | None = None
    live: str = ""

    def text(self) -> str:
        """The interval, labelled trips and windows, in words."""
        from mlplatform.core.evidence import Interval  # numpy: not at a DAG file's parse time

        interval = Interval.from_dict(self.interval).percent() if self.interval else "-"
        return f"{interval} on {self.trips:,} labelled trips (windows {', '.join(self.windows) or '-'})"


@dataclass(frozen=True)
class LiveAsk(Record):
    """A live decision of the monitor that waits for a person's approval (level 3): ``promote``
    or ``retire`` the challenger ``version``, or ``rollback`` the champion ``version``.

    ``evidence`` is the live comparison it rests on; it travels in the promote run's conf
    (:meth:`conf`) and ends in the alias history.
    """

    action: str
    version: str
    reason: str
    evidence: LiveEvidence

    @property
    def run_id(self) -> str:
        """The promote run that asks: one per version and action, so nothing is asked twice."""
        return f"live__{self.action}__v{self.version}"

    def conf(self, window: str) -> LiveConf:
        """The promote DAG's conf (its params) for this ask, from the monitor's ``window``."""
        return LiveConf(self.action, int(self.version), self.reason, self.evidence, "monitor", window)

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> LiveAsk | None:
        """The ask a promote run was triggered with; ``None`` for a run without live evidence."""
        if not params.get("evidence"):
            return None
        return cls.from_dict({**params, "reason": str(params.get("reason") or "")})


@dataclass(frozen=True)
class LiveConf(Record):
    """The conf of the promote run a :class:`LiveAsk` triggers: the promote DAG's params
    (``version`` a number, as its form takes it), who triggered it and for which window."""

    action: str
    version: int
    reason: str
    evidence: LiveEvidence
    triggered_by: str
    window: str


RETRAIN_KINDS = ("performance", "drift")
"""Breach kinds a new model would fix: only these ask for a retrain."""
SERVING_KINDS = ("serving",)
"""Breach kinds that are the endpoint's (operations), not the model's."""
SERVING_METRICS = ("error_rate", "p99_latency_ms")
"""The serving health figures the serving status is judged on."""


@dataclass(frozen=True)
class Breach(Record):
    """One monitored metric past its threshold (``kind``: performance, drift, quality or serving).

    Whether a retrain would fix it follows from its kind (:data:`RETRAIN_KINDS`); the JSON
    form writes it as ``retrain`` for the people and pages reading the record.
    """

    computed: ClassVar[tuple[str, ...]] = ("retrain",)

    metric: str
    value: float
    threshold: float
    kind: str
    message: str

    @property
    def retrain(self) -> bool:
        """Whether a new model would fix it: a performance or drift breach."""
        return self.kind in RETRAIN_KINDS

    @property
    def serving(self) -> bool:
        """Whether the breach is the endpoint's (operations), not the model's."""
        return self.kind in SERVING_KINDS


@dataclass(frozen=True)
class DriftReference(Record):
    """What a window's drift was measured against: the champion's training months and their rows."""

    months: tuple[str, ...] = ()
    rows: int = 0


@dataclass(frozen=True)
class MonitoringRecord(Record):
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
    ``details`` (per slice, variant and feature) is open-ended JSON for the page and the
    people reading it; ``sources`` says why a source of ground truth (``batch``, ``serving``)
    had none, ``reference`` what drift was measured against, ``thresholds`` the use case's
    monitoring thresholds as they were; ``model`` is the champion the window was judged
    against (``name``, ``version``, ``run_id``, ``url``).
    The links are filled in once the record's report and MLflow run exist. ``record_uri``
    (where the record is stored) is written only where it is known.
    """

    omitted_when_none: ClassVar[tuple[str, ...]] = ("record_uri",)
    computed: ClassVar[tuple[str, ...]] = ("status", "breaches")
    when_incomplete: ClassVar[str] = "a record of monitoring/<uc>/history/window=*/metrics.json has them"

    use_case: str
    window: str
    model_status: str
    metrics: dict[str, int | float | bool | None]  # contract_success is a bool, counts are ints
    breach_details: tuple[Breach, ...] = ()
    pending: tuple[str, ...] = ()
    sources: dict[str, str] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    reference: DriftReference = field(default_factory=DriftReference)
    model: dict[str, Any] | None = None
    thresholds: dict[str, int | float | str | None] = field(default_factory=dict)
    computed_at: str = ""
    report_url: str | None = None
    airflow_run_url: str | None = None
    mlflow_run_id: str | None = None
    mlflow_run_url: str | None = None
    record_uri: str | None = None
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
    def model_breaches(self) -> list[Breach]:
        """The breaches that make the model's verdict (performance, drift, data quality)."""
        return [b for b in self.breach_details if b.kind not in SERVING_KINDS]

    @property
    def serving_breaches(self) -> list[Breach]:
        """The endpoint's breaches (error rate, latency): alerted to operations, never retrained."""
        return [b for b in self.breach_details if b.kind in SERVING_KINDS]

    @property
    def model_version(self) -> str | None:
        return None if self.model is None else str(self.model["version"])

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Read a stored record; a field it lacks is named in the error.

        Records written before the two verdicts have one ``status``, which a serving breach
        could set to ``breach``: their model and serving statuses are derived from their
        breaches, so an old latency breach does not read as a model breach.
        """
        if not data.get("model_status") or not data.get("serving_status"):
            found = tuple(Breach.from_dict(b) for b in data.get("breach_details") or ())
            metrics = data.get("metrics") or {}
            derived = {
                "model_status": data.get("model_status") or _old_model_status(str(data.get("status")), found),
                "serving_status": data.get("serving_status") or _old_serving_status(metrics, found),
            }
            data = {**data, **derived}
        return super().from_dict(data)


def _old_model_status(status: str, found: tuple[Breach, ...]) -> str:
    if any(b.kind not in SERVING_KINDS for b in found):
        return "breach"
    return "ok" if status == "breach" else status  # breached on serving health alone


def _old_serving_status(metrics: Mapping[str, Any], found: tuple[Breach, ...]) -> str:
    if any(b.kind in SERVING_KINDS for b in found):
        return "breach"
    return "ok" if any(name in metrics for name in SERVING_METRICS) else "unmeasured"
