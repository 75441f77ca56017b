"""The live champion/challenger statistics of :mod:`mlplatform.core.evidence` against known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlplatform.core import evidence


def _window(
    rng: np.random.Generator, trips: int, ratio: float, correlation: float = 0.9
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Truth, champion and challenger with the challenger's RMSE ``ratio`` times the champion's."""
    shared = rng.standard_t(4, trips) / math.sqrt(2)
    own = math.sqrt((1 - correlation) / correlation)
    truth = rng.uniform(5, 40, trips)
    champion = truth + 5 * (shared + own * rng.standard_normal(trips))
    challenger = truth + ratio * 5 * (shared + own * rng.standard_normal(trips))
    return truth, champion, challenger


def test_sums_are_exact_skip_unpaired_trips_and_add_across_windows() -> None:
    y = np.array([10.0, 20.0, 30.0, np.nan, 5.0])
    champion = np.array([12.0, 19.0, 30.0, 7.0, np.nan])
    challenger = np.array([11.0, 20.0, 33.0, 7.0, 5.0])
    s = evidence.PairedSums.of(y, champion, challenger)
    # Trips 1-3 are paired: champion squared errors 4, 1, 0; challenger 1, 0, 9.
    assert s == evidence.PairedSums(3, 5.0, 10.0, 17.0, 82.0, 4.0)
    both = evidence.PairedSums.of(np.r_[y, y], np.r_[champion, champion], np.r_[challenger, challenger])
    assert s + s == both == evidence.PairedSums.total([s, s])
    assert evidence.PairedSums.from_dict(s.to_dict()) == s
    with pytest.raises(ValueError, match="as long"):
        evidence.PairedSums.of(y, champion[:3], challenger)


def test_improvement_is_the_relative_rmse_gain() -> None:
    y = np.zeros(2000)
    champion, challenger = np.full(2000, 2.0), np.full(2000, 1.0)  # RMSE 2 and 1: 50% better
    interval = evidence.improvement(evidence.PairedSums.of(y, champion, challenger))
    assert (interval.point, interval.low, interval.high) == pytest.approx((0.5, 0.5, 0.5))
    rng = np.random.default_rng(1)
    s = evidence.PairedSums.of(*_window(rng, 200_000, 0.95))
    interval = evidence.improvement(s)
    assert interval.contains(0.05) and interval.point == pytest.approx(0.05, abs=0.005)
    assert interval.rows == 200_000


def test_fixed_interval_agrees_with_the_paired_bootstrap() -> None:
    """One look: the delta-method interval is the paired bootstrap's of ``core.evidence``."""
    y, a, b = _window(np.random.default_rng(2), 5000, 0.97)
    fixed = evidence.improvement(evidence.PairedSums.of(y, a, b), sequential=False)
    boot = evidence.paired_bootstrap(y, a, b, "rmse", resamples=2000)
    assert fixed.point == pytest.approx(boot.point, abs=1e-9)
    width = boot.high - boot.low
    assert abs(fixed.low - boot.low) < 0.1 * width and abs(fixed.high - boot.high) < 0.1 * width


def test_the_sequence_is_wider_than_one_look_by_the_known_factor() -> None:
    n = evidence.DESIGN_TRIPS
    ratio = evidence.cs_radius(n, 1.0) / evidence.fixed_radius(n, 1.0)
    assert 1.5 < ratio < 1.6  # normal-mixture boundary tuned at n: sqrt(2(1+r)/r log(sqrt(1+r)/a)) / 1.96
    assert (
        evidence.cs_radius(10 * n, 1.0) < evidence.cs_radius(n, 1.0)
        and evidence.cs_radius(0, 1.0) == math.inf
    )


def test_no_overlap_and_too_few_trips_wait() -> None:
    y = np.arange(10.0)
    nothing = evidence.decide(evidence.PairedSums.of(y, np.full(10, np.nan), y), 0.01)
    assert nothing.outcome == "insufficient" and nothing.trips == 0 and "no labelled trip" in nothing.reason
    few = evidence.decide(evidence.PairedSums.of(*_window(np.random.default_rng(3), 300, 0.5)), 0.01)
    assert few.outcome == "insufficient" and few.trips == 300 and "fewer than the 1,000" in few.reason


def test_promote_retire_and_keep() -> None:
    rng = np.random.default_rng(4)
    better = evidence.decide(evidence.PairedSums.of(*_window(rng, 20_000, 0.95)), 0.01, ["2024-01"])
    assert better.outcome == "promote" and better.interval.low >= 0.01 and better.trips == 20_000
    worse = evidence.decide(evidence.PairedSums.of(*_window(rng, 20_000, 1.05)), 0.01, ["2024-01"])
    assert worse.outcome == "retire" and worse.interval.high < 0 and "worse" in worse.reason
    close = evidence.decide(evidence.PairedSums.of(*_window(rng, 2000, 0.985, 0.7)), 0.0, ["2024-01"])
    assert close.outcome == "keep"
    assert close.trips_needed is not None and close.trips_needed > 2000
    assert "2,000 paired labelled trips" in close.reason and "needed" in close.reason
    late = evidence.decide(
        evidence.PairedSums.of(*_window(rng, 2000, 0.985, 0.7)), 0.0, ["a", "b", "c"], max_windows=3
    )
    assert late.outcome == "retire" and "after 3 labelled windows" in late.reason
    assert better.to_dict()["interval"]["rows"] == 20_000  # type: ignore[index]


def test_trips_needed_is_about_right() -> None:
    """Keep says it needs N trips: with N trips of the same models it decides most of the time."""
    rng = np.random.default_rng(5)
    first = evidence.PairedSums.of(*_window(rng, 1500, 0.95, 0.6))
    needed = evidence.trips_needed(first, 0.0)
    assert needed is not None and needed > 1500
    decided = sum(
        evidence.decide(evidence.PairedSums.of(*_window(rng, 2 * needed, 0.95, 0.6)), 0.0).outcome
        == "promote"
        for _ in range(20)
    )
    assert decided >= 10


def test_false_promotion_rate_over_many_looks() -> None:
    """Equal models looked at after each of 30 windows: the sequence promotes at most 5% of the
    time; a fixed 95% interval read at every look promotes far more often."""
    rng = np.random.default_rng(6)
    sequence = fixed = 0
    for _ in range(200):
        s = evidence.PairedSums()
        seq_done = fixed_done = False
        for _look in range(30):
            s = s + evidence.PairedSums.of(*_window(rng, 500, 1.0))
            if s.n < evidence.MIN_TRIPS:
                continue
            seq_done = seq_done or evidence.decide(s, 0.0, max_windows=99).outcome == "promote"
            fixed_done = fixed_done or evidence.improvement(s, sequential=False).low > 0
        sequence += seq_done
        fixed += fixed_done
    assert sequence / 200 <= 0.05
    assert fixed > sequence


def test_rollback_when_the_previous_champion_is_better() -> None:
    rng = np.random.default_rng(7)
    y, new_champion, previous = _window(rng, 20_000, 0.93)  # the previous one errs less
    assert evidence.regressed(evidence.PairedSums.of(y, new_champion, previous)).outcome == "promote"
    y, new_champion, previous = _window(rng, 20_000, 1.0)
    assert evidence.regressed(evidence.PairedSums.of(y, new_champion, previous)).outcome == "keep"
    assert evidence.regressed(evidence.PairedSums()).outcome == "insufficient"


def test_level_3_asks_what_the_window_decided_once_per_version_and_action() -> None:
    """The live decisions a level-3 window marks ``ask`` become promote runs to trigger, with
    the evidence; those it only records ask nothing."""
    from mlplatform.core.records import LiveAsk, MonitoringRecord
    from mlplatform.stages.monitoring.decision import approval_asks, approval_runs

    rng = np.random.default_rng(11)
    decided = evidence.decide(evidence.PairedSums.of(*_window(rng, 20_000, 0.9)), 0.01, ["2024-04"])
    assert decided.outcome == "promote"
    regressed = evidence.regressed(evidence.PairedSums.of(*_window(rng, 20_000, 0.9)), ["2024-04"])
    details = {
        "live": {
            "challenger": {"version": "7", **decided.to_dict(), "acted": False, "ask": "promote"},
            "rollback": {
                "champion": "6",
                "previous": "5",
                **regressed.to_dict(),
                "acted": False,
                "ask": "rollback",
            },
        }
    }
    record = MonitoringRecord(
        use_case="taxi_trip_duration", window="2024-04", model_status="ok", metrics={}, details=details
    )

    promote, rollback = approval_asks(record)

    assert (promote.action, promote.version, promote.run_id) == ("promote", "7", "live__promote__v7")
    assert (rollback.action, rollback.version, rollback.run_id) == ("rollback", "6", "live__rollback__v6")
    assert rollback.evidence.live == "rollback" and rollback.evidence.trips == 20_000
    conf = promote.conf("2024-04").to_dict()  # the promote DAG's params: the version a number
    assert list(conf) == ["action", "version", "reason", "evidence", "triggered_by", "window"]
    assert conf["version"] == 7 and conf["triggered_by"] == "monitor" and conf["reason"] == decided.reason
    assert conf["evidence"] == {
        "interval": decided.interval.to_dict(),
        "trips": 20_000,
        "windows": ["2024-04"],
        "minimum_effect": 0.01,
        "live": "challenger",
    }
    assert LiveAsk.from_params(conf) == promote  # what the promote run reads back
    assert [run.to_dict() for run in approval_runs(record)] == [
        {"trigger_run_id": ask.run_id, "conf": ask.conf("2024-04").to_dict()} for ask in (promote, rollback)
    ]
    assert "20,000 labelled trips (windows 2024-04)" in promote.evidence.text()
    with pytest.raises(ValueError):  # evidence of the wrong shape is refused, not guessed at
        LiveAsk.from_params({**conf, "evidence": {"trips": "many"}})
    assert LiveAsk.from_params({"action": "promote", "version": 7}) is None  # no evidence: not a live ask
    recorded = {"live": {"challenger": {**details["live"]["challenger"], "ask": None}}}
    assert (
        approval_asks(
            MonitoringRecord(
                use_case="taxi_trip_duration",
                window="2024-04",
                model_status="ok",
                metrics={},
                details=recorded,
            )
        )
        == []
    )
