"""eventhub.db.process_cache: the per-process copy that routes and hooks share."""

import threading
import time

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


def wait_until(condition, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


class SlowSource(Source):
    """A load that takes ``seconds`` and records which thread ran it."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds, self.threads = seconds, []

    def load(self, previous):
        self.threads.append(threading.current_thread().name)
        time.sleep(self.seconds)
        return super().load(previous)


def test_in_the_background_a_reader_never_waits_for_a_reload_and_sees_the_new_value_soon():
    source = SlowSource(0.2)
    cache = cache_of(source, interval=0.1)
    cache.refresh_in_background()
    assert wait_until(lambda: cache.loaded)
    source.value = 2  # edited in another process
    time.sleep(0.15)  # the interval has passed
    started = time.monotonic()
    assert cache.get() in (1, 2)
    assert time.monotonic() - started < 0.05  # the reader did not load
    assert wait_until(lambda: cache.get() == 2)
    assert all(name.startswith("eventhub-refresh") for name in source.threads)


def test_in_the_background_an_edit_in_this_process_is_still_read_at_once():
    source = Source()
    cache = cache_of(source, interval=60.0)
    cache.refresh_in_background()
    assert wait_until(lambda: cache.loaded)
    source.value = 3
    cache.invalidate()
    assert cache.get() == 3


def test_a_background_load_begun_before_an_invalidation_is_not_kept():
    gate, started, hold = threading.Event(), threading.Event(), threading.Event()
    loads = []

    def load(previous):
        loads.append(previous)
        if len(loads) == 2:  # the first background reload: held until this process has edited
            started.set()
            gate.wait(5)
            return "read before the edit"
        if len(loads) == 4:  # the next background reload: held while the test looks
            hold.wait(5)
        return f"read after the edit ({len(loads)})"

    cache = ProcessCache(load, interval=lambda: 0.05, empty="")
    cache.get()
    cache.refresh_in_background()
    assert started.wait(5)
    cache.invalidate()  # an edit in this process while the background thread reads the old rows
    assert cache.get() == "read after the edit (3)"  # read at once
    gate.set()
    assert wait_until(lambda: len(loads) >= 4)  # the background thread is done with the stale read
    assert cache.value == "read after the edit (3)"
    hold.set()


@pytest.mark.django_db(transaction=True)
def test_a_thread_that_edited_inside_a_transaction_reads_its_own_rows_until_it_ends():
    source = Source()
    cache = cache_of(source, committed_only=True, interval=0.05)
    cache.refresh_in_background()
    assert wait_until(lambda: cache.loaded)
    with transaction.atomic():
        source.value = 7  # this transaction's own, uncommitted edit
        cache.invalidate()
        assert cache.get() == 7
        source.value = 1  # what other connections (the background thread's) see
        assert wait_until(lambda: cache.value == 1)  # the background thread loaded the committed rows
        source.value = 7
        assert cache.get() == 7  # still this transaction's own view
    source.value = 1
    assert wait_until(lambda: cache.get() == 1)


def test_a_failing_background_load_keeps_the_last_value(caplog):
    source = Source()
    cache = cache_of(source, interval=0.05)
    assert cache.get() == 1

    def failing(previous):
        raise ConnectionError("database down")

    cache._load = failing
    cache.refresh_in_background()
    time.sleep(0.3)
    assert cache.get() == 1
    assert sum("not refreshed" in r.message for r in caplog.records) == 1  # once per outage


def test_a_reader_thread_load_begun_before_an_invalidation_is_not_kept():
    """Web processes serve requests on many threads: one thread's slow load must not undo another's edit.

    Thread "reader" loads the rows as they were before an edit committed; the edit's
    invalidation arrives meanwhile; the stale load must not be kept as the fresh copy.
    """
    started, gate = threading.Event(), threading.Event()
    rows = {"value": "before the edit"}

    def load(previous):
        value = rows["value"]
        if threading.current_thread().name == "reader":
            started.set()
            gate.wait(5)
        return value

    cache = ProcessCache(load, interval=lambda: 60.0, empty="")
    cache.get()
    cache.invalidate()  # an edit saved in this process, not yet committed
    reader = threading.Thread(target=cache.get, name="reader")
    reader.start()
    assert started.wait(5)
    rows["value"] = "after the edit"
    cache.invalidate()  # the edit's commit
    gate.set()
    reader.join(5)
    assert cache.get() == "after the edit"


def test_many_threads_reading_while_one_edits_all_see_the_edit_once_it_is_committed():
    """Readers on many threads, an editor invalidating: after the last commit every thread reads it."""
    rows = {"version": 0}

    def load(previous):
        version = rows["version"]
        time.sleep(0.002)  # a load takes time: edits land while it runs
        return version

    cache = ProcessCache(load, interval=lambda: 60.0, empty=-1)
    stop = threading.Event()

    def read():
        while not stop.is_set():
            cache.get()

    readers = [threading.Thread(target=read) for _ in range(6)]
    for thread in readers:
        thread.start()
    for version in range(1, 101):
        rows["version"] = version
        cache.invalidate()
        time.sleep(0.001)
    seen = []
    stop.set()
    for thread in readers:
        thread.join(5)
    done = threading.Barrier(6)

    def read_after():
        done.wait(5)
        seen.append(cache.get())

    after = [threading.Thread(target=read_after) for _ in range(6)]
    for thread in after:
        thread.start()
    for thread in after:
        thread.join(5)
    assert seen == [100] * 6
