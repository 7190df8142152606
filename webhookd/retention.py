"""Retention: finished deliveries, their attempt log, old events and dedup keys are pruned.

Pruning runs as small write ops so that ingest and deliveries interleave with it.
"""

from __future__ import annotations

import asyncio
import time

import structlog

from webhookd.store import Store

log = structlog.get_logger("webhookd.retention")

CHUNK = 5000


class Pruner:
    def __init__(self, store: Store, retention: float, interval: float | None = None) -> None:
        self.store = store
        self.retention = retention
        # Often enough that the database stays near its bound, rarely enough to be free.
        self.interval = interval if interval is not None else min(max(retention / 10, 1), 600)
        self._cursor = 0
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run_once(self) -> tuple[int, int]:
        """Prune until nothing more is due; return (events, deliveries) removed."""
        events = deliveries = 0
        while not self._stopping.is_set():
            cutoff = time.time() - self.retention
            result = await self.store.write(self.store.prune_op(self._cursor, cutoff, CHUNK))
            self._cursor = result.cursor
            events += result.events
            deliveries += result.deliveries
            for name in result.webhooks:
                log.info("retention.webhook_pruned", webhook=name,
                         message="removed longer than retention ago; its queue is gone")
            if not result.more:
                break
        if events or deliveries:
            log.info("retention.pruned", events=events, deliveries=deliveries)
        return events, deliveries

    async def run(self) -> None:
        while True:
            try:
                async with asyncio.timeout(self.interval):
                    await self._stopping.wait()
                return
            except TimeoutError:
                pass
            await self.run_once()
