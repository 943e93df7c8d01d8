"""Issue #12, the new user's first look: `make airflow` in a real browser (headless Chromium from Debian's packages).

Starts the real `make airflow` stack (shared with test_airflow_local.py: tests/support/airflow.py, MakeAirflow) on a
free port with its own home, then as a user would: signs in on the login page with the printed login,
finds our three DAGs in the DAG list, opens dynamodb_ingest's trigger form, checks that our params render
with their titles and descriptions, and submits a table name the param's pattern refuses (Airflow 3's form
does not check patterns itself: it posts, the API answers 400 and the UI shows "Failed to Trigger Dag").

Screenshots (and the page's HTML) of every step go to ``tmp_path/browser`` and are copied to
``test-artifacts/browser/`` at the repository root (git-ignored). Chromium and chromedriver come from
``apt-get install chromium chromium-driver``; without them the test is skipped. The driver is always the
system chromedriver: Selenium Manager (which would download one) must not run.

Part of `make test`: about 2 minutes on the 2-core box (most of it airflow standalone's first start; it is
stopped with SIGKILL, the clean Ctrl-C stop being test_airflow_local's subject).
"""

from __future__ import annotations

import json
import shutil
import urllib.request
from pathlib import Path

import pytest

from tests.support.airflow import MakeAirflow
from tests.support.paths import REPO
from tests.support.servers import free_port

ROOT = REPO
ARTIFACTS = ROOT / "test-artifacts" / "browser"
DAGS = ("dynamodb_ingest", "dynamodb_stream_sync", "dynadex_maintenance")
WAIT = 120  # seconds: generous, the box is shared


def _chromium() -> tuple[str, str]:
    browser = next((p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None)
    driver = next((p for p in ("/usr/bin/chromedriver", shutil.which("chromedriver")) if p and Path(p).exists()),
                  None)
    if not browser or not driver:
        pytest.skip("headless-browser test needs Chromium and chromedriver from the OS packages "
                    f"(apt-get install chromium chromium-driver); found browser={browser}, driver={driver}")
    return browser, driver


@pytest.fixture
def browser(tmp_path, monkeypatch):
    binary, driver_path = _chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common import selenium_manager

    def no_manager(*_a, **_k):
        raise AssertionError("Selenium Manager was invoked (it would download a driver); use the system one")

    monkeypatch.setattr(selenium_manager.SeleniumManager, "binary_paths", no_manager)
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1000", "--no-first-run", f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})  # to see the API's answers
    drv = webdriver.Chrome(service=Service(executable_path=driver_path, log_output=str(tmp_path / "chromedriver.log")),
                           options=options)
    drv.set_page_load_timeout(WAIT)
    try:
        yield drv
    finally:
        drv.quit()


@pytest.fixture
def stack(tmp_path):
    airflow = MakeAirflow(tmp_path / "home", free_port())
    try:
        yield airflow.start()
    finally:
        airflow.stop(fast=True)  # the clean Ctrl-C stop is test_airflow_local's subject


class Shots:
    """Numbered screenshots + page HTML in ``folder``, copied to test-artifacts/browser/ as they are taken."""

    def __init__(self, driver, folder: Path):
        self.driver, self.folder, self.n = driver, folder, 0
        folder.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(ARTIFACTS, ignore_errors=True)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def __call__(self, name: str) -> Path:
        self.n += 1
        png = self.folder / f"{self.n:02d}-{name}.png"
        self.driver.save_screenshot(str(png))
        png.with_suffix(".html").write_text(self.driver.page_source)
        for path in (png, png.with_suffix(".html")):
            shutil.copy2(path, ARTIFACTS / path.name)
        return png


def api_responses(driver, path_end: str, method: str = "POST") -> list[dict]:
    """The browser's requests to a URL ending in ``path_end`` (from Chrome's performance log) with status and body."""
    requests, found = {}, []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        params = msg.get("params", {})
        if msg["method"] == "Network.requestWillBeSent":
            requests[params["requestId"]] = params["request"]["method"]
        elif (msg["method"] == "Network.responseReceived" and params["response"]["url"].endswith(path_end)
              and requests.get(params["requestId"]) == method):
            found.append({"id": params["requestId"], "status": params["response"]["status"]})
    for item in found:
        try:
            item["body"] = driver.execute_cdp_cmd("Network.getResponseBody", {"requestId": item["id"]})["body"]
        except Exception:  # the body may be gone already: the status is what matters
            item["body"] = ""
    return found


def test_new_user_signs_in_finds_our_dags_and_the_trigger_form_explains_and_refuses_a_bad_table_name(
        browser, stack, tmp_path):  # browser first: without Chromium it skips before the stack starts
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, WAIT, poll_frequency=0.5)
    shot = Shots(browser, tmp_path / "browser")
    url = stack.url
    try:
        # 1. the login page (simple auth manager), with the login `make airflow` printed
        browser.get(url)
        wait.until(EC.url_contains("/auth/login"))
        user = wait.until(EC.visibility_of_element_located((By.NAME, "username")))
        shot("login")
        user.send_keys(stack.user)
        browser.find_element(By.NAME, "password").send_keys(stack.password)
        sign_in = wait.until(EC.element_to_be_clickable(
            (By.XPATH, "//button[@type='submit'][normalize-space()='Sign in']")))
        sign_in.click()
        wait.until(lambda d: "/auth/login" not in d.current_url)

        # 2. the DAG list shows our three DAGs (the DAG processor may still be parsing: reload until it has)
        browser.get(f"{url}/dags")

        polls = iter(range(1, 10**6))

        def all_listed(d):
            if all(d.find_elements(By.CSS_SELECTOR, f"a[href='/dags/{dag}']") for dag in DAGS):
                return True
            if next(polls) % 10 == 0:  # about every 5 s (the list does not refresh itself)
                d.refresh()
            return False

        wait.until(all_listed)
        for dag in DAGS:
            assert browser.find_element(By.CSS_SELECTOR, f"a[href='/dags/{dag}']").text.strip() == dag
        shot("dag-list")

        # 3. dynamodb_ingest's trigger form shows our params with their titles and descriptions
        browser.find_element(By.CSS_SELECTOR, "a[href='/dags/dynamodb_ingest']").click()
        wait.until(EC.url_contains("/dags/dynamodb_ingest"))
        trigger = wait.until(EC.element_to_be_clickable((By.XPATH, "//button[normalize-space()='Trigger']")))
        shot("dag-page")
        trigger.click()
        wait.until(EC.visibility_of_element_located((By.XPATH, "//*[@role='dialog'][contains(., 'Trigger Dag')]")))
        table = wait.until(EC.visibility_of_element_located((By.NAME, "element_table_name")))
        shot("trigger-form")

        def row(param: str):
            """(title, description) the form shows for ``param``: its field row's label and helper text."""
            field = browser.find_element(By.NAME, f"element_{param}")
            return browser.execute_script(
                "const f = arguments[0]; let row = f;"  # climb to the widest box holding no other param
                "while (row.parentElement && row.parentElement.querySelectorAll('[name^=element_]').length <= 1)"
                " row = row.parentElement;"
                "const help = f.getAttribute('aria-describedby');"
                "const h = help && document.getElementById(help);"
                "return [row.innerText, h ? h.innerText : ''];", field)

        expected = {
            "table_name": ("DynamoDB table", "name of the table to index: 3-255 of A-Z a-z 0-9 _ . -"),
            "export_format": ("Export format", "format DynamoDB writes the export in: DYNAMODB_JSON (default) or ION"),
            "chunk_target_mb": ("Chunk target (MB of gzip)", "packed into chunks of about this many MB of gzip"),
            "s3_bucket": ("Export bucket", "S3 bucket the export is written to"),
            "aws_conn_id": ("AWS connection", "Airflow connection with the AWS credentials"),
        }
        for param, (title, description) in expected.items():
            text, helper = row(param)
            assert title in text and description in text, (param, text)
            if param != "export_format":  # a select: its hidden input has no helper link
                assert description in helper, (param, helper)
        assert table.get_attribute("value") == "Orders"  # the default fits the demo table
        assert browser.find_element(By.NAME, "element_export_format").get_attribute("value") == "DYNAMODB_JSON"

        # 4. a table name the anchored pattern refuses: the API answers 400 naming table_name, the UI says so
        table.send_keys(Keys.CONTROL, "a")
        table.send_keys(Keys.DELETE)
        table.send_keys("bad table!")
        wait.until(lambda d: table.get_attribute("value") == "bad table!")
        submit = browser.find_element(By.CSS_SELECTOR, "[data-testid='trigger-dag-submit']")
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", submit)
        shot("bad-table-name")
        browser.get_log("performance")  # drop what came before
        wait.until(EC.element_to_be_clickable(submit)).click()
        wait.until(EC.visibility_of_element_located((By.XPATH, "//*[contains(text(), 'Failed to Trigger Dag')]")))
        shot("refused")
        answers = api_responses(browser, "/api/v2/dags/dynamodb_ingest/dagRuns")
        assert answers and all(a["status"] == 400 for a in answers), answers
        assert any("table_name" in a["body"] for a in answers), answers  # the 400 says which param
        # and no run exists
        tok = json.loads(urllib.request.urlopen(urllib.request.Request(  # noqa: S310 (our local server)
            f"{url}/auth/token", data=json.dumps({"username": stack.user, "password": stack.password}).encode(),
            headers={"Content-Type": "application/json"}, method="POST"), timeout=10).read())["access_token"]
        runs = json.loads(urllib.request.urlopen(urllib.request.Request(  # noqa: S310
            f"{url}/api/v2/dags/dynamodb_ingest/dagRuns", headers={"Authorization": f"Bearer {tok}"}),
            timeout=10).read())
        assert runs["total_entries"] == 0, runs
    except Exception:
        try:
            shot("failure")
        except Exception:
            pass
        raise
