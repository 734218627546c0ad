"""Calling a function at a fixed rate, for the latency phases."""

import time
from collections.abc import Callable


def at_rate(
    call: Callable[[int], None], *, rate: float, seconds: float, progress: Callable[[int], None] | None = None
) -> dict[str, float]:
    """Call ``call(i)`` ``rate`` times a second for ``seconds``; returns the rate achieved.

    ``progress(i)``, when given, is called after each call (bench.progress prints from it).

    When a call runs late the next ones start at once (no catching up by bursts
    beyond that), so a slow sender shows up as a lower achieved rate.
    """
    count = int(rate * seconds)
    start = time.monotonic()
    for i in range(count):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        call(i)
        if progress is not None:
            progress(i + 1)
    elapsed = time.monotonic() - start
    return {"sent": count, "seconds": elapsed, "achieved_rate": count / elapsed if elapsed else 0.0}
