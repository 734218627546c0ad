"""eventhub.db.process_cache: the per-process copy that routes and hooks share."""

import threading

import pytest
from django.db import transaction

from eventhub.db.process_cache import ProcessCache


class Source:
    """A value in "the database", and how often it was read."""

    def __init__(self) -> None:
        self.value, self.reads = 1, 0

    def load(self, previous):
        self.reads += 1
        return self.value


def cache_of(source: Source, *, interval: float = 60.0, **options) -> ProcessCache:
    return ProcessCache(source.load, interval=lambda: interval, empty=0, **options)


def test_reads_within_the_interval_cost_no_load_and_an_invalidation_reloads():
    source = Source()
    cache = cache_of(source)
    assert (cache.get(), cache.get(), source.reads) == (1, 1, 1)
    source.value = 2
    assert cache.get() == 1  # another process's edit: seen after the interval
    cache.invalidate()  # an edit in this process: seen at once
    assert (cache.get(), source.reads) == (2, 2)


def test_a_zero_interval_reads_every_time():
    source = Source()
    cache = cache_of(source, interval=0.0)
    cache.get(), cache.get()
    assert source.reads == 2


def test_the_loader_gets_the_previous_value_except_after_an_invalidation():
    seen = []
    cache = ProcessCache(lambda previous: seen.append(previous) or len(seen), interval=lambda: 0.0, empty=0)
    cache.get(), cache.get()
    cache.invalidate()
    cache.get()
    assert seen == [None, 1, None]


@pytest.mark.django_db(transaction=True)
def test_committed_only_keeps_nothing_read_inside_a_transaction():
    source = Source()
    cache = cache_of(source, committed_only=True)
    with transaction.atomic():
        source.value = 5  # as if written by this uncommitted transaction
        assert cache.get() == 5
    source.value = 1  # rolled back
    assert cache.get() == 1 and source.reads == 2


def test_keep_on_error_keeps_the_last_value_until_the_next_interval():
    source = Source()
    cache = cache_of(source, keep_on_error=True, interval=0.0)
    assert cache.get() == 1

    def failing(previous):
        raise ConnectionError("database down")

    cache._load = failing
    assert cache.get() == 1
    strict = ProcessCache(failing, interval=lambda: 0.0, empty=0)
    with pytest.raises(ConnectionError):
        strict.get()


def test_a_load_that_asks_for_the_value_again_gets_the_previous_one():
    cache: ProcessCache[int] = ProcessCache(lambda previous: cache.get() + 1, interval=lambda: 0.0, empty=0)
    assert cache.get() == 1  # the nested read returned the empty value instead of recursing
    assert cache.get() == 2


def test_threads_share_one_copy():
    source = Source()
    cache = cache_of(source)
    cache.get()
    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.get())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [1] * 8 and source.reads == 1
