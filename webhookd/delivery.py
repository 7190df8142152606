"""One courier per webhook: forms deliveries from its queue and POSTs them in order.

The queue lives in SQLite; the courier keeps a bounded window of it in memory.
Fresh events come from the bus while the window has room; past that the courier
is "spilled" and reads the queue back from SQLite as the window empties, so a
dead endpoint's backlog costs disk, not RAM.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import deque
from collections.abc import Callable

import structlog

from webhookd.batching import batch_length
from webhookd.config import Webhook
from webhookd.model import Attempt, Delivery, QueuedEvent, new_id
from webhookd.sender import Outcome, Sender
from webhookd.store import Store, StoreUnavailable

log = structlog.get_logger("webhookd.delivery")

WINDOW_EVENTS = 10_000
WINDOW_BYTES = 16 * 1024 * 1024
RETRY_PAUSE = 5.0  # until the retry policy exists: a fixed pause between attempts
STORE_RETRY_PAUSE = 1.0


class Courier:
    def __init__(
        self,
        webhook: Webhook,
        webhook_id: int,
        store: Store,
        sender: Sender,
        retry_pause: float = RETRY_PAUSE,
        window_events: int = WINDOW_EVENTS,
    ) -> None:
        self.webhook = webhook
        self.webhook_id = webhook_id
        self.store = store
        self.sender = sender
        self.retry_pause = retry_pause
        self.window_events = window_events
        # How many events one read from SQLite brings back into the window.
        self.refill_chunk = max(1, min(window_events, max(1000, webhook.maximum_events)))
        self._window: deque[QueuedEvent] = deque()
        self._window_bytes = 0
        self._loaded_upto = 0  # every queued event up to here is in the window or formed
        self._spilled = True  # the queue in SQLite has events the window does not
        self._arrived_during_refill: list[QueuedEvent] | None = None
        self._redo: deque[Delivery] = deque()
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self.in_flight: Delivery | None = None

    # -- the bus side ------------------------------------------------------------------

    def push(self, event: QueuedEvent) -> None:
        """A committed event for this webhook (called by the bus, in commit order)."""
        if self._arrived_during_refill is not None:
            self._arrived_during_refill.append(event)
            return
        if self._spilled or event.seq <= self._loaded_upto:
            return
        if len(self._window) >= self.window_events or self._window_bytes >= WINDOW_BYTES:
            self._spilled = True
            return
        self._window.append(event)
        self._window_bytes += len(event.element)
        self._loaded_upto = event.seq
        self._wake.set()

    @property
    def buffered(self) -> int:
        """Events of this webhook held in memory (the rest of its queue is in SQLite)."""
        return len(self._window)

    def stop(self) -> None:
        """Finish the request in flight, then return from :meth:`run`."""
        self._stopping.set()
        self._wake.set()

    # -- the loop ---------------------------------------------------------------------

    async def run(self) -> None:
        self._redo.extend(await self.store.pending_deliveries(self.webhook_id))
        if self._redo:
            log.info("delivery.resumed", webhook=self.webhook.name, deliveries=len(self._redo))
        formed: Delivery | None = None
        while not self._stopping.is_set():
            delivery = formed or await self._next_delivery()
            if delivery is None:
                return
            self.in_flight = delivery
            try:
                formed = await self._deliver(delivery)
            finally:
                self.in_flight = None

    async def _refill(self) -> None:
        """Read the next part of the queue from SQLite into the window."""
        chunk = self.refill_chunk
        self._arrived_during_refill = []
        try:
            rows = await self.store.queued(self.webhook_id, self._loaded_upto, chunk)
        finally:
            arrived, self._arrived_during_refill = self._arrived_during_refill, None
        for event in rows:
            self._window.append(event)
            self._window_bytes += len(event.element)
        if rows:
            self._loaded_upto = rows[-1].seq
        if len(rows) < chunk:
            # Everything committed before the read is in the window; what committed
            # after it came through the bus meanwhile.
            self._spilled = False
            for event in arrived:
                self.push(event)

    async def _next_delivery(self) -> Delivery | None:
        if self._redo:
            return self._redo.popleft()
        webhook = self.webhook
        while True:
            if self._stopping.is_set():
                return None
            if self._spilled and len(self._window) < self.refill_chunk:
                await self._refill()
                continue
            if self._window:
                break
            self._wake.clear()
            await self._wake.wait()
        if webhook.linger > 0:
            deadline = time.monotonic() + webhook.linger
            while not self._full() and not self._stopping.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._wake.clear()
                try:
                    async with asyncio.timeout(remaining):
                        await self._wake.wait()
                except TimeoutError:
                    break
        return await self._form()

    def _full(self) -> bool:
        return (
            len(self._window) >= self.webhook.maximum_events
            or self._window_bytes >= self.webhook.maximum_size
        )

    def _cut(self) -> Delivery:
        """Take the next delivery's events off the window (not yet stored)."""
        webhook = self.webhook
        count = batch_length(
            (len(e.element) for e in self._window), webhook.maximum_events, webhook.maximum_size
        )
        events = tuple(self._window.popleft() for _ in range(count))
        self._window_bytes -= sum(len(e.element) for e in events)
        return Delivery(new_id("msg_", time.time()), self.webhook_id, events)

    def _put_back(self, delivery: Delivery) -> None:
        self._window.extendleft(reversed(delivery.events))
        self._window_bytes += sum(len(e.element) for e in delivery.events)

    def _ready_to_cut(self) -> bool:
        """Whether the next delivery can be formed now, without waiting for more events."""
        return (
            not self._redo
            and bool(self._window)
            and (self.webhook.linger <= 0 or self._full())
        )

    async def _form(self) -> Delivery | None:
        delivery = self._cut()
        if await self._write(self.store.form_delivery_op(delivery, time.time()), "form"):
            return delivery
        self._put_back(delivery)  # not stored: the events are still queued in SQLite
        return None

    async def _pause(self, seconds: float) -> bool:
        """Sleep, or return True at once when asked to stop."""
        try:
            async with asyncio.timeout(seconds):
                await self._stopping.wait()
        except TimeoutError:
            return False
        return True

    async def _deliver(self, delivery: Delivery) -> Delivery | None:
        """Send until success (or stop); return the next delivery if formed meanwhile."""
        webhook = self.webhook
        body = delivery.body
        oversize = len(body) > webhook.maximum_size
        attempt = delivery.attempts
        while not self._stopping.is_set():
            outcome = await self.sender.post(webhook, delivery.id, body)
            attempt += 1
            record = self._attempt_record(delivery, attempt, outcome, oversize, len(body))
            if outcome.success:
                return await self._finish(record)
            await self._write(self.store.attempt_op(record, None), "record")
            if await self._pause(self.retry_pause):
                return None
        return None

    async def _finish(self, record: Attempt) -> Delivery | None:
        """Record a success and, in the same commit, form the next delivery if it is ready.

        The next delivery is sent only after this commit: a crash can then make at most
        the delivery in flight arrive twice, never an older one after a newer one.
        """
        finished = self.store.attempt_op(record, "delivered")
        if not self._ready_to_cut():
            await self._write(finished, "record")
            return None
        formed = self._cut()
        form = self.store.form_delivery_op(formed, time.time())

        def both(conn: sqlite3.Connection) -> None:
            finished(conn)
            form(conn)

        if await self._write(both, "record"):
            return formed
        self._put_back(formed)
        return None

    async def _write(self, run: Callable[[sqlite3.Connection], None], what: str) -> bool:
        """Commit ``run``, retrying while the store is unavailable; False when stopped first.

        Moving on before an outcome is stored could reorder a later restart's resends,
        so the courier waits for the store, however long a full disk takes to clear.
        """
        while True:
            try:
                await self.store.write(run)
                return True
            except StoreUnavailable as exc:
                log.error(f"delivery.{what}_failed", webhook=self.webhook.name, error=str(exc))
                if await self._pause(STORE_RETRY_PAUSE):
                    return False

    def _attempt_record(
        self, delivery: Delivery, attempt: int, outcome: Outcome, oversize: bool, size: int
    ) -> Attempt:
        warning = None
        if oversize:
            warning = (
                f"a single event of {size} bytes is over maximum_size "
                f"({self.webhook.maximum_size}); sent alone"
            )
        fields = dict(
            webhook=self.webhook.name,
            delivery_id=delivery.id,
            attempt=attempt,
            events=len(delivery.events),
            bytes=size,
            status=outcome.status_code,
            duration_ms=outcome.duration_ms,
        )
        if outcome.success:
            log.info("delivery.succeeded", **fields)
        else:
            log.warning("delivery.failed", error=outcome.error, **fields)
        if warning:
            log.warning("delivery.oversize", webhook=self.webhook.name, delivery_id=delivery.id,
                        bytes=size, maximum_size=self.webhook.maximum_size)
        return Attempt(
            request_id=new_id("req_", outcome.started_at),
            delivery_id=delivery.id,
            webhook_id=self.webhook_id,
            attempt=attempt,
            uri=self.webhook.url,
            started_at=outcome.started_at,
            duration_ms=outcome.duration_ms,
            queue_delay_ms=max(0, round((outcome.started_at - delivery.first_accepted_at) * 1000)),
            request_headers=outcome.request_headers,
            status_code=outcome.status_code,
            response=outcome.response,
            response_headers=outcome.response_headers,
            success=outcome.success,
            error=outcome.error,
            warning=warning,
        )

