"""The bundle on a real Airflow: scheduler, dag-processor, api-server and triggerer with the
LocalExecutor on PostgreSQL, driven through the REST API the way a person drives the UI.

The closed loop of ``make run`` runs on it with fewer trips a month (validate → train → promote
→ deploy → batch score and serving → monitor; a challenger retired and one promoted on live
labels; drift, retrain, promotion and its rollback); then a headless Chromium logs
in to the Airflow UI and opens the MLOps page, and screenshots are saved for a person to
look at (``.local/screenshots/``).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import pytest

from mlplatform.dev.closed_loop import MonthDecisions, Scenario

from conftest import REPO_ROOT, free_port, headless_chromium, throwaway_postgres

pytestmark = [pytest.mark.system, pytest.mark.services, pytest.mark.slow]

USE_CASE = "taxi_trip_duration"
SCREENSHOTS = REPO_ROOT / ".local" / "screenshots"

LOAD_SCENARIO = Scenario(months=4, rows=20_000, drift_from=3)
"""The loop played beside a CPU hog: four months, drift from month 3, no live trial."""
# What it decides each month: the model's verdict, a retrain, a promotion. The serving figures
# are not decisions: they depend on how busy the machine is.
EXPECTED_DECISIONS = [
    MonthDecisions(month="2024-01", model_status=None, retrain=False, promoted=[]),
    MonthDecisions(month="2024-02", model_status="ok", retrain=False, promoted=["1"]),
    MonthDecisions(month="2024-03", model_status="breach", retrain=True, promoted=["2"]),
    MonthDecisions(month="2024-04", model_status="ok", retrain=False, promoted=[]),
]
HOG_SECONDS = 3600
"""The CPU hog ends by itself after this, whatever happens to the test."""


@contextmanager
def cpu_hog(processes: int = 2) -> Iterator[list[subprocess.Popen]]:
    """Busy-looping processes beside the platform (bounded in time, killed at the end)."""
    spin = f"import time\nend = time.monotonic() + {HOG_SECONDS}\nwhile time.monotonic() < end:\n    pass\n"
    hogs = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(processes)]
    try:
        yield hogs
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait(timeout=30)


@pytest.fixture(scope="module")
def postgres_uri() -> Iterator[str]:
    """A throwaway PostgreSQL database for Airflow's metadata."""
    with throwaway_postgres("mlplatform_system") as uri:
        yield uri


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, postgres_uri: str):
    """The embedded platform in a temporary home, on free ports and PostgreSQL."""
    from mlplatform.dev.embedded import Platform

    home = tmp_path_factory.mktemp("platform")
    # The DAG files never change during these tests: the dag-processor parses them once at
    # start, not again every 30 s (the default), which takes CPU from the loop's tasks on a
    # small machine. The platform's processes inherit it (Platform.env does not set it).
    patch = pytest.MonkeyPatch()
    patch.setenv("AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL", "3600")
    platform = Platform(
        home=home,
        airflow_port=free_port(),
        mlflow_port=free_port(),
        sink_port=free_port(),
        serving_port=free_port(),
        airflow_db_uri=postgres_uri,
    )
    try:
        platform.up()
        yield platform
    finally:
        platform.stop()
        patch.undo()


@pytest.fixture(scope="module")
def client(platform):
    from mlplatform.dev.airflow_api import AirflowClient

    client = AirflowClient(platform.airflow_url, "admin", platform.airflow_password())
    yield client
    client.close()


def test_closed_loop_detects_drift_and_plays_the_three_live_stories(platform) -> None:
    """`make run`'s demo with fewer trips a month: contracts, the first model, scoring, serving,
    monitoring; a weak challenger retired and a strong one promoted on live labels; then drift →
    alert → one retrain → promotion → deployment, and that promotion rolled back on the next
    month's labels to the previous champion, with the cooldown."""
    from mlplatform.adapters import registry
    from mlplatform.adapters.lake import Lake
    from mlplatform.core import spec
    from mlplatform.dev import closed_loop

    scenario = dataclasses.replace(closed_loop.DEMO, rows=20_000)
    records = closed_loop.simulate(platform, scenario)
    summary, chart = closed_loop.write_outputs(records, platform.home / "closed_loop")
    print(closed_loop.summary_table(records))
    first, steady, weak, strong, drifted, recovered = records
    decisions = [r.decisions() for r in records]

    # The loop's verdicts are the model's (monitor_status is the record's model_status): how fast
    # the serving app answered on a shared machine is operations' business, not a model breach.
    assert all(r.contract.startswith("passed") for r in records), [r.contract for r in records]
    assert first.champion_version is None and first.monitor_status is None  # one month: no model yet
    assert steady.champion_version == "1" and steady.monitor_status == "ok", steady
    assert {"new data: trained a challenger", "promoted version 1", "deployed to serving"} <= set(
        steady.actions
    )
    assert all(r.serving_status in (None, "ok", "breach", "unmeasured") for r in records)

    # A challenger that loses: v2, trained on 2,000 trips, is retired on month 3's labels.
    assert any(a.startswith("proposed version 2 for a live trial (weak") for a in steady.actions), steady
    assert "live: retired challenger version 2" in weak.actions, weak.actions
    assert weak.decisions().live == ["challenger retire v2"] and weak.champion_version == "1", decisions
    (retired,) = [v for v in weak.live if v.kind == "challenger"]
    assert retired.interval is not None and retired.interval.high < 0, retired

    # A challenger that wins: v3, trained on every month so far, is promoted on month 4's labels.
    assert any(a.startswith("proposed version 3 for a live trial (strong") for a in weak.actions), weak
    assert "live: promoted challenger version 3" in strong.actions, strong.actions
    assert strong.decisions().live == ["challenger promote v3"] and strong.champion_version == "3", decisions
    (won,) = [v for v in strong.live if v.kind == "challenger"]
    assert won.interval is not None and won.interval.low > 0, won
    assert strong.decisions().promoted == []  # live labels promoted it, not the offline gates

    # Drift → breach → alert → one retrain, promoted offline and deployed.
    assert drifted.drift_injected and drifted.monitor_status == "breach", drifted
    assert "rmse" in drifted.breaches and drifted.rmse > 1.07 * drifted.rmse_reference
    retrain = [a for a in drifted.actions if a.startswith("monitoring triggered a retrain")]
    assert len(retrain) == 1 and drifted.champion_version == "4", drifted.actions
    assert {"promoted version 4", "deployed to serving"} <= set(drifted.actions)
    assert any(a.startswith("alert:") and "breach" in a.lower() for a in drifted.actions), drifted.actions
    assert drifted.decisions().live == [], decisions  # v3 kept beside v1 on the disrupted month

    # The disruption passes: v3, scoring in shadow, is better on month 6's labels; rolled back.
    assert not recovered.drift_injected
    assert "rollback promote v3" in recovered.decisions().live, decisions
    rolled = [a for a in recovered.actions if a.startswith("live: rolled back to version 3 (cooldown until")]
    assert len(rolled) == 1, recovered.actions
    (rollback,) = [v for v in recovered.live if v.kind == "rollback"]
    assert rollback.interval is not None and rollback.interval.low > 0, rollback

    # The alias history (what `mlplatform history` lists) says who moved what, why, on what evidence.
    use_case = spec.load_spec(closed_loop.USE_CASE)
    moves = registry.alias_events(use_case.model_name, Lake(platform.env()["MLPLATFORM_LAKE_URI"]))
    by_monitor = [(e.alias, e.action, e.from_version, e.version) for e in moves if e.by == "monitor"]
    assert ("challenger", "retire", "2", None) in by_monitor, by_monitor
    assert ("champion", "promote", "1", "3") in by_monitor, by_monitor
    assert ("champion", "rollback", "4", "3") in by_monitor, by_monitor
    for event in (e for e in moves if e.by == "monitor"):
        live = event.evidence["live"]
        assert event.reason and live["trips"] >= 1000 and live["interval"], event
    offline = [e for e in moves if e.alias == "champion" and e.action == "promote" and e.version == "4"]
    assert len(offline) == 1 and offline[0].by != "monitor" and "live" not in offline[0].evidence, offline
    (back,) = [e for e in moves if e.alias == "champion" and e.action == "rollback"]
    assert back.cooldown_until is not None, back
    assert datetime.fromisoformat(back.cooldown_until) > datetime.fromisoformat(back.at), back

    # Every model the DAGs trained names the DAG bundle version its training ran from
    # (LocalDagBundle: none); the live-trial challengers were trained outside Airflow.
    from mlflow import MlflowClient

    client = MlflowClient(platform.mlflow_url, platform.mlflow_url)
    for version in ("1", "4"):
        assert (
            client.get_model_version(closed_loop.USE_CASE, version).tags["airflow.bundle_version"]
            == "unversioned"
        )

    assert [m["month"] for m in json.loads(summary.read_text())] == scenario.month_names()
    assert chart.read_bytes().startswith(b"\x89PNG")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(chart, SCREENSHOTS / "closed-loop.png")  # for a person to look at


def test_closed_loop_decides_the_same_beside_a_cpu_hog(platform) -> None:
    """A smaller loop (drift from month 3, one retrain) with two busy-looping processes beside
    the platform: serving latency rises, and may breach its limit, but the decisions (each
    month's model status, retrain, promotion) are those of a run without them."""
    from mlplatform.dev import closed_loop

    closed_loop.archive_previous(platform)  # the demo's lake and models stand aside
    with cpu_hog() as hogs:
        records = closed_loop.simulate(platform, LOAD_SCENARIO)
        assert all(hog.poll() is None for hog in hogs)  # busy for the whole loop
    assert [r.decisions() for r in records] == EXPECTED_DECISIONS
    slow = [r.month for r in records if r.serving_status == "breach"]
    print(f"months whose endpoint breached beside the hog: {slow or 'none'}")


def test_closed_loop_on_real_tlc_months(platform, tmp_path: Path) -> None:
    """`mlplatform run --data`: real green months replayed through the same loop. The first
    model trains once two months are validated; the next real month is monitored against it,
    and real month-to-month change raises no alarm while the model still performs. The
    folder holds the consecutive quarter 2021-01..03 (the fixtures' 2023-01, two years and a
    fare change later, is the contract tests' month)."""
    from mlplatform.dev import closed_loop

    quarter = tmp_path / "real_2021q1"
    quarter.mkdir()
    for month in ("2021-01", "2021-02", "2021-03"):
        name = f"green_tripdata_{month}.parquet"
        (quarter / name).symlink_to(REPO_ROOT / "tests" / "fixtures" / "real_tlc" / name)
    closed_loop.archive_previous(platform)  # the generated run's lake and models stand aside
    scenario = closed_loop.Scenario(data=quarter)
    records = closed_loop.simulate(platform, scenario)
    first, second, third = records

    assert [r.month for r in records] == ["2021-01", "2021-02", "2021-03"]
    assert all(r.contract.startswith("passed") for r in records), [r.contract for r in records]
    assert not any(r.drift_injected for r in records)
    assert first.champion_version is None
    assert {"new data: trained a challenger", "promoted version 1"} <= set(second.actions), second
    assert third.monitor_status == "ok", third
    assert not any(a.startswith("monitoring triggered") for r in records for a in r.actions)
    summary, chart = closed_loop.write_outputs(records, platform.home / "closed_loop_real")
    assert chart.read_bytes().startswith(b"\x89PNG") and summary.is_file()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(chart, SCREENSHOTS / "closed-loop-real.png")


def test_ui_login_and_mlops_page(platform, client) -> None:
    """A person logs in to the Airflow UI and opens the MLOps page (after the chain ran)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser = headless_chromium()
    try:
        wait = WebDriverWait(browser, 60)
        browser.get(f"{platform.airflow_url}/")
        wait.until(ec.presence_of_element_located((By.NAME, "username"))).send_keys("admin")
        browser.find_element(By.NAME, "password").send_keys(platform.airflow_password())
        browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait.until(lambda b: "login" not in b.current_url)
        browser.get(f"{platform.airflow_url}/dags")
        wait.until(ec.presence_of_element_located((By.PARTIAL_LINK_TEXT, f"{USE_CASE}_validate")))
        browser.save_screenshot(str(SCREENSHOTS / "airflow-dags.png"))

        browser.get(f"{platform.airflow_url}/mlops/")
        wait.until(ec.presence_of_element_located((By.ID, USE_CASE)))
        page = browser.find_element(By.ID, USE_CASE).text
        browser.save_screenshot(str(SCREENSHOTS / "mlops-page.png"))
        assert "champion" in page and "version" in page
        assert "passed" in page  # the last contract result
        # Charts people read: each names what it shows and its unit; performance and drift
        # carry their thresholds.
        drawn = browser.find_elements(By.CSS_SELECTOR, f"section[id='{USE_CASE}'] svg.chart")
        labels = [chart.get_attribute("aria-label") for chart in drawn]
        assert len(drawn) >= 2 and all(label and label.endswith(")") for label in labels), labels
        assert browser.find_elements(By.CSS_SELECTOR, f"section[id='{USE_CASE}'] svg.chart g.threshold")

        browser.get(f"{platform.airflow_url}/plugin/mlops")
        time.sleep(3)
        browser.save_screenshot(str(SCREENSHOTS / "mlops-in-airflow-ui.png"))
    finally:
        browser.quit()
    assert Path(SCREENSHOTS / "mlops-page.png").stat().st_size > 0
