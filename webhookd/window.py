"""A webhook's queue window: the part of its SQLite queue held in memory, in order.

Fresh events come from the bus while the window has room. Past that the window is
"spilled": it stops taking events from the bus and reads the queue back from SQLite
as it empties, so a dead endpoint's backlog costs disk, not RAM.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from webhookd.batching import batch_length
from webhookd.model import QueuedEvent
from webhookd.store import Store

WINDOW_EVENTS = 10_000
WINDOW_BYTES = 16 * 1024 * 1024


class Window:
    def __init__(
        self,
        store: Store,
        webhook_id: int,
        maximum_events: int,
        window_events: int = WINDOW_EVENTS,
        window_bytes: int = WINDOW_BYTES,
        shape: Callable[[QueuedEvent], QueuedEvent] | None = None,
    ) -> None:
        self.store = store
        # Events are shaped for the webhook as they enter, so that batching counts
        # the bytes the endpoint will really receive.
        self.shape = shape
        self.webhook_id = webhook_id
        self.window_events = window_events
        self.window_bytes = window_bytes
        # How many events one read from SQLite brings back.
        self.refill_chunk = max(1, min(window_events, max(1000, maximum_events)))
        self._events: deque[QueuedEvent] = deque()
        self.bytes = 0
        self._loaded_upto = 0  # every queued event up to here is in the window or taken
        self._spilled = True  # SQLite holds queued events that the window does not
        self._arrived_during_refill: list[QueuedEvent] | None = None
        self.changed = asyncio.Event()

    def __len__(self) -> int:
        return len(self._events)

    def wants(self, seq: int) -> bool:
        """Whether :meth:`push` would keep the event: the bus builds it only then."""
        if self._arrived_during_refill is not None:
            return True
        if self._spilled or seq <= self._loaded_upto:
            return False
        if len(self._events) >= self.window_events or self.bytes >= self.window_bytes:
            self._spilled = True  # from here on the queue is read back from SQLite
            return False
        return True

    def push(self, event: QueuedEvent) -> None:
        """A committed event for this webhook (from the bus, in commit order)."""
        if not self.wants(event.seq):
            return
        if self._arrived_during_refill is not None:
            self._arrived_during_refill.append(event)
            return
        if self.shape is not None:
            event = self.shape(event)
        self._events.append(event)
        self.bytes += len(event.element)
        self._loaded_upto = event.seq
        self.changed.set()

    @property
    def needs_refill(self) -> bool:
        return self._spilled and len(self._events) < self.refill_chunk

    async def refill(self) -> None:
        """Read the next part of the queue from SQLite."""
        chunk = self.refill_chunk
        self._arrived_during_refill = []
        try:
            rows = await self.store.queued(self.webhook_id, self._loaded_upto, chunk)
        finally:
            arrived, self._arrived_during_refill = self._arrived_during_refill, None
        for event in rows:
            if self.shape is not None:
                event = self.shape(event)
            self._events.append(event)
            self.bytes += len(event.element)
        if rows:
            self._loaded_upto = rows[-1].seq
            self.changed.set()
        if len(rows) < chunk:
            # Everything committed before the read is here now; what committed after
            # it came through the bus meanwhile.
            self._spilled = False
            for event in arrived:
                self.push(event)

    def full(self, maximum_events: int, maximum_size: int) -> bool:
        return len(self._events) >= maximum_events or self.bytes >= maximum_size

    def take(self, maximum_events: int, maximum_size: int) -> tuple[QueuedEvent, ...]:
        """The events of the next delivery, off the front of the window."""
        count = batch_length((len(e.element) for e in self._events), maximum_events, maximum_size)
        events = tuple(self._events.popleft() for _ in range(count))
        self.bytes -= sum(len(e.element) for e in events)
        return events

    def put_back(self, events: tuple[QueuedEvent, ...]) -> None:
        """Return taken events to the front (their delivery was not stored)."""
        self._events.extendleft(reversed(events))
        self.bytes += sum(len(e.element) for e in events)
