"""Real parts for tests: an aiohttp receiver on 127.0.0.1, the daemon as a subprocess,
and a raw ingest-socket client. Nothing here mocks what webhookd owns or talks to."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web


async def wait_for(
    predicate: Callable[[], bool | Awaitable[bool]], timeout: float = 10.0, what: str = ""
) -> None:
    """Poll ``predicate`` until true; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        await asyncio.sleep(0.02)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.time)  # when it arrived (wall clock)

    @property
    def json(self) -> Any:
        return orjson.loads(self.body)

    @property
    def events(self) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = self.json["events"]
        return events


@dataclass
class Receiver:
    """A real HTTP endpoint that records every request and answers as told."""

    status: int = 200
    delay: float = 0.0
    requests: list[Received] = field(default_factory=list)
    answer: Callable[[Received], tuple[int, dict[str, str]] | None] | None = None
    port: int = 0
    decompress: bool = True  # False: record request bodies as sent (e.g. gzip)
    active: int = 0  # requests being handled right now
    max_active: int = 0
    _runner: web.AppRunner | None = None

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        received = Received(request.path, dict(request.headers), await request.read())
        self.requests.append(received)
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            status, headers = self.status, {}
            if self.answer is not None:
                told = self.answer(received)
                if told is not None:
                    status, headers = told
            if self.delay:
                await asyncio.sleep(self.delay)
        finally:
            self.active -= 1
        return web.Response(status=status, text="received", headers=headers)

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # Handlers still sleeping (a "hanging" endpoint) must not hold up the test.
        self._runner = web.AppRunner(
            app, access_log=None, shutdown_timeout=0.5, auto_decompress=self.decompress
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        server = site._server
        assert server is not None and server.sockets
        self.port = server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def events(self, path: str | None = None) -> list[dict[str, Any]]:
        """Every event received, in arrival order (optionally for one path)."""
        return [
            event
            for request in self.requests
            if path is None or request.path == path
            for event in request.events
        ]


def attempt_log(workdir: Path) -> list[dict[str, Any]]:
    """The attempt log rows of a daemon's database, oldest first."""
    db = sqlite3.connect(workdir / "data" / "webhookd.db")
    db.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in db.execute("SELECT * FROM attempts ORDER BY rowid")]
    finally:
        db.close()


def order_event(number: int, producer_id: str | None = None, **extra: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {"merchant_id": "DEMO", "order_id": f"DEMO-{number:06d}", "n": number}
    obj.update(extra)
    event: dict[str, Any] = {"event": "order_create", "object": obj}
    if producer_id is not None:
        event["id"] = producer_id
    return event


def item_event(number: int, name: str = "item_update") -> dict[str, Any]:
    return {"event": name, "object": {"merchant_item_id": f"ITEM-{number}", "n": number}}


def ndjson(events: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(event) + b"\n" for event in events)


class IngestClient:
    """A raw producer on the ingest socket: send bytes, read reply lines."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, path: Path) -> IngestClient:
        reader, writer = await asyncio.open_unix_connection(path, limit=2**24)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def replies(self, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        out = []
        async with asyncio.timeout(timeout):
            for _ in range(count):
                line = await self.reader.readline()
                assert line, "connection closed before all replies arrived"
                out.append(orjson.loads(line))
        return out

    async def publish(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        await self.send(ndjson(events))
        return await self.replies(len(events))

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, BrokenPipeError):
            pass


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return orjson.dumps(value).decode()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_value(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(value)


def write_config(
    path: Path,
    daemon: dict[str, Any],
    webhooks: list[dict[str, Any]] = (),  # type: ignore[assignment]
    defaults: dict[str, Any] | None = None,
    api_versions: list[dict[str, Any]] | None = None,
) -> Path:
    lines = ["[daemon]"] + [f"{k} = {toml_value(v)}" for k, v in daemon.items()]
    if defaults:
        lines += ["[defaults]"] + [f"{k} = {toml_value(v)}" for k, v in defaults.items()]
    for webhook in webhooks:
        lines += ["[[webhooks]]"] + [f"{k} = {toml_value(v)}" for k, v in webhook.items()]
    for entry in api_versions or []:
        lines += ["[[api_versions]]"] + [f"{k} = {toml_value(v)}" for k, v in entry.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


class Daemon:
    """The real daemon as a subprocess: ``python -m webhookd serve --config ...``."""

    def __init__(
        self,
        workdir: Path,
        webhooks: list[dict[str, Any]],
        api_versions: list[dict[str, Any]] | None = None,
        **daemon: Any,
    ) -> None:
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.socket_dir = workdir / "run"
        settings = {
            "data_dir": str(self.data_dir),
            "socket_dir": str(self.socket_dir),
            "log_format": "json",
        }
        settings.update(daemon)
        self.config = write_config(
            workdir / "webhookd.toml", settings, webhooks, api_versions=api_versions
        )
        self.log_path = workdir / "daemon.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def ingest_path(self) -> Path:
        return self.socket_dir / "ingest.sock"

    def start(self, extra_env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        env = dict(os.environ)
        env.update(extra_env or {})
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "webhookd", "serve", "--config", str(self.config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        log.close()
        return self.process

    async def wait_ready(self, timeout: float = 15.0) -> None:
        def accepting() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"daemon exited {self.process.returncode}:\n{self.log()}")
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                try:
                    sock.connect(str(self.ingest_path))
                except OSError:
                    return False
            return True

        await wait_for(accepting, timeout, "the daemon's ingest socket")

    async def started(self) -> Daemon:
        self.start()
        await self.wait_ready()
        return self

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    async def wait_exit(self, timeout: float = 20.0) -> int:
        assert self.process is not None
        process = self.process
        await wait_for(lambda: process.poll() is not None, timeout, "the daemon to exit")
        return process.returncode

    async def stop(self) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.signal(signal.SIGTERM)
        return await self.wait_exit()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_records(self) -> list[dict[str, Any]]:
        records = []
        for line in self.log().splitlines():
            try:
                records.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                continue
        return records

    async def client(self) -> IngestClient:
        return await IngestClient.connect(self.ingest_path)
