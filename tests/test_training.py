"""Training without Airflow: the training set, the time split, the search, the models of both
use cases and the `mlplatform train` command (no tracking server needed)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlplatform import cli
from mlplatform.adapters import registry, snapshots
from mlplatform.adapters.lake import Lake
from mlplatform.core import generator, retrain, tlc
from mlplatform.core.modelling import build_estimator
from mlplatform.core.spec import UseCase, load_spec
from mlplatform.stages import training

MONTHS = ("2024-01", "2024-02", "2024-03")
RECORDS = Path(__file__).parent / "fixtures" / "records"
ROWS = 6000


def small(name: str, **training_updates: Any) -> UseCase:
    """The shipped use case with a small model and search, so fitting takes a second."""
    use_case = load_spec(name)
    model = use_case.model.model_copy(
        update={
            "hyperparameters": {**use_case.model.hyperparameters, "max_iter": 40, "learning_rate": 0.2},
            "max_search_trials": 2,
        }
    )
    updates = {"model": model}
    if training_updates:
        updates["training"] = use_case.training.model_copy(update=training_updates)
    return use_case.model_copy(update=updates)


@pytest.fixture(scope="module")
def months() -> dict[str, pd.DataFrame]:
    """Three generated months, normalised."""
    return {
        m: tlc.normalise(generator.generate_month("yellow", m, ROWS, seed=i).table).to_pandas()
        for i, m in enumerate(MONTHS)
    }


def write_months(lake: Lake, use_case: str, months: dict[str, pd.DataFrame]) -> None:
    for month, frame in months.items():
        table = pa.Table.from_pandas(frame, preserve_index=False)
        snapshots.write_snapshot(lake, use_case, month, table, {"contract": {"success": True}})


def test_the_tip_target_is_derived_on_card_trips_only(months: dict[str, pd.DataFrame]) -> None:
    use_case = load_spec("taxi_generous_tip")
    trips = months["2024-01"]
    rows = training.labelled(trips, use_case)
    cards = trips[trips["payment_type"] == 1]
    assert len(rows) == len(cards)
    expected = (cards["tip_amount"] >= 0.2 * cards["fare_amount"]).astype(int).to_numpy()
    assert (rows["generous_tip"].to_numpy() == expected).all()
    assert 0.2 < expected.mean() < 0.8  # both classes are well represented
    assert set(training.source_columns(use_case)) >= {"payment_type", "tip_amount", "fare_amount"}


def test_bad_filter_or_target_names_the_spec_field(months: dict[str, pd.DataFrame]) -> None:
    use_case = load_spec("taxi_generous_tip")
    bad_filter = use_case.model_copy(
        update={"data": use_case.data.model_copy(update={"filter": "no_such_column == 1"})}
    )
    with pytest.raises(ValueError, match=r"data\.filter"):
        training.labelled(months["2024-01"], bad_filter)
    bad_target = use_case.model_copy(
        update={"target": use_case.target.model_copy(update={"expression": "tip_amount >>> 1"})}
    )
    with pytest.raises(ValueError, match=r"target\.expression"):
        training.labelled(months["2024-01"], bad_target)


def test_window_is_split_by_time_and_too_little_data_says_what_to_do(lake: Lake) -> None:
    snaps = [snapshots.Snapshot("uc", m, "d" * 64, {"rows": 1}) for m in ("2024-01", "2024-02", "2024-03")]
    train, valid = training.select_window(snaps, 3, 1)
    assert [s.month for s in train] == ["2024-01", "2024-02"] and [s.month for s in valid] == ["2024-03"]
    train, valid = training.select_window(snaps, 2, 1)
    assert [s.month for s in train] == ["2024-02"]
    with pytest.raises(ValueError, match="validate more months first"):
        training.select_window(snaps[:1], 3, 1)
    with pytest.raises(ValueError, match="must exceed"):
        training.select_window(snaps, 1, 1)


def test_a_retrain_since_a_month_learns_only_that_month_and_holds_out_its_last_days(
    lake: Lake, months: dict[str, pd.DataFrame]
) -> None:
    snaps = [snapshots.Snapshot("uc", m, "d" * 64, {"rows": 1}) for m in MONTHS]
    train, valid = training.select_window(snaps, 3, 1, since="2024-02")
    assert [s.month for s in train] == ["2024-02"] and [s.month for s in valid] == ["2024-03"]
    train, valid = training.select_window(snaps, 3, 1, since="2024-03")
    assert train == valid and [s.month for s in valid] == ["2024-03"]
    with pytest.raises(ValueError, match="no validated month from 2024-04"):
        training.select_window(snaps, 3, 1, since="2024-04")
    with pytest.raises(ValueError, match="YYYY-MM"):
        training.select_window(snaps, 3, 1, since="March")

    use_case = small("taxi_trip_duration")
    write_months(lake, use_case.name, months)
    assembled = training.assemble_training_set(lake, use_case, key="since", since="2024-03")
    assert assembled.train_months == assembled.validation_months == ("2024-03",)
    cutoff = pd.Timestamp(assembled.validation_from)
    assert cutoff == pd.Timestamp("2024-04-01") - pd.Timedelta(days=training.VALIDATION_DAYS)
    train_rows = training.read_set(lake, assembled.train_uri)
    valid_rows = training.read_set(lake, assembled.validation_uri)
    assert train_rows["pickup_datetime"].max() < cutoff <= valid_rows["pickup_datetime"].min()
    assert train_rows["pickup_datetime"].min() >= pd.Timestamp("2024-03-01") - pd.Timedelta(hours=6)
    assert all(ref.validation_from == assembled.validation_from for ref in assembled.lineage)


def test_new_data_trains_until_there_is_a_champion_when_the_spec_says_first_model(
    lake: Lake, months: dict[str, pd.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    first_model = small("taxi_trip_duration", on_new_data="first_model")
    every_month = small("taxi_trip_duration", on_new_data="retrain")

    def decide(use_case: UseCase, has_champion: bool) -> retrain.RetrainDecision:
        champion = "3" if has_champion else None
        monkeypatch.setattr(registry, "client", lambda: None)
        monkeypatch.setattr(registry, "alias_version", lambda _client, _name, _alias: champion)
        return training.on_new_data(lake, use_case)

    held = decide(first_model, has_champion=False)
    assert not held.retrain and "training needs 2" in held.why_not
    write_months(lake, first_model.name, dict(list(months.items())[:2]))
    assert decide(first_model, has_champion=False).retrain
    held = decide(first_model, has_champion=True)
    assert not held.retrain and "monitoring decides" in held.why_not
    assert decide(every_month, has_champion=True).retrain


def test_search_is_bounded_and_deterministic() -> None:
    use_case = load_spec("taxi_trip_duration")
    grid = {"learning_rate": [0.05, 0.1, 0.2], "max_leaf_nodes": [15, 31, 63]}
    wide = use_case.model_copy(
        update={"model": use_case.model.model_copy(update={"search": grid, "max_search_trials": 4})}
    )
    trials = training.search_trials(wide)
    assert len(trials) == 4 and trials == training.search_trials(wide)
    assert all(set(t) == set(grid) for t in trials)
    assert len(training.search_trials(use_case)) == min(4, use_case.model.max_search_trials)


def test_unknown_family_lists_the_module_families() -> None:
    with pytest.raises(ValueError, match="offers: linear, hist_gradient_boosting"):
        build_estimator(load_spec("taxi_trip_duration"), "random_forest")


def test_duration_model_learns_beats_the_baseline_and_reports_slices(
    lake: Lake, months: dict[str, pd.DataFrame]
) -> None:
    use_case = small("taxi_trip_duration", sample_rows=8000)
    write_months(lake, use_case.name, months)
    assembled = training.assemble_training_set(lake, use_case, key="manual__2024-04-01T00:00:00+00:00")
    assert assembled.train_months == ("2024-01", "2024-02") and assembled.validation_months == ("2024-03",)
    assert assembled.train_rows == 8000  # sampled down to training.sample_rows
    assert assembled.train_uri is not None and assembled.train_uri.startswith(
        lake.root_uri + "/features/taxi_trip_duration/training/"
    )
    assert [r.role for r in assembled.lineage] == ["training", "training", "validation"]

    train = training.read_set(lake, assembled.train_uri)
    valid = training.read_set(lake, assembled.validation_uri)
    fitted, evaluation, baseline = training.train_frames(use_case, train, valid)
    assert len(fitted.search) == 2 and fitted.family == "hist_gradient_boosting"
    assert all(set(trial.metrics) == {"rmse"} for trial in fitted.search)
    assert evaluation.overall["rmse"] < 0.7 * baseline.overall["rmse"]
    best = generator.expected_duration_minutes(pa.Table.from_pandas(valid, preserve_index=False))
    floor = np.sqrt(np.mean((best - valid["duration_min"].to_numpy()) ** 2))
    assert evaluation.overall["rmse"] < 1.25 * floor  # small data, few trees: near the floor already
    metrics = evaluation.as_metrics("val_")
    assert "val_rmse.pu_borough.Manhattan" in metrics and "val_rmse.hour_band.night" in metrics
    assert all(v["rows"] >= training.MIN_SLICE_ROWS for v in evaluation.slices.values())

    inputs = valid[["pickup_datetime", "pu_location_id", "do_location_id", "trip_distance"]]
    answer = fitted.model.predict(inputs)
    assert list(answer.columns) == ["prediction"] and (answer["prediction"] > 0).all()


def test_a_lineage_file_reads_back_as_the_training_set_and_writes_the_same_json() -> None:
    """``lineage.json`` as the train DAG has always written it beside the sets (and as XCom)."""
    stored = {
        "use_case": "taxi_trip_duration",
        "train_uri": "file:///lake/features/taxi_trip_duration/training/run/train.parquet",
        "validation_uri": "file:///lake/features/taxi_trip_duration/training/run/validation.parquet",
        "train_rows": 8000,
        "validation_rows": 2000,
        "rows_outside_range": {"training": 12, "validation": 3},
        "window_months": 3,
        "since": "2024-03",
        "validation_from": "2024-03-24T00:00:00+00:00",
        "train_months": ["2024-03"],
        "validation_months": ["2024-03"],
        "lineage": [
            {
                "month": "2024-03",
                "digest": "ab" * 32,
                "rows": 10000,
                "uri": "file:///lake/validated/taxi_trip_duration/month=2024-03/data.parquet",
                "role": role,
                "validation_from": "2024-03-24T00:00:00+00:00",
            }
            for role in ("training", "validation")
        ],
    }
    assembled = training.TrainingSet.from_dict(stored)
    assert assembled.lineage[1].role == "validation" and assembled.set_uris()[0] == stored["train_uri"]
    assert json.dumps(assembled.to_dict()) == json.dumps(stored)


def test_tip_model_answers_labels_with_probabilities(months: dict[str, pd.DataFrame]) -> None:
    use_case = small("taxi_generous_tip")
    train = training.labelled(pd.concat([months["2024-01"], months["2024-02"]]), use_case)
    valid = training.labelled(months["2024-03"], use_case)
    fitted, evaluation, baseline = training.train_frames(use_case, train, valid)
    assert {"log_loss", "roc_auc", "accuracy", "brier"} <= set(evaluation.overall)
    assert evaluation.overall["log_loss"] < baseline.overall["log_loss"]
    assert evaluation.overall["roc_auc"] > 0.6  # generous tips are learnable from pickup facts
    answer = fitted.model.predict(months["2024-03"].head(50))
    assert list(answer.columns) == ["label", "probability"]
    assert set(answer["label"]) <= {"ordinary", "generous"}
    assert ((answer["probability"] >= 0.5) == (answer["label"] == "generous")).all()


def test_train_command_prints_metrics_as_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = []
    for i, month in enumerate(MONTHS):
        path = tmp_path / f"yellow_tripdata_{month}.parquet"
        pq.write_table(generator.generate_month("yellow", month, 4000, seed=i).table, path)
        paths.append(str(path))
    from mlplatform.core import spec

    fast = small("taxi_trip_duration")
    monkeypatch.setattr(spec, "load_spec", lambda name: fast)
    train = ["train", "--json", "--quiet", "--use-case", "taxi_trip_duration"]
    code = cli.main([*train, "--train", *paths[:2], "--valid", paths[2]])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["family"] == "hist_gradient_boosting"
    assert result["validation"]["overall"]["rmse"] < result["baseline"]["rmse"]
    # Every labelled trip is either modelled or counted outside target.range (1-60 minutes).
    outside = result["rows_outside_range"]
    assert result["train_rows"] + outside["training"] == 8000
    assert result["validation_rows"] + outside["validation"] == 4000
    assert 0 < outside["training"] < 0.05 * 8000
    assert [f["uri"] for f in result["train_files"]] == paths[:2]
    assert len(result["validation_files"][0]["digest"]) == 64

    assert (
        cli.main(["train", "--use-case", "taxi_trip_duration", "--train", paths[0], "--valid", "nope.csv"])
        == 2
    )
    assert "nope.csv" in capsys.readouterr().err


def test_the_training_job_s_trained_json_reads_back_as_the_run_it_logged(lake: Lake) -> None:
    """``trained.json`` as the Training job leaves it in ``model.tar.gz``: read back for
    registration, it writes the same JSON; an archive without it says where to look."""
    stored = (RECORDS / "trained_run.json").read_text()
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        entry = tarfile.TarInfo("trained.json")
        entry.size = len(stored.encode())
        tar.addfile(entry, io.BytesIO(stored.encode()))
    uri = lake.write_bytes("features/taxi_trip_duration/training/run/job/model.tar.gz", archive.getvalue())
    trained = training.read_job_output(lake, uri)
    assert json.dumps(trained.to_dict(), indent=2) + "\n" == stored
    assert (trained.family, trained.metric) == ("hist_gradient_boosting", "rmse")
    assert trained.value is not None and trained.baseline_value is not None
    assert trained.value < trained.baseline_value

    empty = io.BytesIO()
    with tarfile.open(fileobj=empty, mode="w:gz"):
        pass
    bare = lake.write_bytes("features/taxi_trip_duration/training/bare/job/model.tar.gz", empty.getvalue())
    with pytest.raises(ValueError, match=r"holds no trained\.json.*CloudWatch"):
        training.read_job_output(lake, bare)


def test_search_trials_keep_their_metric_under_its_name() -> None:
    """The search as the run's ``training.json`` holds it: ``{"params": ..., "<metric>": value}``."""
    stored = json.loads((RECORDS / "search_trial.json").read_text())
    trial = training.SearchTrial.from_dict(stored)
    assert trial.metrics == {"rmse": stored["rmse"]} and trial.params["max_leaf_nodes"] == 31
    assert trial.to_dict() == stored
