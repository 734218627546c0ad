"""Headless Chromium through Playwright for the browser tests: Debian's /usr/bin/chromium, no sandbox.

The ``page`` fixture (offered to tests/system/ by its conftest) skips without the playwright
package; ``MARKS`` (a browser test module's ``pytestmark``) skips without Chromium, except
under ``make test``, where a missing browser fails.
"""

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("EVENTHUB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
PASSWORD = "a-long-test-password"

try:
    from playwright import sync_api as playwright_sync
except ImportError:  # the test extra is not installed: the browser tests skip
    playwright_sync = None

MARKS = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    # `make test` sets EVENTHUB_REQUIRE_BROWSER=1 after installing Chromium: there a missing browser fails.
    pytest.mark.skipif(
        shutil.which(CHROMIUM) is None and not os.environ.get("EVENTHUB_REQUIRE_BROWSER"),
        reason=f"no Chromium at {CHROMIUM}",
    ),
]


@pytest.fixture
def page(monkeypatch):
    """A fresh headless Chromium page, 1400 x 1000; Django's ORM may be used from the test while it runs."""
    if playwright_sync is None:
        pytest.skip("pip install playwright")
    # Playwright's sync API keeps an event loop on this thread; the test's own ORM calls are sync.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        context.set_default_timeout(20_000)
        yield context.new_page()
        browser.close()


def log_in(page, base: str, next_path: str = "/eventhub/", username: str = "operator") -> None:
    """Open a staff page, get sent to the admin login, sign in, land back on the page."""
    page.goto(base + next_path)
    assert "/admin/login/" in page.url
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"**{next_path}")
