"""Calling a function at a fixed rate, for the latency phases.

One thread cannot emit 1,000 events a second, each in its own transaction, on a
slow machine: a web application emits from many request threads. Above
``PER_THREAD`` calls a second the calls are spread over several threads that
follow one schedule (call ``i`` is due at ``i / rate`` seconds), for both
systems alike.
"""

import math
import threading
import time
from collections.abc import Callable

from bench.progress import Progress

PER_THREAD = 250.0


def threads_for(rate: float) -> int:
    """How many calling threads a rate gets."""
    return max(1, math.ceil(rate / PER_THREAD))


def at_rate(
    call: Callable[[int], None],
    *,
    rate: float,
    seconds: float,
    label: str = "",
    on_thread_exit: Callable[[], None] | None = None,
) -> dict[str, float]:
    """Call ``call(i)`` ``rate`` times a second for ``seconds``; returns the rate achieved.

    When a call runs late the next ones start at once (no catching up by bursts
    beyond that), so a slow sender shows up as a lower achieved rate.
    ``on_thread_exit`` runs in each extra calling thread as it ends (closing its
    database connection, say).
    """
    count = int(rate * seconds)
    threads = threads_for(rate)
    progress = Progress(label or f"at {rate:g}/s", count)
    start = time.monotonic()

    def loop(offset: int) -> None:
        try:
            for i in range(offset, count, threads):
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                call(i)
                if offset == 0 and i % 64 == 0:
                    progress.update(i)
        finally:
            if offset and on_thread_exit is not None:
                on_thread_exit()

    helpers = [threading.Thread(target=loop, args=(k,), name=f"pacing-{k}") for k in range(1, threads)]
    for helper in helpers:
        helper.start()
    loop(0)
    for helper in helpers:
        helper.join()
    elapsed = time.monotonic() - start
    progress.update(count)
    progress.finish()
    return {
        "sent": count,
        "seconds": elapsed,
        "achieved_rate": count / elapsed if elapsed else 0.0,
        "threads": threads,
    }
