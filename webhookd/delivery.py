"""One courier per webhook: forms deliveries from its queue window and POSTs them.

With ``concurrency = 1`` a single slot sends one delivery at a time, so events arrive
in acceptance order and a failing delivery holds back the ones after it until it
succeeds or is marked ``failed``. With more slots, each slot forms the next delivery
(forming is serialized, so ids follow the queue) and retries it in its own time.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import replace
from functools import partial

import structlog

from webhookd.model import Attempt, Delivery, QueuedEvent, WebhookState, body, new_id
from webhookd.payload import shape
from webhookd.retry import next_delay, retry_after_for
from webhookd.sender import Outcome, Sender
from webhookd.store import Store, StoreUnavailable
from webhookd.units import format_duration
from webhookd.webhook import Webhook
from webhookd.window import WINDOW_EVENTS, Window

log = structlog.get_logger("webhookd.delivery")

STORE_RETRY_PAUSE = 1.0


class Pacer:
    """Spaces requests evenly so that they stay under ``rate`` per second."""

    def __init__(self, rate: float) -> None:
        self.interval = 1 / rate if rate > 0 else 0.0
        self._next = 0.0

    async def wait(self) -> None:
        if not self.interval:
            return
        now = time.monotonic()
        slot = max(now, self._next)
        self._next = slot + self.interval  # reserved before sleeping: slots never share
        if slot > now:
            await asyncio.sleep(slot - now)


class Courier:
    def __init__(
        self,
        webhook: Webhook,
        webhook_id: int,
        store: Store,
        sender: Sender,
        state: WebhookState | None = None,
        window_events: int = WINDOW_EVENTS,
        rng: random.Random | None = None,
    ) -> None:
        self.webhook = webhook
        self.webhook_id = webhook_id
        self.store = store
        self.sender = sender
        self.window = Window(
            store,
            webhook_id,
            webhook.maximum_events,
            window_events,
            shape=partial(shape, webhook) if webhook.shaped else None,
        )
        # Loaded before the daemon is ready, so that status never shows a default.
        self.state = state or WebhookState()
        self.counters: Counter[str] = Counter()
        self.in_flight: dict[str, Delivery] = {}
        self._rng = rng or random.Random()
        self._redo: deque[Delivery] = deque()
        self._forming = asyncio.Lock()
        self._pacer = Pacer(webhook.rate_limit)
        self._stopping = asyncio.Event()
        self._nudge = asyncio.Event()  # replaced on every state change; waiters wake
        self._enables = 0
        self._retry_at: dict[str, float] = {}

    # -- outside calls ---------------------------------------------------------------

    def wants(self, seq: int) -> bool:
        return self.window.wants(seq)

    def push(self, event: QueuedEvent) -> None:
        """A committed event for this webhook (called by the bus, in commit order)."""
        self.window.push(event)

    @property
    def buffered(self) -> int:
        """Events of this webhook held in memory (the rest of its queue is in SQLite)."""
        return len(self.window)

    def stop(self) -> None:
        """Finish the requests in flight, then return from :meth:`run`."""
        self._stopping.set()
        self.window.changed.set()
        self._wake_all()

    async def disable(self, reason: str) -> None:
        if self.state.disabled:
            return
        self.state.disabled, self.state.disabled_reason = True, reason
        log.warning("webhook.disabled", webhook=self.webhook.name, reason=reason)
        await self._save_state()

    async def enable(self) -> None:
        """Resume at once, where the webhook stopped: its pending delivery goes first."""
        if not self.state.disabled:
            return
        self.state.disabled, self.state.disabled_reason = False, None
        self.state.failing_since = None  # disable_after counts anew
        self._enables += 1
        log.info("webhook.enabled", webhook=self.webhook.name)
        await self._save_state()

    # -- the loop ----------------------------------------------------------------------

    async def run(self) -> None:
        self._redo.extend(await self.store.pending_deliveries(self.webhook_id))
        if self._redo:
            log.info("delivery.resumed", webhook=self.webhook.name, deliveries=len(self._redo))
        async with asyncio.TaskGroup() as slots:
            for number in range(self.webhook.concurrency):
                slots.create_task(self._slot(), name=f"{self.webhook.name}:slot{number}")

    async def _slot(self) -> None:
        formed: Delivery | None = None
        while await self._until_enabled():
            delivery = formed or await self._next_delivery()
            if delivery is None:
                return
            self.in_flight[delivery.id] = delivery
            try:
                formed = await self._deliver(delivery)
            finally:
                self.in_flight.pop(delivery.id, None)

    async def _next_delivery(self) -> Delivery | None:
        async with self._forming:
            if self._redo:
                return self._redo.popleft()
            window = self.window
            while True:
                if self._stopping.is_set():
                    return None
                if window.needs_refill:
                    await window.refill()
                    continue
                if len(window):
                    break
                window.changed.clear()
                await window.changed.wait()
            await self._linger()
            if self._stopping.is_set():
                return None
            delivery = self._cut()
            form = self.store.form_delivery_op(delivery, time.time(), self.webhook.shaped)
            # Queued in cut order, so commits keep that order; awaiting the commit outside
            # the lock lets the other slots cut theirs into the same transaction.
            committed = self.store.submit(form)
        try:
            await committed
            return delivery
        except StoreUnavailable:
            if await self._write(form, "form"):
                return delivery
        self.window.put_back(delivery.events)  # not stored: still queued in SQLite
        return None

    async def _linger(self) -> None:
        webhook = self.webhook
        if webhook.linger <= 0:
            return
        deadline = time.monotonic() + webhook.linger
        while not self.window.full(webhook.maximum_events, webhook.maximum_size):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._stopping.is_set():
                return
            self.window.changed.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self.window.changed.wait()
            except TimeoutError:
                return

    def _cut(self) -> Delivery:
        events = self.window.take(self.webhook.maximum_events, self.webhook.maximum_size)
        # The body is built once, here: forming stores its size and the POST sends it.
        return Delivery(new_id("msg_", time.time()), self.webhook_id, events,
                        stored_body=body([event.element for event in events]))

    # -- one delivery ------------------------------------------------------------------

    async def _deliver(self, delivery: Delivery) -> Delivery | None:
        """Attempt until success, ``failed`` or stop; return the next delivery if formed."""
        webhook = self.webhook
        body = delivery.body
        oversize = len(body) > webhook.maximum_size
        attempt = delivery.attempts
        if delivery.next_attempt_at is not None and not await self._retry_wait(
            delivery.id, delivery.next_attempt_at
        ):
            return None
        while await self._until_enabled():
            await self._pacer.wait()
            outcome = await self.sender.post(webhook, delivery.id, body)
            attempt += 1
            record = self._attempt_record(delivery, attempt, outcome, oversize, len(body))
            if outcome.success:
                self.counters["succeeded"] += 1
                self.state.consecutive_failures = 0
                self.state.failing_since = None
                self.state.last_success_at = outcome.started_at + outcome.duration_ms / 1000
                self._retry_at.pop(delivery.id, None)
                self.state.next_retry_after = min(self._retry_at.values(), default=None)
                return await self._finish(record)
            retry_at = await self._failed(delivery, attempt, record, outcome)
            if retry_at is None or not await self._retry_wait(delivery.id, retry_at):
                return None
        return None

    async def _failed(
        self, delivery: Delivery, attempt: int, record: Attempt, outcome: Outcome
    ) -> float | None:
        """Account for a failed attempt; return when to try again, None when done."""
        webhook, state = self.webhook, self.state
        now = time.time()
        state.consecutive_failures += 1
        if state.failing_since is None:
            state.failing_since = outcome.started_at
        retry_after = retry_after_for(outcome.status_code, outcome.header("retry-after"), now)
        delay = next_delay(webhook.retry_schedule, attempt, retry_after, self._rng)
        retry_at = None if delay is None else now + delay
        if retry_at is None:
            self._retry_at.pop(delivery.id, None)
        else:
            self._retry_at[delivery.id] = retry_at
        state.next_retry_after = min(self._retry_at.values(), default=None)
        if outcome.status_code == 410:
            reason = "the endpoint answered 410 Gone"
        elif now - state.failing_since >= webhook.disable_after:
            reason = f"no success for {format_duration(webhook.disable_after)}"
        else:
            reason = None
        if reason and not state.disabled:
            state.disabled, state.disabled_reason = True, reason
            log.warning("webhook.disabled", webhook=webhook.name, reason=reason)
        fields = dict(webhook=webhook.name, delivery_id=delivery.id, attempt=attempt)
        if retry_at is None:
            self.counters["gave_up"] += 1
            log.warning("delivery.gave_up", events=len(delivery.events), **fields)
        else:
            self.counters["failed"] += 1
        log.warning(
            "delivery.attempt_failed",
            error=outcome.error,
            status=outcome.status_code,
            retry_in=None if delay is None else round(delay, 3),
            **fields,
        )
        op = self.store.attempt_op(
            record, None if retry_at else "failed", retry_at, replace(state)
        )
        await self._write(op, "record")
        return retry_at

    async def _finish(self, record: Attempt) -> Delivery | None:
        """Record a success and, in the same commit, form this slot's next delivery.

        One commit per delivery instead of two. The next delivery is sent only after
        this commit: a crash can then make at most the delivery in flight arrive twice,
        never an older one after a newer one.
        """
        finished = self.store.attempt_op(record, "delivered", None, replace(self.state))
        if not self._ready_to_cut():
            await self._write(finished, "record")
            return None
        formed = self._cut()
        form = self.store.form_delivery_op(formed, time.time(), self.webhook.shaped)

        def both(conn: sqlite3.Connection) -> None:
            finished(conn)
            form(conn)

        if await self._write(both, "record"):
            return formed
        self.window.put_back(formed.events)
        return None

    def _ready_to_cut(self) -> bool:
        """Whether a slot may cut now, as :meth:`_next_delivery` would without waiting.

        The window holds the front of the queue, so cutting from it keeps the order.
        Not while another slot holds the forming lock (it may be refilling the window
        or lingering, and ids must follow the queue), nor while resumed deliveries wait
        their turn.
        """
        webhook = self.webhook
        return (
            not self._forming.locked()
            and not self._redo
            and not self.state.disabled
            and not self._stopping.is_set()
            and bool(len(self.window))
            and (
                webhook.linger <= 0
                or self.window.full(webhook.maximum_events, webhook.maximum_size)
            )
        )

    # -- waiting -----------------------------------------------------------------------

    def _wake_all(self) -> None:
        nudge, self._nudge = self._nudge, asyncio.Event()
        nudge.set()

    async def _sleep(self, seconds: float) -> None:
        """Sleep up to ``seconds``; wake early on stop or a state change."""
        nudge = self._nudge
        try:
            async with asyncio.timeout(max(seconds, 0)):
                await nudge.wait()
        except TimeoutError:
            pass

    async def _until_enabled(self) -> bool:
        """Wait while the webhook is disabled; False once asked to stop."""
        while self.state.disabled and not self._stopping.is_set():
            await self._sleep(3600)
        return not self._stopping.is_set()

    async def _retry_wait(self, delivery_id: str, retry_at: float) -> bool:
        """Wait for a retry; cut short when the webhook is enabled. False on stop."""
        self._retry_at[delivery_id] = retry_at
        enables = self._enables
        while not self._stopping.is_set():
            remaining = retry_at - time.time()
            if remaining <= 0 or self._enables != enables:
                return True
            await self._sleep(remaining)
        return False

    async def _save_state(self) -> None:
        self._wake_all()
        op = self.store.webhook_state_op(self.webhook_id, replace(self.state))
        await self._write(op, "state")

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
                if self._stopping.is_set():
                    return False
                await self._sleep(STORE_RETRY_PAUSE)

    # -- the log -----------------------------------------------------------------------

    def _attempt_record(
        self, delivery: Delivery, attempt: int, outcome: Outcome, oversize: bool, size: int
    ) -> Attempt:
        warning = None
        if oversize:
            warning = (
                f"a single event of {size} bytes is over maximum_size "
                f"({self.webhook.maximum_size}); sent alone"
            )
            log.warning("delivery.oversize", webhook=self.webhook.name, delivery_id=delivery.id,
                        bytes=size, maximum_size=self.webhook.maximum_size)
        if outcome.success:
            log.info(
                "delivery.succeeded",
                webhook=self.webhook.name,
                delivery_id=delivery.id,
                attempt=attempt,
                events=len(delivery.events),
                bytes=size,
                status=outcome.status_code,
                duration_ms=outcome.duration_ms,
            )
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
