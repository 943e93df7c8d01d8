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
import urllib.request

import pytest

from tests.support.airflow import MakeAirflow
from tests.support.browser import WAIT, Shots, headless_chromium
from tests.support.paths import REPO
from tests.support.servers import free_port

ROOT = REPO
DAGS = ("dynamodb_ingest", "dynamodb_stream_sync", "dynadex_maintenance")


@pytest.fixture
def browser(tmp_path, monkeypatch):
    with headless_chromium(tmp_path, monkeypatch) as drv:  # skips without Chromium and chromedriver
        yield drv


@pytest.fixture
def stack(tmp_path):
    airflow = MakeAirflow(tmp_path / "home", free_port())
    try:
        yield airflow.start()
    finally:
        airflow.stop(fast=True)  # the clean Ctrl-C stop is test_airflow_local's subject


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
    shot = Shots(browser, tmp_path / "browser", "browser")
    url = stack.url
    with shot.on_failure():  # a screenshot of the page as it failed
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
