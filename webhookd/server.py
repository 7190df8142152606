"""The daemon's lifecycle: start in order, supervise every task, shut down in order.

Signal handlers only set flags. One TaskGroup supervises the writer, the
couriers and the watchdog; a requested shutdown ends it normally, a crash in any
task propagates so that systemd restarts us.
"""

from __future__ import annotations

import asyncio
import fcntl
import gc
import os
import signal
import time
from pathlib import Path

import structlog

from webhookd import __version__
from webhookd.admin import AdminServer
from webhookd.bus import Bus
from webhookd.delivery import Courier
from webhookd.ingest import IngestServer
from webhookd.model import WebhookState
from webhookd.notify import notify, watchdog_interval
from webhookd.retention import Pruner
from webhookd.sender import Sender
from webhookd.settings import Settings
from webhookd.store import Store
from webhookd.webhook import Webhook
from webhookd.window import WINDOW_EVENTS

log = structlog.get_logger("webhookd.server")

GC_THRESHOLD = 50_000
CHECKPOINT_INTERVAL = 0.25


class AlreadyRunning(Exception):
    """Another daemon holds the lock on this data directory."""


class DataDirLock:
    """An exclusive ``flock`` on ``<data_dir>/webhookd.lock``, released when the process dies."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "webhookd.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise AlreadyRunning(
                f"another webhookd is running on {self.path.parent}"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class Server:
    def __init__(
        self,
        settings: Settings,
        window_events: int = WINDOW_EVENTS,
        prune_interval: float | None = None,
    ) -> None:
        self.settings = settings
        daemon = settings.daemon
        self.data_dir = daemon.data_dir.absolute()
        self.socket_dir = daemon.socket_dir.absolute()
        self.window_events = window_events
        self.store = Store(self.data_dir / "webhookd.db", daemon.synchronous)
        self.bus = Bus()
        self.sender = Sender(daemon.log_body_limit, daemon.blocked_networks, daemon.proxy)
        self.ingest = IngestServer(
            self.store,
            self.bus,
            self.socket_dir / "ingest.sock",
            daemon.socket_mode,
            daemon.socket_group,
            daemon.max_event_size,
        )
        self.pruner = Pruner(self.store, daemon.retention, prune_interval)
        self.admin = AdminServer(self, self.socket_dir / "admin.sock", daemon.admin_socket_mode)
        self.started_at = time.time()
        self.couriers: dict[str, Courier] = {}
        self._courier_tasks: list[asyncio.Task[None]] = []
        self._stop_requested = asyncio.Event()
        self.ready = asyncio.Event()

    # -- signals ------------------------------------------------------------------

    def request_stop(self, signum: int | None = None) -> None:
        if signum is not None:
            log.info("server.signal", signal=signal.Signals(signum).name)
        self._stop_requested.set()

    def _reload(self) -> None:
        log.warning("server.reload", message="reload not supported yet, restart to apply")

    def _install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.request_stop, signum)
        loop.add_signal_handler(signal.SIGHUP, self._reload)

    def _remove_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(signum)

    # -- running ------------------------------------------------------------------

    async def serve(self) -> None:
        """Run until SIGTERM/SIGINT (or :meth:`request_stop`); raise on a crash."""
        started = time.monotonic()
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.socket_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
        lock = DataDirLock(self.data_dir)
        lock.acquire()
        self._install_signal_handlers()
        try:
            await self.store.open()
            try:
                async with asyncio.TaskGroup() as tasks:
                    tasks.create_task(self.store.run_writer(), name="writer")
                    await self._start(tasks, started)
                    tasks.create_task(self._supervise(), name="shutdown")
            finally:
                await self.sender.close()
                await self.store.close()
        finally:
            self._remove_signal_handlers()
            lock.release()
        log.info("server.stopped")

    async def _start(self, tasks: asyncio.TaskGroup, started: float) -> None:
        webhooks = self.settings.webhooks
        ids = await self.store.write(
            self.store.sync_webhooks_op([w.name for w in webhooks], "config", time.time())
        )
        await self.sender.start()
        for webhook in webhooks:
            state = await self.store.webhook_state(ids[webhook.name])
            self._add_courier(tasks, webhook, ids[webhook.name], state)
        await self.ingest.start()
        await self.admin.start()
        # What start-up built lives as long as we do: keep the collector off it. Every
        # event parses into dozens of containers, nearly all freed by reference counting;
        # at the default threshold the collector would run every few events for nothing.
        gc.freeze()
        gc.set_threshold(GC_THRESHOLD, 20, 20)
        self.ready.set()
        summary = f"ready: {len(webhooks)} webhooks"
        notify(f"READY=1\nSTATUS={summary}")
        log.info(
            "server.ready",
            version=__version__,
            data_dir=str(self.data_dir),
            ingest_socket=str(self.ingest.path),
            webhooks=len(webhooks),
            startup_ms=round((time.monotonic() - started) * 1000),
        )
        tasks.create_task(self.pruner.run(), name="retention")
        tasks.create_task(self._checkpoints(), name="checkpoints")
        interval = watchdog_interval()
        if interval:
            tasks.create_task(self._watchdog(interval), name="watchdog")

    def _add_courier(
        self, tasks: asyncio.TaskGroup, webhook: Webhook, webhook_id: int, state: WebhookState
    ) -> None:
        courier = Courier(
            webhook, webhook_id, self.store, self.sender, state, self.window_events
        )
        self.couriers[webhook.name] = courier
        self.bus.attach(webhook_id, webhook.events, courier, webhook.filters)
        self._courier_tasks.append(tasks.create_task(courier.run(), name=f"courier:{webhook.name}"))

    async def _watchdog(self, interval: float) -> None:
        while not self._stop_requested.is_set():
            notify("WATCHDOG=1")
            try:
                async with asyncio.timeout(interval):
                    await self._stop_requested.wait()
            except TimeoutError:
                pass

    async def _checkpoints(self) -> None:
        """Fold the WAL into the database file often enough to keep it small."""
        while not self._stop_requested.is_set():
            try:
                async with asyncio.timeout(CHECKPOINT_INTERVAL):
                    await self._stop_requested.wait()
            except TimeoutError:
                await self.store.checkpoint()

    async def _supervise(self) -> None:
        await self._stop_requested.wait()
        await self.shutdown()

    async def shutdown(self) -> None:
        notify("STOPPING=1")
        timeout = self.settings.daemon.shutdown_timeout
        log.info("server.stopping", shutdown_timeout=timeout)
        self.pruner.stop()
        # 1. Stop intake: no new producers; lines read from now on get `shutting_down`.
        self.ingest.stop_accepting()
        # 2. Couriers start nothing new; requests in flight get until the deadline.
        for courier in self.couriers.values():
            courier.stop()
        if self._courier_tasks:
            _, unfinished = await asyncio.wait(self._courier_tasks, timeout=timeout)
            # 3. Past the deadline, cancel: those deliveries stay pending in SQLite.
            if unfinished:
                log.warning("server.cancelled_in_flight", deliveries=len(unfinished))
                for task in unfinished:
                    task.cancel()
                await asyncio.wait(unfinished)
        # 4. Answer producers for lines already committing, then close their connections.
        await self.ingest.close()
        await self.admin.close()
        # 5. The writer commits what is queued, then returns, ending the TaskGroup.
        self.store.stop_writer()


async def serve(settings: Settings) -> None:
    """Run the daemon in the running event loop until it is told to stop."""
    await Server(settings).serve()


def run(settings: Settings, use_uvloop: bool = False) -> None:
    """Run the daemon to completion: the public entry point the CLI calls."""
    if use_uvloop:
        import uvloop  # type: ignore[import-not-found,unused-ignore]

        uvloop.run(serve(settings))
    else:
        asyncio.run(serve(settings))
