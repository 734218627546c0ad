"""Flat combining: concurrent requests run as batches, each thread gets its own result or error."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from eventhub.db.combining import Combiner


def test_a_lone_request_runs_at_once_as_a_batch_of_one():
    batches = []
    combiner = Combiner(lambda requests: batches.append(list(requests)) or [r * 2 for r in requests])

    assert combiner.submit(21) == 42
    assert batches == [[21]]


def test_concurrent_requests_are_batched_and_each_thread_gets_its_own_result():
    batches = []

    def run(requests):
        batches.append(list(requests))
        time.sleep(0.02)  # a slow statement: others queue up meanwhile
        return [f"result {r}" for r in requests]

    combiner = Combiner(run, max_batch=5)
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(combiner.submit, range(40)))

    assert results == [f"result {r}" for r in range(40)]
    assert sorted(r for batch in batches for r in batch) == list(range(40))
    assert max(len(batch) for batch in batches) == 5
    assert len(batches) < 40


def test_a_failing_request_fails_only_its_own_thread():
    def run(requests):
        if "bad" in requests:
            raise ValueError("bad request")
        time.sleep(0.01)
        return [r.upper() for r in requests]

    combiner = Combiner(run)
    start = threading.Barrier(8)

    def submit(request):
        start.wait()
        try:
            return combiner.submit(request)
        except ValueError as exc:
            return f"error: {exc}"

    requests = ["a", "b", "c", "bad", "d", "e", "f", "g"]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(submit, requests))

    assert results == ["A", "B", "C", "error: bad request", "D", "E", "F", "G"]


def test_a_wrong_number_of_results_is_an_error_not_a_mix_up():
    combiner = Combiner(lambda requests: [])
    with pytest.raises(RuntimeError, match="0 results for 1 requests"):
        combiner.submit("x")


def test_under_load_a_leader_lingers_for_requests_that_are_on_their_way():
    batches = []

    def run(requests):
        batches.append(sorted(requests))
        if requests == ["a"]:
            time.sleep(0.1)  # b and c queue up behind it: the combiner is under load
        return requests

    combiner = Combiner(run, linger=0.3)
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(combiner.submit, "a")
        time.sleep(0.03)
        queued = [pool.submit(combiner.submit, r) for r in "bc"]
        [f.result() for f in [first, *queued]]
        late = pool.submit(combiner.submit, "d")
        time.sleep(0.05)  # arrives while d's leader lingers
        later = pool.submit(combiner.submit, "e")
        assert (late.result(), later.result()) == ("d", "e")

    assert batches == [["a"], ["b", "c"], ["d", "e"]]


def test_a_lone_request_never_lingers():
    combiner = Combiner(lambda requests: requests, linger=5.0)
    started = time.monotonic()
    assert [combiner.submit(r) for r in "xyz"] == ["x", "y", "z"]
    assert time.monotonic() - started < 1.0
