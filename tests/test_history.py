"""The alias history: every move of champion, challenger and previous_champion recorded in
the lake before it happens (and none without its record), rollback with its reason,
evidence and cooldown, and `mlplatform history` answering which version served when."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mlplatform import cli
from mlplatform.adapters import registry
from mlplatform.adapters.lake import Lake
from mlplatform.cli import arguments
from mlplatform.core.records import AliasEvent, Gate
from mlplatform.core.spec import load_spec
from mlplatform.stages import promotion

BASE = load_spec("taxi_trip_duration")


def fake_versions(name: str, count: int) -> list[str]:
    """A registered model with ``count`` versions (alias moves need no artifacts)."""
    client = registry.client()
    client.create_registered_model(name)
    return [str(client.create_model_version(name, f"s3://models/{name}/{i}").version) for i in range(count)]


def aliases(name: str) -> dict[str, str | None]:
    client = registry.client()
    return {
        a: registry.alias_version(client, name, a) for a in ("champion", "previous_champion", "challenger")
    }


def unwritable(tmp_path: Path) -> Lake:
    """A lake whose root lies below a regular file: nothing can be written there (even by root)."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the lake's folder should be")
    return Lake((blocker / "lake").as_uri())


def moves(events: list[AliasEvent]) -> list[tuple[str, str, str | None, str | None]]:
    return [(e.alias, e.action, e.from_version, e.version) for e in events]


# -- records ------------------------------------------------------------------------------------
def test_an_alias_event_reads_back_from_its_json_form() -> None:
    event = AliasEvent(
        "20240101T000000000000Z-champion-3-abcd",
        "2024-01-01T00:00:00+00:00",
        "m",
        "champion",
        "promote",
        "3",
        "2",
        "alice",
        "manual__1",
        "promoted: gates passed",
        {"improvement": {"point": 0.1, "low": 0.05, "high": 0.15}},
        (Gate("improvement", True, "ok", {"point": 0.1}),),
    )
    again = AliasEvent.from_dict(json.loads(json.dumps(event.to_dict())))
    assert again == event
    with pytest.raises(ValueError, match="lacks alias"):
        AliasEvent.from_dict({k: v for k, v in event.to_dict().items() if k != "alias"})


def test_applied_leaves_out_a_recorded_move_that_never_happened() -> None:
    def event(at: str, alias: str, before: str | None, after: str | None) -> AliasEvent:
        return AliasEvent(f"{at}-{alias}", at, "m", alias, "promote", after, before, "x")

    found = [
        event("2024-01-01T00:00:00+00:00", "champion", None, "1"),
        event("2024-02-01T00:00:00+00:00", "champion", "1", "2"),  # recorded, then the writer died
        event("2024-03-01T00:00:00+00:00", "champion", "1", "3"),  # starts from where it really was
    ]
    assert [e.version for e in registry.applied(found)] == ["1", "3"]
    assert registry.serving_at(found, datetime(2024, 2, 15, tzinfo=UTC)).version == "1"
    assert registry.serving_at(found, datetime(2023, 12, 31, tzinfo=UTC)) is None
    assert registry.until(found, found[0]) == "2024-03-01T00:00:00+00:00"
    assert arguments.instant("2024-02-15") == datetime(2024, 2, 15, tzinfo=UTC)
    with pytest.raises(ValueError, match="not a date or time"):
        arguments.instant("last tuesday")


# -- every move recorded, before it happens -----------------------------------------------------
def test_promotions_and_rollbacks_are_recorded_before_the_aliases_move(
    mlflow_server: str, lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"history_{uuid.uuid4().hex[:6]}"
    v1, v2, v3 = fake_versions(name, 3)
    client = registry.client()
    client.set_registered_model_alias(name, "challenger", v2)

    # Each alias is only set once its event is in the lake.
    seen_at_move: list[int] = []
    real_set = type(client).set_registered_model_alias

    def checked_set(self: Any, model: str, alias: str, version: str) -> None:
        if model == name:
            recorded = [e for e in registry.alias_events(name, lake) if e.alias == alias]
            assert recorded and recorded[-1].version == str(version), (alias, version, recorded)
            seen_at_move.append(len(recorded))
        real_set(self, model, alias, version)

    monkeypatch.setattr(type(client), "set_registered_model_alias", checked_set)
    why = {"run_id": "run-a", "by": "automatic (level 4)", "reason": "promoted: gates passed"}
    registry.promote(name, v1, why, history=lake)
    registry.promote(name, v2, {**why, "run_id": "run-b", "evidence": {"rows": 5000}}, history=lake)
    registry.promote(name, v3, {**why, "run_id": "run-c", "by": "alice"}, history=lake)
    assert len(seen_at_move) == 5  # champion x3, previous_champion x2

    events = registry.alias_events(name, lake)
    assert moves(events) == [
        ("champion", "promote", None, v1),
        ("previous_champion", "promote", None, v1),
        ("champion", "promote", v1, v2),
        ("challenger", "promote", v2, None),
        ("previous_champion", "promote", v1, v2),
        ("champion", "promote", v2, v3),
    ]
    assert [e.run_id for e in events if e.alias == "champion"] == ["run-a", "run-b", "run-c"]
    assert events[-1].by == "alice" and events[2].evidence == {"rows": 5000}
    tagged = json.loads(client.get_registered_model(name).tags[registry.LAST_EVENTS_TAG])
    assert {t["alias"] for t in tagged} == {"champion", "previous_champion"}

    # A rollback on quality: reason, evidence and a cooldown in the record.
    use_case = BASE.model_copy(update={"name": name})
    evidence = {"window": "2024-05", "improvement": {"point": 0.08, "low": 0.03, "high": 0.12}, "rows": 9000}
    result = promotion.rollback(
        use_case, "live rmse worse than the previous champion", evidence, history=lake
    )
    assert (result["champion"], aliases(name)["champion"], aliases(name)["previous_champion"]) == (v2, v2, v1)
    back = [e for e in registry.alias_events(name, lake) if e.action == "rollback"]
    assert moves(back) == [("champion", "rollback", v3, v2), ("previous_champion", "rollback", v2, v1)]
    assert back[0].by == "monitoring" and back[0].evidence == evidence
    assert back[0].reason == "live rmse worse than the previous champion"
    until = datetime.fromisoformat(str(back[0].cooldown_until))
    assert timedelta(days=6.9) < until - datetime.fromisoformat(back[0].at) < timedelta(days=7.1)

    # Within the cooldown a second rollback is refused (nothing moves), unless a person forces it.
    with pytest.raises(registry.PromotionError, match="refused until"):
        promotion.rollback(use_case, "again", {}, history=lake)
    assert aliases(name)["champion"] == v2
    promotion.rollback(use_case, "a person insists", {}, by="carol", force=True, history=lake)
    assert aliases(name)["champion"] == v1
    with pytest.raises(ValueError, match="needs a reason"):
        promotion.rollback(use_case, " ", {}, history=lake)


def test_no_alias_moves_without_its_record(mlflow_server: str, lake: Lake, tmp_path: Path) -> None:
    name = f"unrecorded_{uuid.uuid4().hex[:6]}"
    v1, v2 = fake_versions(name, 2)
    registry.promote(name, v1, {"run_id": "setup"}, history=lake)
    registry.client().set_registered_model_alias(name, "challenger", v2)
    before = aliases(name)
    broken = unwritable(tmp_path)

    with pytest.raises(registry.PromotionError, match="alias history could not be written"):
        registry.promote(name, v2, {"run_id": "blocked"}, history=broken)
    assert aliases(name) == before
    registry.promote(name, v2, {"run_id": "ok"}, history=lake)
    with pytest.raises(registry.PromotionError, match="no alias moved"):
        registry.rollback(name, history=broken)
    assert aliases(name)["champion"] == v2
    assert not registry.client().search_registered_models(
        filter_string=f"name = '{registry.lock_name(name)}'"
    )  # the lock was released


def test_history_command_answers_which_version_served_when(
    mlflow_server: str,
    lake: Lake,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    name = f"served_{uuid.uuid4().hex[:6]}"
    v1, v2 = fake_versions(name, 2)
    use_case = BASE.model_copy(update={"name": name})
    monkeypatch.setattr("mlplatform.core.spec.load_spec", lambda wanted: use_case)
    registry.promote(name, v1, {"run_id": "first", "reason": "promoted: beat the baseline"}, history=lake)
    registry.promote(
        name,
        v2,
        {"run_id": "second", "by": "alice", "reason": "promoted: approved", "evidence": {"rows": 7}},
        history=lake,
    )
    champion_events = [e for e in registry.alias_events(name, lake) if e.alias == "champion"]
    first_at, second_at = (datetime.fromisoformat(e.at) for e in champion_events)
    between = first_at + (second_at - first_at) / 2

    assert cli.main(["history", name, "--lake", lake.root_uri, "--at", between.isoformat(), "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert (answer["champion"], answer["run_id"], answer["reason"]) == (
        v1,
        "first",
        "promoted: beat the baseline",
    )
    assert answer["until"] == champion_events[1].at

    later = (second_at + timedelta(seconds=1)).isoformat()
    assert cli.main(["history", name, "--lake", lake.root_uri, "--at", later, "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert (answer["champion"], answer["moved_by"], answer["evidence"]) == (v2, "alice", {"rows": 7})
    assert cli.main(["history", name, "--lake", lake.root_uri, "--at", "2000-01-01", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["champion"] is None

    # The timeline as a table, and as JSON.
    assert cli.main(["history", name, "--lake", lake.root_uri]) == 0
    table = capsys.readouterr().out
    assert "alias history" in table and "alice" in table and "previous_champion" in table
    assert cli.main(["history", name, "--lake", lake.root_uri, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(e["alias"], e["version"]) for e in listed] == [
        ("champion", v1),
        ("previous_champion", v1),
        ("champion", v2),
    ]
    assert cli.main(["history", name, "--lake", lake.root_uri, "--at", "soon"]) == 2
    assert "not a date or time" in capsys.readouterr().err

    # A person's rollback from the command line: recorded with who and why, then refused in the cooldown.
    command = ["rollback", "--use-case", name, "--lake", lake.root_uri, "--reason", "complaints", "--json"]
    assert cli.main(command) == 0
    assert json.loads(capsys.readouterr().out)["champion"] == v1
    [rolled] = [
        e for e in registry.alias_events(name, lake) if e.action == "rollback" and e.alias == "champion"
    ]
    assert (rolled.by, rolled.reason) == (registry.who(), "complaints")
    registry.promote(name, v2, {"run_id": "third"}, history=lake)
    assert cli.main(command) == 1
    assert "refused until" in capsys.readouterr().err
    assert cli.main([*command, "--force"]) == 0
    capsys.readouterr()
    # ... and nothing at all when the history cannot be written.
    registry.promote(name, v2, {"run_id": "fourth"}, history=lake)
    broken = unwritable(tmp_path)
    assert cli.main(["rollback", "--use-case", name, "--lake", broken.root_uri, "--force"]) == 1
    assert "alias history could not be written" in capsys.readouterr().err
    assert aliases(name)["champion"] == v2
