"""The promotion gates: a model version measured against its use case's ``promotion`` section.

:func:`assess` evaluates a version (by default the ``challenger``) against every gate and
returns an :class:`~mlplatform.core.records.Assessment`; deciding on it and acting on the
decision are :mod:`mlplatform.stages.promotion.decisions`. A bad model is never promoted: every path to
the ``champion`` alias other than a rollback goes through these gates.

The gates:

- **improvement**: the primary metric (``monitoring.performance_metric``) beats the
  champion's by ``min_relative_improvement`` *with confidence*: both are evaluated on the
  same rows (the validation snapshots the candidate was held out from, read back by
  digest, so the comparison is reproducible), and a paired bootstrap of the relative
  improvement (:func:`mlplatform.core.evidence.paired_bootstraps`, ``promotion.confidence``,
  ``promotion.bootstrap_resamples``, a fixed seed) gives its interval. The gate passes only
  when the interval's lower bound reaches the minimum effect and is above zero: a tie never
  replaces the champion. With no champion yet, the candidate must beat the baseline its
  training run fitted and scored on the same rows; that comparison is a point estimate,
  since only the baseline's metric is kept, not its predictions.
- **slices**: no slice (``promotion.slices``) worse than the champion's beyond
  ``max_slice_regression`` with the same confidence. The reading protects production: a
  slice fails when the *upper* bound of its degradation interval exceeds the allowance,
  i.e. when the evidence cannot exclude a regression beyond it, not only when a regression
  is proven. The burden of proof is on the challenger, which is what the champion already
  serving has earned; a slice too small to tell fails rather than waves a regression
  through (more validation rows or coarser slices are the remedy).
- **latency** and **size**: per-row prediction time on a batch of 1000 rows and the model's
  artifact size within ``max_latency_ms`` and ``max_model_size_mb``.
- **contract**: every snapshot the candidate trained or was validated on passed its data
  contract (``contract.success`` in the snapshot manifest; a missing record fails).
- **not_champion**: a version that already is the champion is not assessed again; deciding
  on it is a no-op (outcome ``already_champion``) that records nothing.

Promotion measures models the way training does (:mod:`mlplatform.stages.training`: the
same held-out rows, the same evaluation): the one stage-to-stage import the import
contract in ``pyproject.toml`` declares for it, made by this module only.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from mlplatform.adapters import registry, snapshots
from mlplatform.adapters.lake import Lake
from mlplatform.adapters.registry import CHALLENGER, CHAMPION, PromotionError
from mlplatform.core import evidence
from mlplatform.core.metrics import relative_degradation
from mlplatform.core.modelling import input_columns
from mlplatform.core.records import Assessment, Gate
from mlplatform.core.spec import UseCase
from mlplatform.stages import training

MAX_EVAL_ROWS = 200_000
LATENCY_BATCH = 1000


def lineage(client: Any, run_id: str) -> list[dict[str, str]]:
    """The snapshots a training run logged as inputs: month, digest, role."""
    run = client.get_run(run_id)
    found = []
    for item in run.inputs.dataset_inputs if run.inputs else []:
        tags = {t.key: t.value for t in item.tags}
        if "sha256" in tags and "month" in tags:
            found.append(
                {
                    "month": tags["month"],
                    "digest": tags["sha256"],
                    "role": tags.get("mlflow.data.context", ""),
                    "validation_from": tags.get("validation_from"),
                }
            )
    return found


def contract_gate(lake: Lake, use_case: UseCase, lineage: list[dict[str, str]]) -> Gate:
    """Passed when every snapshot in ``lineage`` passed its data contract."""
    if not lineage:
        return Gate("contract", False, "the training run logged no validated snapshots as inputs")
    failed = []
    for ref in lineage:
        try:
            manifest = snapshots.read_snapshot(lake, use_case.name, ref["month"], ref["digest"]).manifest
        except FileNotFoundError:
            failed.append(f"{ref['month']} ({ref['digest'][:12]}): snapshot not found")
            continue
        contract = manifest.get("contract")
        if not isinstance(contract, dict) or "success" not in contract:
            failed.append(f"{ref['month']} ({ref['digest'][:12]}): no contract record")
        elif contract["success"] is not True:
            failed.append(f"{ref['month']} ({ref['digest'][:12]}): contract failed")
    if failed:
        return Gate("contract", False, "; ".join(failed))
    return Gate("contract", True, f"all {len(lineage)} snapshots passed their data contract")


def _relative_gain(metric: str, candidate: float, reference: float) -> float:
    """How much better ``candidate`` is than ``reference`` (positive = better), relatively."""
    return -relative_degradation(metric, candidate, reference)


def _load(model_uri: str) -> tuple[Any, float]:
    """The pyfunc at ``model_uri`` and its artifact size in MB."""
    import mlflow

    with tempfile.TemporaryDirectory(prefix="mlplatform-model-") as local:
        path = Path(mlflow.artifacts.download_artifacts(model_uri, dst_path=local))
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        return mlflow.pyfunc.load_model(str(path)), size / 1e6


def _latency_ms(model: Any, rows: Any, columns: list[str]) -> float:
    """Milliseconds per row the pyfunc takes on a batch of normalised trips (best of 5)."""
    batch = rows[columns].head(LATENCY_BATCH)
    model.predict(batch)  # warm-up
    best = float("inf")
    for _ in range(5):  # the best of five: other work on the host only ever adds time
        started = time.perf_counter()
        model.predict(batch)
        best = min(best, time.perf_counter() - started)
    return 1000 * best / max(len(batch), 1)


def _evaluation_rows(lake: Lake, use_case: UseCase, lineage: list[dict[str, str]]) -> tuple[Any, Any]:
    import pandas as pd

    held_out = [r for r in lineage if r["role"] == "validation"]
    if not held_out:
        raise PromotionError(
            "the training run logged no validation snapshots; retrain it with the train DAG or "
            "`mlplatform train`, which log them"
        )
    columns = training.source_columns(use_case)
    frames = []
    for ref in held_out:
        snap = snapshots.read_snapshot(lake, use_case.name, ref["month"], ref["digest"])
        frame = snapshots.read_table(lake, snap, columns).to_pandas()
        if ref.get("validation_from"):  # a split within the month: only its held-out days
            frame = training.split_within(frame, datetime.fromisoformat(ref["validation_from"]))[1]
        frames.append(frame)
    rows = training.labelled(pd.concat(frames, ignore_index=True), use_case)
    rows = training.sample(rows, MAX_EVAL_ROWS)
    return rows, held_out


SHOWN_SLICES = 6
"""At most this many failing slices are named in the gate's detail (the worst first)."""


def _answers(model: Any, featured: Any, task: str) -> Any:
    """The model's per-row answer the metric reads: minutes, or the positive class's probability."""
    answer = model.answer(featured)
    return answer["prediction" if task == "regression" else "probability"].to_numpy(dtype=float)


def improvement_intervals(
    use_case: UseCase, featured: Any, y: Any, champion: Any, candidate: Any
) -> dict[str, evidence.Interval]:
    """Paired-bootstrap intervals of the candidate's relative improvement over the champion,
    overall (key ``""``) and per slice (``column=value``, the slices training scores)."""
    metric = training.primary_metric(use_case)
    groups = {}
    for column in use_case.promotion.slices:
        for value, index in featured.groupby(column, observed=True).groups.items():
            if len(index) >= training.MIN_SLICE_ROWS:
                groups[f"{column}={value}"] = featured.index.isin(index)
    gates = use_case.promotion
    return evidence.paired_bootstraps(
        y.to_numpy(dtype=float),
        _answers(champion, featured, use_case.task),
        _answers(candidate, featured, use_case.task),
        metric,
        groups,
        confidence=gates.confidence,
        resamples=gates.bootstrap_resamples,
    )


def _slice_gate(
    use_case: UseCase, metric: str, mine: Any, theirs: Any, intervals: dict[str, evidence.Interval]
) -> Gate:
    """No slice of the candidate (``mine``) worse than the champion's beyond the allowance, with
    the gates' confidence: each slice's degradation interval must lie within it."""
    gates = use_case.promotion
    tolerance, confidence = gates.max_slice_regression, f"{gates.confidence:.0%}"
    degradations = {k: v.negated() for k, v in intervals.items() if k and k in mine.slices}
    if not degradations:
        return Gate("slices", True, "no slice has enough rows to be judged")
    worst = max(degradations, key=lambda k: degradations[k].high)
    failing = sorted(
        (k for k, d in degradations.items() if not evidence.confidently_within(d, tolerance)),
        key=lambda k: -degradations[k].high,
    )
    if failing:
        named = [
            f"{k}: {metric} {mine.slices[k][metric]:.4g} vs {theirs.slices[k][metric]:.4g}, "
            f"degradation {degradations[k].percent()}"
            for k in failing[:SHOWN_SLICES]
        ]
        more = f" and {len(failing) - SHOWN_SLICES} more" if len(failing) > SHOWN_SLICES else ""
        detail = (
            f"slices that may be worse than the champion beyond {tolerance:.0%} (upper bound of the "
            f"{confidence} interval above it): {'; '.join(named)}{more}"
        )
        return Gate("slices", False, detail, degradations[failing[0]].to_dict())
    detail = (
        f"no slice worse than the champion beyond {tolerance:.0%} at {confidence} "
        f"({len(degradations)} slices; worst {worst}: degradation {degradations[worst].percent()})"
    )
    return Gate("slices", True, detail, degradations[worst].to_dict())


def _improvement_gate(
    use_case: UseCase, metric: str, own: float, reference: float, kind: str, interval: evidence.Interval
) -> Gate:
    """The candidate beats the champion by the minimum effect with the gates' confidence."""
    needed = use_case.promotion.min_relative_improvement
    detail = (
        f"{metric} {own:.4g} vs {reference:.4g} of the {kind}: improvement {interval.percent()}; "
        f"needs the lower bound at least {needed:+.2%} and above zero"
    )
    return Gate("improvement", evidence.confidently_at_least(interval, needed), detail, interval.to_dict())


def _evidence(use_case: UseCase, intervals: dict[str, evidence.Interval]) -> dict[str, Any]:
    """What the statistical gates read, for the assessment, the audit tags and the history."""
    overall = intervals[""]
    return {
        "method": "paired bootstrap",
        "confidence": use_case.promotion.confidence,
        "resamples": overall.resamples,
        "rows": overall.rows,
        "improvement": overall.to_dict(),
        "slices": {k: v.negated().to_dict() for k, v in intervals.items() if k},
    }


def _budget_gates(use_case: UseCase, latency: float, size_mb: float) -> list[Gate]:
    gates = use_case.promotion
    return [
        Gate(
            "latency",
            latency <= gates.max_latency_ms,
            f"{latency:.4f} ms per row (budget {gates.max_latency_ms} ms)",
        ),
        Gate(
            "size",
            size_mb <= gates.max_model_size_mb,
            f"{size_mb:.1f} MB (budget {gates.max_model_size_mb} MB)",
        ),
    ]


@dataclasses.dataclass
class _Measured:
    """What :func:`assess` learns about a version before it applies the gates."""

    head: Assessment  # what every assessment of the version names, no gate applied yet
    checks: list[Gate]
    rows: Any
    featured: Any
    held_out: list[dict[str, str]]
    model: Any
    size_mb: float
    mine: training.ModelEvaluation


def _head(
    use_case: UseCase, client: Any, version: str, champion: str | None
) -> tuple[Assessment, list[dict[str, str]]]:
    """What every assessment of ``version`` names, and the snapshots its run trained on."""
    name = use_case.model_name
    candidate = client.get_model_version(name, version)
    found = lineage(client, candidate.run_id) if candidate.run_id else []
    head = Assessment(
        model_name=name,
        version=version,
        run_id=candidate.run_id,
        champion_version=champion,
        metric=training.primary_metric(use_case),
        maturity_level=use_case.maturity_level,
    )
    return head, found


def _measure(lake: Lake, use_case: UseCase, client: Any, version: str, champion: str | None) -> _Measured:
    from mlplatform.adapters.pyfunc import trip_model
    from mlplatform.core import modelling

    head, found = _head(use_case, client, version, champion)
    checks = [contract_gate(lake, use_case, found)]
    rows, held_out = _evaluation_rows(lake, use_case, found)
    model, size_mb = _load(f"models:/{use_case.model_name}/{version}")
    featured = modelling.trip_features(rows)
    mine = training.evaluate(use_case, trip_model(model), featured, rows[use_case.target.column])
    return _Measured(head, checks, rows, featured, held_out, model, size_mb, mine)


def assess(lake: Lake, use_case: UseCase, version: str | None = None) -> Assessment:
    """Evaluate ``version`` (default: the ``challenger``) against every gate."""
    from mlplatform.adapters.pyfunc import trip_model

    client = registry.client()
    name = use_case.model_name
    version = str(version) if version is not None else registry.alias_version(client, name, CHALLENGER)
    if version is None:
        raise PromotionError(
            f"{name} has no challenger to assess: train one first (the {name}_train DAG or "
            "`mlplatform train`), or name a version"
        )
    champion = registry.alias_version(client, name, CHAMPION)
    if champion == version:  # nothing to measure: deciding on it is a no-op
        head, _ = _head(use_case, client, version, champion)
        already = Gate("not_champion", False, f"version {version} is already the champion")
        return dataclasses.replace(head, gates=(already,))
    got = _measure(lake, use_case, client, version, champion)
    metric, checks, run_id = got.head.metric, got.checks, got.head.run_id
    measured = dataclasses.replace(
        got.head,
        evaluated_on=tuple(f"{r['month']}:{r['digest'][:12]}" for r in got.held_out),
        rows=len(got.rows),
        candidate=got.mine.to_dict(),
    )
    own = got.mine.overall[metric]
    if champion is not None and champion != version:
        champion_model, _ = _load(f"models:/{name}/{champion}")
        y = got.rows[use_case.target.column]
        theirs_model = trip_model(champion_model)
        theirs = training.evaluate(use_case, theirs_model, got.featured, y)
        reference, kind = theirs.overall[metric], f"champion (version {champion})"
        mine_model = trip_model(got.model)
        intervals = improvement_intervals(use_case, got.featured, y, theirs_model, mine_model)
        measured = dataclasses.replace(
            measured, champion=theirs.to_dict(), evidence=_evidence(use_case, intervals)
        )
        checks.append(_slice_gate(use_case, metric, got.mine, theirs, intervals))
        checks.append(_improvement_gate(use_case, metric, own, reference, kind, intervals[""]))
        gain = intervals[""].point
    else:
        logged = client.get_run(run_id).data.metrics if run_id else {}
        base, logged_own = logged.get(f"baseline_val_{metric}"), logged.get(f"val_{metric}")
        if base is None or logged_own is None:
            checks.append(Gate("improvement", False, "the training run logged no baseline metric"))
            return dataclasses.replace(measured, gates=tuple(checks))
        # The baseline was scored at training time on all the held-out rows: compare it with
        # the candidate's score on those same rows. Only its metric is kept, not its
        # predictions, so this comparison is a point estimate.
        reference, kind, own = base, f"baseline ({use_case.model.baseline})", logged_own
        gain = _relative_gain(metric, own, reference)
        needed = use_case.promotion.min_relative_improvement
        checks.append(
            Gate(
                "improvement",
                gain >= needed,
                f"{metric} {own:.4g} vs {reference:.4g} of the {kind}: {gain:+.2%} (needs {needed:+.2%}; "
                "a point estimate: the baseline's predictions are not kept)",
            )
        )
    latency = _latency_ms(got.model, got.rows, input_columns(use_case.features.all))
    checks.extend(_budget_gates(use_case, latency, got.size_mb))
    return dataclasses.replace(
        measured,
        reference={"kind": kind, metric: reference},
        improvement=gain,
        latency_ms_per_row=latency,
        size_mb=got.size_mb,
        gates=tuple(checks),
    )
