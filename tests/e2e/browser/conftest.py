"""A real browser against a live server: Debian's Chromium driven through Selenium.

Nothing is downloaded at run time: the tests use ``/usr/bin/chromium`` and
``/usr/bin/chromedriver`` (``apt-get install chromium chromium-driver``) and the ``selenium``
package (the ``test`` extra). Without them the tests skip, saying what is missing; under
``DOMAIN_EVENTS_REQUIRE_SERVICES=1`` they fail instead.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connections

from tests.conftest import REQUIRE_SERVICES

CHROMIUM = os.environ.get("DOMAIN_EVENTS_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("DOMAIN_EVENTS_CHROMEDRIVER", "/usr/bin/chromedriver")
INSTALL_HINT = (
    "install them with: apt-get install -y chromium chromium-driver && "
    "pip install -e '.[test]' (for selenium)"
)


def missing_browser_parts() -> list[str]:
    """What the browser tests need and this machine lacks."""
    missing = []
    if importlib.util.find_spec("selenium") is None:
        missing.append("the selenium package")
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (Path(path).exists() or shutil.which(path)):
            missing.append(path)
    return missing


def require_browser() -> None:
    """Skip the test when the browser or its driver is missing; fail instead under
    DOMAIN_EVENTS_REQUIRE_SERVICES=1."""
    missing = missing_browser_parts()
    if not missing:
        return
    message = f"Browser tests need {', '.join(missing)}; {INSTALL_HINT}"
    if REQUIRE_SERVICES:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the tests save their screenshots: ``DOMAIN_EVENTS_SCREENSHOTS``, or a folder
    under pytest's temporary directory."""
    configured = os.environ.get("DOMAIN_EVENTS_SCREENSHOTS")
    folder = Path(configured) if configured else tmp_path_factory.getbasetemp() / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def live_admin(transactional_db: None) -> Iterator[str]:
    """The URL of a live server of the test project, serving the apps' static files too (the
    test settings do not install staticfiles)."""
    from django.contrib.staticfiles.handlers import StaticFilesHandler
    from django.test.testcases import LiveServerThread

    shared = {
        conn.alias: conn
        for conn in connections.all()
        if conn.vendor == "sqlite" and conn.is_in_memory_db()
    }
    thread = LiveServerThread("127.0.0.1", StaticFilesHandler, shared, port=0)
    thread.daemon = True
    for conn in shared.values():
        conn.inc_thread_sharing()
    thread.start()
    thread.is_ready.wait()
    if thread.error:
        raise thread.error
    try:
        yield f"http://127.0.0.1:{thread.port}"
    finally:
        thread.terminate()
        for conn in shared.values():
            conn.dec_thread_sharing()


@pytest.fixture
def browser(live_admin: str) -> Iterator[Any]:
    """A headless Chromium, through the chromedriver of the system; closed before the live
    server stops, so no request of its is left running against a closed database."""
    require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # tests often run as root in containers
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1440,1000",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.implicitly_wait(5)
    try:
        yield driver
    finally:
        driver.quit()
