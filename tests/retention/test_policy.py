"""Retention settings and retry windows: what is refused, and the message that says why."""

from datetime import timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured

from eventhub.retention import Retention, check_settings, too_short
from eventhub.retention.policy import retry_window


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RETENTION_SUCCEEDED_DAYS", 0),
        ("RETENTION_DEAD_DAYS", -5),
        ("RETENTION_HOOK_FAILURES_DAYS", 1.5),
        ("RETENTION_TRIALS_DAYS", "30"),
        ("RETENTION_ROLLUP_DAYS", True),
        ("PRUNE_INTERVAL_SECONDS", -1),
        ("PRUNE_BATCH_SIZE", 0),
        ("PRUNE_BATCH_SIZE", 20_000),
    ],
)
def test_nonsense_is_refused_naming_the_setting(settings, name, value):
    settings.EVENTHUB = {**settings.EVENTHUB, name: value}
    with pytest.raises(ImproperlyConfigured, match=rf'EVENTHUB\["{name}"\] = {value!r}'):
        check_settings()


def test_the_defaults_and_switching_the_worker_off_are_accepted(settings):
    check_settings()
    settings.EVENTHUB = {**settings.EVENTHUB, "PRUNE_INTERVAL_SECONDS": 0, "RETENTION_SUCCEEDED_DAYS": 1}
    check_settings()


def test_the_retry_window_is_every_attempt_at_its_time_limit_plus_the_longest_backoff():
    window = retry_window(max_attempts=5, max_backoff_ms=300_000, time_limit_ms=60_000)
    assert window == timedelta(minutes=30)


def test_a_retention_is_too_short_for_the_longest_window_only():
    kept = Retention(succeeded_days=2, dead_days=10)
    windows = [("quick", timedelta(hours=1)), ("slow", timedelta(days=3)), ("slower", timedelta(days=4))]
    reason = too_short(retention=kept, windows=windows)
    assert reason.startswith(
        "Retention of 2 days is shorter than the retry window of route 'slower' (4.0 days"
    )
    assert too_short(retention=Retention(succeeded_days=4, dead_days=4), windows=windows) == ""
    assert too_short(retention=kept, windows=[]) == ""
