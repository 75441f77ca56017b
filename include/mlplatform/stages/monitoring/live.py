"""Production truth decides: champion against challenger, rollback on quality, and the RMSE
estimated before the labels. Called once per window by :func:`.window.monitor`.

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
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import pandas as pd

from mlplatform.adapters import alerts, registry
from mlplatform.adapters.lake import Lake
from mlplatform.core import evidence
from mlplatform.core.records import LiveAsk, LiveConf, LiveEvidence, MonitoringRecord, Record
from mlplatform.core.spec import UseCase
from mlplatform.stages import scoring
from mlplatform.stages.monitoring.drift import predict
from mlplatform.stages.monitoring.measures import batch_outcomes, estimate, labelled_rows
from mlplatform.stages.monitoring.sources import ACTUAL, answer_column, version_metrics

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
