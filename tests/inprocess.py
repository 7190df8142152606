"""The daemon's Server run inside the test's event loop, on real sockets and files."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from tests.helpers import IngestClient
from webhookd.server import Server
from webhookd.settings import parse_config


@asynccontextmanager
async def running_server(
    workdir: Path,
    webhooks: list[dict[str, Any]] = (),  # type: ignore[assignment]
    daemon: dict[str, Any] | None = None,
    defaults: dict[str, Any] | None = None,
    api_versions: list[dict[str, Any]] | None = None,
    **tuning: Any,
) -> AsyncIterator[Server]:
    settings = parse_config(
        {
            "daemon": {"data_dir": str(workdir / "data"), "socket_dir": str(workdir / "run")}
            | (daemon or {}),
            "defaults": defaults or {},
            "webhooks": list(webhooks),
            "api_versions": api_versions or [],
        },
        "test",
    )
    server = Server(settings, **tuning)
    task = asyncio.create_task(server.serve())
    ready = asyncio.create_task(server.ready.wait())
    await asyncio.wait([task, ready], return_when=asyncio.FIRST_COMPLETED, timeout=10)
    if task.done():
        ready.cancel()
        task.result()  # raise the startup error
    assert server.ready.is_set(), "server did not become ready"
    try:
        yield server
    finally:
        server.request_stop()
        await asyncio.wait_for(task, 30)


async def connect(server: Server) -> IngestClient:
    return await IngestClient.connect(server.ingest.path)
