"""Sending committed deliveries from a background thread, so emit() returns once its commit is done.

A publisher confirm is a round trip to RabbitMQ, and marking the deliveries
queued another one to the database: together more than the emit's own insert.
The outbox makes waiting for them unnecessary: the deliveries are committed
``pending`` before anything is sent, and the relay sends any delivery still
pending after ``RELAY_AFTER_SECONDS`` (the process died, the broker was down,
the hand-over queue was full). So emit hands its deliveries to one sender
thread per process and returns. The thread publishes whatever has gathered
meanwhile as one batch, which also makes many single emits as cheap to send as
one ``emit_many``. A second thread awaits each batch's confirms (one wait per
batch) and marks its deliveries queued, so the next batch is published while
RabbitMQ confirms the last and the database marks it: a confirm waits for
RabbitMQ's disk, a mark for PostgreSQL's, and on the publishing thread every
message emitted meanwhile waited with them (bench.stalls). The marks are
gathered for up to ``MARK_EVERY_SECONDS`` and written as one statement: single
emits at a steady rate each went out in a batch of their own, and marking each
one was a second write per emit, as costly to the database as the emit's own.

At exit the process waits (up to ``SEND_FLUSH_SECONDS``) for what it handed
over, so a short command such as ``manage.py emit`` delivers at once rather than
through the relay. :func:`flush` does the same on demand (tests, before fork).
"""

import atexit
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

from django.db import connection

from eventhub import broker
from eventhub.conf import eventhub_settings
from eventhub.outbox import send
from eventhub.outbox.message import Outgoing
from eventhub.outbox.send import send_deliveries, start_send

logger = logging.getLogger(__name__)

# Deliveries waiting for the thread beyond this are left to the relay (the broker is down or slow).
MAX_WAITING = 100_000
BATCH = 5_000
# Batches published and not yet confirmed: enough to keep publishing through a slow confirm.
MAX_PUBLISHED = 16
# Confirmed deliveries are marked queued together once the first of them has waited this long (or
# at once when someone flushes). "queued" is bookkeeping: the message is out once confirmed, and
# the relay only looks at deliveries pending for RELAY_AFTER_SECONDS.
MARK_EVERY_SECONDS = 0.05
# Single emits handed over less than GATHER_GAP_SECONDS apart (a loop of emit() calls, a busy web
# process) are gathered for GATHER_SECONDS into one publish: each publish wakes the sender, the
# publisher's I/O thread (twice: the send, the confirm) and the marks thread, all on the emitting
# process's GIL, and one emit at a time left every publish with one message. Emits further apart
# (5 ms at 200 events/s) go out at once.
GATHER_GAP_SECONDS = 0.002
GATHER_SECONDS = 0.001


class _Sender:
    """Two threads: one publishes what was handed over, one awaits each batch's confirms and marks it."""

    def __init__(self) -> None:
        # One lock, a condition per kind of waiter: each change wakes only the thread it concerns
        # (one condition woke the publisher, the marks thread and any flush on every emit, each
        # to find it had nothing to do: a thread switch and a turn of the GIL per emit).
        self.lock = threading.Lock()
        self.to_publish = threading.Condition(self.lock)  # the publisher: items waiting, room to publish
        self.to_confirm = threading.Condition(self.lock)  # the marks thread: a batch published, or a flush
        self.drained = threading.Condition(self.lock)  # flush(): nothing waiting or in flight
        self.waiting: deque[Outgoing] = deque()
        # Published batches, oldest first: (deliveries, the call that awaits their confirms).
        self.published: deque[tuple[int, Callable[[], list[int]]]] = deque()
        self.in_flight = 0  # deliveries taken from ``waiting`` and not yet marked (or failed)
        self.thread: threading.Thread | None = None
        self.pid = 0
        self.dropped = 0
        self.flushing = 0  # callers waiting in flush(): gathered marks are written at once
        self.last_hand_over = 0.0  # when the last items were handed over (monotonic)
        self.gap = float("inf")  # the time between the last two hand-overs

    def hand_over(self, items: Sequence[Outgoing]) -> None:
        with self.lock:
            if self.pid != os.getpid() or self.thread is None or not self.thread.is_alive():
                self._start()
            if len(self.waiting) + len(items) > MAX_WAITING:
                self.dropped += len(items)
                if self.dropped == len(items):  # once per backlog, not per emit
                    logger.warning(
                        "More than %d deliveries wait to be sent; new ones stay pending for the relay.",
                        MAX_WAITING,
                    )
                return
            self.dropped = 0
            self.waiting.extend(items)
            now = time.monotonic()
            self.gap, self.last_hand_over = now - self.last_hand_over, now
            self.to_publish.notify()

    def flush(self, timeout: float) -> bool:
        with self.lock:
            if self.pid != os.getpid():
                return True  # the parent's queue is not ours to wait for
            self.flushing += 1
            self.to_confirm.notify()  # marks what it gathered at once
            try:
                return self.drained.wait_for(lambda: not (self.waiting or self.in_flight), timeout)
            finally:
                self.flushing -= 1

    def _start(self) -> None:
        # In a forked child the parent's queue and threads are gone: start afresh.
        self.waiting, self.published, self.in_flight, self.pid = deque(), deque(), 0, os.getpid()
        self.thread = threading.Thread(target=self._publish, name="eventhub-sender", daemon=True)
        self.thread.start()
        threading.Thread(target=self._confirm_and_mark, name="eventhub-sender-marks", daemon=True).start()

    def _publish(self) -> None:
        while True:
            with self.lock:
                self.to_publish.wait_for(lambda: self.waiting and len(self.published) < MAX_PUBLISHED)
                gather = self.gap < GATHER_GAP_SECONDS and len(self.waiting) < BATCH and not self.flushing
            if gather:
                time.sleep(GATHER_SECONDS)  # outside the lock: the emits meanwhile wake nobody
            with self.lock:  # still true: only this thread takes from ``waiting`` or adds to ``published``
                count = min(len(self.waiting), BATCH)
                batch = [self.waiting.popleft() for _ in range(count)]
                self.in_flight += count
            try:
                finish = start_send(batch)  # never raises; what fails stays pending
            except Exception:  # noqa: BLE001 - the thread must outlive any one batch
                logger.exception("Sending %d deliveries failed; they stay pending for the relay.", count)
                finish = list
            with self.lock:
                self.published.append((count, finish))
                self.to_confirm.notify()

    def _confirm_and_mark(self) -> None:
        sent: list[int] = []  # confirmed and not yet marked
        count = 0  # deliveries taken from ``published`` and not yet marked (or failed)
        due = 0.0  # when the gathered ones are marked at the latest
        while True:
            with self.lock:
                if count:
                    wait = max(0.0, due - time.monotonic())
                    self.to_confirm.wait_for(lambda: self.published or self.flushing, wait)
                else:
                    self.to_confirm.wait_for(lambda: self.published)
                full = len(self.published) >= MAX_PUBLISHED
                taken = self.published.popleft() if self.published else None
                if full:
                    self.to_publish.notify()  # room for the publisher
            if taken is not None:
                if not count:
                    due = time.monotonic() + MARK_EVERY_SECONDS
                count += taken[0]
                try:
                    sent.extend(taken[1]())  # never raises; what was not confirmed stays pending
                except Exception:  # noqa: BLE001 - the thread must outlive any one batch
                    logger.exception("Confirming %d deliveries failed; they stay pending.", taken[0])
            if count and (self.flushing or time.monotonic() >= due or len(sent) >= BATCH):
                self._mark(sent, count)
                sent, count = [], 0

    def _mark(self, sent: list[int], count: int) -> None:
        try:
            send.mark_queued(sent)  # a delivery left pending is sent by the relay
        except Exception:  # noqa: BLE001 - the thread must outlive any one batch
            logger.exception("Marking %d deliveries queued failed; they stay pending.", len(sent))
        finally:
            # As after a request: keep the connection for CONN_MAX_AGE, drop it if broken.
            connection.close_if_unusable_or_obsolete()
            with self.lock:
                self.in_flight -= count
                self.drained.notify_all()


_sender = _Sender()


def send_after_commit(items: Sequence[Outgoing]) -> None:
    """Send committed deliveries: in the background on RabbitMQ, at once on the embedded broker.

    The embedded broker's send is an in-memory append, with nothing to wait for.
    """
    if not items:
        return
    if eventhub_settings.SEND_IN_BACKGROUND and broker.uses_rabbitmq():
        _sender.hand_over(items)
    else:
        send_deliveries(items)


def flush(timeout: float = 10.0) -> bool:
    """Wait until every delivery this process handed over has been sent (or failed); False on timeout."""
    return _sender.flush(timeout)


@atexit.register
def _flush_at_exit() -> None:
    if not flush(eventhub_settings.SEND_FLUSH_SECONDS):
        logger.warning("Exiting with deliveries not yet sent; the relay will send them.")
