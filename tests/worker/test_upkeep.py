"""The upkeep loop (relay and rescue) says what it runs with."""

import logging
import threading

import pytest

from eventhub.worker.upkeep import run_upkeep

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(("after", "expected"), [(None, "more than 42s"), (7.5, "more than 7.5s")])
def test_the_start_line_prints_the_grace_period_in_force(caplog, settings, after, expected):
    settings.EVENTHUB = {**settings.EVENTHUB, "RELAY_AFTER_SECONDS": 42, "RELAY_INTERVAL_SECONDS": 3}
    stop = threading.Event()
    stop.set()  # no round: only the start and stop lines

    with caplog.at_level(logging.INFO, logger="eventhub.worker.upkeep"):
        run_upkeep(after_seconds=after, stop=stop)

    (started,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Relay started")]
    assert started == f"Relay started: every 3s, pending for {expected}."
    assert "None" not in started
