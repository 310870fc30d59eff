"""Quantiles from a bucketed latency histogram (what ``job_stats_minutely`` stores)."""

from __future__ import annotations

from collections.abc import Sequence


def bucket_index(bounds_ms: Sequence[int], duration_ms: float) -> int:
    """Index of the first bucket whose upper bound holds ``duration_ms`` (last: overflow)."""
    for index, bound in enumerate(bounds_ms):
        if duration_ms <= bound:
            return index
    return len(bounds_ms)


def quantile_ms(bounds_ms: Sequence[int], counts: Sequence[int], q: float) -> float | None:
    """Estimate the ``q`` quantile like Prometheus' ``histogram_quantile``.

    ``counts`` are per bucket (not cumulative), one more than ``bounds_ms`` (overflow).
    Linear interpolation inside the bucket; the overflow bucket answers its lower bound.
    None when there is nothing counted.
    """
    total = sum(counts)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for index, count in enumerate(counts):
        if count and seen + count >= rank:
            if index >= len(bounds_ms):
                return float(bounds_ms[-1])
            low = bounds_ms[index - 1] if index else 0
            high = bounds_ms[index]
            return low + (high - low) * ((rank - seen) / count)
        seen += count
    return float(bounds_ms[-1])
