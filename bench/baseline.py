"""The bare-library baseline: the least an asyncio ingest server must do, no product logic.

    python bench/baseline.py --socket PATH --db PATH [--uvloop]

A Unix-socket server: each read chunk is split into lines, each line goes through
``orjson.loads`` and its object is stored (``orjson.dumps``) in SQLite through
aiosqlite (WAL, synchronous=NORMAL). Group commit: every chunk queued while the
previous commit ran is inserted with one ``executemany`` and committed in one
transaction; then each line gets its reply ``{"ok":true,"id":"evt_N"}``, in order.
Like the daemon, a connection stops being read while 8192 of its lines await replies.
Stops on SIGTERM/SIGINT, or by itself after ``--max-seconds``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import time
from pathlib import Path
from typing import cast

import aiosqlite
import orjson

PAUSE_AT = 8192
RESUME_AT = 1024


class Connection(asyncio.Protocol):
    def __init__(self, server: Server) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.partial = b""
        self.unanswered = 0
        self.paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # No isinstance(transport, asyncio.Transport): uvloop's transports are not.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        lines = (self.partial + data).split(b"\n")
        self.partial = lines.pop()
        rows: list[tuple[str, bytes, float] | None] = []
        now = time.time()
        for line in lines:
            if not line:
                continue
            try:
                document = orjson.loads(line)
                rows.append((document["event"], orjson.dumps(document["object"]), now))
            except (orjson.JSONDecodeError, KeyError, TypeError):
                rows.append(None)  # answered with an error, in its place
        if rows:
            self.unanswered += len(rows)
            if self.unanswered >= PAUSE_AT and not self.paused and self.transport is not None:
                self.transport.pause_reading()
                self.paused = True
            self.server.queue.append((self, rows))
            self.server.wake.set()

    def answer(self, replies: list[bytes], count: int) -> None:
        self.unanswered -= count
        if self.transport is None:
            return
        self.transport.write(b"".join(replies))
        if self.paused and self.unanswered <= RESUME_AT:
            self.transport.resume_reading()
            self.paused = False


class Server:
    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db
        self.queue: list[tuple[Connection, list[tuple[str, bytes, float] | None]]] = []
        self.wake = asyncio.Event()
        self.seq = 0

    async def writer(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            chunks, self.queue = self.queue, []
            if not chunks:
                continue
            first = self.seq + 1
            values = []
            for _, rows in chunks:
                for row in rows:
                    if row is not None:
                        self.seq += 1
                        values.append((self.seq, *row))
            # The sqlite3 module opens the transaction itself before the INSERT.
            await self.db.executemany("INSERT INTO events VALUES (?, ?, ?, ?)", values)
            await self.db.commit()
            seq = first
            for connection, rows in chunks:
                replies = []
                for row in rows:
                    if row is None:
                        replies.append(b'{"ok":false,"error":"invalid_event"}\n')
                    else:
                        replies.append(b'{"ok":true,"id":"evt_%d"}\n' % seq)
                        seq += 1
                connection.answer(replies, len(rows))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--socket", type=Path, required=True)
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--max-seconds", type=float, default=1800.0)
    parser.add_argument("--uvloop", action="store_true", help="(parsed before the loop starts)")
    args = parser.parse_args()

    db = await aiosqlite.connect(args.db)
    await db.execute("PRAGMA journal_mode=WAL")
    await db.execute("PRAGMA synchronous=NORMAL")
    await db.execute(
        "CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, name TEXT NOT NULL, "
        "object BLOB NOT NULL, accepted_at REAL NOT NULL)"
    )
    await db.commit()
    server = Server(db)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if args.socket.exists():
        os.unlink(args.socket)
    listener = await loop.create_unix_server(lambda: Connection(server), str(args.socket),
                                             backlog=256)
    writer = asyncio.create_task(server.writer())
    try:
        await asyncio.wait_for(stop.wait(), args.max_seconds)
    except TimeoutError:
        pass
    listener.close()
    writer.cancel()
    await db.close()


if __name__ == "__main__":
    import sys

    if "--uvloop" in sys.argv[1:]:
        import uvloop

        uvloop.run(main())
    else:
        asyncio.run(main())
