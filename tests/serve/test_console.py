"""The console at ``/`` in a real headless Chromium (launched as the Airflow UI test does: tests/support/browser.py),
against a real ``dynadex serve``: a wrong key shows a clear error; with a good key the tables show their lag, a
typed query shows its rows in the table, and a Query Lambda runs from its form with the parameters typed there.
Screenshots of each step: test-artifacts/serve/ (git-ignored). Skipped without Chromium and chromedriver."""

from __future__ import annotations

import pytest

from tests.support.browser import WAIT, Shots, headless_chromium
from tests.support.serve import Served, make_store

LAMBDA = {"name": "by_tag", "description": "Orders of a tag, from n up",
          "sql": {"query": "SELECT pk, n FROM commons.Orders WHERE tag = :tag AND n >= :least ORDER BY n",
                  "default_parameters": [{"name": "tag", "type": "string", "value": "even"},
                                         {"name": "least", "type": "int", "value": "0"}]}}


def test_the_page_is_served_with_its_files_only_and_a_strict_content_policy(served):
    page = served.call("GET", "/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert '<script src="/console/console.js"' in page.text and "<script>" not in page.text  # no inline script
    assert "http://" not in page.text and "https://" not in page.text  # nothing from elsewhere
    assert served.call("GET", "/console/console.js").headers["content-type"].startswith("text/javascript")
    for other in ("/console/app.py", "/console/..%2Fapp.py", "/console/%2e%2e%2fkeys.py"):
        assert served.call("GET", other).status_code == 404, other


@pytest.fixture
def server(tmp_path):
    s = Served(make_store(tmp_path / "store", followed_lag=3.0))
    try:
        yield s
    finally:
        assert s.stop()[0] == 0, s.proc.stderr.read()


def test_console_in_chromium_wrong_key_query_tables_with_lag_and_a_lambda_from_its_form(server, tmp_path, monkeypatch):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    admin = server.key("ops", admin=True)
    made = server.call("POST", "/v1/orgs/self/ws/commons/lambdas", admin, json=LAMBDA)
    assert made.status_code == 200, made.text
    reader = server.key("dashboards")

    with headless_chromium(tmp_path / "chromium", monkeypatch) as browser:
        wait = WebDriverWait(browser, WAIT, poll_frequency=0.2)
        shot = Shots(browser, tmp_path / "shots", "serve")
        error = lambda: browser.find_element(By.ID, "error")  # noqa: E731

        def use_key(k: str) -> None:
            field = browser.find_element(By.ID, "api-key")
            field.clear()
            field.send_keys(k)
            browser.find_element(By.ID, "use-key").click()

        def rows(table_id: str) -> list[list[str]]:
            return browser.execute_script(  # in one call: the page may rebuild the table between two calls
                "return [...document.querySelectorAll(`#${arguments[0]} tbody tr`)]"
                ".map(tr => [...tr.querySelectorAll('td')].map(td => td.innerText));", table_id)

        with shot.on_failure():  # a screenshot of the page as it failed
            # 1. no key yet: the page says to enter one
            browser.get(server.url + "/")
            wait.until(lambda d: error().is_displayed() and "API key" in error().text)
            shot("no-key")

            # 2. a wrong key: a clear 401, nothing listed
            use_key("not-a-key")
            wait.until(lambda d: "401" in error().text)
            assert "AUTHEXCEPTION" in error().text and "Check the API key" in error().text, error().text
            assert rows("tables") == []
            assert browser.find_element(By.ID, "key-state").text == "key refused"
            shot("wrong-key")

            # 3. the right key: kept in this tab's sessionStorage; the tables with their lag, the lambdas
            use_key(reader)
            wait.until(lambda d: len(rows("tables")) == 2)
            assert browser.execute_script("return sessionStorage.getItem('dynadex.apiKey')") == reader
            assert not error().is_displayed()
            assert browser.find_element(By.ID, "key-state").text == "key set (this tab only)"
            tables = {r[0]: r for r in rows("tables")}
            assert tables["Orders"][1] == "20" and tables["Secrets"][1] == "1"
            lag = float(tables["Orders"][2].removesuffix(" s"))  # published 3 s after its export
            assert 2.5 <= lag <= 30, tables["Orders"]
            assert tables["Secrets"][2] == "not followed"
            wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, "#lambdas a[data-lambda='by_tag']")))
            shot("tables-and-lambdas")

            # 4. a query typed in the editor: its rows in the results table
            sql = browser.find_element(By.ID, "sql")
            sql.send_keys(Keys.CONTROL, "a")
            sql.send_keys(Keys.DELETE)
            sql.send_keys("SELECT pk, n, tag FROM Orders WHERE n < 3 ORDER BY n")
            browser.find_element(By.ID, "run-query").click()
            wait.until(lambda d: len(rows("results")) == 3)
            heads = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "#results thead th")]
            assert heads == ["pk", "n", "tag"]
            assert rows("results") == [["k0", "0", "even"], ["k1", "1", "odd"], ["k2", "2", "even"]]
            assert "3 rows" in browser.find_element(By.ID, "result-meta").text
            assert "snapshot" in browser.find_element(By.ID, "result-meta").text
            shot("query-rows")

            # 5. a refused query: the sandbox's message shown, the table left as it was
            sql.send_keys(Keys.CONTROL, "a")
            sql.send_keys(Keys.DELETE)
            sql.send_keys("SELECT * FROM read_csv('/etc/passwd')")
            browser.find_element(By.ID, "run-query").click()
            wait.until(lambda d: error().is_displayed() and "400" in error().text)
            shot("query-refused")

            # 6. the lambda from its form: defaults filled in, changed, run; its rows in the table
            browser.find_element(By.CSS_SELECTOR, "#lambdas a[data-lambda='by_tag']").click()
            tag = wait.until(EC.visibility_of_element_located((By.NAME, "param-tag")))
            least = browser.find_element(By.NAME, "param-least")
            assert tag.get_attribute("value") == "even" and least.get_attribute("value") == "0"
            assert browser.find_element(By.NAME, "type-least").get_attribute("value") == "int"
            tag.clear()
            tag.send_keys("odd")
            least.clear()
            least.send_keys("15")
            browser.find_element(By.ID, "run-lambda").click()
            wait.until(lambda d: len(rows("results")) == 3 and rows("results")[0][0] == "k15")
            assert rows("results") == [["k15", "15"], ["k17", "17"], ["k19", "19"]]
            assert not error().is_displayed()
            assert "by_tag:1" in browser.find_element(By.ID, "result-title").text
            shot("lambda-rows")
            console = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"
                       and "status of 40" not in e["message"]]  # the refusals above are logged as such
            assert not console, console
