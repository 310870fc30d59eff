"""Pure rules used by the dashboard: autoscaling advice and histogram quantiles."""

import pytest

from orders.domain.latency import bucket_index, quantile_ms
from orders.domain.scaling import recommend_workers


@pytest.mark.parametrize(
    ("depth", "current", "expected"),
    [
        (101, 3, 5),  # busy: +2
        (100, 3, 3),  # the seed's thresholds are strict
        (10, 3, 3),
        (9, 3, 2),  # quiet: -1
        (500, 9, 10),  # clamped to the maximum
        (0, 1, 1),  # clamped to the minimum
        (50, 20, 10),  # an out-of-range current is clamped too
    ],
)
def test_recommend_workers_follows_the_seed_rule(depth, current, expected):
    assert recommend_workers(depth, current, 1, 10) == expected


def test_recommend_workers_refuses_an_empty_range():
    with pytest.raises(ValueError):
        recommend_workers(0, 1, 5, 2)


def test_bucket_index_puts_durations_in_their_bucket():
    bounds = (50, 100, 250)
    assert [bucket_index(bounds, ms) for ms in (0, 50, 51, 250, 251)] == [0, 0, 1, 2, 3]


def test_quantiles_interpolate_inside_buckets():
    bounds = (100, 200, 400)
    assert quantile_ms(bounds, [0, 0, 0, 0], 0.5) is None
    assert quantile_ms(bounds, [10, 0, 0, 0], 0.5) == 50.0
    # 10 fast, 10 in 100-200: the median is the top of the first bucket
    assert quantile_ms(bounds, [10, 10, 0, 0], 0.5) == 100.0
    assert quantile_ms(bounds, [10, 10, 0, 0], 0.75) == 150.0
    assert quantile_ms(bounds, [0, 0, 0, 4], 0.95) == 400.0  # overflow: its lower bound
