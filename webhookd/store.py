"""SQLite: the durable truth. All SQL of webhookd lives in this module.

One writer owns every write transaction. aiosqlite coroutines sharing a
connection would interleave their BEGIN/COMMIT, so writes are queued as
:class:`Op` objects and the writer runs all that are waiting in one transaction
on aiosqlite's thread (group commit). Reads use a second connection; WAL lets
them run beside the writer.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import aiosqlite
import orjson

from webhookd.model import (
    Accepted,
    Attempt,
    Delivery,
    Incoming,
    QueuedEvent,
    WebhookState,
    body,
    element,
)

T = TypeVar("T")

# Ingest events per write transaction. Bigger transactions barely speed up ingest but
# make every courier commit wait longer behind them.
MAX_EVENTS_PER_TRANSACTION = 1024
# Events inserted between two looks for urgent (courier) ops waiting on the writer.
INGEST_CHUNK = 64
# Seconds ingest ops may wait behind transactions of urgent ops alone before the next
# transaction runs one of them first.
INGEST_MAX_WAIT = 0.05
# WAL pages (4 KiB) before the writer checkpoints itself: bounds the WAL at ~80 MB.
WRITER_CHECKPOINT_PAGES = 20_000

SCHEMA_VERSION = 1

_MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE webhooks (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        source TEXT NOT NULL,
        definition TEXT,
        created_at REAL NOT NULL,
        removed_at REAL,
        disabled INTEGER NOT NULL DEFAULT 0,
        disabled_reason TEXT,
        consecutive_failures INTEGER NOT NULL DEFAULT 0,
        next_retry_after REAL,
        last_success_at REAL,
        failing_since REAL
    );
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        object BLOB NOT NULL,
        producer_id TEXT,
        occurred_at TEXT,
        accepted_at REAL NOT NULL
    );
    CREATE UNIQUE INDEX events_producer_id ON events(producer_id)
        WHERE producer_id IS NOT NULL;
    -- Events accepted for a webhook and not yet placed in one of its deliveries.
    CREATE TABLE queue (
        webhook_id INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        PRIMARY KEY (webhook_id, seq)
    ) WITHOUT ROWID;
    -- Where the latest copy of each object is, for reflow without a scan.
    CREATE TABLE objects (
        payload_key TEXT NOT NULL,
        identity TEXT NOT NULL,
        seq INTEGER NOT NULL,
        PRIMARY KEY (payload_key, identity)
    ) WITHOUT ROWID;
    CREATE INDEX objects_seq ON objects(seq);
    CREATE TABLE deliveries (
        rowid INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        webhook_id INTEGER NOT NULL,
        events BLOB NOT NULL,
        state TEXT NOT NULL,
        created_at REAL NOT NULL,
        first_accepted_at REAL NOT NULL,
        size INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL,
        body BLOB,
        redelivery_of TEXT,
        finished_at REAL
    );
    CREATE INDEX deliveries_pending ON deliveries(webhook_id, rowid)
        WHERE state = 'pending';
    CREATE INDEX deliveries_finished ON deliveries(finished_at);
    CREATE TABLE attempts (
        rowid INTEGER PRIMARY KEY,
        request_id TEXT NOT NULL UNIQUE,
        delivery_id TEXT NOT NULL,
        webhook_id INTEGER NOT NULL,
        attempt INTEGER NOT NULL,
        uri TEXT NOT NULL,
        delivery_dts REAL NOT NULL,
        duration INTEGER NOT NULL,
        queue_delay INTEGER NOT NULL,
        request_headers TEXT NOT NULL,
        response TEXT NOT NULL,
        response_headers TEXT NOT NULL,
        status_code INTEGER,
        success INTEGER NOT NULL,
        error TEXT,
        warning TEXT
    );
    CREATE INDEX attempts_webhook ON attempts(webhook_id, rowid);
    CREATE INDEX attempts_delivery ON attempts(delivery_id);
    """,
}


class StoreError(Exception):
    """The database cannot be used as it is (newer schema, not a database, ...)."""


class StoreUnavailable(Exception):
    """A write transaction failed (disk full, I/O error): nothing of it was stored."""


@dataclass(slots=True)
class Op(Generic[T]):
    """One unit of work for the writer; runs inside the shared transaction."""

    run: Callable[[sqlite3.Connection], T]
    future: asyncio.Future[T]
    # Called on the event loop, in commit order, before the future resolves.
    after_commit: Callable[[T], None] | None = None
    # Events an ingest op carries; ops of weight 0 (deliveries, attempts) never wait
    # behind more than one transaction's worth of ingest.
    weight: int = 0


@dataclass(slots=True)
class WebhookRow:
    id: int
    name: str
    source: str
    disabled: bool
    consecutive_failures: int
    last_success_at: float | None
    removed_at: float | None


@dataclass(frozen=True, slots=True)
class PruneResult:
    cursor: int  # every event up to here has been dealt with
    events: int
    deliveries: int
    more: bool  # a full chunk was examined: run again soon
    webhooks: list[str]  # removed webhooks pruned with their queues


_UPDATE_STATE = (
    "UPDATE webhooks SET disabled = ?, disabled_reason = ?, consecutive_failures = ?, "
    "next_retry_after = ?, last_success_at = ?, failing_since = ? WHERE id = ?"
)


def _state_row(state: WebhookState) -> tuple[Any, ...]:
    return (
        int(state.disabled),
        state.disabled_reason,
        state.consecutive_failures,
        state.next_retry_after,
        state.last_success_at,
        state.failing_since,
    )


def _connect_options(conn: sqlite3.Connection, synchronous: str) -> None:
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={'FULL' if synchronous == 'full' else 'NORMAL'}")
    conn.execute("PRAGMA foreign_keys=OFF")
    conn.execute("PRAGMA busy_timeout=5000")


class Store:
    """The database file, its writer and a reader connection."""

    def __init__(self, path: Path, synchronous: str = "normal") -> None:
        self.path = path
        self.synchronous = synchronous
        self._writer_db: aiosqlite.Connection | None = None
        self._reader_db: aiosqlite.Connection | None = None
        self._checkpoint_db: aiosqlite.Connection | None = None  # its own thread
        self._pending: list[Op[Any]] = []
        self._wake = asyncio.Event()
        self._closing = False
        # Courier and admin ops: appended on the loop thread, taken on the database
        # thread by the running transaction (deque appends and pops are thread-safe).
        self._urgent: deque[Op[Any]] = deque()
        # The running transaction's bookkeeping, on the database thread; run_writer
        # reads it only after the transaction returned or raised.
        self._ran: list[Op[Any]] = []
        self._outcomes: list[tuple[bool, Any]] = []
        self._urgent_ran = 0
        self._serving = False
        self._current: Op[Any] | None = None
        self._ingest_waiting_since: float | None = None  # behind urgent-only transactions
        # Only touched on the database thread, inside the writer's transaction.
        self._next_seq = 1

    # -- opening -----------------------------------------------------------------

    async def open(self) -> None:
        """Open (creating 0600), migrate, and refuse a schema newer than the code."""
        fresh = not self.path.exists()
        if fresh:
            fd = os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(fd)
        try:
            self._writer_db = await aiosqlite.connect(self.path, isolation_level=None)
            await _on_thread(self._writer_db, self._prepare_writer)
            self._reader_db = await aiosqlite.connect(self.path, isolation_level=None)
            await _on_thread(self._reader_db, _connect_options, self._reader_db._conn, "normal")
            self._checkpoint_db = await aiosqlite.connect(self.path, isolation_level=None)
        except sqlite3.DatabaseError as exc:
            await self.close()
            raise StoreError(f"{self.path}: cannot open database: {exc}") from None
        except StoreError:
            await self.close()
            raise

    def _prepare_writer(self) -> None:
        assert self._writer_db is not None
        conn = self._writer_db._conn
        _connect_options(conn, self.synchronous)
        # Most checkpointing runs beside the writer (checkpoint()); the writer's own
        # automatic one, which resets the WAL, runs rarely and finds little left to copy.
        conn.execute(f"PRAGMA wal_autocheckpoint={WRITER_CHECKPOINT_PAGES}")
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: database schema version {version} is newer than this "
                f"webhookd understands ({SCHEMA_VERSION}); upgrade webhookd"
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            conn.execute("BEGIN IMMEDIATE")
            for statement in _split_sql(_MIGRATIONS[target]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version={target}")
            conn.execute("COMMIT")
        for suffix in ("-wal", "-shm"):
            sidecar = Path(f"{self.path}{suffix}")
            if sidecar.exists():
                os.chmod(sidecar, 0o600)
        (max_seq,) = conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()
        self._next_seq = max_seq + 1

    async def checkpoint(self) -> tuple[int, int]:
        """Copy the WAL into the database file on a thread of its own, beside the writer.

        Returns (WAL frames, frames checkpointed). A PASSIVE checkpoint never waits for
        the writer. The writer's own automatic checkpoint still runs in its commits, so
        the WAL keeps being reset; it just finds the pages already copied.
        """
        assert self._checkpoint_db is not None
        rows = list(await self._checkpoint_db.execute_fetchall("PRAGMA wal_checkpoint(PASSIVE)"))
        _, frames, done = rows[0]
        return int(frames), int(done)

    async def close(self) -> None:
        if self._writer_db is not None:
            # Leave a small WAL behind: fold it into the database and truncate it.
            try:
                await self._writer_db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:
                pass  # not a usable database (open() is failing): nothing to fold
        for db in (self._checkpoint_db, self._reader_db, self._writer_db):
            if db is not None:
                await db.close()
        self._checkpoint_db = self._reader_db = self._writer_db = None

    # -- the writer --------------------------------------------------------------

    def submit(
        self,
        run: Callable[[sqlite3.Connection], T],
        after_commit: Callable[[T], None] | None = None,
        weight: int = 0,
    ) -> asyncio.Future[T]:
        """Queue a write for the next transaction; the future resolves after COMMIT.

        ``weight`` is the number of events an ingest op carries. Unweighted ops
        (couriers, admin) are urgent: a running transaction takes them in between
        its ingest ops, or between chunks of one, and commits right after.
        """
        if self._closing:
            raise StoreUnavailable("the store is closing")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        op = Op(run, future, after_commit, weight)
        if weight:
            self._pending.append(op)
        else:
            self._urgent.append(op)
        self._wake.set()
        return future

    async def write(self, run: Callable[[sqlite3.Connection], T]) -> T:
        return await self.submit(run)

    async def run_writer(self) -> None:
        """Run queued ops, many per transaction, until :meth:`stop_writer` and drained."""
        assert self._writer_db is not None
        db = self._writer_db
        while True:
            if not self._pending and not self._urgent:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            ops = self._take_batch()
            try:
                ran, outcomes = await _on_thread(db, self._transaction, ops)
            except Exception as exc:  # the COMMIT itself failed: nothing was stored
                error = StoreUnavailable(f"commit failed: {exc}")
                for op in (*ops, *self._ran):
                    if not op.future.done():
                        op.future.set_exception(error)
                continue
            if len(ran) < len(ops) + self._urgent_ran:  # cut short: the rest go next
                started = set(map(id, ran))
                self._pending[:0] = [op for op in ops if id(op) not in started]
            for op, (ok, value) in zip(ran, outcomes, strict=True):
                if op.future.done():  # the waiter was cancelled
                    continue
                if ok:
                    if op.after_commit is not None:
                        op.after_commit(value)
                    op.future.set_result(value)
                else:
                    op.future.set_exception(value)

    def _take_batch(self) -> list[Op[Any]]:
        """Ingest ops in arrival order up to the cap; urgent ops join on the thread."""
        budget = MAX_EVENTS_PER_TRANSACTION
        count = 0
        for op in self._pending:
            if budget <= 0:
                break
            budget -= op.weight
            count += 1
        taken, self._pending = self._pending[:count], self._pending[count:]
        return taken

    def stop_writer(self) -> None:
        """Let the writer finish what is queued, then return; later submits fail."""
        self._closing = True
        self._wake.set()

    # -- the transaction (on the database thread) -----------------------------------

    def _transaction(self, ops: list[Op[Any]]) -> tuple[list[Op[Any]], list[tuple[bool, Any]]]:
        """Run ops in one transaction; return the ops that ran, in order, and outcomes.

        Ops run bare first. Only when one raises is the transaction rolled back and run
        again with a savepoint per op, so that the failing op alone is undone; ops are
        closures over their inputs and can run twice. Urgent ops queued meanwhile run
        at the next op boundary or chunk of an ingest op (:meth:`_serve_urgent`); the
        transaction then commits without running the rest of ``ops``, which go next
        (so does an ingest op that an urgent op's failure interrupted).
        """
        assert self._writer_db is not None
        conn = self._writer_db._conn
        start_seq = self._next_seq
        self._ran, self._outcomes, self._urgent_ran = [], [], 0
        self._serving = True
        conn.execute("BEGIN IMMEDIATE")
        try:
            try:
                # Urgent ops go first, unless ingest has waited behind transactions of
                # urgent ops alone for too long: a steady stream of them cannot starve it.
                now = time.monotonic()
                if self._ingest_waiting_since is None or not ops or (
                    now - self._ingest_waiting_since < INGEST_MAX_WAIT
                ):
                    self._serve_urgent(conn)
                for op in ops:
                    if self._urgent_ran:
                        break
                    self._run(conn, op)
                    self._serve_urgent(conn)
                if not ops or any(op.weight for op in self._ran):
                    self._ingest_waiting_since = None
                elif self._ingest_waiting_since is None:
                    self._ingest_waiting_since = now
            except Exception:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                self._next_seq = start_seq
                assert self._current is not None
                # In the order they ran, the failing op last; kept in _ran before BEGIN so
                # that a failure from here on still answers every op taken.
                self._ran = [*self._ran, self._current]
                self._serving = False
                conn.execute("BEGIN IMMEDIATE")
                self._outcomes = [self._isolated(conn, op) for op in self._ran]
            conn.execute("COMMIT")
        except BaseException:
            self._next_seq = start_seq
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        finally:
            self._serving, self._current = False, None
        return self._ran, self._outcomes

    def _run(self, conn: sqlite3.Connection, op: Op[Any]) -> None:
        self._current = op
        value = op.run(conn)
        self._ran.append(op)
        self._outcomes.append((True, value))

    def _serve_urgent(self, conn: sqlite3.Connection) -> None:
        """Run the urgent ops queued so far inside the running transaction."""
        if not self._serving:
            return
        urgent = self._urgent
        while urgent:
            op = urgent.popleft()  # a deque: safe beside appends on the loop thread
            self._urgent_ran += 1
            self._run(conn, op)

    def _isolated(self, conn: sqlite3.Connection, op: Op[Any]) -> tuple[bool, Any]:
        op_seq = self._next_seq
        conn.execute("SAVEPOINT op")
        try:
            outcome: tuple[bool, Any] = (True, op.run(conn))
        except Exception as exc:  # this op alone is undone
            conn.execute("ROLLBACK TO op")
            self._next_seq = op_seq
            outcome = (False, exc)
        conn.execute("RELEASE op")
        return outcome

    # -- write ops (run on the database thread) ------------------------------------

    def ingest_op(
        self, events: Sequence[Incoming], now: float
    ) -> Callable[[sqlite3.Connection], list[Accepted]]:
        """Store events, queue each for its subscribed webhooks, note the latest copies."""

        def run(conn: sqlite3.Connection) -> list[Accepted]:
            producer_ids = [e.producer_id for e in events if e.producer_id is not None]
            known: dict[str, int] = {}
            for chunk_start in range(0, len(producer_ids), 500):
                chunk = producer_ids[chunk_start : chunk_start + 500]
                marks = ",".join("?" * len(chunk))
                known.update(
                    conn.execute(
                        f"SELECT producer_id, seq FROM events WHERE producer_id IN ({marks})",
                        chunk,
                    ).fetchall()
                )
            results: list[Accepted] = []
            seq = self._next_seq
            for start in range(0, len(events), INGEST_CHUNK):
                event_rows = []
                queue_rows: list[tuple[int, int]] = []
                object_rows = []
                for event in events[start : start + INGEST_CHUNK]:
                    if event.producer_id is not None:
                        original = known.get(event.producer_id)
                        if original is not None:
                            results.append(Accepted(original, True))
                            continue
                        known[event.producer_id] = seq
                    event_rows.append(
                        (seq, event.name, event.object_json, event.producer_id,
                         event.occurred_at, now)
                    )
                    queue_rows.extend((webhook_id, seq) for webhook_id in event.targets)
                    object_rows.append((event.payload_key, event.identity, seq))
                    results.append(Accepted(seq, False))
                    seq += 1
                conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)", event_rows)
                conn.executemany("INSERT INTO queue VALUES (?, ?)", queue_rows)
                conn.executemany(
                    "INSERT INTO objects VALUES (?, ?, ?) ON CONFLICT (payload_key, identity) "
                    "DO UPDATE SET seq = excluded.seq",
                    object_rows,
                )
                self._next_seq = seq  # urgent ops never take seqs; kept exact anyway
                self._serve_urgent(conn)
            self._next_seq = seq
            return results

        return run

    @staticmethod
    def form_delivery_op(
        delivery: Delivery, now: float, keep_body: bool = False
    ) -> Callable[[sqlite3.Connection], None]:
        """Fix a delivery's id and events and take them off the webhook's queue.

        ``keep_body`` stores the exact body too, for shaped objects that the stored
        events alone would not rebuild identically after a change of settings.
        """
        seqs = [event.seq for event in delivery.events]
        body = delivery.body

        def run(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO deliveries (id, webhook_id, events, state, created_at, "
                "first_accepted_at, size, body) VALUES (?, ?, ?, 'pending', ?, ?, ?, ?)",
                (delivery.id, delivery.webhook_id, orjson.dumps(seqs), now,
                 delivery.first_accepted_at, len(body), body if keep_body else None),
            )
            # A delivery is always a prefix of the queue, so a range is exact.
            conn.execute(
                "DELETE FROM queue WHERE webhook_id = ? AND seq BETWEEN ? AND ?",
                (delivery.webhook_id, seqs[0], seqs[-1]),
            )

        return run

    @staticmethod
    def attempt_op(
        attempt: Attempt,
        delivery_state: str | None,
        next_attempt_at: float | None,
        webhook: WebhookState,
    ) -> Callable[[sqlite3.Connection], None]:
        """Log an attempt; store the delivery's and the webhook's state after it.

        ``delivery_state`` is ``delivered``, ``failed`` or None (still pending).
        """
        state = _state_row(webhook)

        def run(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO attempts (request_id, delivery_id, webhook_id, attempt, uri, "
                "delivery_dts, duration, queue_delay, request_headers, response, "
                "response_headers, status_code, success, error, warning) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (attempt.request_id, attempt.delivery_id, attempt.webhook_id, attempt.attempt,
                 attempt.uri, attempt.started_at, attempt.duration_ms, attempt.queue_delay_ms,
                 orjson.dumps(attempt.request_headers).decode(), attempt.response,
                 orjson.dumps(attempt.response_headers).decode(), attempt.status_code,
                 int(attempt.success), attempt.error, attempt.warning),
            )
            end = attempt.started_at + attempt.duration_ms / 1000
            conn.execute(
                "UPDATE deliveries SET attempts = ?, next_attempt_at = ?, "
                "state = coalesce(?, state), "
                "finished_at = CASE WHEN ? IS NULL THEN finished_at ELSE ? END WHERE id = ?",
                (attempt.attempt, next_attempt_at, delivery_state, delivery_state, end,
                 attempt.delivery_id),
            )
            conn.execute(_UPDATE_STATE, (*state, attempt.webhook_id))

        return run

    @staticmethod
    def webhook_state_op(
        webhook_id: int, webhook: WebhookState
    ) -> Callable[[sqlite3.Connection], None]:
        state = _state_row(webhook)

        def run(conn: sqlite3.Connection) -> None:
            conn.execute(_UPDATE_STATE, (*state, webhook_id))

        return run

    @staticmethod
    def sync_webhooks_op(
        names: Sequence[str], source: str, now: float
    ) -> Callable[[sqlite3.Connection], dict[str, int]]:
        """Register the file's webhooks; mark those gone from it as removed.

        A returning name gets its old row back, and with it its queue.
        """

        def run(conn: sqlite3.Connection) -> dict[str, int]:
            for name in names:
                conn.execute(
                    "INSERT INTO webhooks (name, source, created_at) VALUES (?, ?, ?) "
                    "ON CONFLICT (name) DO UPDATE SET removed_at = NULL, source = excluded.source",
                    (name, source, now),
                )
            marks = ",".join("?" * len(names))
            conn.execute(
                f"UPDATE webhooks SET removed_at = ? WHERE source = ? AND removed_at IS NULL "
                f"AND name NOT IN ({marks})",
                (now, source, *names),
            )
            rows = conn.execute(
                f"SELECT name, id FROM webhooks WHERE name IN ({marks})", tuple(names)
            ).fetchall()
            return dict(rows)

        return run

    @staticmethod
    def prune_op(
        after_seq: int, cutoff: float, limit: int
    ) -> Callable[[sqlite3.Connection], PruneResult]:
        """Forget what is older than ``cutoff``, examining events after ``after_seq``.

        Finished deliveries and their attempts go; events go unless still queued or in
        a pending delivery, or the latest copy of their object (reflow needs it), in
        which case only their producer id (the dedup key) is forgotten. A webhook
        removed longer ago than that goes with its queue.
        """

        def run(conn: sqlite3.Connection) -> PruneResult:
            gone: list[str] = []
            for webhook_id, name in conn.execute(
                "SELECT id, name FROM webhooks WHERE removed_at < ?", (cutoff,)
            ).fetchall():
                conn.execute(
                    "DELETE FROM queue WHERE webhook_id = ? AND seq IN "
                    "(SELECT seq FROM queue WHERE webhook_id = ? LIMIT ?)",
                    (webhook_id, webhook_id, limit),
                )
                if conn.execute(
                    "SELECT 1 FROM queue WHERE webhook_id = ? LIMIT 1", (webhook_id,)
                ).fetchone():
                    return PruneResult(after_seq, 0, 0, True, gone)  # more of it next time
                conn.execute(
                    "DELETE FROM attempts WHERE webhook_id = ?", (webhook_id,)
                )
                conn.execute("DELETE FROM deliveries WHERE webhook_id = ?", (webhook_id,))
                conn.execute("DELETE FROM webhooks WHERE id = ?", (webhook_id,))
                gone.append(name)
            finished = conn.execute(
                "SELECT id FROM deliveries WHERE finished_at < ? AND state != 'pending' "
                "LIMIT ?",
                (cutoff, limit),
            ).fetchall()
            conn.executemany("DELETE FROM attempts WHERE delivery_id = ?", finished)
            conn.executemany("DELETE FROM deliveries WHERE id = ?", finished)
            # The oldest event any webhook still needs; one index seek per webhook.
            lows = [
                conn.execute(
                    "SELECT min(seq) FROM queue WHERE webhook_id = ?", (webhook_id,)
                ).fetchone()[0]
                for (webhook_id,) in conn.execute("SELECT id FROM webhooks").fetchall()
            ]
            lows += conn.execute(
                "SELECT min(json_extract(events, '$[0]')) FROM deliveries "
                "WHERE state = 'pending'"
            ).fetchone()
            low_water = min((low for low in lows if low is not None), default=None)
            rows = conn.execute(
                "SELECT seq, accepted_at < ? FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
                (cutoff, after_seq, limit),
            ).fetchall()
            cursor = after_seq
            old: list[tuple[int]] = []
            for seq, is_old in rows:
                if not is_old or (low_water is not None and seq >= low_water):
                    break  # still needed, or too young: look again next time
                old.append((seq,))
                cursor = seq
            before = conn.total_changes
            conn.executemany(
                "DELETE FROM events WHERE seq = ? AND seq NOT IN (SELECT seq FROM objects)", old
            )
            deleted_events = conn.total_changes - before
            if old:
                conn.execute(
                    "UPDATE events SET producer_id = NULL WHERE seq BETWEEN ? AND ? "
                    "AND producer_id IS NOT NULL",
                    (after_seq + 1, cursor),
                )
            more = len(finished) == limit or (len(old) == limit)
            return PruneResult(cursor, deleted_events, len(finished), more, gone)

        return run

    # -- reads ---------------------------------------------------------------------

    async def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        assert self._reader_db is not None
        return list(await self._reader_db.execute_fetchall(sql, params))

    async def webhooks(self) -> list[WebhookRow]:
        rows = await self._read(
            "SELECT id, name, source, disabled, consecutive_failures, last_success_at, "
            "removed_at FROM webhooks ORDER BY name"
        )
        return [WebhookRow(r[0], r[1], r[2], bool(r[3]), r[4], r[5], r[6]) for r in rows]

    async def pending_deliveries(self, webhook_id: int) -> list[Delivery]:
        """A webhook's formed, unfinished deliveries, in formation order, with their events."""
        rows = await self._read(
            "SELECT id, events, attempts, next_attempt_at, body FROM deliveries "
            "WHERE webhook_id = ? AND state = 'pending' ORDER BY rowid",
            (webhook_id,),
        )
        deliveries = []
        for delivery_id, events_json, attempts, next_attempt_at, stored in rows:
            seqs: list[int] = orjson.loads(events_json)
            events = await self.events(seqs)
            deliveries.append(
                Delivery(
                    delivery_id, webhook_id, tuple(events), attempts, next_attempt_at, stored
                )
            )
        return deliveries

    async def webhook_state(self, webhook_id: int) -> WebhookState:
        rows = await self._read(
            "SELECT disabled, disabled_reason, consecutive_failures, next_retry_after, "
            "last_success_at, failing_since FROM webhooks WHERE id = ?",
            (webhook_id,),
        )
        if not rows:
            raise StoreError(f"no webhook with id {webhook_id}")
        disabled, reason, failures, next_retry, last_success, failing_since = rows[0]
        return WebhookState(
            bool(disabled), reason, failures, next_retry, last_success, failing_since
        )

    async def events(self, seqs: Sequence[int]) -> list[QueuedEvent]:
        """Events by sequence number, in the order asked."""
        found: dict[int, QueuedEvent] = {}
        for chunk_start in range(0, len(seqs), 500):
            chunk = seqs[chunk_start : chunk_start + 500]
            marks = ",".join("?" * len(chunk))
            for seq, name, object_json, accepted_at in await self._read(
                f"SELECT seq, name, object, accepted_at FROM events WHERE seq IN ({marks})",
                chunk,
            ):
                found[seq] = QueuedEvent(seq, accepted_at, element(name, object_json))
        missing = [seq for seq in seqs if seq not in found]
        if missing:
            raise StoreError(f"events {missing[:5]} of a delivery are missing from the database")
        return [found[seq] for seq in seqs]

    async def queued(self, webhook_id: int, after_seq: int, limit: int) -> list[QueuedEvent]:
        """The next events in a webhook's queue after ``after_seq``, oldest first."""
        rows = await self._read(
            "SELECT e.seq, e.name, e.object, e.accepted_at FROM queue q "
            "JOIN events e ON e.seq = q.seq WHERE q.webhook_id = ? AND q.seq > ? "
            "ORDER BY q.seq LIMIT ?",
            (webhook_id, after_seq, limit),
        )
        return [QueuedEvent(seq, at, element(name, obj)) for seq, name, obj, at in rows]

    async def pending_count(self, webhook_id: int) -> int:
        rows = await self._read(
            "SELECT (SELECT count(*) FROM queue WHERE webhook_id = ?) + "
            "(SELECT coalesce(sum(json_array_length(events)), 0) FROM deliveries "
            "WHERE webhook_id = ? AND state = 'pending')",
            (webhook_id, webhook_id),
        )
        return int(rows[0][0])

    async def attempts(self, delivery_id: str, body_limit: int = 100_000) -> list[dict[str, Any]]:
        """A delivery's attempt log records, oldest first, in the SPEC §8 shape.

        ``request`` is rebuilt from the delivery's stored events: it is the exact body
        that was sent, and it is not stored a second time.
        """
        rows = await self._read(
            "SELECT a.request_id, a.delivery_id, w.name, a.uri, a.delivery_dts, a.duration, "
            "a.queue_delay, a.request_headers, a.response, a.response_headers, "
            "a.status_code, a.success, a.attempt, a.error, a.warning, d.events, d.body "
            "FROM attempts a JOIN webhooks w ON w.id = a.webhook_id "
            "JOIN deliveries d ON d.id = a.delivery_id "
            "WHERE a.delivery_id = ? ORDER BY a.rowid",
            (delivery_id,),
        )
        if not rows:
            return []
        sent = rows[0][16]
        if sent is None:
            events = await self.events(orjson.loads(rows[0][15]))
            sent = body([event.element for event in events])
        request = bytes(sent)[:body_limit]
        return [
            {
                "request_id": row[0],
                "delivery_id": row[1],
                "webhook": row[2],
                "uri": row[3],
                "delivery_dts": row[4],
                "duration": row[5],
                "queue_delay": row[6],
                "request": request.decode("utf-8", errors="replace"),
                "request_headers": orjson.loads(row[7]),
                "response": row[8],
                "response_headers": orjson.loads(row[9]),
                "status_code": row[10],
                "success": bool(row[11]),
                "attempt": row[12],
                "error": row[13],
                "warning": row[14],
            }
            for row in rows
        ]


async def _on_thread(db: aiosqlite.Connection, fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn`` on the connection's own thread: one hop for a whole transaction.

    aiosqlite exposes this only as ``_execute``; the version range in
    pyproject.toml is pinned to releases that have it.
    """
    result: T = await db._execute(fn, *args)  # type: ignore[no-untyped-call]
    return result


def _split_sql(script: str) -> list[str]:
    # executescript() would COMMIT our transaction first; run statements one by one.
    statements = []
    for chunk in script.split(";"):
        lines = [line for line in chunk.splitlines() if not line.strip().startswith("--")]
        statement = "\n".join(lines).strip()
        if statement:
            statements.append(statement)
    return statements
