"""Which failed delivery messages Dramatiq retries: the database's verdict first, outages for long."""

import pytest
from django.db import OperationalError

from eventhub.actors import INFRASTRUCTURE_RETRIES, should_retry
from eventhub.delivery import DeliveryFailed


@pytest.mark.parametrize(
    ("retries", "exception", "expected"),
    [
        (0, DeliveryFailed("card declined"), True),
        # The database said attempts are left, however many times Dramatiq has counted.
        (INFRASTRUCTURE_RETRIES + 10, DeliveryFailed("card declined"), True),
        # No outcome was recorded (database down): keep retrying, well past any route's max_attempts...
        (0, OperationalError("connection refused"), True),
        (INFRASTRUCTURE_RETRIES - 1, OperationalError("connection refused"), True),
        # ...but not forever: then the message is dead-lettered to the queue's .XQ.
        (INFRASTRUCTURE_RETRIES, OperationalError("connection refused"), False),
    ],
)
def test_should_retry(retries, exception, expected):
    assert should_retry(retries, exception) is expected
