"""The benchmark report's arithmetic (bench/report.py), without running a benchmark."""

from __future__ import annotations

from bench.load import PhaseResult, Sample
from bench.report import summarize


def test_errors_are_counted_by_kind_and_rates_use_the_phase_length() -> None:
    result = PhaseResult("async-2", duration=2.0, other_requests=2)
    result.samples = [
        Sample(0.0, 0.010, 202, True),
        Sample(0.1, 0.030, 202, True),
        Sample(0.2, 0.020, 503, False),
        Sample(0.3, 30.0, 0, False, "timeout"),
        Sample(0.4, 0.001, 0, False, "ServerDisconnectedError"),
        Sample(0.5, 0.002, 0, False, "ServerDisconnectedError"),
    ]
    row = summarize(result, [0.5, 1.5], completed=2)
    assert row["requests"] == 6 and row["errors"] == 4
    assert row["error_rate_pct"] == 400 / 6
    assert row["error_kinds"] == {"HTTP 503": 1, "timeout": 1, "ServerDisconnectedError": 2}
    assert row["checkouts_per_s"] == 3.0
    assert row["http_requests_per_s"] == 4.0  # 6 checkouts + 2 follow requests over 2 s
    assert row["orders_completed_per_s"] == 1.0
