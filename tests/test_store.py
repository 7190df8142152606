"""The store against real SQLite files: schema, round trips, the writer's group commit."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from webhookd.model import Attempt, Delivery, Incoming, WebhookState
from webhookd.store import SCHEMA_VERSION, Store, StoreError


def incoming(n: int, producer_id: str | None = None, name: str = "order_create") -> Incoming:
    return Incoming(
        name=name,
        payload_key="order",
        identity=f'"O-{n}"',
        object_json=b'{"order_id":"O-%d","n":%d}' % (n, n),
        producer_id=producer_id,
        occurred_at=None,
    )


async def opened(path: Path) -> Store:
    store = Store(path)
    await store.open()
    return store


@asynccontextmanager
async def writing(store: Store) -> AsyncIterator[Store]:
    """Run the store's writer for the block, then drain it and close the store."""
    task = asyncio.create_task(store.run_writer())
    try:
        yield store
    finally:
        store.stop_writer()
        await task
        await store.close()


async def test_fresh_database_is_private_and_versioned(tmp_path: Path) -> None:
    path = tmp_path / "webhookd.db"
    store = await opened(path)
    await store.close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    db.close()


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "webhookd.db"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StoreError, match="newer than this webhookd understands"):
        await opened(path)


async def test_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "webhookd.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot open database"):
        await opened(path)


async def test_ingest_queue_delivery_attempt_round_trip(tmp_path: Path) -> None:
    async with writing(await opened(tmp_path / "webhookd.db")) as store:
        now = time.time()
        ids = await store.write(store.sync_webhooks_op(["a", "b"], "config", now))
        events = [incoming(i) for i in range(5)]
        for event in events:
            event.targets = (ids["a"], ids["b"])
        accepted = await store.write(store.ingest_op(events, now))
        assert [a.seq for a in accepted] == [1, 2, 3, 4, 5]
        queued = await store.queued(ids["a"], 0, 100)
        assert [e.seq for e in queued] == [1, 2, 3, 4, 5]
        assert queued[0].element == b'{"order_create":{"order_id":"O-0","n":0}}'
        assert [e.seq for e in await store.queued(ids["a"], 3, 100)] == [4, 5]

        delivery = Delivery("msg_1", ids["a"], tuple(queued[:3]))
        await store.write(store.form_delivery_op(delivery, now))
        assert [e.seq for e in await store.queued(ids["a"], 0, 100)] == [4, 5]
        assert [e.seq for e in await store.queued(ids["b"], 0, 100)] == [1, 2, 3, 4, 5]
        (pending,) = await store.pending_deliveries(ids["a"])
        assert pending.id == "msg_1" and pending.events == delivery.events
        assert await store.pending_count(ids["a"]) == 5

        attempt = Attempt(
            "req_1", "msg_1", ids["a"], 1, "http://127.0.0.1/x", now, 12, 30,
            [{"name": "Authorization", "value": "***"}], 500, "oops", [], False, "500", None,
        )
        failing = WebhookState(consecutive_failures=1, next_retry_after=now + 5, failing_since=now)
        await store.write(store.attempt_op(attempt, None, now + 5, failing))
        assert await store.webhook_state(ids["a"]) == failing
        (pending,) = await store.pending_deliveries(ids["a"])
        assert (pending.attempts, pending.next_attempt_at) == (1, now + 5)
        success = Attempt(
            "req_2", "msg_1", ids["a"], 2, "http://127.0.0.1/x", now, 5, 40, [], 200, "ok", [],
            True, None, None,
        )
        await store.write(store.attempt_op(success, "delivered", None, WebhookState()))
        assert await store.pending_deliveries(ids["a"]) == []
        log = await store.attempts("msg_1")
        assert [(r["attempt"], r["status_code"], r["success"], r["webhook"]) for r in log] == [
            (1, 500, False, "a"),
            (2, 200, True, "a"),
        ]
        # The request is rebuilt from the stored events: exactly the body that was sent.
        assert log[0]["request"] == delivery.body.decode()
        assert log[0]["request_headers"] == [{"name": "Authorization", "value": "***"}]
        assert log[0]["error"] == "500" and log[1]["error"] is None
        assert (await store.attempts("msg_1", body_limit=10))[0]["request"] == '{"events":'
        assert await store.attempts("msg_unknown") == []
        rows = await store.webhooks()
        assert [(w.name, w.consecutive_failures) for w in rows] == [("a", 0), ("b", 0)]


async def test_one_failing_op_does_not_undo_the_others(tmp_path: Path) -> None:
    store = await opened(tmp_path / "webhookd.db")
    now = time.time()
    # Queue three weighted ops before the writer runs so they share one transaction:
    # the bare run fails, and the rerun with a savepoint per op undoes the broken one.
    first = store.submit(store.ingest_op([incoming(1)], now), weight=1)
    broken = store.submit(lambda conn: conn.execute("INSERT INTO nowhere VALUES (1)"), weight=1)
    last = store.submit(store.ingest_op([incoming(2)], now), weight=1)
    async with writing(store):
        results = await asyncio.gather(first, broken, last, return_exceptions=True)
    assert isinstance(results[1], sqlite3.OperationalError)
    assert [a.seq for a in results[0]] == [1]  # type: ignore[union-attr]
    assert [a.seq for a in results[2]] == [2]  # type: ignore[union-attr]
    db = sqlite3.connect(tmp_path / "webhookd.db")
    assert db.execute("SELECT count(*) FROM events").fetchone() == (2,)
    db.close()


def slow_ingest(store: Store, n: int, started: threading.Event) -> Callable[[sqlite3.Connection], object]:
    op = store.ingest_op([incoming(n)], time.time())

    def run(conn: sqlite3.Connection) -> object:
        started.set()
        time.sleep(0.02)  # on the database thread: stands for a large insert
        return op(conn)

    return run


@pytest.mark.parametrize("broken", [False, True])
async def test_a_courier_op_joins_the_running_transaction(tmp_path: Path, broken: bool) -> None:
    """An unweighted op runs at the next op boundary and commits there; a failing one
    is undone alone (the transaction is rerun with savepoints)."""
    store = await opened(tmp_path / "webhookd.db")
    started = threading.Event()
    # Ten ops of 100 events fit one transaction (the cap is 1,024 events).
    ingest = [store.submit(slow_ingest(store, n, started), weight=100) for n in range(10)]
    async with writing(store):
        await asyncio.to_thread(started.wait, 5)
        sql = "INSERT INTO nowhere VALUES (1)" if broken else "SELECT 1"
        courier = store.submit(lambda conn: conn.execute(sql).fetchone())
        if broken:
            with pytest.raises(sqlite3.OperationalError):
                await courier
        else:
            assert await courier == (1,)
        # Committed with the op that was running, long before the rest of the batch.
        assert sum(future.done() for future in ingest) <= 3
        results = await asyncio.gather(*ingest)
    assert [accepted.seq for result in results for accepted in result] == list(range(1, 11))
    db = sqlite3.connect(tmp_path / "webhookd.db")
    assert db.execute("SELECT count(*) FROM events").fetchone() == (10,)
    db.close()


async def test_a_failing_courier_op_inside_an_ingest_op_undoes_only_itself(
    tmp_path: Path,
) -> None:
    store = await opened(tmp_path / "webhookd.db")
    loop = asyncio.get_running_loop()
    ingest = store.ingest_op([incoming(n) for n in range(200)], time.time())
    courier: list[asyncio.Future[object]] = []

    async def submit_broken() -> None:
        courier.append(store.submit(lambda conn: conn.execute("INSERT INTO nowhere VALUES (1)")))

    def run(conn: sqlite3.Connection) -> object:
        # Queued while this op runs: taken at its first 64-event chunk boundary. The
        # failure undoes the ingest op too, which runs again in the next transaction.
        if not courier:
            asyncio.run_coroutine_threadsafe(submit_broken(), loop).result(5)
        return ingest(conn)

    async with writing(store):
        accepted = await store.submit(run, weight=200)
        with pytest.raises(sqlite3.OperationalError):
            await courier[0]
    assert [a.seq for a in accepted] == list(range(1, 201))  # type: ignore[attr-defined]
    db = sqlite3.connect(tmp_path / "webhookd.db")
    assert db.execute("SELECT count(*), max(seq) FROM events").fetchone() == (200, 200)
    db.close()


async def test_courier_ops_cannot_starve_ingest(tmp_path: Path) -> None:
    store = await opened(tmp_path / "webhookd.db")
    courier_ops = 0
    ingest: asyncio.Future[object] | None = None

    def another(_: object) -> None:
        # A steady stream: one courier op is always waiting when a transaction starts.
        nonlocal courier_ops
        courier_ops += 1
        assert ingest is not None
        if not ingest.done() and courier_ops < 100_000:
            store.submit(lambda conn: None, another)

    first = store.submit(lambda conn: None, another)
    ingest = store.submit(store.ingest_op([incoming(1)], time.time()), weight=1)
    started = time.monotonic()
    async with writing(store):
        await first
        await asyncio.wait_for(ingest, 5)
        waited = time.monotonic() - started
    assert courier_ops < 100_000 and waited < 1.0  # ingest got its turn within ~5 ms


async def test_sequence_and_dedup_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "webhookd.db"
    async with writing(await opened(path)) as store:
        await store.write(store.ingest_op([incoming(1, "p1"), incoming(2)], time.time()))
    async with writing(await opened(path)) as store:
        op = store.ingest_op([incoming(1, "p1"), incoming(3)], time.time())
        again = await store.write(op)
        assert [(a.seq, a.duplicate) for a in again] == [(1, True), (3, False)]


async def test_removed_webhooks_keep_their_row_and_return(tmp_path: Path) -> None:
    async with writing(await opened(tmp_path / "webhookd.db")) as store:
        now = time.time()
        first = await store.write(store.sync_webhooks_op(["a", "b"], "config", now))
        await store.write(store.sync_webhooks_op(["a"], "config", now))
        removed = {w.name: w.removed_at for w in await store.webhooks()}
        assert removed["a"] is None and removed["b"] is not None
        back = await store.write(store.sync_webhooks_op(["a", "b"], "config", now))
        assert back == first  # same ids, hence the same queues
        assert all(w.removed_at is None for w in await store.webhooks())
