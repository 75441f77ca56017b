"""The MLOps page in headless Chromium: what a person sees first is the worst news.

The page is rendered from the replayed lake of ``test_mlops_page.py`` (the latest two
months breached their contract) and opened from a file, the way the plugin serves it. It
needs Debian's ``chromium`` and ``chromium-driver``: without them the test skips with the
reason, and fails under ``MLPLATFORM_REQUIRE_SERVICES=1``, as ``test_system.py`` does.
The second test opens the page of ``production_lake`` (alias moves with a rollback,
estimates before labels, a live decision): the alias timeline drawn beside the performance
chart.
"""

from __future__ import annotations

from pathlib import Path

from test_mlops_page import BREACHED, RULES, USE_CASE, production_page, replayed_page

from conftest import headless_chromium


def test_breaches_lead_the_page_and_the_trend_has_a_line_per_rule(lake, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    page = tmp_path / "mlops.html"
    page.write_text(replayed_page(lake), encoding="utf-8")
    browser = headless_chromium()
    try:
        browser.get(page.as_uri())
        section = browser.find_element(By.ID, USE_CASE)
        # The first thing under the use case's name: its open breaches, newest first, with reasons.
        incidents = section.find_element(By.CSS_SELECTOR, "div.incidents")
        latest = section.find_element(By.CSS_SELECTOR, "table.latest")
        trend = section.find_element(By.CSS_SELECTOR, "div.trend svg.chart")
        assert incidents.location["y"] < latest.location["y"] < trend.location["y"]
        assert incidents.is_displayed()
        opened = incidents.find_elements(By.CSS_SELECTOR, "li.incident.open")
        assert [i.get_attribute("data-month") for i in opened] == ["2023-03", "2023-02"]
        for item in opened:
            text = item.text
            month = item.get_attribute("data-month")
            assert f"{month}: contract breached" in text and BREACHED[month] in text
            assert item.find_element(By.LINK_TEXT, "Airflow run").get_attribute("href")
        # The latest state says the same, and why monitoring has nothing newer.
        assert "breached: schema" in latest.text
        assert "not monitored: its data was refused" in latest.text
        # Relative times with the absolute time on hover.
        stamp = incidents.find_element(By.TAG_NAME, "time")
        assert stamp.text.endswith("ago") and stamp.get_attribute("title").endswith("UTC")

        # The contract trend: one line per rule, named in the legend, with the breach level.
        assert trend.get_attribute("aria-label") == "quarantine share per contract rule (% of rows)"
        lines = trend.find_elements(By.CSS_SELECTOR, "g.rule")
        assert [g.get_attribute("data-series") for g in lines] == list(RULES)
        assert all(g.find_elements(By.TAG_NAME, "polyline") for g in lines)
        legend = [t.text for t in trend.find_elements(By.TAG_NAME, "text")]
        assert set(RULES) <= set(legend) and "breach level (all rules)" in legend and "% of rows" in legend
        assert trend.find_elements(By.CSS_SELECTOR, "g.threshold")
        assert trend.size["width"] > 0 and trend.size["height"] > 0
        notices = section.find_element(By.CSS_SELECTOR, "div.trend div.notices")
        assert "2022-12: unknown_zone jumped to 0.40% of rows" in notices.text
        assert (
            len(trend.find_elements(By.CSS_SELECTOR, "g.rule[data-series='unknown_zone'] circle.mark")) == 1
        )
        browser.save_screenshot(str(tmp_path / "mlops-page.png"))
    finally:
        browser.quit()
    assert (tmp_path / "mlops-page.png").stat().st_size > 0


def test_alias_timeline_sits_beside_the_performance_chart(lake, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    page = tmp_path / "mlops.html"
    page.write_text(production_page(lake)[1], encoding="utf-8")
    browser = headless_chromium()
    try:
        browser.set_window_size(1400, 1000)
        browser.get(page.as_uri())
        section = browser.find_element(By.ID, USE_CASE)
        charts = section.find_elements(By.CSS_SELECTOR, "div.charts > svg.chart")
        performance, timeline = charts[0], charts[1]
        assert "timeline" in timeline.get_attribute("class").split()
        assert performance.location["y"] == timeline.location["y"]  # side by side
        assert performance.location["x"] < timeline.location["x"]
        tenures = timeline.find_elements(By.CSS_SELECTOR, "g.tenure[data-lane='champion'] rect")
        assert len(tenures) == 3 and all(t.size["width"] > 0 for t in tenures)
        rollback = timeline.find_element(By.CSS_SELECTOR, "g.move.rollback polygon")
        assert rollback.value_of_css_property("fill") == "rgb(197, 48, 48)"
        assert "live decision" in section.find_element(By.CSS_SELECTOR, "table.latest").text
        browser.save_screenshot(str(tmp_path / "mlops-production.png"))
    finally:
        browser.quit()
    assert (tmp_path / "mlops-production.png").stat().st_size > 0
