"""The line parser without a socket: the fast parser accepts what the full one accepts."""

from __future__ import annotations

import orjson
import pytest

from tests.test_ingest import BAD_LINES
from webhookd.intake import LineError, _parse_fast, _parse_full, parse_line, parsed_object
from webhookd.model import QueuedEvent, element
from webhookd.payload import shape
from webhookd.settings import parse_config

GOOD_LINES = [
    b'{"event":"order_create","object":{"order_id":"A"}}',
    b'  {"object": {"order_id": "A", "n": [1, 2.5, -0, 1e3, true, null]},  "event": "order_create"}  ',
    b'{"event":"order_create","object":{"order_id":"caf\xc3\xa9","note":"\\u00e9\\n\\"x\\""}}',
    b'{"event":"auto_order_rebill","object":{"auto_order_oid":123}}',
    b'{"event":"auto_order_rebill","object":{"auto_order_oid":-9223372036854775808}}',
    b'{"event":"order_create","object":{"order_id":"A"},"id":"shop-1",'
    b'"occurred_at":"2026-12-04T10:00:00.123-05:00"}',
    b'{"event":"order_create","object":{"order_id":"A"},"id":null,"occurred_at":null}',
    b'{"event":"order_create","object":{"order_id":"A","deep":' + b"[" * 200 + b"]" * 200 + b"}}",
    b'{"event":"order_create","object":{"order_id":"A","order_id":"B"}}',
]

# Lines the full parser refuses for reasons only it checks precisely.
MORE_BAD_LINES = [
    (b'{"event":"order_create","object":{"order_id":"A","n":NaN}}', "invalid_json"),
    (b'{"event":"order_create","object":{"order_id":"A","n":[1,]}}', "invalid_json"),
    (b'{"event":"order_create","object":{"order_id":"A","n":01}}', "invalid_json"),
    (b'{"event":"order_create","object":{"order_id":"A","n":"\\ud800"}}', "invalid_json"),
    (b'{"event":"order_create","object":{"order_id":"A","n":"a\x01b"}}', "invalid_json"),
    (b'{"event":"order_create","object":{"order_id":"A"}} trailing', "invalid_json"),
    (b'{"event":"order_create","object":{"order_id":""}}', "invalid_event"),
    (b'{"event":"order_create","object":{"order_id":true}}', "invalid_event"),
    (b'{"event":"order_create","object":{"order_id":1.5}}', "invalid_event"),
    (b'{"event":"auto_order_rebill","object":{"auto_order_oid":123456789012345678901234567890}}',
     "invalid_event"),
    (b'{"event":"order_create","object":{"order_id":"A"},"id":""}', "invalid_event"),
    (b'{"event":"order_create","object":"{}"}', "invalid_event"),
]


@pytest.mark.parametrize("line", GOOD_LINES)
def test_both_parsers_read_a_valid_line_the_same(line: bytes) -> None:
    fast, full = _parse_fast(line), _parse_full(line)
    assert (fast.name, fast.payload_key, fast.identity, fast.producer_id, fast.occurred_at) == (
        full.name, full.payload_key, full.identity, full.producer_id, full.occurred_at
    )
    assert orjson.loads(fast.object_json) == orjson.loads(full.object_json)
    assert fast.obj is None  # parsed only when a filter asks
    assert parse_line(line).object_json == fast.object_json


@pytest.mark.parametrize(("line", "code"), BAD_LINES + MORE_BAD_LINES)
def test_a_bad_line_gets_the_full_parsers_error(line: bytes, code: str) -> None:
    with pytest.raises(LineError) as caught:
        parse_line(line)
    assert caught.value.code == code and caught.value.detail


def test_the_object_is_kept_as_sent() -> None:
    # orjson would read this integer as a float; the stored object keeps every digit.
    line = b'{"event":"order_create","object":{"order_id":"A","n":123456789012345678901234567890}}'
    assert parse_line(line).object_json == b'{"order_id":"A","n":123456789012345678901234567890}'


def test_deep_nesting() -> None:
    def line(depth: int) -> bytes:
        nested = b"[" * depth + b"]" * depth
        return b'{"event":"order_create","object":{"order_id":"A","deep":' + nested + b"}}"

    assert parse_line(line(500)).object_json.count(b"[") == 500  # kept as sent
    for depth in (500, 2000):  # what the full parser cannot write back or read
        with pytest.raises(LineError) as caught:
            _parse_full(line(depth))
        assert caught.value.code in ("invalid_event", "invalid_json")
    with pytest.raises(LineError):
        parse_line(line(5000))


def test_an_object_orjson_cannot_hold_is_accepted_but_not_filtered_or_shaped() -> None:
    line = b'{"event":"order_create","object":{"order_id":"A","n":1e400}}'
    event = parse_line(line)
    assert event.object_json == b'{"order_id":"A","n":1e400}'
    with pytest.raises(LineError) as caught:
        parsed_object(event)  # what a filter at fan-out would need
    assert caught.value.code == "invalid_json"
    settings = parse_config(
        {"webhooks": [{"name": "a", "url": "http://127.0.0.1:9/", "events": ["order_create"],
                       "expansions": {"order": "items"}}]}
    )
    (webhook,) = settings.webhooks
    queued = QueuedEvent(1, 0.0, element(event.name, event.object_json))
    assert shape(webhook, queued) is queued  # delivered as the producer sent it
    deep = parse_line(
        b'{"event":"order_create","object":{"order_id":"A","deep":' + b"[" * 300
        + b"]" * 300 + b"}}"
    )
    queued = QueuedEvent(2, 0.0, element(deep.name, deep.object_json))
    assert shape(webhook, queued) is queued
