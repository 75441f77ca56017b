"""The records stages hand one another keep their JSON form: each committed sample (the form
records had when they were written by hand) reads back and writes out byte for byte."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlplatform.core.generator.trips import GeneratorMetadata
from mlplatform.core.records import (
    AliasEvent,
    Approval,
    Assessment,
    Gate,
    LiveConf,
    ModelRef,
    MonitoringRecord,
    ScoredOutput,
    TrainedRun,
)
from mlplatform.stages.contracts.evaluation import ContractVerdict, RawSource
from mlplatform.stages.training import SearchTrial

SAMPLES = Path(__file__).parent / "fixtures" / "records"

KINDS = {
    "model_ref": ModelRef,
    "model_ref_bare": ModelRef,
    "gate": Gate,
    "gate_without_interval": Gate,
    "alias_event": AliasEvent,
    "alias_event_rollback": AliasEvent,
    "assessment": Assessment,
    "assessment_unmeasured": Assessment,
    "scored_output": ScoredOutput,
    "scored_output_unpublished": ScoredOutput,
    "trained_run": TrainedRun,
    "trained_run_registered": TrainedRun,
    "search_trial": SearchTrial,
    "live_conf": LiveConf,
    "live_conf_rollback": LiveConf,
    "raw_source": RawSource,
    "raw_source_files": RawSource,
    "contract_verdict": ContractVerdict,
    "monitoring_record": MonitoringRecord,
    "generator_metadata": GeneratorMetadata,
}


@pytest.mark.parametrize("name", sorted(KINDS))
def test_a_stored_record_reads_back_and_writes_the_same_bytes(name: str) -> None:
    text = (SAMPLES / f"{name}.json").read_text()
    record = KINDS[name].from_dict(json.loads(text))
    assert json.dumps(record.to_dict(), indent=2) + "\n" == text
    assert KINDS[name].from_dict(record.to_dict()) == record


def test_every_sample_is_covered() -> None:
    assert {p.stem for p in SAMPLES.glob("*.json")} == set(KINDS)


def test_a_version_stored_as_a_number_reads_as_text() -> None:
    assert ModelRef.from_dict({"name": "m", "version": 3}).version == "3"


def test_a_record_that_lacks_a_field_names_it() -> None:
    stored = json.loads((SAMPLES / "scored_output.json").read_text())
    del stored["snapshot_rows"]
    with pytest.raises(ValueError, match="lacks snapshot_rows"):
        ScoredOutput.from_dict(stored)
    event = json.loads((SAMPLES / "alias_event.json").read_text())
    del event["by"]
    with pytest.raises(ValueError, match="by"):
        AliasEvent.from_dict(event)


def test_keys_a_record_does_not_know_are_ignored() -> None:
    stored = json.loads((SAMPLES / "assessment.json").read_text())
    assert Assessment.from_dict({**stored, "summary_md": "# report"}) == Assessment.from_dict(stored)


def test_null_where_a_default_exists_reads_as_the_default() -> None:
    event = json.loads((SAMPLES / "alias_event_rollback.json").read_text())
    read = AliasEvent.from_dict({**event, "reason": None, "evidence": None, "gates": None})
    assert (read.reason, dict(read.evidence), read.gates) == ("", {}, ())


def test_an_approval_reads_the_answer_airflow_records() -> None:
    approved = Approval.from_response({"chosen_options": ["Approve"], "responded_by_user": {"name": "alice"}})
    assert approved == Approval(True, "alice")
    assert approved.to_dict() == {"approved": True, "by": "alice"}
    rejected = Approval.from_response({"chosen_options": ["Reject"], "responded_by_user": {"id": "7"}})
    assert (rejected.approved, rejected.by, rejected.timed_out) == (False, "7", False)
    timed_out = Approval.from_response({"chosen_options": ["Reject"], "responded_by_user": None})
    assert timed_out.timed_out and not timed_out.approved
    assert Approval.from_dict({"approved": True, "by": "bob"}) == Approval(True, "bob")


def test_metrics_named_by_the_use_case_read_back_beside_the_fields() -> None:
    """``trained.json`` writes ``val_<metric>`` and ``baseline_val_<metric>`` at its top level."""
    trained = TrainedRun.from_dict(json.loads((SAMPLES / "trained_run_registered.json").read_text()))
    assert trained.metrics == {
        "val_log_loss": 0.5127340184203316,
        "baseline_val_log_loss": 0.6904120573196628,
    }
    assert (trained.value, trained.baseline_value) == (0.5127340184203316, 0.6904120573196628)
    unregistered = json.loads((SAMPLES / "trained_run.json").read_text())
    ref = ModelRef("taxi_trip_duration", "3", "challenger", unregistered["run_id"])
    registered = TrainedRun.from_dict(unregistered).registered(ref).to_dict()
    assert registered == {**unregistered, "model_name": "taxi_trip_duration", "version": "3"}
    with pytest.raises(ValueError, match="val_rmse"):
        TrainedRun.from_dict({**unregistered, "val_rmse": "not a number"})
