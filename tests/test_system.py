"""The bundle on a real Airflow: scheduler, dag-processor, api-server and triggerer with the
LocalExecutor on PostgreSQL, driven through the REST API the way a person drives the UI.

validate → train → promote → batch score runs end to end; then a headless Chromium logs in
to the Airflow UI and opens the MLOps page, and screenshots are saved for a person to look
at (``.local/screenshots/``).
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import REPO_ROOT, REQUIRE_SERVICES, free_port, require_service

pytestmark = [pytest.mark.system, pytest.mark.services, pytest.mark.slow]

USE_CASE = "taxi_trip_duration"
MONTHS = ("2024-01", "2024-02", "2024-03", "2024-04")
SCREENSHOTS = REPO_ROOT / ".local" / "screenshots"


@pytest.fixture(scope="module")
def postgres_uri() -> Iterator[str]:
    """A throwaway PostgreSQL database for Airflow's metadata, dropped afterwards."""
    require_service("PostgreSQL", "127.0.0.1", 5432)
    import psycopg2

    name = f"mlplatform_system_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="postgres")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.cursor() as cur:
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.close()


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, postgres_uri: str):
    """The embedded platform in a temporary home, on free ports and PostgreSQL."""
    from mlplatform.embedded import Platform

    home = tmp_path_factory.mktemp("platform")
    platform = Platform(
        home=home,
        airflow_port=free_port(),
        mlflow_port=free_port(),
        sink_port=free_port(),
        serving_port=free_port(),
        airflow_db_uri=postgres_uri,
    )
    try:
        platform.up(
            only=(
                "webhook-sink",
                "mlflow",
                "airflow-api-server",
                "airflow-scheduler",
                "airflow-dag-processor",
                "airflow-triggerer",
            )
        )
        yield platform
    finally:
        platform.stop()


@pytest.fixture(scope="module")
def client(platform):
    from mlplatform.airflow_api import AirflowClient

    client = AirflowClient(platform.airflow_url, "admin", platform.airflow_password())
    yield client
    client.close()


def _wait_idle(client, dag_id: str, timeout_s: float = 900) -> list[dict]:
    """Wait until ``dag_id`` has no queued or running run; returns its runs."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        runs = client.runs(dag_id)
        if runs and all(r["state"] in ("success", "failed") for r in runs):
            return runs
        time.sleep(3)
    raise AssertionError(
        f"{dag_id} still busy after {timeout_s:.0f}s: {[r['state'] for r in client.runs(dag_id)]}"
    )


def test_validate_train_promote_score_chain(platform, client) -> None:
    from mlflow import MlflowClient

    from mlplatform import ingest, snapshots
    from mlplatform.lake import Lake

    env = platform.env()
    lake = Lake(env["MLPLATFORM_LAKE_URI"])
    for i, month in enumerate(MONTHS):
        ingest.land_generated(lake, "nyc_tlc_yellow", "yellow", month, 20_000, seed=i)

    stages = ("validate", "train", "promote", "batch_score")
    dag_ids = [f"{USE_CASE}_{stage}" for stage in stages]
    client.wait_for_dags(dag_ids, timeout_s=300)
    for dag_id in dag_ids:
        client.set_paused(dag_id, False)

    for month in MONTHS:
        client.trigger_and_wait(f"{USE_CASE}_validate", {"month": month}, timeout_s=600)
    assert [s.month for s in snapshots.current_snapshots(lake, USE_CASE)] == list(MONTHS)

    # The validated-data Asset starts training; its challenger Asset starts promotion.
    train_runs = _wait_idle(client, f"{USE_CASE}_train")
    assert any(r["state"] == "success" for r in train_runs), train_runs
    promote_runs = _wait_idle(client, f"{USE_CASE}_promote")
    assert any(r["state"] == "success" for r in promote_runs), promote_runs
    assert all(r["bundle_version"] is None for r in train_runs)  # LocalDagBundle: unversioned

    champion = MlflowClient(tracking_uri=platform.mlflow_url).get_model_version_by_alias(USE_CASE, "champion")
    assert champion.version

    client.trigger_and_wait(f"{USE_CASE}_batch_score", {"month": MONTHS[-1]}, timeout_s=600)
    pointer = lake.read_json(f"predictions/{USE_CASE}/month={MONTHS[-1]}/CURRENT.json")
    assert json.dumps(pointer)
    predictions = [e.path for e in lake.list(f"predictions/{USE_CASE}/month={MONTHS[-1]}")]
    assert any(p.endswith(".parquet") for p in predictions)


def _browser():
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        message = "chromium and chromedriver are not installed (Debian packages; `make system-deps`)"
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1400,1000",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(driver), options=options)


def test_ui_login_and_mlops_page(platform, client) -> None:
    """A person logs in to the Airflow UI and opens the MLOps page (after the chain ran)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser = _browser()
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

        browser.get(f"{platform.airflow_url}/plugin/mlops")
        time.sleep(3)
        browser.save_screenshot(str(SCREENSHOTS / "mlops-in-airflow-ui.png"))
    finally:
        browser.quit()
    assert Path(SCREENSHOTS / "mlops-page.png").stat().st_size > 0
