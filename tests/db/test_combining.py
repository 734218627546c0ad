"""Flat combining: concurrent requests run as batches, each thread gets its own result or error."""

import ctypes
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from eventhub.db.combining import CombinedWriteInterrupted, Combiner


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


class Interrupt(BaseException):
    """What Dramatiq's time limit raises into a thread from outside (a BaseException, like it)."""


def _interrupt(thread: threading.Thread) -> None:
    """Raise Interrupt in ``thread`` at its next Python instruction, as Dramatiq's time limit does."""
    changed = ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread.ident), ctypes.py_object(Interrupt)
    )
    assert changed == 1


def _submit_in_thread(combiner: Combiner, request: str, outcomes: dict) -> threading.Thread:
    def run() -> None:
        try:
            outcomes[request] = combiner.submit(request)
        except BaseException as exc:  # noqa: BLE001 - the test reads what each thread ended with
            outcomes[request] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _waiting(combiner: Combiner, count: int) -> None:
    """Until ``count`` requests wait to be taken (the threads are where the test needs them)."""
    deadline = time.monotonic() + 3
    while len(combiner._pending) != count:
        assert time.monotonic() < deadline, f"{count} waiting requests expected, not {len(combiner._pending)}"
        time.sleep(0.001)


def _finish(*threads: threading.Thread) -> None:
    for thread in threads:
        thread.join(3)
    assert not any(thread.is_alive() for thread in threads), "a thread still waits on the combiner"


class HeldFirst:
    """``run_batch`` for these tests: records each batch, and holds the batch ["a"] until ``go`` is set.

    With ``busy`` set, the batch holding ``busy`` runs Python code for up to 3 s (a statement in
    progress), after setting ``busy_runs``.
    """

    def __init__(self, busy: str = "") -> None:
        self.batches: list[list[str]] = []
        self.go, self.a_runs, self.busy_runs = threading.Event(), threading.Event(), threading.Event()
        self.busy = busy

    def __call__(self, requests: list[str]) -> list[str]:
        self.batches.append(list(requests))
        if requests == ["a"]:
            self.a_runs.set()
            self.go.wait(3)
        elif self.busy and self.busy in requests:
            self.busy_runs.set()
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                time.sleep(0.005)
        return requests


def test_a_leader_interrupted_while_lingering_hands_on_the_lead_and_the_others_still_run():
    run, outcomes = HeldFirst(), {}
    combiner = Combiner(run, linger=1.0)
    first = _submit_in_thread(combiner, "a", outcomes)
    assert run.a_runs.wait(3)
    queued = [_submit_in_thread(combiner, r, outcomes) for r in "bc"]
    _waiting(combiner, 2)
    run.go.set()
    _finish(first, *queued)  # a batch of two ran: the next leader lingers
    leader = _submit_in_thread(combiner, "d", outcomes)
    _waiting(combiner, 1)
    follower = _submit_in_thread(combiner, "e", outcomes)
    _waiting(combiner, 2)
    _interrupt(leader)  # raised when its linger ends, before it took a batch
    _finish(leader, follower)

    assert run.batches[:2] == [["a"], ["b", "c"]]
    assert isinstance(outcomes["d"], Interrupt) and outcomes["e"] == "e"
    assert run.batches[2:] == [["e"]]  # the interrupted thread's own request was dropped, never run
    assert combiner.submit("f") == "f"


def test_a_leader_interrupted_in_its_batch_fails_the_batch_once_and_wakes_everyone():
    batches, outcomes, started = [], {}, threading.Event()

    def run(requests):
        batches.append(list(requests))
        if requests == ["a"]:
            started.set()
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:  # a statement in progress, in Python code
                time.sleep(0.005)
        return requests

    combiner = Combiner(run)
    leader = _submit_in_thread(combiner, "a", outcomes)
    assert started.wait(3)
    followers = [_submit_in_thread(combiner, r, outcomes) for r in "bc"]
    _waiting(combiner, 2)
    _interrupt(leader)
    _finish(leader, *followers)

    # The leader's interrupt reaches its caller; b and c ran in the next batch, as usual.
    assert isinstance(outcomes["a"], Interrupt)
    assert (outcomes["b"], outcomes["c"]) == ("b", "c")
    assert batches == [["a"], ["b", "c"]]


def test_the_others_in_an_interrupted_batch_get_a_clear_error_and_it_is_not_run_again():
    run, outcomes = HeldFirst(busy="b"), {}
    combiner = Combiner(run)
    first = _submit_in_thread(combiner, "a", outcomes)
    assert run.a_runs.wait(3)
    b = _submit_in_thread(combiner, "b", outcomes)
    _waiting(combiner, 1)
    c = _submit_in_thread(combiner, "c", outcomes)
    _waiting(combiner, 2)
    run.go.set()
    assert run.busy_runs.wait(3)  # b was handed the lead and runs the batch [b, c]
    _interrupt(b)
    _finish(first, b, c)

    assert isinstance(outcomes["b"], Interrupt)
    assert isinstance(outcomes["c"], CombinedWriteInterrupted) and "outcome is unknown" in str(outcomes["c"])
    assert run.batches == [["a"], ["b", "c"]]  # not run again, request by request
    assert combiner.submit("d") == "d"


def test_a_follower_interrupted_as_it_is_handed_the_lead_hands_it_on():
    run, outcomes = HeldFirst(), {}
    combiner = Combiner(run)
    leader = _submit_in_thread(combiner, "a", outcomes)
    assert run.a_runs.wait(3)
    follower = _submit_in_thread(combiner, "b", outcomes)
    _waiting(combiner, 1)
    _interrupt(follower)  # waiting for its turn: raised as soon as it wakes, with the lead
    run.go.set()
    _finish(leader, follower)
    late = _submit_in_thread(combiner, "c", outcomes)
    _finish(late)

    assert outcomes["a"] == "a" and isinstance(outcomes["b"], Interrupt) and outcomes["c"] == "c"
    assert run.batches == [["a"], ["c"]]
