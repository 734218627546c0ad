"""A worker process's threads shared between routes: slow routes keep to their share, fast ones need not."""

import time

import pytest
from django.core.exceptions import ImproperlyConfigured

from eventhub.broker import middleware
from eventhub.worker.share import ThreadShare, check_settings


@pytest.fixture
def eight_threads(monkeypatch):
    monkeypatch.setattr(middleware, "_threads", 8)


def test_a_new_or_slow_route_holds_at_most_half_the_threads(eight_threads):
    share = ThreadShare()
    tickets = [share.enter(1) for _ in range(5)]
    assert all(tickets[:4]) and tickets[4] == 0  # unknown yet: held to 4 of 8
    assert share.enter(2)  # another route still gets a thread
    share.leave(1, tickets[0])
    assert share.enter(1)  # a place came free


def test_a_fast_route_may_use_every_thread_until_it_starts_to_hang(eight_threads):
    share = ThreadShare()
    share.leave(1, share.enter(1))  # one quick attempt: the route is known to be fast
    tickets = [share.enter(1) for _ in range(8)]
    assert all(tickets)
    time.sleep(0.1)  # its attempts now run far longer than its average: it hangs
    assert share.enter(1) == 0


def test_deferred_messages_are_spread_at_the_pace_places_come_free(eight_threads):
    share = ThreadShare()
    share.leave(1, share.enter(1))  # its average is known
    for _ in range(4):
        share.enter(1)
    first, second = share.place(1, slots=4), share.place(1, slots=4)
    assert second > first > 0


def test_a_new_route_s_messages_come_back_after_its_first_attempts_age_not_in_a_line(eight_threads):
    share = ThreadShare()
    for _ in range(4):
        share.enter(1)
    time.sleep(0.05)
    waits = [share.place(1, slots=4) for _ in range(20)]
    assert all(0.04 < wait < 0.5 for wait in waits)  # a burst is not spread out behind a guess


def test_no_worker_in_the_process_means_no_share(monkeypatch):
    monkeypatch.setattr(middleware, "_threads", 0)
    share = ThreadShare()
    assert all(share.enter(1) for _ in range(20))


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("ROUTE_THREAD_SHARE", 0, "ROUTE_THREAD_SHARE must be above 0 and at most 1"),
        ("ROUTE_THREAD_SHARE", 1.5, "ROUTE_THREAD_SHARE must be above 0 and at most 1"),
        ("SLOW_ROUTE_SECONDS", -1, "SLOW_ROUTE_SECONDS must be a positive number"),
        ("LIMIT_RETRY_MIN_SECONDS", 60, "the minimum not above the maximum"),
        ("LIMIT_LEASE_GRACE_SECONDS", "ten", "LIMIT_LEASE_GRACE_SECONDS must be 0 or more"),
    ],
)
def test_bad_settings_are_refused_with_the_setting_named(settings, setting, value, message):
    settings.EVENTHUB = {**settings.EVENTHUB, setting: value}
    with pytest.raises(ImproperlyConfigured, match=message):
        check_settings()


def test_the_defaults_are_accepted():
    check_settings()


def test_a_failing_route_starts_at_most_its_pace_until_it_succeeds_again(eight_threads, settings):
    settings.EVENTHUB = {**settings.EVENTHUB, "FAILING_ROUTE_STARTS_PER_SECOND": 10.0}
    share = ThreadShare()
    for _ in range(12):  # fast failures: about ten in a row make it failing
        share.leave(1, share.enter(1), failed=True)
    assert share.why(1) == "its pace while failing"
    time.sleep(0.11)
    ticket = share.enter(1)
    assert ticket and share.enter(1) == 0  # one start per 0.1 s, however many threads are free
    assert share.place(1, slots=4) >= 0.099
    share.leave(1, ticket)  # it succeeded: the route is no longer failing
    assert share.why(1) == "its share of threads"
    assert all(share.enter(1) for _ in range(8))
