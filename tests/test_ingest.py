"""The ingest protocol of SPEC §3 over a real Unix socket against a real SQLite file."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import orjson
import pytest

from tests.helpers import Receiver, item_event, ndjson, order_event, wait_for
from tests.inprocess import connect, running_server


async def test_ok_replies_carry_ids_in_order(short_tmp: Path) -> None:
    async with running_server(short_tmp) as server:
        client = await connect(server)
        replies = await client.publish([order_event(i) for i in range(5)])
        assert all(reply["ok"] for reply in replies)
        ids = [int(reply["id"].removeprefix("evt_")) for reply in replies]
        assert ids == sorted(ids) and len(set(ids)) == 5
        assert all("producer_id" not in reply for reply in replies)
        reply = (await client.publish([order_event(9, producer_id="shop-9")]))[0]
        assert reply["producer_id"] == "shop-9" and "duplicate" not in reply
        await client.close()


BAD_LINES = [
    (b"{not json", "invalid_json"),
    (b'{"event": "order_create", "object": {"order_id": "\xff\xfe"}}', "invalid_json"),
    (b"[1, 2]", "invalid_event"),
    (b'"just a string"', "invalid_event"),
    (b'{"object": {"order_id": "A"}}', "invalid_event"),
    (b'{"event": 5, "object": {"order_id": "A"}}', "invalid_event"),
    (b'{"event": "order_create"}', "invalid_event"),
    (b'{"event": "order_create", "object": [1]}', "invalid_event"),
    (b'{"event": "order_create", "object": {"merchant_id": "DEMO"}}', "invalid_event"),
    (b'{"event": "order_create", "object": {"order_id": null}}', "invalid_event"),
    (b'{"event": "order_create", "object": {"order_id": {"x": 1}}}', "invalid_event"),
    (b'{"event": "item_update", "object": {"order_id": "A"}}', "invalid_event"),
    (b'{"event": "order_create", "object": {"order_id": "A"}, "occurred_at": "yesterday"}',
     "invalid_event"),
    (b'{"event": "order_create", "object": {"order_id": "A"}, '
     b'"occurred_at": "2026-12-04T15:00:00"}', "invalid_event"),
    (b'{"event": "order_create", "object": {"order_id": "A"}, "id": 7}', "invalid_event"),
    (b'{"event": "order_create", "object": {"order_id": "A"}, "id": "' + b"x" * 201 + b'"}',
     "invalid_event"),
    (b'{"event": "order_create", "object": {"order_id": "A"}, "extra": 1}', "invalid_event"),
    (b'{"event": "order_created", "object": {"order_id": "A"}}', "unknown_event"),
    (b'{"event": "auto_order_*", "object": {"auto_order_oid": 1}}', "unknown_event"),
]


async def test_every_error_code_without_closing_the_connection(short_tmp: Path) -> None:
    good = (
        b'{"event": "order_create", "object": {"order_id": "A"}, '
        b'"occurred_at": "2026-12-04T15:00:00Z"}'
    )
    async with running_server(short_tmp) as server:
        client = await connect(server)
        # Pipelined: good lines between the bad ones, all in one write.
        await client.send(b"".join(line + b"\n" + good + b"\n" for line, _ in BAD_LINES))
        replies = await client.replies(2 * len(BAD_LINES))
        for index, (line, code) in enumerate(BAD_LINES):
            bad, after = replies[2 * index], replies[2 * index + 1]
            assert bad["ok"] is False and bad["error"] == code, (line, bad)
            assert bad["detail"], "every error says what is wrong"
            assert after["ok"] is True, (line, after)
        await client.close()


async def test_identity_may_be_an_integer_and_offsets_are_accepted(short_tmp: Path) -> None:
    async with running_server(short_tmp) as server:
        client = await connect(server)
        replies = await client.publish(
            [
                {"event": "auto_order_rebill", "object": {"auto_order_oid": 123}},
                {"event": "order_create", "object": {"order_id": "B"},
                 "occurred_at": "2026-12-04T10:00:00.123-05:00"},
            ]
        )
        assert [r["ok"] for r in replies] == [True, True]
        await client.close()


async def test_too_large_lines_are_skipped_to_their_newline(short_tmp: Path) -> None:
    limit = 4096
    async with running_server(short_tmp, daemon={"max_event_size": limit}) as server:
        client = await connect(server)
        at_limit = orjson.dumps(order_event(1, pad="x" * 4000))
        at_limit = at_limit[:-1] + b" " * (limit - len(at_limit)) + b"}"
        assert len(at_limit) == limit
        over = at_limit[:-1] + b" }"
        # A huge line trickling in over many writes, then a good line.
        await client.send(at_limit + b"\n" + over + b"\n")
        for _ in range(50):
            await client.send(b"y" * 65536)
        await client.send(b"\n" + orjson.dumps(order_event(2)) + b"\n")
        first, second, third, fourth = await client.replies(4)
        assert first["ok"] is True
        assert second["error"] == "too_large" and str(limit + 1) in second["detail"]
        assert third["error"] == "too_large" and str(50 * 65536) in third["detail"]
        assert fourth["ok"] is True
        await client.close()


async def test_a_last_line_without_newline_is_answered(short_tmp: Path) -> None:
    async with running_server(short_tmp) as server:
        client = await connect(server)
        await client.send(orjson.dumps(order_event(1)))
        client.writer.write_eof()
        (reply,) = await client.replies(1)
        assert reply["ok"] is True
        await client.close()


async def test_duplicate_producer_ids(short_tmp: Path) -> None:
    async with running_server(short_tmp) as server:
        client = await connect(server)
        (first,) = await client.publish([order_event(1, producer_id="p-1")])
        (again,) = await client.publish([order_event(1, producer_id="p-1")])
        assert again == {"ok": True, "id": first["id"], "producer_id": "p-1", "duplicate": True}
        # Both copies in the same write, hence the same group commit.
        a, b, c = await client.publish(
            [order_event(2, producer_id="p-2"), order_event(3), order_event(2, producer_id="p-2")]
        )
        assert "duplicate" not in a and c["duplicate"] is True and c["id"] == a["id"]
        assert b["id"] != a["id"]
        # From two producers at once.
        other = await connect(server)
        await asyncio.gather(
            client.send(ndjson([order_event(4, producer_id="p-4")])),
            other.send(ndjson([order_event(4, producer_id="p-4")])),
        )
        (x,), (y,) = await asyncio.gather(client.replies(1), other.replies(1))
        assert x["id"] == y["id"] and [x.get("duplicate"), y.get("duplicate")].count(True) == 1
        await client.close()
        await other.close()
    db = sqlite3.connect(short_tmp / "data" / "webhookd.db")
    (count,) = db.execute("SELECT count(*) FROM events").fetchone()
    assert count == 4  # p-1, p-2, order 3, p-4: no copy stored twice
    db.close()


async def test_a_bad_producer_does_not_affect_others(short_tmp: Path) -> None:
    async with running_server(short_tmp, daemon={"max_event_size": 1000}) as server:
        noisy, quiet = await connect(server), await connect(server)
        await noisy.send(b"garbage\n" + b"z" * 5000 + b"\n{}\n")
        replies = await quiet.publish([order_event(i) for i in range(200)])
        assert all(r["ok"] for r in replies)
        assert [r["ok"] for r in await noisy.replies(3)] == [False, False, False]
        await noisy.close()
        await quiet.close()


async def test_pipelined_lines_are_group_committed(short_tmp: Path) -> None:
    async with running_server(short_tmp) as server:
        client = await connect(server)
        count = 20_000
        replies = await client.publish([order_event(i) for i in range(count)])
        assert all(r["ok"] for r in replies)
        ids = [int(r["id"][4:]) for r in replies]
        assert ids == list(range(ids[0], ids[0] + count))
        await client.close()


async def test_unavailable_when_the_commit_fails_then_recovers(short_tmp: Path) -> None:
    async with running_server(short_tmp) as server:
        client = await connect(server)
        await client.publish([order_event(0)])
        store = server.store
        # SQLITE_FULL, exactly what a full disk gives, from a capped database size.
        (pages,) = await store.write(lambda c: c.execute("PRAGMA page_count").fetchone())
        await store.write(lambda c: c.execute(f"PRAGMA max_page_count = {pages + 2}"))
        big = [order_event(i, pad="p" * 50_000) for i in range(1, 6)]
        replies = await client.publish(big)
        failed = [r for r in replies if not r["ok"]]
        assert failed and all(r["error"] == "unavailable" for r in failed)
        await store.write(lambda c: c.execute("PRAGMA max_page_count = 1073741823"))
        replies = await client.publish([order_event(9)])
        assert replies[0]["ok"] is True  # same connection, working again
        await client.close()
    db = sqlite3.connect(short_tmp / "data" / "webhookd.db")
    stored = {row[0] for row in db.execute("SELECT seq FROM events")}
    acked = {int(r["id"][4:]) for r in replies if r["ok"]}
    assert acked <= stored
    db.close()


async def test_shutting_down_is_answered_after_intake_stops(short_tmp: Path) -> None:
    async with running_server(short_tmp) as server:
        client = await connect(server)
        (before,) = await client.publish([order_event(1)])
        server.ingest.stop_accepting()
        (after,) = await client.publish([order_event(2)])
        assert before["ok"] is True
        assert after == {"ok": False, "error": "shutting_down", "detail": "webhookd is stopping"}
        with pytest.raises(OSError):
            await connect(server)
        await client.close()


async def test_committed_events_are_queued_for_subscribed_webhooks(
    short_tmp: Path, receiver: Receiver
) -> None:
    receiver.status = 503  # keep everything queued
    webhooks = [
        {"name": "orders", "url": receiver.url("/o"), "events": ["order_*"]},
        {"name": "items", "url": receiver.url("/i"), "events": ["item_update"]},
    ]
    async with running_server(short_tmp, webhooks, defaults={"retry_schedule": ["60s"]}) as server:
        client = await connect(server)
        await client.publish([order_event(1), item_event(1), item_event(2, "item_create")])
        await client.publish([{"event": "order_update", "object": {"order_id": "DEMO-000001"}}])
        await wait_for(lambda: len(receiver.requests) >= 2, 10, "first attempts")
        await client.close()
    db = sqlite3.connect(short_tmp / "data" / "webhookd.db")
    names = dict(db.execute("SELECT id, name FROM webhooks"))
    queued: dict[str, int] = {}
    for webhook_id, count in db.execute(
        "SELECT webhook_id, sum(json_array_length(events)) FROM deliveries GROUP BY webhook_id"
    ):
        queued[names[webhook_id]] = queued.get(names[webhook_id], 0) + count
    for webhook_id, count in db.execute("SELECT webhook_id, count(*) FROM queue GROUP BY 1"):
        queued[names[webhook_id]] = queued.get(names[webhook_id], 0) + count
    assert queued == {"orders": 2, "items": 1}
    # The latest copy of each object is found without a scan.
    latest = dict(db.execute("SELECT payload_key || ':' || identity, seq FROM objects"))
    assert set(latest) == {'order:"DEMO-000001"', 'item:"ITEM-1"', 'item:"ITEM-2"'}
    (name,) = db.execute(
        "SELECT name FROM events WHERE seq = ?", (latest['order:"DEMO-000001"'],)
    ).fetchone()
    assert name == "order_update"
    db.close()
