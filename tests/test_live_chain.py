"""Level 3 on production truth, end to end: a whole monitor DAG run whose live verdict asks,
then the promote run that verdict triggered, run whole with its run id and conf as the
trigger wrote them in Airflow's metadata DB, its approval answered through the HITL API.

Three verdicts: a better challenger promoted (through its gates), a worse one retired, and
a champion worse than the previous one rolled back (outside any cooldown: each test has a
lake, so an alias history, of its own). Each move is checked in the registry and in the
alias history: who, why, and the live evidence the monitor measured.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from test_monitor_dag import (  # the monitor DAG's services, months and runs
    USE_CASE,
    alert_sink,  # noqa: F401  (fixture)
    platform,  # noqa: F401  (fixture)
    world,  # noqa: F401  (fixture)
)
from test_monitor_live import _labelled_window, aliases, register  # noqa: F401  (fixture)
from test_train_promote_dags import answer_approval, register_oracle

from mlplatform.adapters import registry
from mlplatform.adapters.lake import Lake
from mlplatform.core.records import AliasEvent, LiveAsk
from mlplatform.stages import monitoring

from conftest import load_dag_module

pytestmark = pytest.mark.slow

PROMOTE_DAG_ID = f"{USE_CASE.name}_promote"
# Level 3, approvals waiting two minutes (the reminder's checks scale with it).
LEVEL_3 = USE_CASE.model_copy(
    update={
        "maturity_level": 3,
        "promotion": USE_CASE.promotion.model_copy(update={"approval_timeout_hours": 2 / 60}),
    }
)
_dates = (datetime(2033, 1, 1, tzinfo=UTC) + timedelta(hours=i) for i in range(10_000))


def monitor_asks(window: str, run_id: str) -> Any:
    """A whole level-3 monitor run of ``window``; the promote run it triggered, read from the DB."""
    from airflow.models.dagrun import DagRun

    run = (
        load_dag_module("monitor").build(LEVEL_3).test(logical_date=next(_dates), run_conf={"window": window})
    )
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert str(run.state) == "success" and states["trigger_approval"] == "success", states
    [asked] = DagRun.find(dag_id=PROMOTE_DAG_ID, run_id=run_id)
    assert str(asked.state) == "queued"  # waiting for a scheduler: nothing ran yet
    return asked


def run_asked(asked: Any, answer: str) -> dict[str, str]:
    """Run the queued promote run whole, answering its approval as alice; each task's state.

    ``dag.test()`` of this Airflow takes no run id: it replaces the run of the same logical
    date with one it names itself. Its run id is pinned to the queued run's, and the run's
    own conf, logical date and run-after are passed, so the run that executes is the one
    the monitor triggered.
    """
    from airflow.models.dagrun import DagRun

    run_id, conf = asked.run_id, dict(asked.conf)
    seen = answer_approval(PROMOTE_DAG_ID, answer=answer)
    try:
        with pytest.MonkeyPatch.context() as pinned:
            pinned.setattr(DagRun, "generate_run_id", staticmethod(lambda **_: run_id))
            run = (
                load_dag_module("promote")
                .build(LEVEL_3)
                .test(logical_date=asked.logical_date, run_after=asked.run_after, run_conf=conf)
            )
    finally:
        seen["thread"].join(timeout=30)
    assert run.run_id == run_id and seen.get("run_id") == run_id and seen.get("answered") == answer
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def moves(lake: Lake, since: int) -> list[AliasEvent]:
    return registry.alias_events(USE_CASE.model_name, lake)[since:]


def _history_size(lake: Lake) -> int:
    return len(registry.alias_events(USE_CASE.model_name, lake))


@pytest.fixture
def approvals(world: dict[str, Any]) -> Iterator[dict[str, Any]]:  # noqa: F811
    """The world, with the Slack messages posted from here on read back over HTTP."""
    before = len(_all_messages(world["sink"]))
    yield {**world, "posted": lambda: [json.dumps(m) for m in _all_messages(world["sink"])[before:]]}


def _all_messages(sink: Any) -> list[dict[str, Any]]:
    import httpx

    return list(httpx.get(f"{sink.url}/messages", timeout=10).json())


def test_the_promotion_the_monitor_asks_for_is_approved_and_moves_the_champion(
    approvals: dict[str, Any],
    aliases: Any,  # noqa: F811
) -> None:
    lake, champion, name = approvals["lake"], approvals["version"], USE_CASE.model_name
    _labelled_window(lake, "2024-04", seed=21)  # scored by the champion
    better = register_oracle(lake, congestion=1.0, use_case=USE_CASE)
    asked = monitor_asks("2024-04", f"live__promote__v{better}")
    record = monitoring.read_record(lake, USE_CASE.name, "2024-04")
    assert record is not None
    verdict = record.details["live"]["challenger"]
    assert (verdict["outcome"], verdict["ask"], verdict["acted"]) == ("promote", "promote", False)
    assert registry.alias_version(aliases, name, registry.CHAMPION) == champion  # the monitor asked only
    ask = LiveAsk.from_params(asked.conf)
    assert ask is not None and (ask.action, ask.version) == ("promote", better)
    assert asked.conf["triggered_by"] == "monitor" and asked.conf["window"] == "2024-04"
    assert (
        asked.conf["evidence"]["trips"] == verdict["trips"] and asked.conf["evidence"]["live"] == "challenger"
    )
    before = _history_size(lake)

    states = run_asked(asked, "Approve")

    assert states["assess"] == "success" and states["request_approval"] == "success", states
    assert states["approved"] == "success" and states["champion_moved"] == "success", states
    assert registry.alias_version(aliases, name, registry.CHAMPION) == better
    assert registry.alias_version(aliases, name, registry.PREVIOUS) == champion
    assert registry.alias_version(aliases, name, registry.CHALLENGER) is None
    [moved] = [e for e in moves(lake, before) if e.alias == registry.CHAMPION]
    assert (moved.action, moved.version, moved.from_version) == ("promote", better, champion)
    assert moved.by == "alice" and moved.run_id == asked.run_id
    assert moved.reason == "promoted: gates passed and a person approved"
    assert moved.evidence["live"] == asked.conf["evidence"]  # the monitor's evidence, as it travelled
    assert moved.evidence["improvement"]["low"] > 0 and moved.gates and all(g.passed for g in moved.gates)
    tags = aliases.get_model_version(name, better).tags
    assert (tags["decision"], tags["decision.by"], tags["decision.run_id"]) == (
        "promoted",
        "alice",
        asked.run_id,
    )
    [request] = [m for m in approvals["posted"]() if f"version {better} waits for approval" in m]
    assert "Live evidence" in request and f"{verdict['trips']:,}" in request


def test_the_retirement_the_monitor_asks_for_is_approved_and_removes_only_the_challenger(
    approvals: dict[str, Any],
    mlflow_server: str,
    aliases: Any,  # noqa: F811
) -> None:
    lake, champion, name = approvals["lake"], approvals["version"], USE_CASE.model_name
    _labelled_window(lake, "2024-04", seed=21)
    worse = register(lake, mlflow_server, max_iter=300, rows_scale=3, bias=1.6)
    aliases.set_registered_model_alias(name, registry.CHALLENGER, worse)
    asked = monitor_asks("2024-04", f"live__retire__v{worse}")
    assert registry.alias_version(aliases, name, registry.CHALLENGER) == worse  # asked, not retired
    before = _history_size(lake)

    states = run_asked(asked, "Approve")

    assert states["ask_live"] == "success" and states["assess"] == "skipped", states
    assert states["decide"] == "success" and states["champion_moved"] == "skipped", states
    assert registry.alias_version(aliases, name, registry.CHALLENGER) is None
    assert registry.alias_version(aliases, name, registry.CHAMPION) == champion
    assert registry.alias_version(aliases, name, registry.PREVIOUS) is None
    [retired] = moves(lake, before)  # nothing else moved
    assert (retired.alias, retired.action, retired.version, retired.from_version) == (
        registry.CHALLENGER,
        "retire",
        None,
        worse,
    )
    assert retired.by == "alice" and retired.run_id == asked.run_id
    assert retired.reason.startswith("retire: challenger") and "(approved)" in retired.reason
    assert retired.evidence == {"live": asked.conf["evidence"], "approved_by": "alice"}
    assert retired.evidence["live"]["interval"]["high"] < 0
    tags = aliases.get_model_version(name, worse).tags
    assert (tags["live_decision"], tags["live_decision.by"]) == ("retire:retired", "alice")
    assert tags["live_decision.run_id"] == asked.run_id
    assert any(f"version {worse}: retire on live evidence retired" in m for m in approvals["posted"]())


def test_the_rollback_the_monitor_asks_for_is_approved_and_restores_the_previous_champion(
    approvals: dict[str, Any],
    mlflow_server: str,
    aliases: Any,  # noqa: F811
) -> None:
    lake, previous, name = approvals["lake"], approvals["version"], USE_CASE.model_name
    worse = register(lake, mlflow_server, max_iter=300, rows_scale=3, bias=1.6)
    registry.promote(name, worse, {"by": "test", "reason": "a bad promotion"}, aliases, lake)
    _labelled_window(lake, "2024-04", seed=21)  # scored by the (worse) champion
    asked = monitor_asks("2024-04", f"live__rollback__v{worse}")
    assert registry.alias_version(aliases, name, registry.CHAMPION) == worse  # asked, not rolled back
    before = _history_size(lake)

    states = run_asked(asked, "Approve")

    assert states["ask_live"] == "success" and states["decide"] == "success", states
    assert states["champion_moved"] == "success", states
    assert registry.alias_version(aliases, name, registry.CHAMPION) == previous
    [back] = [e for e in moves(lake, before) if e.alias == registry.CHAMPION]
    assert (back.action, back.version, back.from_version) == ("rollback", previous, worse)
    assert back.by == "alice" and back.run_id == asked.run_id and back.cooldown_until
    assert back.reason.startswith("rollback: the previous champion is better with confidence")
    assert back.evidence == {"live": asked.conf["evidence"], "approved_by": "alice"}
    assert back.evidence["live"]["live"] == "rollback" and back.evidence["live"]["interval"]["low"] > 0
    tags = aliases.get_model_version(name, worse).tags
    assert (tags["live_decision"], tags["live_decision.by"]) == ("rollback:rolled_back", "alice")
    # Slack hears of it with the evidence: the interval, the labelled trips and the windows.
    [posted] = [m for m in approvals["posted"]() if f"version {worse}: rollback on live evidence" in m]
    trips = asked.conf["evidence"]["trips"]
    assert "rolled back" in posted and "alice" in posted and f"{trips:,} labelled trips" in posted
    assert "2024-04" in posted
