"""What the benchmark is doing while it runs: a line on stderr when a phase starts, every few seconds
while it runs (how many, of how many, how fast) and when it ends, so a run of minutes is never silent.

The table on stdout is unchanged.
"""

import sys
import time
from collections.abc import Callable

EVERY_SECONDS = 2.0


class Progress:
    """One phase: ``update(done)`` as often as convenient; it prints at most every EVERY_SECONDS."""

    def __init__(self, phase: str, total: int = 0, *, unit: str = "events") -> None:
        self.phase, self.total, self.unit = phase, total, unit
        self.started = self.last = time.monotonic()
        self._say(f"started ({total:,} {unit})" if total else "started")

    def due(self) -> bool:
        """Whether the next update would print (so a caller can skip counting until then)."""
        return time.monotonic() - self.last >= EVERY_SECONDS

    def update(self, done: int) -> None:
        """Report ``done`` so far, if a line is due."""
        if self.due():
            self.last = time.monotonic()
            self._say(self._figures(done))

    def counting(self, count: Callable[[], int]) -> Callable[[], None]:
        """A callback for polling loops: calls ``count()`` only when a line is due."""
        return lambda: self.update(count()) if self.due() else None

    def finish(self, done: int | None = None) -> None:
        """The phase's last line."""
        self._say(f"done: {self._figures(self.total if done is None else done)}")

    def _figures(self, done: int) -> str:
        elapsed = time.monotonic() - self.started
        rate = done / elapsed if elapsed > 0 else 0.0
        of = f"/{self.total:,}" if self.total else ""
        return f"{done:,}{of} {self.unit}, {rate:,.0f}/s, {elapsed:.1f} s"

    def _say(self, text: str) -> None:
        print(f"[bench] {self.phase}: {text}", file=sys.stderr, flush=True)
