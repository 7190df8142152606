"""How many queued events go into the next delivery: pure, no I/O, no event loop."""

from __future__ import annotations

from collections.abc import Iterable

from webhookd.model import BODY_OVERHEAD


def batch_length(element_sizes: Iterable[int], maximum_events: int, maximum_size: int) -> int:
    """The number of leading elements that fit one delivery.

    The body is ``{"events":[e1,e2,...]}``: the fixed overhead, each element, and a
    comma between elements. A first element that alone exceeds ``maximum_size`` is
    still sent, alone: events are never dropped.
    """
    size = BODY_OVERHEAD
    count = 0
    for element_size in element_sizes:
        if count == maximum_events:
            break
        added = element_size + (1 if count else 0)
        if count and size + added > maximum_size:
            break
        size += added
        count += 1
    return count


def body_size(element_sizes: Iterable[int]) -> int:
    """The exact size of the body built from elements of these sizes."""
    sizes = list(element_sizes)
    return BODY_OVERHEAD + sum(sizes) + max(len(sizes) - 1, 0)
