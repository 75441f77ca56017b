"""The MLOps page: facts gathered from the lake and registry, rendered as one HTML page.

``replayed_lake`` writes what the stages store after a replay of 2022-01..2023-03 in which
three months breached their contract (2022-07 and the latest two, 2023-02 and 2023-03) and
monitoring breached on drift in 2022-08: the page must lead with those breaches and their
reasons. ``tests/test_mlops_page_browser.py`` loads the same page in headless Chromium.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from mlplatform.adapters import snapshots
from mlplatform.adapters.lake import Lake
from mlplatform.airflow import mlops_page, use_case_status
from mlplatform.core import months, spec
from mlplatform.core.records import MonitoringRecord
from mlplatform.stages.contracts import RuleTrend

REPO = Path(__file__).resolve().parents[1]
USE_CASE = "taxi_trip_duration"
NOW = datetime(2023, 4, 10, 12, 0, tzinfo=UTC)
BREACHED = {
    "2022-07": "volume: 310 rows where 30,000-300,000 were expected (0.3-3.0x the recent median)",
    "2023-02": "bad rows: 13.2 % of rows broke row rules, over the 10.0 % limit",
    "2023-03": "schema: column lpep_pickup_datetime is missing",
}
JUMP = (
    "unknown_zone jumped to 0.40% of rows from a trailing median of 0.10% over the previous 3 months "
    "(more than contract.trend_jump_factor 3x): look at what changed in the data"
)
RULES = ("zero_distance", "unknown_zone", "implausible_duration")  # the largest share first


def _months() -> list[str]:
    return [f"{year}-{m:02d}" for year in (2022, 2023) for m in range(1, 13)][:15]


def _contract_block(month: str, n: int, severity: str) -> dict:
    rows = 60_000
    counts = {"zero_distance": 1900 + 10 * n, "implausible_duration": 120 + 5 * n}
    if month >= "2022-09":  # TLC started something in September, and in December much more of it
        counts["unknown_zone"] = {"2022-09": 60, "2022-10": 60, "2022-11": 60, "2022-12": 240}.get(month, 120)
    bad = sum(counts.values())
    return {
        "success": severity != "breach",
        "severity": severity,
        "suite": "nyc_tlc_trips",
        "bad_row_share": bad / rows,
        "quarantined_rows": bad,
        "rule_counts": counts,
        "rule_shares": {k: round(v / rows, 6) for k, v in counts.items()},
        "statistics": {"row_count": rows},
        "breaches": [BREACHED[month]] if severity == "breach" else [],
        "warnings": ["surcharge column empty: ['congestion_surcharge']"] if month == "2022-12" else [],
        "jumps": [JUMP] if month == "2022-12" else [],
        "data_docs_url": f"file:///gx/uncommitted/data_docs/local_site/validations/{month}.html",
    }


def replayed_lake(lake: Lake) -> Lake:
    """The lake after the replay: snapshots, breach records, scores, training sets, monitoring."""
    for n, month in enumerate(_months()):
        if month in BREACHED:
            record = {
                "use_case": USE_CASE,
                "month": month,
                "severity": "breach",
                "what_broke": [BREACHED[month]],
                "source": {
                    "path": f"raw/tlc/month={month}/green_tripdata_{month}.parquet",
                    "digest": "d" * 64,
                },
                "recorded_at": f"{months.shift(month, 1)}-02T03:00:00+00:00",
                "contract": _contract_block(month, n, "breach"),
                "raw_file_kept": True,
            }
            lake.write_json(f"quarantine/{USE_CASE}/month={month}/{'d' * 64}/breach.json", record)
            continue
        manifest = {"source": {"path": "raw", "digest": "s" * 64, "rows": 60_000}}
        manifest["contract"] = _contract_block(month, n, "quarantine")
        snapshots.write_snapshot(lake, USE_CASE, month, pa.table({"n": [n]}), manifest)
    for month in ("2022-06", "2022-08", "2022-09", "2023-01"):
        breached = month == "2022-08"
        drift = 0.6 if breached else 0.1
        lake.write_json(
            f"monitoring/{USE_CASE}/history/window={month}/metrics.json",
            {
                "use_case": USE_CASE,
                "window": month,
                "status": "breach" if breached else "ok",
                "metrics": {"rmse": 5.4, "rmse_reference": 5.3, "drift_share": drift, "requests": 300.0},
                "breaches": ["drift_share"] if breached else [],
                "breach_details": [
                    {
                        "metric": "drift_share",
                        "value": drift,
                        "threshold": 0.3,
                        "kind": "drift",
                        "message": "drift_share 0.6 > 0.3: 6 of 10 features drifted",
                        "retrain": True,
                    }
                ]
                if breached
                else [],
                "computed_at": f"{months.shift(month, 1)}-03T04:00:00+00:00",
                "airflow_run_url": f"http://airflow/dags/{USE_CASE}_monitor/runs/scheduled__{month}",
                "report_url": lake.uri(f"monitoring/{USE_CASE}/reports/window={month}/drift_report.html"),
            },
        )
    lake.write_json(
        f"features/{USE_CASE}/training/manual__2023-01/lineage.json",
        {"train_months": ["2022-10", "2022-11"], "validation_months": ["2022-12"], "train_rows": 100_000},
    )
    model = {"name": USE_CASE, "version": "7", "alias": "champion", "run_id": "r", "source": None}
    lake.write_json(
        f"predictions/{USE_CASE}/month=2023-01/CURRENT.json",
        {
            "use_case": USE_CASE,
            "month": "2023-01",
            "path": "p",
            "uri": "file:///p",
            "rows": 58_000,
            "model": model,
            "snapshot_digest": "s",
            "snapshot_rows": 58_000,
            "published_at": "2023-02-05T01:00:00+00:00",
        },
    )
    return lake


def replayed_status(lake: Lake) -> use_case_status.UseCaseStatus:
    status = use_case_status.collect(spec.load_spec(USE_CASE), replayed_lake(lake), tracking_uri=None)
    status.models["champion"] = use_case_status.ModelVersion(
        "7",
        ("champion",),
        "r",
        tags={
            "promotion.reason": "beat champion by 4%",
            "champion_since": "2023-02-06T00:01:21.745140+00:00",
            "decision.run_id": "asset_triggered__2023-02-06T00:00:00+00:00",
        },
        metrics={"val_rmse": 5.3712},
    )
    status.models["challenger"] = use_case_status.ModelVersion(
        "8", ("challenger",), "r8", tags={"decision.reason": "gates failed: slices: night +9%"}
    )
    return status


def replayed_page(lake: Lake) -> str:
    return mlops_page.render(
        [replayed_status(lake)],
        {"mlflow": "http://mlflow"},
        lake_root=lake.root_uri,
        docs_root=Path("/gx/uncommitted/data_docs/local_site"),
        now=NOW,
    )


# -- the worst news first -----------------------------------------------------------------------
def test_breached_latest_months_lead_the_page_with_their_reasons(lake) -> None:
    status = replayed_status(lake)
    assert [c.month for c in status.contracts] == _months()
    assert status.contract.month == "2023-03" and status.contract.state == "breached"

    found = use_case_status.incidents(status)
    listed = [(i.stage, i.month, i.open) for i in found]
    # Open breaches first, newest first; 2022-07 was closed by 2022-08 passing and is no longer
    # listed; monitoring's 2022-08 breach is closed by 2022-09 but is monitoring's latest breach.
    assert listed == [
        ("contract", "2023-03", True),
        ("contract", "2023-02", True),
        ("model", "2022-08", False),
    ]
    assert found[0].reasons == (BREACHED["2023-03"],)
    assert found[2].closed_by == "2022-09"

    page = replayed_page(lake)
    section = page[page.index('<section class="use-case"') :]
    top = section[: section.index('<table class="latest"')]
    for month in ("2023-03", "2023-02"):
        assert f"{month}: contract breached" in top
        assert re.escape(BREACHED[month]).replace("\\", "") in top.replace("&#x27;", "'")
    assert 'href="../dags/taxi_trip_duration_validate/runs"' in top  # no run id stored: the runs list
    assert 'href="datadocs/validations/2023-03.html"' in top  # and its report
    assert "2022-07" not in top
    assert "2022-08: model breached" in top and "closed: 2022-09 passed" in top
    assert 'href="http://airflow/dags/taxi_trip_duration_monitor/runs/scheduled__2022-08"' in top
    # Latest states: the breached month is the contract's, and monitoring says why it stopped.
    latest = section[section.index('<table class="latest"') : section.index("</table>")]
    assert "2023-03</td>" in latest and "breached: schema" in latest
    assert "not monitored: its data was refused (contract breached)" in latest
    assert "58,000 predictions by v7 (champion)" in latest
    assert "trained on 2022-10, 2022-11; validated on 2022-12" in latest
    promote_run = "../dags/taxi_trip_duration_promote/runs/asset_triggered__2023-02-06T00%3A00%3A00%2B00%3A00"
    assert f'href="{promote_run}" target="_top">Airflow run</a>' in latest
    assert "; v8 (challenger): gates failed: slices: night +9%" in latest
    assert "<p>decided: gates failed: slices: night +9%</p>" in page
    assert "file://" not in page and "s3://" not in page


def test_breach_closed_by_a_later_pass_stays_listed_only_while_it_is_the_latest(lake) -> None:
    def month(name: str, state: str) -> use_case_status.ContractMonth:
        return use_case_status.ContractMonth(name, state, reasons=("why",) if state == "breached" else ())

    status = use_case_status.UseCaseStatus(USE_CASE, "regression", 4)
    status.contracts = [
        month("2023-01", "breached"),
        month("2023-02", "breached"),
        month("2023-03", "passed"),
    ]
    found = use_case_status.incidents(status)
    assert [(i.month, i.closed_by) for i in found] == [("2023-02", "2023-03")]  # never hidden
    status.contracts.append(month("2023-04", "refused"))
    assert [(i.month, i.open) for i in use_case_status.incidents(status)] == [("2023-04", True)]
    status.contracts = [month("2023-01", "quarantined")]
    assert use_case_status.incidents(status) == []
    assert "No breach or open incident." in mlops_page.render([status], {}, now=NOW)


def test_a_month_validated_again_takes_its_newest_verdict(lake) -> None:
    block = _contract_block("2023-03", 14, "quarantine")
    breach = {"month": "2023-03", "what_broke": ["late"], "recorded_at": "2023-04-02T00:00:00+00:00"}
    lake.write_json(f"quarantine/{USE_CASE}/month=2023-03/{'a' * 64}/breach.json", breach)
    snapshots.write_snapshot(lake, USE_CASE, "2023-03", pa.table({"n": [1]}), {"contract": block})
    assert use_case_status.contract_months(lake, USE_CASE)[0].state == "quarantined"  # the later pass
    breach["recorded_at"] = "2999-01-01T00:00:00+00:00"
    lake.write_json(f"quarantine/{USE_CASE}/month=2023-03/{'a' * 64}/breach.json", breach)
    found = use_case_status.contract_months(lake, USE_CASE)[0]
    assert found.state == "breached" and found.reasons == ("late",)


def test_model_and_serving_status_are_read_apart(lake) -> None:
    def record(**fields) -> MonitoringRecord:
        return MonitoringRecord.from_dict({"use_case": USE_CASE, "window": "2023-01", **fields})

    latency = {
        "metric": "p99_latency_ms",
        "value": 900.0,
        "threshold": 500.0,
        "kind": "serving",
        "message": "p99 latency 900 ms > 500 ms",
        "retrain": False,
    }
    old = record(
        status="breach", metrics={"requests": 10.0, "p99_latency_ms": 900.0}, breach_details=[latency]
    )
    assert old.model_status == "ok" and old.serving_status == "breach"  # a record before the split
    pending = record(status="pending", metrics={}, pending=["rmse"])
    assert pending.model_status == "pending" and pending.serving_status == "unmeasured"

    status = use_case_status.UseCaseStatus(USE_CASE, "regression", 4)
    status.monitoring = [old]
    found = use_case_status.incidents(status)
    assert [(i.stage, i.reasons) for i in found] == [("serving", ("p99 latency 900 ms > 500 ms",))]
    page = mlops_page.render([status], {}, now=NOW)
    assert "within thresholds" in page and "breached: p99 latency 900 ms &gt; 500 ms (10 requests)" in page


# -- numbers for people -------------------------------------------------------------------------
def test_numbers_are_formatted_for_people() -> None:
    assert mlops_page.percent(0.06333320600481301) == "6.3 %"
    assert mlops_page.percent(0.0042) == "0.42 %"
    assert mlops_page.percent(0.00012) == "0.012 %"
    assert mlops_page.percent(0) == "0 %" and mlops_page.percent(None) == "n/a"
    assert mlops_page.with_unit(5.3712, "minutes") == "5.37 min"
    assert mlops_page.with_unit(0.91, "") == "0.91"
    assert use_case_status.version_label("7", ("champion",)) == "v7 (champion)"
    both = use_case_status.version_label("6", ("champion", "previous_champion"))
    assert both == "v6 (champion, previous_champion)"
    assert use_case_status.version_label("8") == "v8"

    now = datetime(2026, 12, 6, 3, 5, tzinfo=UTC)
    promoted = "2026-12-06T00:01:21.745140+00:00"
    assert mlops_page.relative_time(use_case_status.parse_time(promoted), now) == "3 hours ago"
    assert mlops_page.relative_time(datetime(2026, 12, 6, 3, 4, 30, tzinfo=UTC), now) == "just now"
    assert mlops_page.relative_time(datetime(2026, 12, 5, 3, 5, tzinfo=UTC), now) == "1 day ago"
    assert mlops_page.relative_time(datetime(2026, 12, 8, 3, 5, tzinfo=UTC), now) == "in 2 days"
    assert mlops_page.time_html(promoted, now) == (
        '<time datetime="2026-12-06T00:01:21.745140+00:00" title="2026-12-06 00:01 UTC">3 hours ago</time>'
    )
    assert use_case_status.parse_time(1_700_000_000_000) == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert mlops_page.time_html("<b>soon</b>", now) == "&lt;b&gt;soon&lt;/b&gt;"
    assert use_case_status.airflow_run_link("uc_validate", "manual__2023-03-01T00:00:00+00:00") == (
        "../dags/uc_validate/runs/manual__2023-03-01T00%3A00%3A00%2B00%3A00"
    )


def test_the_page_shows_no_raw_numbers(lake) -> None:
    page = replayed_page(lake)
    text = re.sub(r"<[^>]+>", " ", page)  # what people read
    assert "0.0633" not in text and "2023-02-06T00:01:21" not in text
    assert "val_rmse 5.37 min" in page and "model version" in page and "v7 (champion)" in page
    assert re.search(
        r'promoted <time datetime="2023-02-06T00:01:21[^"]*" title="2023-02-06 00:01 UTC">2 months ago', page
    )


# -- the contract trend ---------------------------------------------------------------------------
def test_trend_chart_has_a_line_per_rule_its_threshold_and_the_notices(lake) -> None:
    status = replayed_status(lake)
    months, trend = mlops_page.rule_trend(status.trend)  # the contract stage's own records
    assert months == _months() and tuple(trend) == RULES
    assert trend["zero_distance"][0] == pytest.approx(1900 / 60_000)
    assert trend["unknown_zone"][:8] == [0.0] * 8 and trend["unknown_zone"][8] == pytest.approx(0.001)
    assert trend["unknown_zone"][14] == pytest.approx(0.002)  # 2023-03: breached, its counts still charted

    chart = mlops_page.contract_trend_chart(status.trend, status.limits)
    assert chart.unit == "% of rows" and chart.threshold[0] == pytest.approx(10.0)
    page = replayed_page(lake)
    trend_svg = re.search(r'<div class="trend">(<svg.*?</svg>)', page, flags=re.S)[1]
    assert 'aria-label="quarantine share per contract rule (% of rows)"' in trend_svg
    assert re.findall(r'<g class="rule" data-series="([^"]+)">', trend_svg) == list(RULES)
    for label in ("2022-01", "2023-03", "month", "% of rows", "breach level (all rules)", *RULES):
        assert f">{label}</text>" in trend_svg, label
    assert 'class="threshold"' in trend_svg
    notices = page[page.index('<div class="notices">') :]
    assert f'<strong>2022-12</strong>: <span class="bad">{JUMP}</span>; surcharge column empty' in notices
    # The month the rule jumped is ringed on its line, and only there.
    unknown_zone = re.search(r'data-series="unknown_zone">(.*?)</g>', trend_svg)[1]
    assert unknown_zone.count('class="mark"') == 1 and trend_svg.count('class="mark"') == 1


def test_older_manifests_read_as_quarantined_when_rules_hit_rows() -> None:
    block = {"success": True, "bad_row_share": 0.04, "quarantined_rows": 400, "rule_counts": {"a": 300}}
    assert use_case_status.ContractMonth.from_contract("2021-01", block).state == "quarantined"
    assert use_case_status.ContractMonth.from_contract("2021-01", {"success": False}).state == "breached"


@pytest.fixture
def gx_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the committed GX context, so validation results stay out of the repository."""
    import shutil

    root = tmp_path / "great_expectations"
    shutil.copytree(REPO / "great_expectations", root, ignore=shutil.ignore_patterns("uncommitted"))
    monkeypatch.setenv("MLPLATFORM_GX_ROOT", str(root))
    return root


def test_the_page_reads_what_the_contract_stage_stores(lake, gx_root: Path) -> None:
    """TLC's own green months validated by the real stage, then a month that arrives broken."""
    from mlplatform.stages import contracts, ingest

    use_case = spec.load_spec(USE_CASE)
    for month in ("2021-01", "2021-02", "2021-03"):
        data = (REPO / f"tests/fixtures/real_tlc/green_tripdata_{month}.parquet").read_bytes()
        ingest.land_bytes(lake, use_case.data.dataset, "green", month, data)
        contracts.validate_month(lake, use_case, month)
    ingest.land_bytes(lake, use_case.data.dataset, "green", "2021-04", data[:5000])  # cut short
    broken = contracts.validate_month(lake, use_case, "2021-04")

    status = use_case_status.collect(use_case, lake, tracking_uri=None)
    assert [(c.month, c.state) for c in status.contracts] == [
        ("2021-01", "quarantined"),
        ("2021-02", "quarantined"),
        ("2021-03", "quarantined"),
        ("2021-04", "breached"),
    ]
    rows = {r.month: r.rows for r in status.trend}
    assert rows == {"2021-01": 76_518, "2021-02": 64_572, "2021-03": 83_827, "2021-04": 0}
    [incident] = use_case_status.incidents(status)
    assert incident.month == "2021-04" and incident.reasons == broken.breaches
    _, trend = mlops_page.rule_trend(status.trend)
    assert next(iter(trend)) == "zero_distance"  # TLC's largest quarantine, 3.2-3.3 % a month
    assert all(0.03 < share < 0.035 for share in trend["zero_distance"][:3])
    assert trend["zero_distance"][3] is None  # nothing could be read of the broken month

    page = mlops_page.render([status], {}, lake_root=lake.root_uri, now=NOW)
    top = page[page.index('<div class="incidents">') : page.index('<table class="latest"')]
    assert "2021-04: contract breached" in top and "unreadable file" in top and "2021-03" not in top


def test_registry_versions_carry_every_alias_they_hold(mlflow_server: str) -> None:
    import uuid

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_server)
    name = f"mlops_page_{uuid.uuid4().hex[:8]}"
    client.create_registered_model(name)
    run = client.create_run("0")
    client.log_metric(run.info.run_id, "val_rmse", 5.37)
    for _ in range(3):
        client.create_model_version(name, f"runs:/{run.info.run_id}/model", run.info.run_id)
    for alias, version in (("champion", "2"), ("previous_champion", "1"), ("challenger", "3")):
        client.set_registered_model_alias(name, alias, version)
    client.set_model_version_tag(name, "2", "champion_since", "2023-02-06T00:01:21+00:00")

    models = use_case_status.registry_models(client, name)
    assert {alias: m.label for alias, m in models.items()} == {
        "champion": "v2 (champion)",
        "challenger": "v3 (challenger)",
        "previous_champion": "v1 (previous_champion)",
    }
    assert models["champion"].metrics == {"val_rmse": 5.37}
    assert models["champion"].promoted_at == "2023-02-06T00:01:21+00:00"
    client.set_registered_model_alias(name, "challenger", "2")  # one version, two aliases
    assert use_case_status.registry_models(client, name)["champion"].label == "v2 (champion, challenger)"
    assert use_case_status.registry_models(client, "never_registered") == {}


# -- the rest of the page -------------------------------------------------------------------------
def test_collect_reads_contract_and_monitoring_from_the_lake(lake) -> None:
    use_case = spec.load_spec(USE_CASE)
    manifest = {
        "contract": {"success": True, "bad_row_share": 0.01, "data_docs_url": "file:///docs/index.html"}
    }
    snapshots.write_snapshot(lake, use_case.name, "2024-02", pa.table({"a": [1]}), manifest)
    for window, rmse in (("2024-03", 3.2), ("2024-04", 3.9)):
        lake.write_json(  # records before the use case and status were stored
            f"monitoring/{use_case.name}/history/window={window}/metrics.json",
            {
                "window": window,
                "metrics": {"rmse": rmse, "drift_share": 0.5},
                "breaches": ["rmse"] * (rmse > 3.5),
            },
        )
    status = use_case_status.collect(use_case, lake, tracking_uri=None)
    assert status.contract.month == "2024-02" and status.contract.passed
    assert [r.window for r in status.monitoring] == ["2024-03", "2024-04"]
    assert [r.status for r in status.monitoring] == ["ok", "breach"]
    assert status.quarantine == [("2024-02", 0.01)]
    assert status.limits.metric == "rmse" and status.limits.unit == "minutes"
    assert status.limits.max_bad_row_share == use_case.contract.max_bad_row_share
    assert status.errors == []


def _record(window: str, **fields) -> MonitoringRecord:
    stored = {"use_case": USE_CASE, "window": window, "status": "ok", "metrics": {}, **fields}
    return MonitoringRecord.from_dict(stored)


def test_render_shows_every_part() -> None:
    status = use_case_status.UseCaseStatus(USE_CASE, "regression", 4)
    status.models["champion"] = use_case_status.ModelVersion(
        "3",
        ("champion",),
        "r",
        0,
        {"promotion.reason": "beat champion by 4%", "promotion.at": "2024-05-01"},
        {"val_rmse": 3.21, "val_rmse.pu_borough.Queens": 4.0, "fit_seconds": 9.0},
    )
    status.contracts = [
        use_case_status.ContractMonth(
            "2024-04",
            "breached",
            bad_row_share=0.2,
            reasons=("bad rows: 20 % over the 10 % limit",),
            data_docs_url="file:///gx/uncommitted/data_docs/local_site/validations/x.html",
        )
    ]
    status.limits = use_case_status.Limits("rmse", "minutes", 0.07, 0.3, 0.1)
    variants = {"batch": {"rmse": 3.1}, "champion": {"rmse": 3.3}, "challenger": {"rmse": 3.0}}
    status.monitoring = [
        _record(
            "2024-03",
            metrics={"rmse": 3.2, "rmse_reference": 3.0, "drift_share": 0.1},
            details={"variants": variants},
        ),
        _record(
            "2024-04",
            status="breach",
            metrics={"rmse": 4.1, "rmse_reference": 3.0, "drift_share": 0.6},
            details={"variants": {"batch": {"rmse": 4.0}}},
            breach_details=[
                {
                    "metric": "drift_share",
                    "value": 0.6,
                    "threshold": 0.3,
                    "kind": "drift",
                    "message": "6 of 10 features drifted",
                    "retrain": True,
                }
            ],
            report_url="s3://lake/monitoring/taxi_trip_duration/reports/window=2024-04/drift_report.html",
        ),
    ]
    status.approvals = [
        use_case_status.PendingApproval(
            "Promote version 4?",
            "../dags/x/runs/y/tasks/z/required_actions",
            "**version 4**\n\n| gate | passed | detail |\n|---|---|---|\n| slices | NO | night +9% |",
        )
    ]
    links = {"mlflow": "http://mlflow", "alerts": "https://slack.example/archives/C1"}
    page = mlops_page.render(
        [status],
        links,
        "abc123",
        lake_root="s3://lake",
        docs_root=Path("/gx/uncommitted/data_docs/local_site"),
        now=NOW,
    )
    assert "v3 (champion)" in page and "beat champion by 4%" in page
    assert "val_rmse 3.21 min" in page and "Queens" not in page and "fit_seconds" not in page
    assert "2024-04: contract breached" in page and "bad rows: 20 % over the 10 % limit" in page
    assert "breached: 6 of 10 features drifted (rmse 4.1 min, drift 60.0 % of features)" in page
    assert "bundle version abc123" in page
    assert "http://mlflow/#/models/taxi_trip_duration/versions/3" in page
    # The approval queue shows what is decided: the gate table.
    assert "Promote version 4?" in page
    assert "<th>gate</th>" in page and "<td>NO</td>" in page and "<strong>version 4</strong>" in page
    # Links the browser can open, in every environment: served next to the page.
    assert 'href="datadocs/validations/x.html"' in page
    assert 'href="lake/monitoring/taxi_trip_duration/reports/window=2024-04/drift_report.html"' in page
    assert "file://" not in page and "s3://" not in page
    assert 'href="https://slack.example/archives/C1"' in page


def test_charts_have_axes_units_thresholds_and_a_line_per_variant() -> None:
    status = use_case_status.UseCaseStatus(USE_CASE, "regression", 4)
    status.limits = use_case_status.Limits("rmse", "minutes", 0.1, 0.3, 0.1)
    status.monitoring = [
        _record(
            f"2024-0{m}",
            metrics={"rmse": 3 + m / 10, "rmse_reference": 3.0, "drift_share": m / 10},
            details={"variants": {"batch": {"rmse": 3 + m / 10}, "champion": {"rmse": 3.5}}},
        )
        for m in (3, 4, 5)
    ]
    status.contracts = [
        use_case_status.ContractMonth("2024-03", "quarantined", 0.04),
        use_case_status.ContractMonth("2024-04", "quarantined", 0.05),
    ]
    status.trend = [
        RuleTrend("2024-03", "zero_distance", 100, 4, 0.04, "quarantine"),
        RuleTrend("2024-04", "zero_distance", 100, 5, 0.05, "quarantine"),
    ]
    rmse, drift = mlops_page.monitoring_charts(status.monitoring, status.limits)
    assert list(rmse.series) == ["overall", "batch", "champion"]
    assert rmse.threshold == pytest.approx([3.3] * 3)
    assert drift.threshold == [0.3, 0.3, 0.3]

    page = mlops_page.render([status], {}, now=NOW)
    svgs = re.findall(r"<svg.*?</svg>", page, flags=re.S)
    assert len(svgs) == 4
    titles = [re.search(r'aria-label="([^"]+)"', svg)[1] for svg in svgs]
    assert titles == [
        "quarantine share per contract rule (% of rows)",
        "rmse per variant (rmse (minutes))",
        "drifted features (share of features)",
        "quarantined rows (share of rows)",
    ]
    rmse_svg = svgs[1]
    for label in ("2024-03", "2024-05", "month", "rmse (minutes)", "breach level", "batch", "champion"):
        assert f">{label}</text>" in rmse_svg, label
    assert 'class="threshold"' in rmse_svg and "stroke-dasharray" in rmse_svg
    assert rmse_svg.count("<polyline") == 4  # overall, batch, champion and the threshold
    assert rmse_svg.count('<g class="series"') == 3


def test_alerts_link_and_served_links_per_environment() -> None:
    local = "http://127.0.0.1:8765/hooks/alerts"
    assert mlops_page.alerts_link(None, local) == "http://127.0.0.1:8765/messages"
    assert mlops_page.alerts_link(None, "https://hooks.slack.com/services/T/B/X") is None
    assert mlops_page.alerts_link("https://slack.example/c", local) == "https://slack.example/c"
    assert mlops_page.served_link("file:///data/lake/monitoring/a.html", "file:///data/lake") == (
        "lake/monitoring/a.html"
    )
    assert mlops_page.served_link("s3://other/x.html", "s3://lake") is None
    assert mlops_page.served_link("https://mlflow/x", "s3://lake") == "https://mlflow/x"
    assert mlops_page.served_link("file:///data/lake/x.html", "") is None


def test_render_escapes_what_it_shows() -> None:
    hostile = "<script>alert(1)</script>"
    status = use_case_status.UseCaseStatus("x", "regression", 2, errors=[hostile])
    status.contracts = [
        use_case_status.ContractMonth(
            "2023-01", "breached", reasons=(hostile,), notices=(hostile,), jumps=(hostile,)
        )
    ]
    status.trend = [RuleTrend("2023-01", hostile, 10, 1, 0.1, "breach", jump=True)]
    status.monitoring = [
        _record("2022-12", status="breach", breaches=[hostile], airflow_run_url='x" onclick="y')
    ]
    status.models["champion"] = use_case_status.ModelVersion(
        hostile, (hostile,), tags={"promotion.reason": hostile}
    )
    page = mlops_page.render([status], {}, now=NOW)
    assert "<script>alert(1)" not in page and 'x" onclick' not in page
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 4


# -- production truth: the alias timeline, the estimate before labels, the live decision ---------
def _event(n: int, at: str, alias: str, action: str, version, before, by: str, reason: str = ""):
    from mlplatform.core.records import AliasEvent

    model = spec.load_spec(USE_CASE).model_name
    return AliasEvent(f"{at[:10]}-{n:02d}", at, model, alias, action, version, before, by, reason=reason)


def production_lake(lake: Lake) -> Lake:
    """Alias moves of three months (a promotion on live labels, then a rollback) and monitoring
    records with estimates before labels and live decisions."""
    from mlplatform.adapters import registry

    registry.record(
        [
            _event(1, "2024-01-05T03:00:00+00:00", "challenger", "register", "1", None, "train run"),
            _event(2, "2024-01-06T03:00:00+00:00", "champion", "promote", "1", None, "promote run", "first"),
            _event(3, "2024-01-06T03:00:00+00:00", "challenger", "promote", None, "1", "promote run"),
            _event(4, "2024-02-05T03:00:00+00:00", "challenger", "register", "2", None, "train run"),
            _event(5, "2024-02-20T03:00:00+00:00", "previous_champion", "promote", "1", None, "monitor"),
            _event(6, "2024-02-20T03:00:00+00:00", "champion", "promote", "2", "1", "monitor", "live +4%"),
            _event(7, "2024-02-20T03:00:00+00:00", "challenger", "promote", None, "2", "monitor"),
            # Written, never applied (its writer died): the next champion move starts from v2.
            _event(8, "2024-03-01T03:00:00+00:00", "champion", "promote", "9", "2", "cli:ann@host"),
            _event(
                9, "2024-03-10T03:00:00+00:00", "champion", "rollback", "1", "2", "monitor", "<b>worse</b>"
            ),
            _event(10, "2024-03-10T03:00:00+00:00", "previous_champion", "rollback", None, "1", "monitor"),
        ],
        lake,
    )
    interval = {
        "point": 0.012,
        "low": -0.004,
        "high": 0.028,
        "confidence": 0.95,
        "resamples": 0,
        "rows": 12_000,
    }
    keep = {
        "version": "2",
        "outcome": "keep",
        "reason": "not enough evidence yet",
        "interval": interval,
        "trips": 12_000,
        "windows": ["2024-02"],
        "trips_needed": 41_000,
        "acted": False,
    }
    records = {
        "2024-01": {"metrics": {"rmse": 3.2, "estimated_rmse": 3.0, "estimate_error": -0.0625}},
        "2024-02": {
            "metrics": {"rmse": 3.3, "estimated_rmse": 3.4, "estimate_error": 0.0303},
            "details": {"live": {"challenger": keep}},
        },
        "2024-03": {
            "status": "pending",
            "metrics": {"estimated_rmse": 3.6},
            "pending": ["rmse"],
            "details": {"estimate": {"status": "estimated", "reference_window": "2024-02", "rows": 50_000}},
        },
        "2024-04": {
            "status": "pending",
            "metrics": {"estimated_rmse": 3.7},
            "pending": ["rmse"],
            "details": {"estimate": {"status": "estimated", "warning": "<i>would breach</i>"}},
        },
    }
    for window, record in records.items():
        lake.write_json(
            f"monitoring/{USE_CASE}/history/window={window}/metrics.json",
            {"use_case": USE_CASE, "window": window, "status": "ok", **record},
        )
    return lake


def production_page(lake: Lake) -> tuple[use_case_status.UseCaseStatus, str]:
    status = use_case_status.collect(spec.load_spec(USE_CASE), production_lake(lake), tracking_uri=None)
    return status, mlops_page.render([status], {}, now=datetime(2024, 4, 20, tzinfo=UTC))


def test_alias_timeline_has_one_segment_per_tenure_and_rollbacks_apart(lake) -> None:
    status, page = production_page(lake)
    assert status.errors == []
    assert [(e.alias, e.version) for e in status.aliases if e.alias == "champion"] == [
        ("champion", "1"),
        ("champion", "2"),
        ("champion", "1"),
    ]  # the move to v9 never happened
    timeline = re.search(r'<svg class="chart timeline".*?</svg>', page, flags=re.S)[0]
    tenures = re.findall(r'<g class="tenure" data-lane="(\w+)" data-label="(v\d+)">', timeline)
    assert tenures == [
        ("champion", "v1"),
        ("champion", "v2"),
        ("champion", "v1"),
        ("challenger", "v1"),
        ("challenger", "v2"),
    ]
    assert "v9" not in timeline
    # Who moved it and why, on hover; the rollback drawn apart (a red diamond).
    assert (
        "v2 champion until 2024-03-10 03:00 UTC; set by 2024-02-20 03:00 UTC promote: champion v1 → v2 "
        "by monitor: live +4%" in timeline
    )
    rollbacks = re.findall(r'<g class="move rollback" data-lane="champion".*?</g>', timeline)
    assert len(rollbacks) == 1 and "<polygon" in rollbacks[0]
    assert "rollback: champion v2 → v1 by monitor: &lt;b&gt;worse&lt;/b&gt;" in rollbacks[0]
    assert len(re.findall(r'<g class="move promote"', timeline)) == 4  # champion twice, challenger twice
    assert "<b>worse" not in page
    # Beside the performance chart: right after it.
    titles = re.findall(r'<svg class="chart[^"]*" role="img" aria-label="([^"]+)"', page)
    assert titles[:2] == ["rmse per variant (rmse (minutes))", "model versions over time (alias history)"]


def test_windows_without_labels_show_the_estimate_dashed(lake) -> None:
    status, page = production_page(lake)
    rmse_chart = mlops_page.monitoring_charts(status.monitoring, status.limits)[0]
    assert rmse_chart.series["overall"] == [3.2, 3.3, None, None]
    assert rmse_chart.series["estimated"] == [None, None, 3.6, 3.7]
    svg = re.search(r'<svg class="chart" role="img" aria-label="rmse per variant.*?</svg>', page, flags=re.S)[
        0
    ]
    estimated = re.search(r'<g class="series" data-series="estimated">.*?</g>', svg)[0]
    assert 'stroke-dasharray="4 3"' in estimated and estimated.count("<circle") == 2
    assert ">estimated</text>" in svg  # the legend
    assert "2024-03: rmse estimated 3.6 min, labels pending (fitted on 2024-02)" in estimated
    assert "&lt;i&gt;would breach&lt;/i&gt;" in estimated and "<i>" not in page
    # Once labelled: the measured value, and how far the estimate made before it was.
    overall = re.search(r'<g class="series" data-series="overall">.*?</g>', svg)[0]
    assert "stroke-dasharray" not in overall
    assert "2024-01: rmse 3.2 min measured; estimated 3 min before its labels (off by -6.2 %)" in overall


def test_latest_state_shows_the_latest_live_decision(lake) -> None:
    _, page = production_page(lake)
    row = re.search(r'<tr data-stage="live decision">.*?</tr>', page)[0]
    assert "<td>2024-02</td>" in row
    assert (
        "keep the challenger in shadow (v2): 12,000 labelled trips so far, roughly 41,000 needed; "
        "improvement +1.20% [-0.40%, +2.80%] (95%, 12,000 rows)"
    ) in row
    # A rollback due is bad news, and named as such.
    regressed = {
        "champion": "2",
        "previous": "1",
        "outcome": "promote",
        "reason": 'previous better" onmouseover="x',
        "interval": {
            "point": 0.05,
            "low": 0.02,
            "high": 0.08,
            "confidence": 0.95,
            "resamples": 0,
            "rows": 30_000,
        },
        "trips": 30_000,
        "acted": True,
    }
    verdicts = use_case_status.live_verdicts([_record("2024-05", details={"live": {"rollback": regressed}})])
    stage, month, cls, text = mlops_page._live_row(verdicts[0])
    assert (stage, month, cls) == ("live decision", "2024-05", "bad")
    assert "roll back to the previous champion (v1): 30,000 labelled trips so far" in text
    assert 'title="previous better&quot; onmouseover=&quot;x"' in text
    assert text.endswith("; done</span>")
    malformed = _record("2024-05", details={"live": {"challenger": {"no": 1}}})
    assert use_case_status.live_verdicts([malformed]) == []


# -- the plugin ---------------------------------------------------------------------------------
@pytest.fixture
def plugin_client(lake, monkeypatch: pytest.MonkeyPatch):
    """The plugin's FastAPI app over the replayed lake, logged in, without Airflow's database."""
    import importlib.util

    from fastapi.testclient import TestClient

    from mlplatform.adapters import settings

    replayed_lake(lake)
    monkeypatch.setenv("MLPLATFORM_LAKE_URI", lake.root_uri)
    monkeypatch.setattr(settings, "tracking_uri", lambda: "")
    found = importlib.util.spec_from_file_location(
        "mlops_plugin", Path(__file__).parents[1] / "plugins/mlops.py"
    )
    plugin = importlib.util.module_from_spec(found)
    found.loader.exec_module(plugin)
    monkeypatch.setattr(plugin, "_airflow_facts", lambda use_case: ([], "abc123"))
    for needed in plugin.app.router.dependencies:
        plugin.app.dependency_overrides[needed.dependency] = lambda: None
    return TestClient(plugin.app)


def test_the_plugin_serves_the_page_and_its_incidents_as_json(plugin_client) -> None:
    page = plugin_client.get("/")
    assert page.status_code == 200 and "2023-03: contract breached" in page.text
    assert page.text.index("Breaches and open incidents") < page.text.index(
        "quarantine share per contract rule"
    )
    status = {s["name"]: s for s in plugin_client.get("/status.json").json()}
    incidents = status[USE_CASE]["incidents"]
    assert [(i["stage"], i["month"], i["closed_by"]) for i in incidents] == [
        ("contract", "2023-03", None),
        ("contract", "2023-02", None),
        ("model", "2022-08", "2022-09"),
    ]
    assert incidents[0]["reasons"] == [BREACHED["2023-03"]]
    assert status[USE_CASE]["contracts"][-1]["state"] == "breached"
    for path in ("/lake/../secrets", "/lake/raw/x.parquet", "/datadocs/../../etc/passwd"):
        assert plugin_client.get(path).status_code == 404, path


def test_the_plugin_shows_production_truth_and_its_json_has_no_nan(plugin_client, lake) -> None:
    """A live decision waiting for labels holds a NaN interval: JSON has none, so it reads null."""
    production_lake(lake)
    nan = float("nan")
    waiting = {
        "version": "3",
        "outcome": "insufficient",
        "reason": "no labelled trip was scored by both",
        "interval": {"point": nan, "low": nan, "high": nan, "confidence": 0.95, "resamples": 0, "rows": 0},
        "trips": 0,
        "trips_needed": None,
        "acted": False,
    }
    lake.write_json(
        f"monitoring/{USE_CASE}/history/window=2024-05/metrics.json",
        {
            "use_case": USE_CASE,
            "window": "2024-05",
            "status": "ok",
            "metrics": {"rmse": 3.1},
            "details": {"live": {"challenger": waiting}},
        },
    )
    page = plugin_client.get("/")
    assert page.status_code == 200 and "model versions over time (alias history)" in page.text
    assert "insufficient evidence yet (v3): 0 labelled trips so far</span>" in page.text
    answer = plugin_client.get("/status.json")
    assert answer.status_code == 200
    status = {s["name"]: s for s in answer.json()}[USE_CASE]
    assert [e["version"] for e in status["aliases"] if e["alias"] == "champion"] == ["1", "2", "1"]
    live = status["monitoring"][-1]["details"]["live"]["challenger"]
    assert live["interval"]["point"] is None


def test_the_page_lists_every_live_decision_and_the_timeline_shows_their_moves(lake) -> None:
    """`make run`'s three live stories on the page: the challenger retired (v2) and the one
    promoted (v3) on live labels, the bad promotion (v4) rolled back to v3; every decision is
    listed with its interval and trips, oldest window first, and the timeline draws each move."""
    from mlplatform.adapters import registry

    registry.record(
        [
            _event(1, "2024-02-05T03:00:00+00:00", "champion", "promote", "1", None, "promote run"),
            _event(2, "2024-02-06T03:00:00+00:00", "challenger", "register", "2", None, "ann"),
            _event(3, "2024-03-06T03:00:00+00:00", "challenger", "retire", None, "2", "monitor", "worse"),
            _event(4, "2024-03-07T03:00:00+00:00", "challenger", "register", "3", None, "ann"),
            _event(5, "2024-04-06T03:00:00+00:00", "previous_champion", "promote", "1", None, "monitor"),
            _event(6, "2024-04-06T03:00:00+00:00", "champion", "promote", "3", "1", "monitor", "live +3%"),
            _event(7, "2024-04-06T03:00:00+00:00", "challenger", "promote", None, "3", "monitor"),
            _event(8, "2024-05-06T03:00:00+00:00", "champion", "promote", "4", "3", "promote run"),
            _event(9, "2024-06-06T03:00:00+00:00", "champion", "rollback", "3", "4", "monitor", "worse live"),
        ],
        lake,
    )

    def decided(outcome: str, trips: int, point: float, acted: bool, **who: str) -> dict:
        interval = {"point": point, "low": point - 0.01, "high": point + 0.01, "confidence": 0.95}
        return {
            **who,
            "outcome": outcome,
            "reason": outcome,
            "interval": {**interval, "resamples": 0, "rows": trips},
            "trips": trips,
            "acted": acted,
        }

    live = {
        "2024-03": {"challenger": decided("retire", 29_469, -0.303, True, version="2")},
        "2024-04": {"challenger": decided("promote", 29_486, 0.033, True, version="3")},
        "2024-06": {"rollback": decided("promote", 29_458, 0.519, True, champion="4", previous="3")},
    }
    for window, found in live.items():
        lake.write_json(
            f"monitoring/{USE_CASE}/history/window={window}/metrics.json",
            {"use_case": USE_CASE, "window": window, "status": "ok", "metrics": {"rmse": 2.2}}
            | {"details": {"live": found}},
        )
    status = use_case_status.collect(spec.load_spec(USE_CASE), lake, tracking_uri=None)
    assert [
        (v.window, v.kind, v.outcome, v.version) for v in use_case_status.live_history(status.monitoring)
    ] == [
        ("2024-03", "challenger", "retire", "2"),
        ("2024-04", "challenger", "promote", "3"),
        ("2024-06", "rollback", "promote", "3"),
    ]
    page = mlops_page.render([status], {}, now=datetime(2024, 7, 1, tzinfo=UTC))
    block = re.search(r'<div class="live-history">.*?</table></div>', page, flags=re.S)[0]
    rows = re.findall(r'<tr data-window="([\d-]+)" data-kind="(\w+)" data-outcome="(\w+)">(.*?)</tr>', block)
    assert [r[:3] for r in rows] == [
        ("2024-03", "challenger", "retire"),
        ("2024-04", "challenger", "promote"),
        ("2024-06", "rollback", "promote"),
    ]
    assert "retire the challenger (v2): 29,469 labelled trips so far; improvement -30.30%" in rows[0][3]
    assert "promote the challenger (v3): 29,486 labelled trips so far; improvement +3.30%" in rows[1][3]
    assert "roll back to the previous champion (v3): 29,458 labelled trips so far" in rows[2][3]
    assert all(r[3].endswith("; done</span></td>") for r in rows)
    timeline = re.search(r'<svg class="chart timeline".*?</svg>', page, flags=re.S)[0]
    tenures = re.findall(r'<g class="tenure" data-lane="(\w+)" data-label="(v\d+)">', timeline)
    assert tenures == [
        ("champion", "v1"),
        ("champion", "v3"),
        ("champion", "v4"),
        ("champion", "v3"),
        ("challenger", "v2"),
        ("challenger", "v3"),
    ]
    assert len(re.findall(r'<g class="move rollback" data-lane="champion"', timeline)) == 1
    assert "by monitor: live +3%" in timeline and "by monitor: worse" in timeline
