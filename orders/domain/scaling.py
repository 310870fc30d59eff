"""The autoscaling rule (the seed's ``scaleWorkers(queueDepth)``), as a pure function.

Queue depth above ``up_at`` (100) adds two consumers, below ``down_at`` (10) removes
one; the result stays within ``[minimum, maximum]``. The thresholds are parameters
so a test (or a small deployment) can use small numbers. The ops dashboard shows
this rule's advice; ``python -m orders.autoscale`` acts on it.
"""

from __future__ import annotations

SCALE_UP_DEPTH = 100
SCALE_DOWN_DEPTH = 10
SCALE_UP_STEP = 2
SCALE_DOWN_STEP = 1
DEFAULT_MIN_WORKERS = 1
DEFAULT_MAX_WORKERS = 10


def recommend_workers(
    depth: int,
    current: int,
    minimum: int,
    maximum: int,
    *,
    up_at: int = SCALE_UP_DEPTH,
    down_at: int = SCALE_DOWN_DEPTH,
) -> int:
    """How many consumers a queue with ``depth`` waiting messages should have.

    ``current`` outside ``[minimum, maximum]`` is clamped too, so the advice is
    always a valid size.
    """
    if minimum > maximum:
        raise ValueError(f"minimum {minimum} is greater than maximum {maximum}")
    if depth > up_at:
        target = current + SCALE_UP_STEP
    elif depth < down_at:
        target = current - SCALE_DOWN_STEP
    else:
        target = current
    return max(minimum, min(maximum, target))
