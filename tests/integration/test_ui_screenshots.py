"""The web UIs, in a real headless browser (Debian's chromium): log into the Airflow UI of a
running api-server and open the retraining DAG's grid; open MLflow's registered models.
Screenshots go to var/screenshots/ for a person to look at."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "var" / "screenshots"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
pytestmark = pytest.mark.skipif(
    not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()) and not os.environ.get("CI_REQUIRE_BROWSER"),
    reason="Debian's chromium and chromium-driver are not installed (.ci/run installs them)",
)


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(args: list[str], url: str, env: dict[str, str]) -> subprocess.Popen:
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            return proc
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                os.killpg(proc.pid, signal.SIGTERM)
                raise AssertionError(f"{args[:3]} did not start: {proc.stdout.read()[-3000:]}")
            time.sleep(0.5)


def _stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.implicitly_wait(20)
    yield driver
    driver.quit()


def _shot(driver, name: str) -> Path:  # noqa: ANN001 - a selenium WebDriver
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / name
    driver.save_screenshot(str(path))
    assert path.stat().st_size > 10_000  # a rendered page, not a blank one
    return path


def test_airflow_ui_login_and_retrain_grid(airflow_db, tmp_path, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    passwords = tmp_path / "passwords.json"
    passwords.write_text(json.dumps({"admin": "a-test-password"}))
    env = {**os.environ, "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords), "PYTHONPATH": str(ROOT)}
    airflow = str(Path(sys.executable).parent / "airflow")
    subprocess.run([airflow, "dags", "reserialize"], env=env, check=True, capture_output=True)
    port = _port()
    server = _start([airflow, "api-server", "-p", str(port)], f"http://127.0.0.1:{port}/api/v2/monitor/health", env)
    try:
        browser.get(f"http://127.0.0.1:{port}/dags/retail_retrain")
        WebDriverWait(browser, 30).until(ec.url_contains("/auth/login"))  # no anonymous access
        browser.find_element(By.NAME, "username").send_keys("admin")
        browser.find_element(By.NAME, "password").send_keys("a-test-password")
        browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        WebDriverWait(browser, 30).until(ec.url_contains("/dags/retail_retrain"))
        WebDriverWait(browser, 30).until(ec.text_to_be_present_in_element((By.TAG_NAME, "body"), "fine_tune_sentiment"))
        body = browser.find_element(By.TAG_NAME, "body").text
        assert "retail_retrain" in body and "promote_forecaster" in body
        _shot(browser, "airflow_retrain_grid.png")
    finally:
        _stop(server)


def test_mlflow_registered_models_page(tmp_path, browser):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    port = _port()
    mlflow = shutil.which("mlflow", path=str(Path(sys.executable).parent))
    server = _start([mlflow, "server", "--backend-store-uri", store, "--host", "127.0.0.1", "--port", str(port)],
                    f"http://127.0.0.1:{port}/health", {**os.environ})
    try:
        from mlflow import MlflowClient

        url = f"http://127.0.0.1:{port}"  # both URIs: an earlier test may have set a global registry URI
        MlflowClient(tracking_uri=url, registry_uri=url).create_registered_model("retail-demand-forecaster")
        browser.get(f"http://127.0.0.1:{port}/#/models")
        WebDriverWait(browser, 30).until(
            ec.text_to_be_present_in_element((By.TAG_NAME, "body"), "retail-demand-forecaster"))
        ActionChains(browser).send_keys(Keys.ESCAPE).perform()  # MLflow greets with a "what's new" dialog
        _shot(browser, "mlflow_registered_models.png")
    finally:
        _stop(server)
