"""Retention against a real database: what is old and finished goes, what is needed stays."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from tests.helpers import Receiver, order_event, wait_for
from tests.inprocess import connect, running_server


def rows(workdir: Path, sql: str) -> list[tuple[object, ...]]:
    db = sqlite3.connect(workdir / "data" / "webhookd.db")
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


async def test_old_finished_work_is_pruned_and_latest_copies_kept(
    short_tmp: Path, receiver: Receiver
) -> None:
    webhook = {"name": "erp", "url": receiver.url(), "events": ["order_*"]}
    async with running_server(
        short_tmp, [webhook], daemon={"retention": "1s"}, prune_interval=0.1
    ) as server:
        client = await connect(server)
        update = order_event(1, producer_id="p2")
        update["event"] = "order_update"
        first = await client.publish(
            [order_event(1, producer_id="p1"), update, order_event(2, producer_id="p3")]
        )
        await wait_for(lambda: len(receiver.events()) == 3, 5, "delivery")

        def pruned() -> bool:
            return rows(short_tmp, "SELECT count(*) FROM deliveries") == [(0,)] and rows(
                short_tmp, "SELECT count(*) FROM events"
            ) == [(2,)]

        await wait_for(pruned, 10, "retention to prune")
        assert rows(short_tmp, "SELECT count(*) FROM attempts") == [(0,)]
        kept = rows(short_tmp, "SELECT name, producer_id FROM events ORDER BY seq")
        assert kept == [("order_update", None), ("order_create", None)]
        # The dedup key went with the retention period: p1 is a new event now.
        (again,) = await client.publish([order_event(1, producer_id="p1")])
        assert again["ok"] and "duplicate" not in again and again["id"] != first[0]["id"]
        await client.close()


async def test_queued_and_pending_events_are_never_pruned(
    short_tmp: Path, receiver: Receiver
) -> None:
    receiver.status = 503
    webhook = {"name": "down", "url": receiver.url(), "events": ["order_*"]}
    async with running_server(
        short_tmp, [webhook], daemon={"retention": "1s"}, prune_interval=0.1, defaults={"retry_schedule": ["60s"]}
    ) as server:
        client = await connect(server)
        await client.publish([order_event(1)])
        await wait_for(lambda: len(receiver.requests) == 1, 5, "the first attempt")
        await client.publish([order_event(i) for i in range(2, 6)])
        published = time.time()
        # Past the retention period, the pruner has run and found nothing to take.
        await wait_for(lambda: time.time() - published > 1.5, 3, "retention to pass")
        events, deliveries = await server.pruner.run_once()
        await client.close()
    assert rows(short_tmp, "SELECT count(*) FROM events") == [(5,)]
    assert rows(short_tmp, "SELECT state FROM deliveries") == [("pending",)]
    assert (events, deliveries) == (0, 0)


async def test_a_removed_webhook_keeps_its_queue_until_retention_then_goes(
    short_tmp: Path, receiver: Receiver
) -> None:
    down = {"/gone"}
    receiver.answer = lambda r: (503, {}) if r.path in down else None
    kept = {"name": "kept", "url": receiver.url("/kept"), "events": ["order_*"]}
    gone = {"name": "gone", "url": receiver.url("/gone"), "events": ["order_*"]}
    fast = {"retry_schedule": ["50ms"] * 1000}
    async with running_server(short_tmp, [kept, gone], defaults=fast) as server:
        client = await connect(server)
        await client.publish([order_event(1), order_event(2)])
        await client.close()
    # Removed from the file: its queue waits; events accepted meanwhile are not its.
    async with running_server(short_tmp, [kept], defaults=fast) as server:
        client = await connect(server)
        await client.publish([order_event(3)])
        await wait_for(lambda: len(receiver.events("/kept")) == 3, 5, "the kept webhook")
        await client.close()
    down.clear()
    async with running_server(short_tmp, [kept, gone], defaults=fast) as server:
        courier = server.couriers["gone"]
        await wait_for(lambda: courier.state.last_success_at is not None, 5, "its queue")
    assert [e["order_create"]["n"] for e in receiver.events("/gone")][-2:] == [1, 2]
    # Removed again, past retention: pruned with its queue and a log line.
    down.add("/gone")
    async with running_server(short_tmp, [kept, gone], defaults=fast) as server:
        client = await connect(server)
        await client.publish([order_event(4)])
        await wait_for(lambda: len(receiver.events("/kept")) == 4, 5, "the kept webhook")
        await client.close()
    async with running_server(short_tmp, [kept], defaults=fast):
        pass
    db = sqlite3.connect(short_tmp / "data" / "webhookd.db")
    assert db.execute("SELECT count(*) FROM queue q JOIN webhooks w ON w.id = q.webhook_id "
                      "WHERE w.name = 'gone'").fetchone()[0] + db.execute(
        "SELECT count(*) FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id "
        "WHERE w.name = 'gone' AND state = 'pending'").fetchone()[0] == 1
    # An hour later, as the clock would have it:
    db.execute("UPDATE webhooks SET removed_at = removed_at - 3600 WHERE name = 'gone'")
    db.commit()
    db.close()
    async with running_server(
        short_tmp, [kept], daemon={"retention": "30m"}, defaults=fast
    ) as server:
        await server.pruner.run_once()
    assert rows(short_tmp, "SELECT name FROM webhooks") == [("kept",)]
    assert rows(short_tmp, "SELECT count(*) FROM queue") == [(0,)]
