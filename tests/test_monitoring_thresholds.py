"""Unit tests of the threshold rule table (mlplatform.stages.monitoring.decision) and its breaches."""

from __future__ import annotations

import pytest

from mlplatform.core.spec import load_spec
from mlplatform.stages.monitoring import decision
from mlplatform.stages.monitoring.decision import COMPARISONS, spec_limit

USE_CASE = load_spec("taxi_trip_duration")
CLASSIFIER = load_spec("taxi_generous_tip")


@pytest.mark.parametrize("use_case", [USE_CASE, CLASSIFIER], ids=lambda u: u.name)
def test_every_rule_reads_a_spec_field_and_a_known_comparison(use_case) -> None:
    names = [rule.name for rule in decision.THRESHOLD_RULES]
    assert len(names) == len(set(names))
    for rule in decision.THRESHOLD_RULES:
        assert rule.breached_when in COMPARISONS
        assert isinstance(spec_limit(use_case, rule.limit), int | float), rule.name
    assert spec_limit(use_case, "monitoring.max_error_rate") == use_case.monitoring.max_error_rate


def test_breaches_compare_with_the_spec_thresholds() -> None:
    m = USE_CASE.monitoring
    quiet = {"rmse": 3.0, "rmse_reference": 3.0, "rmse_degradation": 0.0, "drift_share": 0.0}
    assert decision.breaches(USE_CASE, quiet) == []
    assert decision.breaches(USE_CASE, {**quiet, "contract_success": True}) == []
    loud = {
        **quiet,
        "rmse": 4.0,
        "rmse_degradation": m.max_relative_degradation + 0.01,
        "prediction_drift": m.prediction_drift_threshold * 2,
        "error_rate": m.max_error_rate * 2,
        "p99_latency_ms": m.max_p99_latency_ms + 1,
        "contract_success": False,
    }
    found = {b.metric: b for b in decision.breaches(USE_CASE, loud)}
    assert set(found) == {"rmse", "prediction_drift", "error_rate", "p99_latency_ms", "contract"}
    assert found["rmse"].retrain and found["prediction_drift"].retrain
    assert not found["error_rate"].retrain and not found["contract"].retrain
    assert "worse than the champion" in found["rmse"].message
    # The performance breach carries the metric and the value it may reach, not the degradation.
    assert found["rmse"].value == 4.0
    assert found["rmse"].threshold == pytest.approx(3.0 * (1 + m.max_relative_degradation))
    assert (found["contract"].value, found["contract"].threshold) == (0.0, 1.0)


def test_breaches_are_reported_in_table_order_with_their_messages() -> None:
    m = CLASSIFIER.monitoring
    every = {
        "log_loss": 0.8,
        "log_loss_reference": 0.5,
        "log_loss_degradation": 0.6,
        "drift_share": 0.5,
        "prediction_drift": 0.3,
        "contract_success": False,
        "quarantined_share": 0.5,
        "error_rate": 0.5,
        "p99_latency_ms": 999.0,
    }

    found = decision.breaches(CLASSIFIER, every)

    assert [b.metric for b in found] == [
        "log_loss",
        "drift_share",
        "prediction_drift",
        "contract",
        "quarantined_share",
        "error_rate",
        "p99_latency_ms",
    ]
    assert [b.kind for b in found] == [
        "performance",
        "drift",
        "drift",
        "quality",
        "quality",
        "serving",
        "serving",
    ]
    messages = {b.metric: b.message for b in found}
    assert messages["log_loss"] == (
        f"log_loss 0.8 is 60.0% worse than the champion's 0.5 at training "
        f"(limit {m.max_relative_degradation:.0%})"
    )
    assert messages["drift_share"] == (
        f"50% of features drifted (limit {m.drifted_share_threshold:.0%}; a feature drifts above a "
        f"distance of {m.drift_threshold})"
    )
    assert messages["prediction_drift"] == f"prediction drift 0.300 (limit {m.prediction_drift_threshold})"
    assert messages["quarantined_share"] == (
        f"50.0% of the window's rows were quarantined (limit {CLASSIFIER.contract.max_bad_row_share:.0%})"
    )
    assert messages["error_rate"] == f"serving error rate 50.00% (limit {m.max_error_rate:.2%})"
    assert messages["p99_latency_ms"] == f"serving p99 latency 999 ms (limit {m.max_p99_latency_ms:.0f} ms)"


def test_unmeasured_metrics_breach_nothing() -> None:
    assert decision.breaches(CLASSIFIER, {}) == []
    assert decision.breaches(CLASSIFIER, {"contract_success": None, "drift_share": None}) == []
