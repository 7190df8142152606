import random

import pytest

from webhookd.retry import DEFAULT_SCHEDULE, next_delay, parse_retry_after, retry_after_for

NOW = 1_796_400_000.0  # 2026-12-04T16:00:00Z


def test_default_schedule_is_svix_like() -> None:
    assert DEFAULT_SCHEDULE == (5, 300, 1800, 7200, 18000, 36000, 36000)


def test_each_step_within_twenty_percent() -> None:
    rng = random.Random(7)
    for failures, step in enumerate(DEFAULT_SCHEDULE, start=1):
        delays = [next_delay(DEFAULT_SCHEDULE, failures, rng=rng) for _ in range(200)]
        assert all(d is not None and step * 0.8 <= d <= step * 1.2 for d in delays)
        assert max(delays) - min(delays) > step * 0.2  # jitter actually spreads


def test_exhausted_schedule_means_failed() -> None:
    assert next_delay(DEFAULT_SCHEDULE, len(DEFAULT_SCHEDULE) + 1) is None
    assert next_delay((1.0,), 2) is None
    with pytest.raises(ValueError):
        next_delay(DEFAULT_SCHEDULE, 0)


def test_retry_after_replaces_the_wait_within_the_largest_step() -> None:
    assert next_delay(DEFAULT_SCHEDULE, 1, retry_after=120) == 120  # more than the 5 s step
    assert next_delay(DEFAULT_SCHEDULE, 3, retry_after=2) == 2  # less than the 30 m step
    assert next_delay(DEFAULT_SCHEDULE, 1, retry_after=10**9) == 36000  # capped
    # The attempt still uses up its step: past the end, Retry-After changes nothing.
    assert next_delay(DEFAULT_SCHEDULE, 8, retry_after=1) is None


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120),
        (" 0 ", 0),
        ("Fri, 04 Dec 2026 16:01:00 GMT", 60),
        ("Fri, 04 Dec 2026 15:00:00 GMT", 0),  # in the past: now
        ("soon", None),
        ("-5", None),
        ("1.5", None),
        (None, None),
    ],
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, NOW) == seconds


def test_retry_after_counts_only_on_429_and_503() -> None:
    assert retry_after_for(429, "7", NOW) == 7
    assert retry_after_for(503, "7", NOW) == 7
    assert retry_after_for(500, "7", NOW) is None
    assert retry_after_for(None, "7", NOW) is None
