"""Polling for what other threads and processes do."""

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    predicate: Callable[[], T], timeout: float = 15.0, interval: float = 0.05, what: str = "condition"
) -> T:
    """Poll until ``predicate()`` is truthy and return it; fail the test when ``timeout`` passes first."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            assert value, f"{what} not met within {timeout}s"
            return value
        time.sleep(interval)
