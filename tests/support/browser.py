"""A real headless Chromium for page tests (the Airflow UI's and the serve console's): Debian's
``chromium`` and ``chromedriver`` (``apt-get install chromium chromium-driver``; without them the test is
skipped), the same flags, and never Selenium Manager (it would download a driver). Screenshots and the page's
HTML of each step go to a test's folder and are copied to ``test-artifacts/<name>/`` (git-ignored)."""

from __future__ import annotations

import shutil
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from tests.support.paths import REPO

WAIT = 120  # seconds: generous, the box is shared


def chromium() -> tuple[str, str]:
    browser = next((p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None)
    driver = next((p for p in ("/usr/bin/chromedriver", shutil.which("chromedriver")) if p and Path(p).exists()),
                  None)
    if not browser or not driver:
        pytest.skip("headless-browser test needs Chromium and chromedriver from the OS packages "
                    f"(apt-get install chromium chromium-driver); found browser={browser}, driver={driver}")
    return browser, driver


@contextmanager
def headless_chromium(folder: Path, monkeypatch):
    """A Selenium Chrome driver on the system Chromium, its profile and driver log in ``folder``."""
    binary, driver_path = chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common import selenium_manager

    def no_manager(*_a, **_k):
        raise AssertionError("Selenium Manager was invoked (it would download a driver); use the system one")

    monkeypatch.setattr(selenium_manager.SeleniumManager, "binary_paths", no_manager)
    folder.mkdir(parents=True, exist_ok=True)
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1000", "--no-first-run", f"--user-data-dir={folder / 'chromium-profile'}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    drv = webdriver.Chrome(service=Service(executable_path=driver_path, log_output=str(folder / "chromedriver.log")),
                           options=options)
    drv.set_page_load_timeout(WAIT)
    try:
        yield drv
    finally:
        drv.quit()


class Shots:
    """Numbered screenshots + page HTML in ``folder``, copied to test-artifacts/``name``/ as they are taken."""

    def __init__(self, driver, folder: Path, name: str):
        self.driver, self.folder, self.n = driver, folder, 0
        self.artifacts = REPO / "test-artifacts" / name
        folder.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.artifacts, ignore_errors=True)
        self.artifacts.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def on_failure(self):
        """Inside: a failure takes one more screenshot ("failure") before it goes on, when the page still can."""
        try:
            yield
        except Exception:
            with suppress(Exception):
                self("failure")
            raise

    def __call__(self, name: str) -> Path:
        self.n += 1
        png = self.folder / f"{self.n:02d}-{name}.png"
        self.driver.save_screenshot(str(png))
        png.with_suffix(".html").write_text(self.driver.page_source)
        for path in (png, png.with_suffix(".html")):
            shutil.copy2(path, self.artifacts / path.name)
        return png
