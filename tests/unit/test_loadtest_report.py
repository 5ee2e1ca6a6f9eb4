"""The load tool's figures: rates over an operation's own span, per-second buckets, outcomes."""

from __future__ import annotations

import pytest

from loadtest.report import latency_ms, operation_stats, timeline
from loadtest.scenario import Sample, Scenario


def test_latency_is_in_milliseconds_and_empty_is_zero() -> None:
    assert latency_ms([]) == {"p50_ms": 0.0, "p95_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0}
    figures = latency_ms([i / 1000 for i in range(1, 101)])  # 1..100 ms
    assert figures["p50_ms"] == pytest.approx(50.5)
    assert figures["p99_ms"] == pytest.approx(99.01)
    assert figures["max_ms"] == pytest.approx(100.0)


def test_rate_is_calls_over_first_start_to_last_end() -> None:
    samples = [Sample("pay", 1.0, 0.5, "confirmed"), Sample("pay", 2.0, 1.0, "confirmed")]
    stats = operation_stats(samples)
    assert stats["count"] == 2
    assert stats["per_second"] == pytest.approx(2 / 2.0)  # from 1.0 to 3.0


def test_timeline_buckets_by_start_second_and_keeps_empty_seconds() -> None:
    samples = [Sample("pay", 0.1, 0.01, "ok"), Sample("pay", 0.9, 0.03, "ok"), Sample("pay", 2.5, 0.02, "ok")]
    rows = timeline(samples)["pay"]
    assert [r["t"] for r in rows] == [0.0, 1.0, 2.0]
    assert [r["per_second"] for r in rows] == [2.0, 0.0, 1.0]
    assert rows[0]["max_ms"] == pytest.approx(30.0)


def test_seats_split_over_ticket_types_with_the_remainder_first() -> None:
    types = Scenario(seats=10, ticket_types=3).capacities()
    assert [t.capacity for t in types] == [4, 3, 3]
    assert len({t.name for t in types}) == 3
    with pytest.raises(ValueError):
        Scenario(seats=2, ticket_types=3).capacities()
