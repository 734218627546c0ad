"""Reading Retry-After: seconds or an HTTP date, never negative, never beyond the cap."""

from datetime import UTC, datetime

import pytest
from django.test import override_settings

from eventhub.health import retry_after_seconds

NOW = datetime(2026, 10, 21, 7, 28, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 5 ", 5.0),
        ("0", 0.0),
        ("Wed, 21 Oct 2026 07:30:00 GMT", 120.0),
        ("Wed, 21 Oct 2026 07:00:00 GMT", 0.0),  # in the past: now
        ("soon", None),
        ("-5", None),
        ("1.5", None),
        ("٣", None),  # not an ASCII digit
        ("", None),
        (None, None),
        ("9" * 100, None),
    ],
)
def test_seconds_or_an_http_date(value, seconds):
    assert retry_after_seconds(value, now=NOW) == seconds


@override_settings(EVENTHUB={"RETRY_AFTER_MAX_SECONDS": 600})
def test_capped_so_a_receiver_cannot_park_a_delivery():
    assert retry_after_seconds(str(365 * 86400), now=NOW) == 600
    assert retry_after_seconds("Thu, 21 Oct 2027 07:28:00 GMT", now=NOW) == 600
