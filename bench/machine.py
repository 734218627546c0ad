"""What the benchmark ran on: CPU, cores, memory, load, and the CPU time the hypervisor stole.

Steal is the share of CPU time a virtual machine was ready to run but the host
ran something else: on a shared cloud host it can take a fifth of the cores
without the load average showing it. It is read from ``/proc/stat`` at the
start and end of a run (Linux only; elsewhere it is reported as unknown).
"""

import os
import platform
from dataclasses import dataclass


def cpu_model() -> str:
    """The CPU's model name, as /proc/cpuinfo (or the platform module) gives it."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_gib() -> float | None:
    """Total memory in GiB (None where /proc/meminfo is missing)."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def load() -> list[float]:
    """The 1, 5 and 15 minute load averages (what `uptime` shows)."""
    return [round(x, 2) for x in os.getloadavg()]


@dataclass(frozen=True)
class CpuTimes:
    """Whole-machine CPU time counters from /proc/stat (clock ticks), or all zero where unreadable."""

    busy: int = 0
    idle: int = 0
    steal: int = 0

    @classmethod
    def now(cls) -> "CpuTimes":
        try:
            with open("/proc/stat") as handle:
                fields = [int(v) for v in handle.readline().split()[1:]]
        except (OSError, ValueError):
            return cls()
        # user nice system idle iowait irq softirq steal (guest time is already in user)
        fields += [0] * (8 - len(fields))
        idle = fields[3] + fields[4]
        return cls(busy=sum(fields[:3]) + fields[5] + fields[6], idle=idle, steal=fields[7])


def cpu_usage(before: CpuTimes, after: CpuTimes) -> dict[str, float | None]:
    """Percent of all CPU time between two readings that was busy, and that was stolen."""
    busy, idle, steal = (after.busy - before.busy, after.idle - before.idle, after.steal - before.steal)
    total = busy + idle + steal
    if total <= 0:
        return {"busy_pct": None, "steal_pct": None}
    return {"busy_pct": round(100 * busy / total, 1), "steal_pct": round(100 * steal / total, 2)}


def describe() -> dict:
    """The machine, for the results and the printed header."""
    return {
        "host": platform.node(),
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gib": memory_gib(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


class CpuDuring:
    """Context manager: the machine's CPU busy and stolen percentages over the block (``.usage``)."""

    def __enter__(self) -> "CpuDuring":
        self.before = CpuTimes.now()
        self.usage: dict[str, float | None] = {}
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.usage = cpu_usage(self.before, CpuTimes.now())
