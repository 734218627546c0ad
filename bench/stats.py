"""Small numeric helpers: rates, percentiles, the spread of repeated measurements."""

import math
import statistics


def rate(count: int, seconds: float) -> float:
    """Messages per second; 0 for an empty or instant phase."""
    return count / seconds if seconds > 0 else 0.0


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile of ``values`` (NaN when there are none)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def latency_summary(seconds: list[float]) -> dict[str, float]:
    """p50/p95/p99/max in milliseconds, and the sample count."""
    ms = [s * 1000 for s in seconds]
    return {
        "count": len(ms),
        "p50_ms": percentile(ms, 50),
        "p95_ms": percentile(ms, 95),
        "p99_ms": percentile(ms, 99),
        "max_ms": max(ms) if ms else math.nan,
    }


def spread(values: list[float]) -> dict[str, float | list[float]]:
    """Median, min and max of repeated measurements (NaNs left out), with the values themselves."""
    known = [v for v in values if not math.isnan(v)]
    if not known:
        return {"median": math.nan, "min": math.nan, "max": math.nan, "values": values}
    return {"median": statistics.median(known), "min": min(known), "max": max(known), "values": values}
