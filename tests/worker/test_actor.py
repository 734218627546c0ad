"""The delivery actor: which messages it refuses, and which failed ones Dramatiq retries."""

import pytest
from django.db import OperationalError

from eventhub.worker.actor import (
    INFRASTRUCTURE_RETRIES,
    MalformedMessage,
    _deliver,
    malformed_reason,
    should_retry,
)
from eventhub.worker.deliver import DeliveryFailed


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


@pytest.mark.parametrize(
    "args, kwargs, reason",
    [
        ((7,), {}, ""),
        (([7, 8],), {}, ""),  # a batch message
        (("7",), {}, "expected a delivery id or a list of 1 to 10000 of them, got '7'"),
        ((True,), {}, "expected a delivery id or a list of 1 to 10000 of them, got True"),
        (([],), {}, "expected a delivery id or a list"),
        (([7, "8"],), {}, "expected a delivery id or a list"),
        ((list(range(1, 10_002)),), {}, "expected a delivery id or a list"),
        ((), {}, "expected one delivery id"),
        ((1, 2), {}, "expected one delivery id"),
        ((1,), {"x": 1}, "expected one delivery id"),
    ],
)
def test_malformed_delivery_arguments_are_refused(args, kwargs, reason):
    assert (
        malformed_reason(args, kwargs).startswith(reason) if reason else malformed_reason(args, kwargs) == ""
    )
    if reason:
        with pytest.raises(MalformedMessage):
            _deliver(*args, **kwargs)
