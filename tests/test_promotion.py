"""The registry: decisions by maturity level, gates, the promotion lock, concurrent
promotions, rollback; on the real MLflow server (SQLite) and once on PostgreSQL."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from mlplatform import cli
from mlplatform.adapters import registry, snapshots
from mlplatform.adapters.lake import Lake
from mlplatform.core import generator, spec, tlc
from mlplatform.core.records import Approval, Assessment, Gate
from mlplatform.core.spec import UseCase, load_spec
from mlplatform.stages import promotion, training
from mlplatform.stages.promotion import gates

from conftest import MlflowServer, throwaway_postgres

BASE = load_spec("taxi_trip_duration")


def use_case(name: str, **updates: Any) -> UseCase:
    """A variant of the duration use case under its own registered model name, small model."""
    model = BASE.model.model_copy(
        update={
            "hyperparameters": {**BASE.model.hyperparameters, "max_iter": 40, "learning_rate": 0.2},
            "search": {},
        }
    )
    return BASE.model_copy(update={"name": name, "model": model, **updates})


def passed(*failed: str) -> Assessment:
    """An assessment whose listed gates failed."""
    names = ("contract", "improvement", "slices", "latency", "size")
    gates = tuple(Gate(n, n not in failed, f"{n} detail") for n in names)
    return Assessment(BASE.model_name, "1", None, None, "rmse", BASE.maturity_level, gates=gates)


# -- decisions ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("level", "assessment", "approval", "outcome", "by"),
    [
        (4, passed(), None, "promoted", "automatic (level 4)"),
        (3, passed(), None, "awaiting_approval", "gates"),
        (2, passed(), None, "awaiting_promotion", "gates"),
        (3, passed(), Approval(True, "alice"), "promoted", "alice"),
        (2, passed(), Approval(True, "bob"), "promoted", "bob"),
        (3, passed(), Approval(False, "alice"), "rejected", "alice"),
        (3, passed(), Approval(False, None), "rejected", "approval timeout"),
        (4, passed("slices"), None, "rejected", "gates"),
        # A bad model is never promoted, approved or not.
        (2, passed("contract"), Approval(True, "bob"), "rejected", "gates"),
        (3, passed("latency", "size"), Approval(True, "alice"), "rejected", "gates"),
    ],
)
def test_decisions_follow_the_maturity_level_and_never_pass_a_failed_gate(
    level: int, assessment: Assessment, approval: Approval | None, outcome: str, by: str
) -> None:
    decision = promotion.decide(BASE.model_copy(update={"maturity_level": level}), assessment, approval)
    assert (decision.outcome, decision.by) == (outcome, by)
    if outcome == "rejected" and by == "gates":
        assert all(f"{g.name}: " in decision.reason for g in assessment.gates if not g.passed)


def test_an_assessment_reads_back_from_its_json_form() -> None:
    assessment = Assessment(
        "m",
        "3",
        "run",
        "2",
        "rmse",
        4,
        gates=(Gate("contract", True, "ok"), Gate("improvement", False, "worse")),
        evaluated_on=("2024-03:abc",),
        rows=10,
        candidate={"overall": {"rmse": 5.0}, "slices": {}, "rows": 10},
        reference={"kind": "baseline (linear)", "rmse": 6.0},
    )
    data = json.loads(json.dumps(assessment.to_dict()))
    assert list(data) == [
        "model_name",
        "version",
        "run_id",
        "champion_version",
        "metric",
        "maturity_level",
        "evaluated_on",
        "rows",
        "candidate",
        "reference",
        "gates",
        "passed",
    ]
    again = Assessment.from_dict({**data, "summary_md": "ignored"})
    assert again == assessment and again.to_dict() == data
    assert (again.candidate_value, again.reference_kind, again.passed) == (5.0, "baseline (linear)", False)
    assert again.failed_gates() == ["improvement: worse"]


# -- the data contract gate ----------------------------------------------------------------------
def test_contract_gate_needs_a_passed_contract_for_every_snapshot(lake: Lake) -> None:
    table = tlc.normalise(generator.generate_month("yellow", "2024-01", 100).table)
    good, _ = snapshots.write_snapshot(lake, "uc", "2024-01", table, {"contract": {"success": True}})
    bad, _ = snapshots.write_snapshot(lake, "uc", "2024-02", table, {"contract": {"success": False}})
    bare, _ = snapshots.write_snapshot(lake, "uc", "2024-03", table, {"source": {"path": "x"}})
    uc = BASE.model_copy(update={"name": "uc"})

    def gate(*snaps: Any, unknown: bool = False) -> Gate:
        refs = [{"month": s.month, "digest": s.digest, "role": "training"} for s in snaps]
        if unknown:
            refs.append({"month": "2024-04", "digest": "0" * 64, "role": "validation"})
        return gates.contract_gate(lake, uc, refs)

    assert gate(good).passed
    assert not gate(good, bad).passed and "2024-02" in gate(good, bad).detail
    assert "no contract record" in gate(bare).detail and not gate(bare).passed
    assert "snapshot not found" in gate(good, unknown=True).detail
    assert not gate().passed  # a run that logged no snapshots proves nothing


# -- aliases, the lock, concurrency, rollback -------------------------------------------------
def fake_versions(name: str, count: int) -> list[str]:
    """A registered model with ``count`` versions (alias moves need no artifacts)."""
    client = registry.client()
    client.create_registered_model(name)
    return [str(client.create_model_version(name, f"s3://models/{name}/{i}").version) for i in range(count)]


def aliases(name: str) -> tuple[str | None, str | None]:
    client = registry.client()
    return registry.alias_version(client, name, "champion"), registry.alias_version(
        client, name, "previous_champion"
    )


def history(name: str) -> list[str]:
    return registry.client().get_registered_model(name).tags["champion_history"].split(",")


def lock_left(name: str) -> bool:
    return bool(
        registry.client().search_registered_models(filter_string=f"name = '{registry.lock_name(name)}'")
    )


def _promote_together(name: str, versions: list[str]) -> None:
    """Promote ``versions`` from as many threads, released at the same instant."""
    start = threading.Barrier(len(versions))
    errors: list[BaseException] = []

    def promote(version: str) -> None:
        try:
            start.wait()
            registry.promote(name, version, {"run_id": f"run-{version}"})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=promote, args=(v,)) for v in versions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors


def check_concurrent_promotions(name: str, rounds: int = 3) -> None:
    versions = fake_versions(name, 1 + 2 * rounds)
    registry.promote(name, versions[0], {"run_id": "setup"})
    for r in range(rounds):
        before = aliases(name)[0]
        pair = versions[1 + 2 * r : 3 + 2 * r]
        _promote_together(name, pair)
        champion, previous = aliases(name)
        # Exactly as if one promotion ran after the other.
        assert {champion, previous} == set(pair)
        assert history(name)[-3:] == [before, previous, champion]
    assert not lock_left(name)


def test_concurrent_promotions_do_not_corrupt_aliases(mlflow_server: str) -> None:
    check_concurrent_promotions(f"concurrent_{uuid.uuid4().hex[:6]}")


def test_the_lock_is_exclusive_names_its_holder_and_breaks_when_stale(mlflow_server: str) -> None:
    name = f"locked_{uuid.uuid4().hex[:6]}"
    order: list[str] = []

    def second() -> None:
        with registry.promotion_lock(registry.client(), name, "second"):
            order.append("second acquired")

    with registry.promotion_lock(registry.client(), name, "first"):
        waiter = threading.Thread(target=second)
        waiter.start()
        time.sleep(1.0)
        order.append("first released")
    waiter.join(timeout=60)
    assert order == ["first released", "second acquired"]

    with (
        registry.promotion_lock(registry.client(), name, "holder-x"),
        pytest.raises(registry.PromotionError, match="holder-x"),
        registry.promotion_lock(registry.client(), name, "impatient", wait_s=0.5),
    ):
        pass

    registry.client().create_registered_model(registry.lock_name(name), tags={"holder": "a dead worker"})
    with registry.promotion_lock(registry.client(), name, "next", stale_after_s=0.0):
        pass
    assert not lock_left(name)


def test_rollback_goes_back_one_champion_at_a_time(mlflow_server: str, webhook_sink: Any) -> None:
    name = f"rollback_{uuid.uuid4().hex[:6]}"
    v1, v2, v3 = fake_versions(name, 3)
    for version in (v1, v2, v3):
        registry.promote(name, version, {"run_id": "r"})
    assert aliases(name) == (v3, v2)
    again = registry.promote(name, v3, {"run_id": "again", "expected_champion": v1})
    assert (again.champion, again.moved) == (v3, False)  # already champion: a no-op, whatever was expected
    assert aliases(name) == (v3, v2)
    with pytest.raises(registry.PromotionError, match=f"moved from version {v1} to {v3}"):
        registry.promote(name, v2, {"run_id": "stale", "expected_champion": v1})  # judged against v1
    assert aliases(name) == (v3, v2)

    webhook_sink.clear()
    assert registry.rollback(name, by="carol")["champion"] == v2
    assert aliases(name) == (v2, v1)
    tags = registry.client().get_model_version(name, v3).tags
    assert (tags["decision"], tags["decision.by"]) == ("rolled_back", "carol")
    assert any(f"rolled back to version {v2}" in m["text"] for m in webhook_sink.messages())

    registry.rollback(name)
    assert aliases(name) == (v1, None)
    with pytest.raises(registry.PromotionError, match="no previous_champion"):
        registry.rollback(name)
    assert aliases(name) == (v1, None)


# -- gates on a real model ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(mlflow_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A small challenger trained and registered under its own name, on a lake of three months."""
    lake = Lake(tmp_path_factory.mktemp("gates").joinpath("lake").as_uri())
    uc = use_case(f"gates_{uuid.uuid4().hex[:6]}")
    for i, month in enumerate(("2024-01", "2024-02", "2024-03")):
        table = tlc.normalise(generator.generate_month("yellow", month, 6000, seed=i).table)
        snapshots.write_snapshot(lake, uc.name, month, table, {"contract": {"success": True}})
    assembled = training.assemble_training_set(lake, uc, key="gates")
    logged = training.fit_and_log(lake, uc, assembled, reason="gate tests")
    version = registry.register_challenger(uc, logged.run_id, logged.model_uri).version
    yield {"lake": lake, "use_case": uc, "version": version}


def test_budgets_reject_even_an_approved_model(trained: dict[str, Any]) -> None:
    uc: UseCase = trained["use_case"]
    tight = uc.model_copy(
        update={
            "promotion": uc.promotion.model_copy(update={"max_latency_ms": 1e-6, "max_model_size_mb": 1e-6})
        }
    )
    result = promotion.evaluate_and_decide(trained["lake"], tight, approval=Approval(True, "dave"))
    assert result.outcome == "rejected"
    assert "latency" in result.reason and "size" in result.reason
    assert registry.alias_version(registry.client(), uc.model_name, "champion") is None


def test_first_model_must_beat_the_baseline(
    trained: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    uc: UseCase = trained["use_case"]
    version = trained["version"]
    impossible = uc.model_copy(
        update={"promotion": uc.promotion.model_copy(update={"min_relative_improvement": 0.99})}
    )
    assessment = promotion.assess(trained["lake"], impossible, version)
    assert assessment.reference_kind == "baseline (linear)"
    assert [g.name for g in assessment.gates if not g.passed] == ["improvement"]

    # At level 2 the command records the decision; with --approve it promotes.
    level_2 = uc.model_copy(update={"maturity_level": 2})
    monkeypatch.setattr(spec, "load_spec", lambda name: level_2)
    command = [
        "promote",
        "--use-case",
        uc.name,
        "--version",
        version,
        "--lake",
        trained["lake"].root_uri,
        "--json",
    ]
    assert cli.main(command) == 0
    assert json.loads(capsys.readouterr().out)["outcome"] == "awaiting_promotion"
    assert registry.alias_version(registry.client(), uc.model_name, "champion") is None
    assert cli.main([*command, "--approve"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["outcome"], result["champion"]) == ("promoted", version)
    assert cli.main([*command, "--approve"]) == 0  # again: a no-op that says so
    assert json.loads(capsys.readouterr().out)["outcome"] == "already_champion"
    assert cli.main(["rollback", "--use-case", uc.name]) == 1
    assert "no previous_champion" in capsys.readouterr().err
    # The same version again: not a promotion.
    again = promotion.assess(trained["lake"], uc, version)
    assert not again.passed and "already the champion" in str(again.gates)


# -- PostgreSQL --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def postgres_mlflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An MLflow server on a throwaway PostgreSQL database (trust auth, user postgres)."""
    with throwaway_postgres("mlflow_test") as database:
        server = MlflowServer(tmp_path_factory.mktemp("mlflow-pg"), backend_store_uri=database).start()
        try:
            yield server.url
        finally:
            server.stop()


@pytest.mark.services
def test_registry_round_trip_on_postgresql(postgres_mlflow: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", postgres_mlflow)
    # The registry code sets MLflow's process-wide tracking URI; point it back at the suite's
    # server afterwards, or later tests would talk to this one after it has stopped.
    previous_uri = mlflow.get_tracking_uri()
    try:
        check_concurrent_promotions("pg_concurrent", rounds=1)
        assert aliases("pg_concurrent")[0] is not None
        champion, previous = aliases("pg_concurrent")
        registry.rollback("pg_concurrent", by="pg")
        assert aliases("pg_concurrent")[0] == previous
        assert history("pg_concurrent")[-1] == previous
        assert champion not in history("pg_concurrent")
    finally:
        mlflow.set_tracking_uri(previous_uri)
