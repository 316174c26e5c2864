"""The README's MLflow UI screenshot (docs/img/mlflow_compare.png): two model versions side by side.

Builds a scratch store (the tiny synthetic market: SPY and _SPX, 25 trading days to 2026-03-31):
`main` runs fetch → validate → features → train → evaluate (v1), v1 is promoted when its gate
passed, then a second candidate with shallower trees is trained and evaluated against it (v2).
Starts the MLflow UI on that store as `make ui` does (`mlflow ui`, 127.0.0.1, a free port) and
saves, with headless Chromium (Debian's chromium + chromedriver through Selenium, both paths given,
so nothing is downloaded), the registry's page comparing the two versions: their model_train
runs' parameters and the `gate.*` figures model_evaluate logged onto them. The UI is stopped at
the end (its whole process group) and the scratch folder removed, unless `--root` names one
(then a store already built there is reused). ~3 min on 2 cores.

    uv run python -m benchmarks.mlflow_ui_screenshot [--root DIR] [--out docs/img/mlflow_compare.png]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import requests

from benchmarks.monitor import LAST, config
from pipeline.config import REPO_ROOT

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
OUT = REPO_ROOT / "docs" / "img" / "mlflow_compare.png"
WINDOW = (1400, 1100)
MAIN = [f"date={LAST}", f"main.end_date={LAST}", "main.days=25",
        "main.tasks=[data_fetch,data_validate,feature_engineer,model_train,model_evaluate]"]  # fmt: skip
SECOND = ["model_train.max_depth=3", "model_train.force=true"]  # v2: shallower trees
# scroll the metrics table (its own scroll box) so that its first gate.* row is at the top
SCROLL_TO_GATE = """
const row = [...document.querySelectorAll("a")].find(e => e.textContent.trim().startsWith("gate."));
let box = row.parentElement;
while (box && !(box.scrollHeight > box.clientHeight
                && /auto|scroll/.test(getComputedStyle(box).overflowY))) box = box.parentElement;
box.scrollTop += row.getBoundingClientRect().top - box.getBoundingClientRect().top - 8;
"""


def build_store(root: Path) -> list[tuple[str, str]]:
    """Train and evaluate two versions in `root`; [(version, model_train run id)] of both."""
    from pipeline import model_evaluate, model_train
    from pipeline.main import run_pipeline
    from pipeline.registry import Registry
    from pipeline.runtime import configure_tracking, execute

    cfg = config(root, *MAIN)
    configure_tracking(cfg)
    run_pipeline(cfg)
    registry = Registry(cfg.registry.model_name)
    first = registry.resolve("staging")
    if (registry.verdict(str(first.version)) or {}).get("verdict") == "passed":
        registry.promote(version=str(first.version), user="screenshot")
    second_cfg = config(root, f"date={LAST}", *SECOND)
    execute(model_train.SPEC, second_cfg)
    execute(model_evaluate.SPEC, second_cfg)
    second = registry.resolve("staging")
    return [(str(mv.version), mv.run_id) for mv in (first, second)]


def versions(root: Path) -> list[tuple[str, str]]:
    """[(version, run id)] of the store's first two versions (a store built before)."""
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{root}/mlflow.db")
    name = config(root).registry.model_name
    found = sorted(client.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version))
    return [(str(v.version), v.run_id) for v in found[:2]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def mlflow_ui(tracking_uri: str) -> Iterator[str]:
    """`mlflow ui` on the store (as `make ui` runs it) on a free port; yields its URL, then stops
    its whole process group."""
    port = free_port()
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", tracking_uri,
           "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    process = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"mlflow ui exited with {process.returncode}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(url + "/health", timeout=2).ok:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("mlflow ui did not answer /health within 120 s")
            time.sleep(0.5)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def compare_url(base: str, model_name: str, pairs: list[tuple[str, str]]) -> str:
    """The registry's compare page for the versions (what its Compare button opens), with the
    sidebar on "Model training" (MLflow 3.17's UI picks its views from that switch)."""
    runs = json.dumps({version: run_id for version, run_id in pairs}, separators=(",", ":"))
    query = urllib.parse.urlencode(
        {"name": json.dumps(model_name), "runs": runs, "workflowType": "machine_learning"}
    )
    return f"{base}/#/compare-model-versions?{query}"


def screenshot(url: str, out: Path) -> None:
    """Open `url` in headless Chromium, wait for the gate figures, save the page as `out`."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={WINDOW[0]},{WINDOW[1]}"):  # fmt: skip
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": WINDOW[0], "height": WINDOW[1], "deviceScaleFactor": 1, "mobile": False})  # fmt: skip
        driver.get(url)
        WebDriverWait(driver, 60).until(lambda d: "gate.iv_rmse_vol_points" in d.page_source)
        for close in driver.find_elements(By.CSS_SELECTOR, 'button[aria-label="Close"]'):
            close.click()  # the MLflow Assistant panel, open on a first visit
        # Parameters stay "diff only" (what the versions were trained with differently); every
        # metric is shown, so equal figures such as gate.passed 1 / 1 are on the page too; the
        # schemas (identical) fold away, and the metrics table scrolls to the gate.* rows
        driver.find_elements(By.CSS_SELECTOR, '[role="switch"]')[-1].click()
        next(b for b in driver.find_elements(By.TAG_NAME, "button") if b.text == "Schema").click()
        time.sleep(1)
        driver.execute_script(SCROLL_TO_GATE)
        time.sleep(2)  # the tables' last layout pass
        out.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(out))
    finally:
        driver.quit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, help="build (or reuse) the store here; kept")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        sys.exit(f"headless Chromium not installed ({', '.join(missing)} missing): "
                 "apt-get install chromium chromium-driver")  # fmt: skip
    with contextlib.ExitStack() as stack:
        root = args.root or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ui_")))
        root.mkdir(parents=True, exist_ok=True)
        pairs = versions(root) if (root / "mlflow.db").exists() else build_store(root)
        if len(pairs) < 2:
            sys.exit(f"{root}/mlflow.db holds {len(pairs)} version(s), not 2: use an empty --root")
        with mlflow_ui(f"sqlite:///{root}/mlflow.db") as base:
            screenshot(compare_url(base, config(root).registry.model_name, pairs), args.out)
    print(f"saved {args.out} (versions {', '.join(v for v, _ in pairs)})")


if __name__ == "__main__":
    main()
