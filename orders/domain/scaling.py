"""Autoscaling advice: the seed's ``scaleWorkers(queueDepth)`` rule as a pure function."""

from __future__ import annotations

SCALE_UP_DEPTH = 100
SCALE_DOWN_DEPTH = 10
DEFAULT_MIN_WORKERS = 1
DEFAULT_MAX_WORKERS = 10


def recommend_workers(depth: int, current: int, minimum: int, maximum: int) -> int:
    """Workers a queue should have: +2 above 100 waiting, -1 below 10, clamped.

    ``current`` outside ``[minimum, maximum]`` is clamped too, so the advice is
    always a valid size.
    """
    if minimum > maximum:
        raise ValueError(f"minimum {minimum} is greater than maximum {maximum}")
    if depth > SCALE_UP_DEPTH:
        wanted = current + 2
    elif depth < SCALE_DOWN_DEPTH:
        wanted = current - 1
    else:
        wanted = current
    return max(minimum, min(maximum, wanted))
