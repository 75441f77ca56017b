"""Promotion with confidence: the paired bootstrap against known answers, how the gates read
its intervals, and whole promote-DAG runs (dag.test(), the real MLflow server) whose every
alias move is in the alias history with its evidence."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from test_train_promote_dags import Oracle, fast

from mlplatform import cli
from mlplatform.adapters import registry, snapshots
from mlplatform.adapters.lake import Lake
from mlplatform.core import evidence, generator, metrics, tlc
from mlplatform.core.evidence import Interval
from mlplatform.core.modelling import TripModel
from mlplatform.core.records import Assessment, Gate
from mlplatform.core.spec import Gates, UseCase, load_spec
from mlplatform.stages import promotion, training
from mlplatform.stages.promotion import decisions, gates

from conftest import load_dag_module

DAGS_FOLDER = Path(__file__).resolve().parents[1] / "dags"


def noisy(seed: int, rows: int, sigma_a: float, sigma_b: float) -> tuple[np.ndarray, ...]:
    """Truth and two models' predictions with independent errors of the given spreads."""
    rng = np.random.default_rng(seed)
    y = rng.gamma(4.0, 4.0, rows)
    return y, y + rng.normal(0, sigma_a, rows), y + rng.normal(0, sigma_b, rows)


# -- the statistics, against known answers ----------------------------------------------------------
def test_identical_models_give_an_interval_around_zero_and_no_promotion() -> None:
    y, a, _ = noisy(1, 5000, 5.0, 5.0)
    interval = evidence.paired_bootstrap(y, a, a.copy(), "rmse")
    assert interval == Interval(0.0, 0.0, 0.0, 0.95, evidence.DEFAULT_RESAMPLES, 5000)
    assert interval.contains(0.0)
    assert not evidence.confidently_at_least(interval, 0.01)
    assert not evidence.confidently_at_least(interval, 0.0)  # a tie never replaces the champion


def test_a_model_ten_percent_better_on_5000_rows_is_promoted() -> None:
    y, champion, challenger = noisy(2, 5000, 5.0, 4.5)  # RMSE 10% lower in expectation
    interval = evidence.paired_bootstrap(y, champion, challenger, "rmse", confidence=0.95, seed=7)
    assert interval.contains(0.10)
    assert 0.05 < interval.low < interval.point < interval.high < 0.15
    assert evidence.confidently_at_least(interval, 0.01)
    # The point is the plain relative improvement of the two RMSEs.
    rmse = [
        metrics.score("regression", y, pd.DataFrame({"prediction": p}))["rmse"]
        for p in (champion, challenger)
    ]
    assert interval.point == pytest.approx(-metrics.relative_degradation("rmse", rmse[1], rmse[0]))
    # The same seed gives the same interval; the other direction is its mirror image.
    assert evidence.paired_bootstrap(y, champion, challenger, "rmse", seed=7) == interval
    assert evidence.paired_bootstrap(y, challenger, champion, "rmse", seed=7).high < 0


def test_equal_models_are_promoted_by_chance_at_most_five_percent_of_the_time() -> None:
    promoted = 0
    for seed in range(200):
        y, a, b = noisy(1000 + seed, 200, 5.0, 5.0)
        interval = evidence.paired_bootstrap(y, a, b, "rmse", confidence=0.95, resamples=400, seed=seed)
        promoted += evidence.confidently_at_least(interval, 0.0)  # the most lenient minimum effect
    assert promoted / 200 <= 0.05, promoted


def test_the_vectorised_bootstrap_matches_resampling_one_row_set_at_a_time() -> None:
    y, a, b = noisy(3, 300, 5.0, 4.0)
    group = np.arange(300) % 3 == 0
    found = evidence.paired_bootstraps(y, a, b, "mae", {"third": group}, resamples=120, seed=11)
    rng = np.random.default_rng(11)
    overall, third = [], []
    for size in (50, 50, 20):  # the chunks the implementation draws, in its order
        for index in rng.integers(0, 300, size=(size, 300)):
            mae_a, mae_b = np.abs(a[index] - y[index]).mean(), np.abs(b[index] - y[index]).mean()
            overall.append((mae_a - mae_b) / mae_a)
            inside = index[group[index]]
            mae_a, mae_b = np.abs(a[inside] - y[inside]).mean(), np.abs(b[inside] - y[inside]).mean()
            third.append((mae_a - mae_b) / mae_a)
    for key, samples in (("", overall), ("third", third)):
        low, high = np.quantile(samples, [0.025, 0.975])
        assert (found[key].low, found[key].high) == (pytest.approx(low), pytest.approx(high))
    assert found["third"].rows == 100


def test_metrics_where_higher_is_better_and_classifiers() -> None:
    rng = np.random.default_rng(4)
    y = (rng.random(3000) < 0.4).astype(float)
    sharp = np.clip(0.4 + 0.35 * (y - 0.4) + rng.normal(0, 0.1, 3000), 0.01, 0.99)
    vague = np.clip(0.4 + 0.1 * (y - 0.4) + rng.normal(0, 0.1, 3000), 0.01, 0.99)
    for metric in ("log_loss", "brier", "accuracy"):
        assert evidence.paired_bootstrap(y, vague, sharp, metric, resamples=500).low > 0, metric
    auc = evidence.paired_bootstrap(y, vague, sharp, "roc_auc", resamples=200)
    assert auc.low > 0
    log_loss = metrics.score("classification", y, pd.DataFrame({"probability": sharp}))["log_loss"]
    assert evidence._terms("log_loss", y, sharp).mean() == pytest.approx(log_loss)


def test_a_slice_can_regress_while_the_whole_improves() -> None:
    y, a, b = noisy(5, 6000, 5.0, 4.0)
    night = np.arange(6000) < 600
    b = np.where(night, y + (a - y) * 1.5, b)  # 50% larger errors at night
    found = evidence.paired_bootstraps(y, a, b, "rmse", {"night": night, "day": ~night}, seed=1)
    assert found[""].low > 0 and found["day"].low > 0
    assert found["night"].high < 0 and found["night"].negated().low > 0.3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((np.ones(3), np.ones(3), np.ones(4), "rmse"), "as many rows"),
        ((np.array([1.0, np.nan]), np.ones(2), np.ones(2), "rmse"), "finite"),
        ((np.ones(3), np.ones(3), np.ones(3), "rmse", 1.0), "confidence"),
        ((np.ones(3), np.ones(3), np.ones(3), "rmse", 0.95, 10), "resamples"),
        ((np.ones(3), np.ones(3), np.ones(3), "mape"), "unknown metric"),
        ((np.ones(1), np.ones(1), np.ones(1), "rmse"), "at least 2 rows"),
    ],
)
def test_bad_input_is_a_clear_error(args: tuple[Any, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        evidence.paired_bootstrap(*args)


def test_the_spec_states_the_confidence() -> None:
    gates = load_spec("taxi_trip_duration").promotion
    assert (gates.confidence, gates.min_relative_improvement) == (0.95, 0.01)
    for wrong in (0.5, 1.0, 1.5):
        with pytest.raises(ValidationError, match="confidence"):
            Gates.model_validate({**gates.model_dump(), "confidence": wrong})


# -- how the gates read the intervals ------------------------------------------------------------
BASE = load_spec("taxi_trip_duration")


def interval(point: float, low: float, high: float) -> Interval:
    return Interval(point, low, high, 0.95, 2000, 800)


def test_the_improvement_gate_reads_the_lower_bound() -> None:
    gate = gates._improvement_gate
    passed = gate(BASE, "rmse", 4.5, 5.0, "champion (version 1)", interval(0.10, 0.02, 0.18))
    assert passed.passed and "[+2.00%, +18.00%]" in passed.detail and passed.interval["low"] == 0.02
    # A point estimate well above the minimum effect is not enough when the interval reaches below it.
    assert not gate(BASE, "rmse", 4.5, 5.0, "champion (version 1)", interval(0.10, 0.005, 0.19)).passed


def test_a_slice_fails_when_its_interval_cannot_exclude_a_regression_beyond_the_allowance() -> None:
    mine = training.ModelEvaluation(
        {"rmse": 4.0}, {"hour_band=night": {"rmse": 5.1}, "hour_band=am": {"rmse": 4.0}}
    )
    theirs = training.ModelEvaluation(
        {"rmse": 4.2}, {"hour_band=night": {"rmse": 5.0}, "hour_band=am": {"rmse": 4.1}}
    )

    def gate(night: Interval) -> Gate:
        found = {
            "": interval(0.05, 0.03, 0.07),
            "hour_band=night": night,
            "hour_band=am": interval(0.02, 0.0, 0.04),
        }
        return gates._slice_gate(BASE, "rmse", mine, theirs, found)

    # 2% worse at night, within the 5% allowance, but the interval reaches 8% worse: not excluded.
    doubtful = gate(interval(-0.02, -0.08, 0.01))
    assert not doubtful.passed and "hour_band=night" in doubtful.detail
    assert doubtful.interval["high"] == pytest.approx(0.08)
    # 2% worse with an interval up to 4% worse: within the allowance with confidence.
    fine = gate(interval(-0.02, -0.04, 0.0))
    assert fine.passed and "worst hour_band=night" in fine.detail


def test_the_summary_and_the_audit_tags_show_the_interval() -> None:
    found = interval(0.06, 0.03, 0.09)
    assessed = Assessment(
        "m",
        "3",
        None,
        "2",
        "rmse",
        3,
        gates=(Gate("improvement", True, "ok", found.to_dict()),),
        rows=800,
        candidate={"overall": {"rmse": 4.7}},
        reference={"kind": "champion (version 2)", "rmse": 5.0},
        improvement=0.06,
        evidence={"method": "paired bootstrap", "improvement": found.to_dict(), "slices": {"a": {}}},
    )
    assert "**+6.00% [+3.00%, +9.00%] (95%, 800 rows)** (paired bootstrap)" in promotion.summary_markdown(
        assessed
    )
    tags = decisions.decision_tags(assessed, promotion.PromotionDecision("promoted", "ok", "alice"), "run")
    assert (
        tags["decision.evidence"]["improvement"] == found.to_dict()
        and "slices" not in tags["decision.evidence"]
    )
    assert Assessment.from_dict(json.loads(json.dumps(assessed.to_dict()))) == assessed


def test_the_approval_request_shows_the_interval() -> None:
    from mlplatform.airflow import approval

    found = interval(0.06, 0.03, 0.09)
    assessed = Assessment(
        model_name="m",
        version="3",
        run_id=None,
        champion_version="2",
        metric="rmse",
        maturity_level=3,
        evidence={"improvement": found.to_dict()},
    )
    asked = approval.request(
        dag_id="m_promote",
        run_id="r",
        assessment=assessed,
        summary_md="table",
        now=datetime(2024, 1, 1, tzinfo=UTC),
        timeout=timedelta(hours=1),
        log_url=None,
        hitl=True,
    )
    assert approval.request_alert(asked).fields["Improvement"] == "+6.00% [+3.00%, +9.00%] (95%, 800 rows)"
    older = {k: v for k, v in asked.to_dict().items() if k != "improvement"}  # asked before the field
    assert approval.ApprovalRequest.from_dict(older).improvement == "-"


# -- whole promote-DAG runs ------------------------------------------------------------------------
ROWS = 12_000
# The shipped use case's name: dag.test() runs only DAGs its bundle has serialized.
USE_CASE = fast(BASE)
_dates = (datetime(2032, 1, 1, tzinfo=UTC) + timedelta(hours=i) for i in range(10_000))


def run_promote(use_case: UseCase, conf: dict[str, Any] | None = None, dag: Any = None) -> dict[str, str]:
    dag = dag or load_dag_module("promote").build(use_case)
    dag_run = dag.test(logical_date=next(_dates), run_conf=conf or {})
    return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}


@pytest.fixture(scope="module")
def world(
    mlflow_server: str, webhook_sink: Any, airflow_db: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """A lake with three normal months of the use case, and dag.test() on a bundle of the promote DAG."""
    mp = pytest.MonkeyPatch()
    bundle = tmp_path_factory.mktemp("evidence-dags")
    (bundle / "promote.py").symlink_to(DAGS_FOLDER / "promote.py")
    bundles = [
        {
            "name": "dags-folder",
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(bundle)},
        }
    ]
    mp.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps(bundles))
    lake = Lake(tmp_path_factory.mktemp("evidence").joinpath("lake").as_uri())
    mp.setenv("MLPLATFORM_LAKE_URI", lake.root_uri)
    client = registry.client()
    for stale in (USE_CASE.model_name, registry.lock_name(USE_CASE.model_name)):  # other modules' models
        if client.search_registered_models(filter_string=f"name = '{stale}'"):
            client.delete_registered_model(stale)
    contract = {"success": True, "suite": "nyc_tlc_trips", "bad_row_share": 0.0}
    for i, month in enumerate(("2024-01", "2024-02", "2024-03")):
        made = generator.generate_month("yellow", month, ROWS, seed=40 + i)
        snapshots.write_snapshot(
            lake, USE_CASE.name, month, tlc.normalise(made.table), {"contract": contract}
        )
    yield {"lake": lake}
    mp.undo()
    # Its versions pickle this module's test estimators: leave no such model to the modules
    # that share the session's MLflow server and load its champion in other processes.
    for stale in (USE_CASE.model_name, registry.lock_name(USE_CASE.model_name)):
        if client.search_registered_models(filter_string=f"name = '{stale}'"):
            client.delete_registered_model(stale)


def register_scaled(lake: Lake, congestion: float) -> str:
    """Register a challenger predicting the generator's expected minutes at ``congestion`` (1.0
    is the truth), logged through the training code with a poor baseline."""
    assembled = training.assemble_training_set(lake, USE_CASE, key=f"scaled-{uuid.uuid4().hex[:6]}")
    valid = training.read_set(lake, assembled.validation_uri)
    model = TripModel(Oracle(congestion), USE_CASE.features.all, "regression")
    baseline = TripModel(Oracle(2.0), USE_CASE.features.all, "regression")
    fitted = training.Fitted("oracle", {"congestion": congestion}, model, baseline, [], 0.0)
    evaluation, base = training.validate(USE_CASE, fitted, valid)
    logged = training.log_run(USE_CASE, fitted, evaluation, base, valid, assembled=assembled)
    return registry.register_challenger(USE_CASE, logged.run_id, logged.model_uri).version


def alias(which: str) -> str | None:
    return registry.alias_version(registry.client(), USE_CASE.model_name, which)


def gates_of(version: str) -> dict[str, dict[str, Any]]:
    tags = registry.client().get_model_version(USE_CASE.model_name, version).tags
    return {g["name"]: g for g in json.loads(tags["decision.gates"])}


def events(lake: Lake, version: str | None = None) -> list[Any]:
    found = registry.alias_events(USE_CASE.model_name, lake)
    return [e for e in found if version is None or version in (e.version, e.from_version)]


@pytest.mark.slow
def test_first_champion_against_the_baseline_and_its_history(world: dict[str, Any]) -> None:
    lake = world["lake"]
    first = register_scaled(lake, 1.3)
    assert [(e.alias, e.action, e.version) for e in events(lake, first)] == [
        ("challenger", "register", first)
    ]
    states = run_promote(USE_CASE)
    assert states["champion_moved"] == "success", states
    assert alias("champion") == first
    improvement = gates_of(first)["improvement"]
    assert improvement["passed"] and "point estimate" in improvement["detail"]
    [moved] = [e for e in events(lake, first) if e.alias == "champion"]
    assert (moved.action, moved.from_version, moved.by) == ("promote", None, "automatic (level 4)")
    assert moved.run_id.startswith("manual__") and moved.reason.startswith("promoted:")
    assert {g.name for g in moved.gates} >= {"improvement", "contract", "latency", "size"}


@pytest.mark.slow
def test_an_identical_challenger_is_not_promoted(world: dict[str, Any]) -> None:
    lake = world["lake"]
    same = register_scaled(lake, 1.3)
    states = run_promote(USE_CASE)
    assert states["champion_moved"] == "skipped", states
    improvement = gates_of(same)["improvement"]
    assert not improvement["passed"]
    assert improvement["interval"]["low"] <= 0 <= improvement["interval"]["high"]
    assert "needs the lower bound" in improvement["detail"]
    [retired] = [e for e in events(lake, same) if e.action == "retire"]
    assert (retired.alias, retired.from_version, retired.version) == ("challenger", same, None)
    assert retired.reason.startswith("rejected:") and retired.gates


@pytest.mark.slow
def test_a_better_challenger_is_promoted_on_its_interval(world: dict[str, Any]) -> None:
    lake = world["lake"]
    champion, better = alias("champion"), register_scaled(lake, 1.12)
    states = run_promote(USE_CASE)
    assert states["champion_moved"] == "success", states
    assert (alias("champion"), alias("previous_champion")) == (better, champion)
    improvement = gates_of(better)["improvement"]
    assert improvement["interval"]["low"] >= USE_CASE.promotion.min_relative_improvement
    assert "(95%, " in improvement["detail"] and gates_of(better)["slices"]["interval"] is not None
    tags = registry.client().get_model_version(USE_CASE.model_name, better).tags
    assert json.loads(tags["decision.evidence"])["improvement"]["low"] == improvement["interval"]["low"]
    [moved] = [e for e in events(lake, better) if e.alias == "champion"]
    assert moved.evidence["improvement"]["low"] == improvement["interval"]["low"]
    assert moved.evidence["rows"] > 1000 and moved.from_version == champion
    assert [e.alias for e in events(lake) if e.run_id == moved.run_id] == [
        "previous_champion",
        "champion",
        "challenger",
    ]


@pytest.mark.slow
def test_a_level_3_approval_is_recorded_with_the_approver(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.models.variable import Variable

    from mlplatform.airflow import approval, dagkit

    lake = world["lake"]
    monkeypatch.setattr(approval, "airflow_version", lambda: "3.0.6")  # the Variable path: no thread
    level_3 = USE_CASE.model_copy(
        update={
            "maturity_level": 3,
            "promotion": USE_CASE.promotion.model_copy(update={"approval_timeout_hours": 2 / 60}),
        }
    )
    best = register_scaled(lake, 1.0)
    key = approval.variable_key(dagkit.dag_id(level_3, "promote"))
    Variable.set(key, json.dumps({"version": best, "answer": "Approve", "by": "bob"}))
    try:
        states = run_promote(level_3, dag=load_dag_module("promote").build(level_3))
    finally:
        Variable.delete(key)
    assert states["champion_moved"] == "success", states
    [moved] = [e for e in events(lake, best) if e.alias == "champion"]
    assert (moved.by, moved.version) == ("bob", best)
    assert "approved" in moved.reason


@pytest.mark.slow
def test_rollback_is_recorded_with_its_reason_and_cooldown_and_history_answers(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lake = world["lake"]
    current, previous = alias("champion"), alias("previous_champion")
    states = run_promote(USE_CASE, {"action": "rollback", "reason": "live rmse worse than before"})
    assert states["rollback"] == "success", states
    assert alias("champion") == previous
    back = [e for e in events(lake) if e.action == "rollback"]
    assert (back[0].alias, back[0].from_version, back[0].version) == ("champion", current, previous)
    assert back[0].reason == "live rmse worse than before" and back[0].cooldown_until is not None
    assert back[0].by == "dag_test" and back[0].run_id.startswith("manual__")
    # Within the cooldown the next rollback fails at once, without retries, and moves nothing.
    again = load_dag_module("promote").build(USE_CASE)
    dag_run = again.test(logical_date=next(_dates), run_conf={"action": "rollback", "reason": "again"})
    [refused] = [ti for ti in dag_run.get_task_instances() if ti.task_id == "rollback"]
    assert (str(refused.state), refused.try_number) == ("failed", 1)
    assert alias("champion") == previous

    # Which version served when, and why, over the whole module's history.
    monkeypatch.setattr("mlplatform.core.spec.load_spec", lambda name: USE_CASE)
    champion_moves = [e for e in events(lake) if e.alias == "champion"]
    for event in champion_moves:
        moment = (datetime.fromisoformat(event.at) + timedelta(microseconds=1)).isoformat()
        capsys.readouterr()  # what the DAG runs logged
        assert cli.main(["history", USE_CASE.name, "--lake", lake.root_uri, "--at", moment, "--json"]) == 0
        answer = json.loads(capsys.readouterr().out)
        assert (answer["champion"], answer["reason"], answer["run_id"]) == (
            event.version,
            event.reason,
            event.run_id,
        )
    assert [e.version for e in champion_moves][-1] == previous
