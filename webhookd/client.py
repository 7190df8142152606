"""A producer for the ingest socket: what ``webhookd publish`` uses."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson


class NotRunning(Exception):
    """Nothing listens on the daemon's socket."""


@dataclass(slots=True)
class PublishReport:
    ok: int = 0
    duplicate: int = 0
    errors: list[tuple[int, str, str]] = field(default_factory=list)  # line no, code, detail

    @property
    def failed(self) -> int:
        return len(self.errors)


async def publish(socket_path: Path, lines: Iterable[bytes]) -> PublishReport:
    """Send NDJSON lines, pipelined, and tally the daemon's replies line by line."""
    try:
        reader, writer = await asyncio.open_unix_connection(socket_path, limit=2**20)
    except (FileNotFoundError, ConnectionRefusedError):
        raise NotRunning(f"webhookd is not running (no daemon on {socket_path})") from None
    report = PublishReport()
    numbers: asyncio.Queue[int | None] = asyncio.Queue()

    async def send() -> None:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue  # the daemon answers no blank line
            await numbers.put(number)
            writer.write(line.rstrip(b"\r\n") + b"\n")
            await writer.drain()
        await numbers.put(None)
        if writer.can_write_eof():
            writer.write_eof()

    async def receive() -> None:
        while (number := await numbers.get()) is not None:
            reply_line = await reader.readline()
            if not reply_line:
                report.errors.append((number, "connection_closed", "the daemon hung up"))
                continue
            reply = orjson.loads(reply_line)
            if reply.get("ok"):
                if reply.get("duplicate"):
                    report.duplicate += 1
                else:
                    report.ok += 1
            else:
                report.errors.append((number, reply.get("error", "?"), reply.get("detail", "")))

    try:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(send())
            tasks.create_task(receive())
    finally:
        writer.close()
    return report


async def admin_request(socket_path: Path, method: str, path: str) -> tuple[int, Any]:
    """One request to the admin API; raises :class:`NotRunning` when nothing listens."""
    import aiohttp

    connector = aiohttp.UnixConnector(path=str(socket_path))
    try:
        async with aiohttp.ClientSession(connector=connector) as session:
            async with session.request(method, f"http://webhookd{path}") as response:
                return response.status, await response.json(loads=orjson.loads)
    except aiohttp.ClientConnectorError:
        raise NotRunning(f"webhookd is not running (no daemon on {socket_path})") from None
