"""Many threads' small writes run as one statement: flat combining.

A worker process runs several threads, and each delivery costs two short
statements (the claim and the outcome). Run one by one, every statement is a
round trip and a transaction of its own, and the database spends more on those
than on the rows. A :class:`Combiner` lets whichever waiting thread is free run
everyone's pending requests as one batch (one statement, one commit) on its own
connection, then hands each thread its own result. A thread alone, as when the
worker is idle, runs its request at once: batching costs latency only when there
is a queue to batch.

Under load, a leader may ``linger`` a moment before taking the pending requests:
when its previous batch held several requests, other threads are evidently
submitting, and waiting a fraction of a millisecond for them makes fewer, larger
batches: less work per request for both the process and the database.

A thread can be interrupted anywhere by an exception raised into it from outside
(Dramatiq's time limit, say): then no other thread is left waiting. A request it
had taken but not finished fails with :class:`CombinedWriteInterrupted` (the
statement's outcome is unknown, so it is not run again), and the lead passes on,
so later requests still run.
"""

import threading
import time
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

Request = TypeVar("Request")
Result = TypeVar("Result")

_UNSET = object()
_INTERRUPTED = (
    "the thread running this write's batch was interrupted before it finished; its outcome is unknown"
)


class _Slot:
    __slots__ = ("request", "result", "error", "done", "wake")

    def __init__(self, request: object) -> None:
        self.request = request
        self.result: object = _UNSET
        self.error: BaseException | None = None
        self.done = False
        # Held until the slot is done or its thread is handed the lead: a wait that wakes one
        # thread, where a shared condition would wake them all.
        self.wake = threading.Lock()
        self.wake.acquire()


class CombinedWriteInterrupted(RuntimeError):
    """The thread running this request's batch was interrupted: whether the batch took effect is unknown."""


class Combiner(Generic[Request, Result]):
    """Runs ``run_batch`` over the requests threads submit concurrently, at most ``max_batch`` at a time.

    ``run_batch`` takes a list of requests and returns one result per request, in
    order. ``linger`` (seconds) is how long a leader waits for more requests before
    a batch, only while batches hold more than one request. When a batch fails,
    each of its requests is run again alone, so one bad request fails only its own
    thread.
    """

    def __init__(
        self,
        run_batch: Callable[[Sequence[Request]], Sequence[Result]],
        *,
        max_batch: int = 64,
        linger: float = 0.0,
    ):
        self.run_batch = run_batch
        self.max_batch = max_batch
        self.linger = linger
        self._last_batch = 0
        self._lock = threading.Lock()
        self._pending: list[_Slot] = []
        self._leading = False
        self._leader: _Slot | None = None  # the slot whose thread leads, while one does

    def submit(self, request: Request) -> Result:
        """Run ``request`` (with whatever else is waiting); returns its result or raises its error."""
        slot = _Slot(request)
        with self._lock:
            self._pending.append(slot)
            follow, self._leading = self._leading, True
            if not follow:
                self._leader = slot
        try:
            if follow:
                slot.wake.acquire()  # the leader ran it, or handed this thread the lead
            if not slot.done:
                self._lead(slot)
        except BaseException:
            self._leave(slot)
            raise
        if slot.error is not None:
            raise slot.error
        return slot.result  # type: ignore[return-value]

    def _lead(self, own: _Slot) -> None:
        """Run batches until ``own`` is done, then hand the lead to the oldest waiting thread."""
        while not own.done:
            if self.linger and self._last_batch > 1 and len(self._pending) < self.max_batch:
                time.sleep(self.linger)
            with self._lock:
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
            self._last_batch = len(batch)
            try:
                self._run(batch)
            finally:
                for slot in batch:
                    if not slot.done:  # only when this thread was interrupted
                        slot.error, slot.done = CombinedWriteInterrupted(_INTERRUPTED), True
                    if slot is not own:
                        slot.wake.release()
        self._hand_on(own)

    def _leave(self, slot: _Slot) -> None:
        """``slot``'s thread stops (interrupted): its request is dropped unless taken; the lead goes on."""
        with self._lock:
            if slot in self._pending:
                self._pending.remove(slot)
        self._hand_on(slot)

    def _hand_on(self, slot: _Slot) -> None:
        """If ``slot``'s thread leads, hand the lead to the oldest waiting thread (or the next submitter)."""
        with self._lock:
            if self._leader is not slot:
                return
            successor = self._pending[0] if self._pending else None
            self._leader, self._leading = successor, successor is not None
        if successor is not None:
            successor.wake.release()

    def _run(self, batch: list[_Slot]) -> None:
        try:
            results = self.run_batch([slot.request for slot in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"run_batch returned {len(results)} results for {len(batch)} requests")
        except Exception as exc:  # an interrupt (BaseException) is not a failing request: it ends the batch
            if len(batch) == 1:
                batch[0].error, batch[0].done = exc, True
                return
            for slot in batch:  # find the request that fails; the others go through
                self._run([slot])
            return
        for slot, result in zip(batch, results, strict=True):
            slot.result, slot.done = result, True
