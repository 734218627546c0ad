"""How the operators' pages write durations and times."""

from datetime import UTC, datetime, timedelta

import pytest

from eventhub.dashboard import formatting


@pytest.mark.parametrize(
    ("ms", "text"),
    [(None, ""), (0.42, "0.4 ms"), (1.0933969999769033, "1.1 ms"), (12.6, "13 ms"), (999, "999 ms"),
     (1534.2, "1.5 s"), (60_000, "60 s"), (125_000, "2 min"), (3 * 3600_000, "3 h")],
)  # fmt: skip
def test_durations_are_rounded_with_their_unit(ms, text):
    assert formatting.duration_ms(ms) == text


def test_a_recent_moment_reads_in_seconds_then_minutes_then_hours():
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert formatting.ago(now - timedelta(seconds=4.2), now=now) == "4 s ago"
    assert formatting.ago(now - timedelta(seconds=45), now=now) == "45 s ago"
    assert formatting.ago(now - timedelta(minutes=7), now=now) == "7 min ago"
    assert formatting.ago(now - timedelta(hours=5), now=now) == "5 h ago"
    assert formatting.ago(None) == ""


def test_counts_take_the_right_number():
    assert formatting.how_many(1, "delivery", "deliveries") == "1 delivery"
    assert formatting.how_many(0, "delivery", "deliveries") == "0 deliveries"
    assert formatting.how_many(12_000, "event") == "12,000 events"
