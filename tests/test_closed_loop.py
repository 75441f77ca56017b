"""`make run`'s closed loop without the scheduler: the command line, the demo's three live
stories (a challenger retired, one promoted, a bad promotion rolled back) from the monitoring
records they leave to the summary, setting a previous run aside, and the summary's JSON and
chart. The loop itself runs on a real scheduler in `tests/test_system.py`."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlparse

import pytest

from mlplatform import cli
from mlplatform.adapters import registry
from mlplatform.airflow.use_case_status import window_verdicts
from mlplatform.core.records import AliasEvent, MonitoringRecord
from mlplatform.dev import closed_loop
from mlplatform.dev.closed_loop import DEMO, STRONG, WEAK, MonthRecord, Scenario
from mlplatform.dev.embedded import Platform


def test_run_command_takes_the_scenario_knobs() -> None:
    args = cli.build_parser().parse_args(
        ["run", "--months", "6", "--rows", "5000", "--drift-from", "5", "--congestion", "1.5"]
    )
    assert (args.months, args.rows, args.drift_from, args.congestion) == (6, 5000, 5, 1.5)
    assert args.outer_borough_shift == Scenario().outer_borough_shift


def test_make_run_plays_the_three_live_stories() -> None:
    """The demo: a short first month, a weak challenger after month 2 (retired on month 3's
    labels), a strong one after month 3 (promoted on month 4's), a drift in month 5 only (its
    retrain a bad promotion, rolled back on month 6's labels); the command line plays it
    unless told otherwise."""
    assert DEMO.months == 6 and [DEMO.drifted(i) for i in range(6)] == [False] * 4 + [True, False]
    assert DEMO.drift(5).congestion == 1.0 and DEMO.drift(4).congestion == DEMO.congestion
    assert [DEMO.trial(i) for i in range(6)] == [None, WEAK, STRONG, None, None, None]
    assert WEAK.sample_rows == 2_000 and STRONG.sample_rows is None
    # The first month is short, so the first champion learns from little data and the strong
    # challenger (every month so far) beats it by several percent.
    assert (DEMO.month_rows(0), DEMO.month_rows(1)) == (12_000, DEMO.rows)
    assert Scenario(rows=5_000, first_month_rows=12_000).month_rows(0) == 5_000
    assert "2,000 trips" in WEAK.describe() and "every validated month" in STRONG.describe()
    args = cli.build_parser().parse_args(["run"])
    assert (args.months, args.drift_from, args.drift_months, args.live_trials) == (6, 5, 1, True)
    quiet = cli.build_parser().parse_args(["run", "--no-live-trials", "--drift-months", "0"])
    assert quiet.live_trials is False and quiet.drift_months == 0
    assert Scenario(data=REAL_TLC).trial(1) is None  # real months: nothing proposed, nothing injected


def _interval(point: float, low: float, high: float, trips: int) -> dict:
    return {"point": point, "low": low, "high": high, "confidence": 0.95, "resamples": 0, "rows": trips}


def story_records() -> list[MonitoringRecord]:
    """The monitoring records the three stories leave, as the monitor DAG writes them."""
    retire = {
        "version": "2", "outcome": "retire", "reason": "challenger worse with confidence",
        "interval": _interval(-0.303, -0.340, -0.264, 29_469), "trips": 29_469,
        "windows": ["2024-03"], "acted": True,
    }  # fmt: skip
    promote = {
        "version": "3", "outcome": "promote", "reason": "challenger better by at least 1.0%",
        "interval": _interval(0.033, 0.021, 0.045, 29_486), "trips": 29_486,
        "windows": ["2024-04"], "acted": True,
    }  # fmt: skip
    watch = {
        "champion": "3", "previous": "1", "outcome": "keep", "reason": "no confident regression",
        "interval": _interval(-0.03, -0.04, -0.02, 29_400), "trips": 29_400, "acted": False,
    }  # fmt: skip
    rollback = {
        "champion": "4", "previous": "3", "outcome": "promote",
        "reason": "the previous champion is better with confidence",
        "interval": _interval(0.519, 0.506, 0.533, 29_458), "trips": 29_458, "acted": True,
    }  # fmt: skip
    live = {"2024-03": {"challenger": retire}, "2024-04": {"challenger": promote},
            "2024-05": {"rollback": watch}, "2024-06": {"rollback": rollback}}  # fmt: skip
    return [
        MonitoringRecord.from_dict(
            {"use_case": closed_loop.USE_CASE, "window": w, "status": "ok", "metrics": {}}
            | {"details": {"live": d}}
        )
        for w, d in live.items()
    ]


def test_the_live_stories_reach_the_summary_its_json_and_the_decisions(tmp_path: Path) -> None:
    rollback_moves = [
        AliasEvent("e1", "2024-06-30T10:00:00+00:00", "m", "champion", "rollback", "3", "4", "monitor",
                   cooldown_until="2024-07-07T10:00:00+00:00"),
    ]  # fmt: skip
    records = []
    for found in story_records():
        verdicts = window_verdicts(found)
        record = MonthRecord(found.window, False, "passed", "3", 2.2, 2.1, 0.0, 0.3, "ok", live=verdicts)
        record.actions = closed_loop.live_actions(verdicts, rollback_moves)
        records.append(record)
    assert [r.actions for r in records] == [
        ["live: retired challenger version 2"],
        ["live: promoted challenger version 3"],
        [],
        ["live: rolled back to version 3 (cooldown until 2024-07-07T10:00)"],
    ]
    assert [r.decisions().live for r in records] == [
        ["challenger retire v2"],
        ["challenger promote v3"],
        [],
        ["rollback promote v3"],
    ]
    assert [r.decisions().promoted for r in records] == [[], [], [], []]  # none by the offline gates

    table = closed_loop.summary_table(records).splitlines()
    live = table[table.index(next(line for line in table if line.startswith("live decisions"))) + 2 :]
    assert len(live) == 4
    assert live[0].split()[:5] == ["2024-03", "retire", "the", "challenger", "v2"]
    assert "-30.3% [-34.0%, -26.4%]" in live[0] and "29,469" in live[0] and live[0].endswith("yes")
    assert "promote the challenger" in live[1] and "v3" in live[1] and "+3.3% [+2.1%, +4.5%]" in live[1]
    assert "keep the champion (no confident regression)" in live[2] and live[2].endswith("no")
    assert "roll back to the previous champion" in live[3] and "v3" in live[3] and "29,458" in live[3]
    assert "rolled back to version 3 (cooldown until 2024-07-07T10:00)" in table[4]

    summary, chart = closed_loop.write_outputs(records, tmp_path)
    months = json.loads(summary.read_text())
    assert months[3]["live"][0]["kind"] == "rollback" and months[3]["live"][0]["interval"]["low"] == 0.506
    assert chart.read_bytes().startswith(b"\x89PNG")


def test_scenario_drifts_from_the_chosen_month_on() -> None:
    scenario = Scenario(months=4, start="2024-11", drift_from=3, congestion=1.4, outer_borough_shift=0.2)
    assert scenario.month_names() == ["2024-11", "2024-12", "2025-01", "2025-02"]
    assert [scenario.drift(i).congestion for i in range(4)] == [1.0, 1.0, 1.4, 1.4]
    assert scenario.drift(3).outer_borough_shift == 0.2 and scenario.drift(1).outer_borough_shift == 0.0
    passing = Scenario(months=4, drift_from=2, drift_months=1)  # a passing disruption: month 2 only
    assert [passing.drifted(i) for i in range(4)] == [False, True, False, False]


def test_a_previous_run_is_set_aside_and_nothing_is_lost(
    tmp_path: Path, mlflow_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    from mlplatform.core import spec

    # Only this use case's model: other tests' models on the shared server stay untouched.
    monkeypatch.setattr(spec, "load_all", lambda: [spec.load_spec(closed_loop.USE_CASE)])

    platform = Platform(home=tmp_path, mlflow_port=int(urlparse(mlflow_server).port or 0))
    raw = tmp_path / "lake" / "raw" / "yellow_tripdata_2024-01.parquet"
    raw.parent.mkdir(parents=True)
    raw.write_bytes(b"PAR1")
    client = MlflowClient(mlflow_server)
    name = closed_loop.USE_CASE
    for stale in (name, registry.lock_name(name)):
        if client.search_registered_models(filter_string=f"name = '{stale}'"):
            client.delete_registered_model(stale)
        client.create_registered_model(stale)

    moved = closed_loop.archive_previous(platform)

    (archived_raw,) = (tmp_path / "archive").glob("*/lake/raw/yellow_tripdata_2024-01.parquet")
    assert archived_raw.read_bytes() == b"PAR1" and not (tmp_path / "lake").exists()
    renamed = [m.name for m in client.search_registered_models(filter_string=f"name LIKE '{name}.%'")]
    assert len(renamed) == 1 and not renamed[0].endswith("promotion-lock")
    assert not client.search_registered_models(filter_string=f"name = '{name}'")
    assert len(moved) == 2
    assert closed_loop.archive_previous(platform) == []  # a clean platform: nothing to set aside
    client.delete_registered_model(renamed[0])


def test_summary_is_one_object_per_month_and_a_chart(tmp_path: Path) -> None:
    records = [
        MonthRecord("2024-01", False, contract="passed"),
        MonthRecord("2024-02", False, "passed", "1", 3.3, 3.3, 0.0, 0.3, "ok", [], ["promoted version 1"]),
        MonthRecord(
            "2024-03", True, "passed", "2", 7.1, 3.3, 0.7, 0.3, "breach", ["rmse"], ["promoted version 2"]
        ),
        MonthRecord("2024-04", True, "passed", "2", 3.9, 3.8, 0.0, 0.3, "ok", [], ["batch scored"]),
    ]
    summary, chart = closed_loop.write_outputs(records, tmp_path)
    months = json.loads(summary.read_text())
    assert [m["month"] for m in months] == ["2024-01", "2024-02", "2024-03", "2024-04"]
    assert {"contract", "champion_version", "rmse", "drift_share", "actions"} <= set(months[0])
    assert months[2]["breaches"] == ["rmse"] and months[0]["rmse"] is None
    assert chart.read_bytes().startswith(b"\x89PNG")
    table = closed_loop.summary_table(records).splitlines()
    assert len(table) == 5 and "7.100" in table[3] and "promoted version 2" in table[3]


REAL_TLC = Path(__file__).parent / "fixtures" / "real_tlc"


def test_run_data_replays_a_folder_of_real_tlc_months_in_month_order(tmp_path: Path) -> None:
    args = cli.build_parser().parse_args(["run", "--data", str(REAL_TLC)])
    scenario = Scenario(data=args.data)
    # Every month the folder holds, in month order: the gap from 2021-03 to 2023-01 (the
    # 2022-12-19 fare regime) is replayed as it is, no month is invented to fill it, and
    # 2023-01 is monitored against the model of 2021 as production would meet it.
    assert scenario.month_names() == ["2021-01", "2021-02", "2021-03", "2023-01"]
    assert not any(scenario.drifted(i) for i in range(4))  # real months: nothing injected
    files = closed_loop.real_files(REAL_TLC)
    assert files["2021-02"] == {"green": REAL_TLC / "green_tripdata_2021-02.parquet"}
    assert files["2023-01"] == {"green": REAL_TLC / "green_tripdata_2023-01.parquet"}

    # A folder of the 2021 months only replays those three.
    only_2021 = tmp_path / "only_2021"
    only_2021.mkdir()
    for month in ("2021-03", "2021-01", "2021-02"):
        name = f"green_tripdata_{month}.parquet"
        (only_2021 / name).symlink_to(REAL_TLC / name)
    assert Scenario(data=only_2021).month_names() == ["2021-01", "2021-02", "2021-03"]

    both = tmp_path / "both"
    both.mkdir()
    for name in ("green_tripdata_2021-01.parquet", "yellow_tripdata_2021-01.parquet", "notes.txt"):
        (both / name).write_bytes(b"PAR1")
    assert set(closed_loop.real_files(both)["2021-01"]) == {"green", "yellow"}


def test_run_data_without_tlc_files_is_a_clear_error(tmp_path: Path, capsys) -> None:
    (tmp_path / "trips.parquet").write_bytes(b"PAR1")
    assert cli.main(["run", "--data", str(tmp_path)]) == 2
    assert "no TLC monthly files" in capsys.readouterr().err
    assert cli.main(["run", "--data", str(tmp_path / "missing")]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_history_shows_the_live_moves_with_their_interval_and_trips(tmp_path: Path, capsys) -> None:
    """`mlplatform history` after the demo: the monitor's moves on live labels carry the
    interval and the labelled trips they rest on, as the gates' moves carry theirs."""
    from mlplatform.adapters.lake import Lake
    from mlplatform.core import spec

    lake = Lake(tmp_path.as_uri())
    model = spec.load_spec(closed_loop.USE_CASE).model_name
    retire = {"live": {"interval": _interval(-0.2519, -0.2799, -0.2232, 28_971), "trips": 28_971}}
    rollback = {"live": {"interval": _interval(0.5381, 0.5259, 0.5506, 28_925), "trips": 28_925}}
    registry.record(
        [
            AliasEvent("e1", "2024-03-06T03:00:00+00:00", model, "challenger", "retire", None, "2", "monitor",
                       reason="challenger worse with confidence", evidence=retire),
            AliasEvent("e2", "2024-06-06T03:00:00+00:00", model, "champion", "rollback", "3", "4", "monitor",
                       reason="the previous champion is better", evidence=rollback,
                       cooldown_until="2024-06-13T03:00:00+00:00"),
        ],
        lake,
    )  # fmt: skip
    assert cli.main(["history", closed_loop.USE_CASE, "--lake", lake.uri("")]) == 0
    shown = " ".join(capsys.readouterr().out.split())
    assert "-25.19%" in shown and "28,971 live" in shown
    assert "+53.81%" in shown and "28,925 live" in shown and "rollback" in shown


def test_a_service_that_exits_on_sigterm_is_seen_stopped(tmp_path: Path) -> None:
    """The platform starts its services, so an exited one stays a zombie of this process until
    reaped; it must count as stopped (not wait out the stop's grace, nor look alive)."""
    import os
    import signal
    import time

    from mlplatform.dev.embedded import Service

    platform = Platform(home=tmp_path)
    pid = platform.start(Service("sleeper", ("sleep", "600"), None))
    assert platform.pid("sleeper") == pid
    os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60  # sleep exits at once on SIGTERM; generous for a busy machine
    while platform.pid("sleeper") is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert platform.pid("sleeper") is None
    assert platform.stop() == []  # nothing left: its pid file names a process that is gone
