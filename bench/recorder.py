"""Latency samples written by handlers and actors in worker processes, read by the harness.

Each worker process appends to its own file in ``BENCH_OUT_DIR`` (no locking
between processes); one line per message, seconds as floats.
"""

import glob
import os
import threading

OUT_DIR_ENV = "BENCH_OUT_DIR"

_lock = threading.Lock()
_files: dict[tuple[int, str], object] = {}


def record(kind: str, *values: float) -> None:
    """Append one line of ``values`` to this process's file for ``kind``."""
    out_dir = os.environ.get(OUT_DIR_ENV)
    if not out_dir:
        return
    key = (os.getpid(), kind)
    line = " ".join(f"{v:.6f}" for v in values) + "\n"
    with _lock:
        handle = _files.get(key)
        if handle is None:
            handle = _files[key] = open(os.path.join(out_dir, f"{kind}-{key[0]}.txt"), "a", buffering=1)  # noqa: SIM115
        handle.write(line)


def clear(out_dir: str, kind: str) -> None:
    """Empty every process's file for ``kind`` (between rounds; the workers keep appending to them)."""
    for path in glob.glob(os.path.join(out_dir, f"{kind}-*.txt")):
        open(path, "w").close()  # noqa: SIM115 - truncate only


def read(out_dir: str, kind: str) -> list[list[float]]:
    """Every line recorded for ``kind`` by any process, as lists of floats."""
    rows = []
    for path in sorted(glob.glob(os.path.join(out_dir, f"{kind}-*.txt"))):
        with open(path) as handle:
            rows.extend([float(v) for v in line.split()] for line in handle if line.strip())
    return rows
