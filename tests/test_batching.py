from webhookd.batching import batch_length, body_size
from webhookd.model import body


def test_body_size_is_exact() -> None:
    elements = [b'{"order_create":{"a":1}}', b'{"item_update":{}}', b"{}"]
    for n in range(1, 4):
        assert body_size(len(e) for e in elements[:n]) == len(body(elements[:n]))


def test_maximum_events_bounds_a_batch() -> None:
    assert batch_length([10] * 50, maximum_events=20, maximum_size=10**6) == 20
    assert batch_length([10] * 5, maximum_events=20, maximum_size=10**6) == 5
    assert batch_length([], maximum_events=20, maximum_size=10**6) == 0


def test_maximum_size_bounds_the_body_exactly() -> None:
    sizes = [100] * 10
    for limit in range(body_size([100]), body_size(sizes) + 5):
        n = batch_length(sizes, maximum_events=100, maximum_size=limit)
        assert body_size(sizes[:n]) <= limit
        if n < len(sizes):
            assert body_size(sizes[: n + 1]) > limit


def test_an_oversize_event_goes_alone_and_is_never_dropped() -> None:
    assert batch_length([5000, 10, 10], maximum_events=100, maximum_size=1000) == 1
    # ...and the events after it are not held back with it.
    assert batch_length([10, 5000], maximum_events=100, maximum_size=1000) == 1
