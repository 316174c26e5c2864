"""The app in a real browser: `streamlit run webapp/app.py` on a free 127.0.0.1 port against a
running pricing service and a copy of the tiny registry, loaded by headless Chromium (Debian's
chromium + chromedriver, driven by Selenium with both paths given, so Selenium Manager never
downloads anything). The pricer's model price must appear, equal to the service's own answer.

UPDATE_SCREENSHOT=1 also saves the Smile tab as docs/img/app.png (the README's screenshot):
    UPDATE_SCREENSHOT=1 uv run pytest tests/integration/test_app_browser.py
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.config import REPO_ROOT
from tests.serving_helpers import (  # noqa: F401
    free_port,
    registry_copy,
    running_service,
    stop,
    tiny_registry,
    wait_for,
)
from webapp import app_data as data

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
MISSING = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(
        bool(MISSING),
        reason=f"headless Chromium not installed ({', '.join(MISSING)} missing): "
        "apt-get install chromium chromium-driver (.ci/run does)",
    ),
]

APP = REPO_ROOT / "webapp" / "app.py"
SCREENSHOT = REPO_ROOT / "docs" / "img" / "app.png"
WINDOW = (1400, 1000)
PRICE = re.compile(r"^-?\d[\d,]*\.\d{4}$")


@contextlib.contextmanager
def running_app(pricing_url: str, tracking_uri: str, data_root: Path) -> Iterator[str]:
    """`streamlit run webapp/app.py` (as `make app` runs it) on a free port; yields its URL."""
    port = free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", str(APP), "--server.address", "127.0.0.1",
           "--server.port", str(port), "--server.headless", "true",
           "--browser.gatherUsageStats", "false", "--client.toolbarMode", "minimal"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "STREAMLIT_"))}
    env.update(PRICING_URL=pricing_url, MLFLOW_TRACKING_URI=tracking_uri,
               APP_DATA_ROOT=str(data_root), PYTHONUNBUFFERED="1")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="streamlit_app_") as tmp:
        log_path = Path(tmp) / "app.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=log,
                                       stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for(url + "/_stcore/health", process, log_path, timeout_s=120)
            yield url
        finally:
            stop(process)


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={WINDOW[0]},{WINDOW[1]}"):  # fmt: skip
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    # the page itself at WINDOW (--window-size counts the window, not the viewport)
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": WINDOW[0], "height": WINDOW[1], "deviceScaleFactor": 1, "mobile": False})  # fmt: skip
    try:
        yield driver
    finally:
        driver.quit()


def metric_value(driver, label: str) -> str | None:
    """The value of the st.metric called `label`, once it is on the page."""
    from selenium.webdriver.common.by import By

    for metric in driver.find_elements(By.CSS_SELECTOR, '[data-testid="stMetric"]'):
        lines = [line.strip() for line in metric.text.splitlines() if line.strip()]
        if len(lines) >= 2 and lines[0] == label:
            return lines[1]
    return None


def save_screenshot(driver) -> None:
    """The Smile tab, chart drawn, as docs/img/app.png."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    tab = next(
        t for t in driver.find_elements(By.CSS_SELECTOR, '[role="tab"]') if t.text == "Smile"
    )
    tab.click()
    chart = '[data-testid="stVegaLiteChart"] canvas, [data-testid="stVegaLiteChart"] svg'
    WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, chart))
    time.sleep(2)  # the chart's fade-in
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SCREENSHOT))


def test_a_browser_shows_the_model_price(registry_copy, browser):  # noqa: F811
    from selenium.webdriver.support.ui import WebDriverWait

    with (
        running_service(registry_copy.tracking_uri) as service,
        running_app(service.url, registry_copy.tracking_uri, registry_copy.root) as url,
    ):
        started = time.monotonic()
        browser.get(url)
        shown = WebDriverWait(browser, 120).until(lambda d: metric_value(d, "Model price"))
        assert PRICE.match(shown), shown
        market = data.read_market(data.latest_features(registry_copy.root / "data" / "processed"))
        contract = data.default_contract(market, "SPY")
        answer = service.post("/price", json={"contracts": [contract.as_json()]}).json()
        assert shown == f"{answer['results'][0]['price']:,.4f}"
        assert f"options-pricer v{registry_copy.production}" in browser.page_source
        print(f"priced value shown after {time.monotonic() - started:.1f} s")
        if os.environ.get("UPDATE_SCREENSHOT") == "1":
            save_screenshot(browser)
