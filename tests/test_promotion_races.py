"""Promotion is idempotent and concurrent promotions leave a consistent audit trail: five
promotions at once of one version, and of five versions, on the real MLflow server."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest

from mlplatform.adapters import registry
from mlplatform.core.records import Approval, Assessment, Gate
from mlplatform.core.spec import load_spec
from mlplatform.stages import promotion

USE_CASE = load_spec("taxi_trip_duration")
GATES = tuple(Gate(n, True, f"{n} ok") for n in ("contract", "improvement", "slices", "latency", "size"))


def registered(count: int) -> tuple[str, list[str]]:
    """A fresh registered model with ``count`` versions (alias moves need no artifacts)."""
    name = f"races_{uuid.uuid4().hex[:8]}"
    client = registry.client()
    client.create_registered_model(name)
    return name, [str(client.create_model_version(name, f"s3://m/{name}/{i}").version) for i in range(count)]


def assessed(name: str, version: str, champion: str | None) -> Assessment:
    """A version that passed every gate against ``champion``."""
    return Assessment(name, version, None, champion, "rmse", 4, gates=GATES, rows=1, candidate={})


def apply_together(name: str, versions: list[str], champion: str | None) -> list[dict[str, Any]]:
    """``promotion.apply`` for each version from its own thread, released at the same instant."""
    start = threading.Barrier(len(versions))
    results: list[promotion.PromotionOutcome] = []
    errors: list[BaseException] = []

    def run(i: int, version: str) -> None:
        try:
            assessment = assessed(name, version, champion)
            decision = promotion.decide(USE_CASE.model_copy(update={"maturity_level": 4}), assessment)
            start.wait()
            results.append(promotion.apply(USE_CASE, assessment, decision, run_id=f"race-{i}-{version}"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i, v)) for i, v in enumerate(versions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    assert not errors, errors
    assert len(results) == len(versions)
    return results


def tags(name: str, version: str) -> dict[str, str]:
    return dict(registry.client().get_model_version(name, version).tags)


@pytest.fixture(autouse=True)
def _quiet_alerts(webhook_sink: Any) -> None:
    """Decisions are posted to Slack: to the local sink here."""


def test_promoting_the_champion_again_is_a_no_op_that_says_so(mlflow_server: str) -> None:
    name, (v1,) = registered(1)
    first = promotion.apply(
        USE_CASE, assessed(name, v1, None), promotion.PromotionDecision("promoted", "ok", "alice")
    )
    assert first.outcome == "promoted"
    before = tags(name, v1)

    again = assessed(name, v1, v1)
    decision = promotion.decide(USE_CASE, again, Approval(True, "bob"))
    result = promotion.apply(USE_CASE, again, decision, run_id="again")
    assert (result.outcome, result.champion) == ("already_champion", v1)
    assert "already the champion" in result.reason
    assert tags(name, v1) == before  # nothing new recorded
    assert registry.alias_version(registry.client(), name, "previous_champion") is None


def test_five_concurrent_promotions_of_one_version(mlflow_server: str) -> None:
    name, (old, new) = registered(2)
    registry.promote(name, old, {"run_id": "setup"})

    results = apply_together(name, [new] * 5, champion=old)

    outcomes = sorted(r.outcome for r in results)
    assert outcomes == ["already_champion"] * 4 + ["promoted"]
    assert {r.champion for r in results} == {new}
    client = registry.client()
    assert registry.alias_version(client, name, "champion") == new
    assert registry.alias_version(client, name, "previous_champion") == old
    audit = tags(name, new)
    winner = next(r for r in results if r.outcome == "promoted")
    assert (audit["decision"], audit["decision.by"]) == ("promoted", winner.by)
    assert audit["decision.run_id"].startswith("race-")
    assert "decision" not in tags(name, old)
    history = client.get_registered_model(name).tags["champion_history"].split(",")
    assert history == [old, new]


def test_five_concurrent_promotions_of_different_versions(mlflow_server: str) -> None:
    name, (old, *candidates) = registered(6)
    registry.promote(name, old, {"run_id": "setup"})

    results = apply_together(name, candidates, champion=old)

    by_version = {r.version: r for r in results}
    winners = [v for v, r in by_version.items() if r.outcome == "promoted"]
    assert len(winners) == 1, results
    (winner,) = winners
    client = registry.client()
    assert registry.alias_version(client, name, "champion") == winner
    assert registry.alias_version(client, name, "previous_champion") == old
    assert tags(name, winner)["decision"] == "promoted"
    for version in candidates:
        if version == winner:
            continue
        assert by_version[version].outcome == "rejected"
        assert f"moved from version {old} to {winner}" in by_version[version].reason
        own = tags(name, version)  # each loser's audit trail is on its own version
        assert own["decision"] == "rejected" and own["decision.run_id"].endswith(f"-{version}")
        assert "champion_since" not in own
    assert client.get_registered_model(name).tags["champion_history"].split(",") == [old, winner]
    assert not client.search_registered_models(filter_string=f"name = '{registry.lock_name(name)}'")
