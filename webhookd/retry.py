"""The retry policy: when the next attempt of a failed delivery happens. Pure code.

After an immediate first try, attempt ``n + 1`` waits ``schedule[n - 1]`` with ±20%
jitter. A ``Retry-After`` on 429/503 replaces that wait: at least the time given, at
most the schedule's largest step; the attempt still uses up its step. When the
schedule is exhausted the delivery is ``failed``.
"""

from __future__ import annotations

import random
from datetime import UTC
from email.utils import parsedate_to_datetime

DEFAULT_SCHEDULE: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)
JITTER = 0.2
RETRY_AFTER_STATUSES = frozenset({429, 503})


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date)."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, moment.timestamp() - now)


def next_delay(
    schedule: tuple[float, ...],
    failures: int,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float | None:
    """The wait before the next attempt after ``failures`` failed ones, or None when done.

    ``retry_after`` is honoured only for the statuses that carry it; the caller passes
    None for the others.
    """
    if failures < 1:
        raise ValueError("failures counts attempts already made and failed: at least 1")
    if failures > len(schedule):
        return None
    if retry_after is not None:
        return min(retry_after, max(schedule))
    step = schedule[failures - 1]
    spread = (rng or random).uniform(-JITTER, JITTER)
    return max(0.0, step * (1 + spread))


def retry_after_for(status: int | None, header: str | None, now: float) -> float | None:
    """The Retry-After wait that applies to an answer, if any."""
    if status not in RETRY_AFTER_STATUSES:
        return None
    return parse_retry_after(header, now)
