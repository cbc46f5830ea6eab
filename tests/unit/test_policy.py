"""Retry backoff arithmetic (scheduler._policy), the twin of lua/lib/backoff.lua."""

from __future__ import annotations

from scheduler import JobOptions
from scheduler._policy import delay_bounds_ms, nominal_delay_ms


def test_delay_doubles_per_attempt_up_to_the_cap() -> None:
    options = JobOptions(backoff_ms=100, backoff_max_ms=1000, jitter=0)
    assert [nominal_delay_ms(options, n) for n in range(1, 7)] == [100, 200, 400, 800, 1000, 1000]


def test_jitter_widens_the_range_downwards_only() -> None:
    options = JobOptions(backoff_ms=1000, backoff_max_ms=10_000, jitter=0.5)
    assert delay_bounds_ms(options, 1) == (500, 1000)
    assert delay_bounds_ms(options, 2) == (1000, 2000)


def test_no_jitter_is_exact_and_huge_attempts_do_not_overflow() -> None:
    options = JobOptions(backoff_ms=1, backoff_max_ms=5_000, jitter=0)
    assert delay_bounds_ms(options, 3) == (4, 4)
    assert delay_bounds_ms(options, 1000) == (5_000, 5_000)
