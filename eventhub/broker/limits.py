"""Time limits per delivery, with Dramatiq's own mechanism, and a delivery's retry on its own.

Dramatiq's TimeLimit middleware gives a message one deadline, set when the message
starts. A batch message runs many deliveries one after another, each with its
route's time limit: the deadline is restarted for each delivery as its run starts
and cleared when it ends, so a slow delivery uses only its own limit, never the
time of those after it, and waiting in the batch costs a delivery none of its own.
The bookkeeping between runs (claims, outcomes) has no deadline of its own, as a
single message's had the whole run's.
"""

import contextlib
import threading
from collections.abc import Iterator

import dramatiq
from dramatiq.common import compute_backoff
from dramatiq.middleware.retries import DEFAULT_MAX_BACKOFF
from dramatiq.middleware.time_limit import TimeLimit

from eventhub.broker.setup import get_broker


def _time_limits() -> TimeLimit | None:
    return next((m for m in get_broker().middleware if isinstance(m, TimeLimit)), None)


@contextlib.contextmanager
def time_limit(milliseconds: int) -> Iterator[None]:
    """Run the block under Dramatiq's TimeLimitExceeded after ``milliseconds`` (this thread only).

    Replaces the message's deadline on this thread; at the end the thread has none
    until its next message (or block) sets one. Without a TimeLimit middleware it does nothing.
    """
    middleware = _time_limits()
    if middleware is None:
        yield
        return
    thread = threading.get_ident()
    middleware.manager.remove_timeout(thread)  # gevent's manager keeps one timer per thread
    middleware.manager.add_timeout(thread, milliseconds)
    try:
        yield
    finally:
        middleware.manager.remove_timeout(thread)


def enqueue_retry(message: dramatiq.Message, *, retries: int, at_least_ms: int | None = None) -> int:
    """Send ``message`` after the backoff of Dramatiq's ``retries``-th retry (or ``at_least_ms``,
    when that is later: a receiver's Retry-After); returns the delay in ms.

    The message carries ``retries`` on, so a further failure backs off from there as
    Dramatiq's retries of any message do.
    """
    max_backoff = min(message.options["max_backoff"], DEFAULT_MAX_BACKOFF)
    _, delay = compute_backoff(
        max(retries - 1, 0), factor=message.options["min_backoff"], max_backoff=max_backoff
    )
    delay = max(int(delay), at_least_ms or 0)
    message.options["retries"] = retries
    get_broker().enqueue(message, delay=delay)
    return delay
