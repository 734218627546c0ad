"""Progress lines while a phase runs: which phase, how far, the rate so far.

A full run takes many minutes; without these it would print nothing until the
end. Lines go to stderr (the table goes to stdout), at most every
``EVERY_SECONDS``; on a terminal each line overwrites the previous one.
"""

import sys
import time

EVERY_SECONDS = 2.0


class Progress:
    """One phase's progress: call ``update(done)`` as often as convenient, ``finish()`` at the end."""

    def __init__(self, label: str, total: int | None = None, *, unit: str = "msg", stream=None) -> None:
        self.label, self.total, self.unit = label, total, unit
        self.stream = stream or sys.stderr
        self.started = time.monotonic()
        self._last_print = self.started
        self._tty = self.stream.isatty()
        self.done = 0

    def update(self, done: int, *, note: str = "") -> None:
        """Record ``done`` items so far; prints when the last line is old enough."""
        self.done = done
        now = time.monotonic()
        if now - self._last_print >= EVERY_SECONDS:
            self._last_print = now
            self._print(note)

    def finish(self, *, note: str = "") -> None:
        """Print the phase's final line."""
        self._print(note, final=True)

    def _print(self, note: str, *, final: bool = False) -> None:
        elapsed = time.monotonic() - self.started
        of = f"/{self.total:,}" if self.total is not None else ""
        rate = f", {self.done / elapsed:,.0f} {self.unit}/s" if elapsed > 0 and self.done else ""
        line = f"  {self.label}: {self.done:,}{of} in {elapsed:.1f} s{rate}{f' ({note})' if note else ''}"
        if self._tty:
            self.stream.write("\r\x1b[K" + line + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def say(text: str, *, stream=None) -> None:
    """A line between phases (round headers, workers starting)."""
    stream = stream or sys.stderr
    stream.write(text + "\n")
    stream.flush()
