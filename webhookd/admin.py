"""The admin API: HTTP/JSON on ``<socket_dir>/admin.sock`` (SPEC §8). The CLI is its client.

Only what the daemon's state can answer lives here; the handlers call into the
:class:`~webhookd.server.Server` through the small :class:`Engine` protocol.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Protocol

import orjson
from aiohttp import web

from webhookd import __version__
from webhookd.delivery import Courier
from webhookd.ingest import bind_unix_socket, remove_socket
from webhookd.store import Store
from webhookd.views import status_word, timestamp, webhook_settings, webhook_state


class Engine(Protocol):
    store: Store
    couriers: dict[str, Courier]
    started_at: float


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=orjson.dumps(data), status=status, content_type="application/json"
    )


def _error(status: int, code: str, detail: str) -> web.Response:
    return _json({"error": code, "detail": detail}, status)


class AdminServer:
    def __init__(self, engine: Engine, path: Path, mode: int) -> None:
        self.engine = engine
        self.path = path
        self.mode = mode
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/v1/status", self.status)
        app.router.add_get("/v1/webhooks", self.list_webhooks)
        app.router.add_get("/v1/webhooks/{name}", self.show_webhook)
        app.router.add_post("/v1/webhooks/{name}/enable", self.enable)
        app.router.add_post("/v1/webhooks/{name}/disable", self.disable)
        return app

    async def start(self) -> None:
        sock = bind_unix_socket(self.path, self.mode)
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        remove_socket(self.path)

    # -- views ---------------------------------------------------------------------

    async def _webhook(self, courier: Courier) -> dict[str, Any]:
        pending = await self.engine.store.pending_count(courier.webhook_id)
        view = webhook_settings(courier.webhook)
        view.update(webhook_state(courier.state, pending))
        view["source"] = courier.webhook.source
        view["in_flight"] = len(courier.in_flight)
        return view

    def _courier(self, request: web.Request) -> Courier | web.Response:
        name = request.match_info["name"]
        courier = self.engine.couriers.get(name)
        if courier is None:
            return _error(404, "not_found", f"no webhook named {name!r}")
        return courier

    # -- handlers ------------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        return _json({"ok": True})

    async def status(self, request: web.Request) -> web.Response:
        rows = []
        for courier in self.engine.couriers.values():
            state = courier.state
            rows.append(
                {
                    "name": courier.webhook.name,
                    "state": status_word(state),
                    "pending": await self.engine.store.pending_count(courier.webhook_id),
                    "consecutive_failures": state.consecutive_failures,
                    "next_retry_after": timestamp(state.next_retry_after),
                    "last_success_at": timestamp(state.last_success_at),
                    "disabled_reason": state.disabled_reason,
                }
            )
        return _json(
            {
                "version": __version__,
                "pid": os.getpid(),
                "uptime": round(time.time() - self.engine.started_at, 3),
                "webhooks": rows,
            }
        )

    async def list_webhooks(self, request: web.Request) -> web.Response:
        return _json([await self._webhook(c) for c in self.engine.couriers.values()])

    async def show_webhook(self, request: web.Request) -> web.Response:
        courier = self._courier(request)
        if isinstance(courier, web.Response):
            return courier
        return _json(await self._webhook(courier))

    async def enable(self, request: web.Request) -> web.Response:
        courier = self._courier(request)
        if isinstance(courier, web.Response):
            return courier
        await courier.enable()
        return _json(await self._webhook(courier))

    async def disable(self, request: web.Request) -> web.Response:
        courier = self._courier(request)
        if isinstance(courier, web.Response):
            return courier
        await courier.disable("disabled by the operator")
        return _json(await self._webhook(courier))
