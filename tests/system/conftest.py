"""Fixtures of the end-to-end tests: the browser page (tests/support/browser.py)."""

from tests.support.browser import page  # noqa: F401 - the fixture, for the browser tests
