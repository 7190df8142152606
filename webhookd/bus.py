"""The in-memory event bus: the fast path from a commit to each webhook's courier.

SQLite is the truth; the bus only ever carries events that are already
committed, and a courier that cannot keep an event in memory finds it again in
SQLite. Routes are an immutable snapshot replaced whole, so the writer can read
them on the database thread while webhooks come and go.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from webhookd.model import Accepted, Incoming, QueuedEvent, element

Routes = Mapping[str, tuple[int, ...]]


class Subscriber(Protocol):
    def push(self, event: QueuedEvent) -> None: ...


class Bus:
    def __init__(self) -> None:
        self._subscribers: dict[int, tuple[frozenset[str], Subscriber]] = {}
        self.routes: Routes = {}

    def attach(self, webhook_id: int, events: frozenset[str], subscriber: Subscriber) -> None:
        """Route events of these names to ``subscriber`` from the next commit on."""
        self._subscribers[webhook_id] = (events, subscriber)
        self._rebuild()

    def detach(self, webhook_id: int) -> None:
        self._subscribers.pop(webhook_id, None)
        self._rebuild()

    def _rebuild(self) -> None:
        routes: dict[str, list[int]] = {}
        for webhook_id, (events, _) in self._subscribers.items():
            for name in events:
                routes.setdefault(name, []).append(webhook_id)
        self.routes = {name: tuple(sorted(ids)) for name, ids in routes.items()}

    def publish(
        self,
        routes: Routes,
        incoming: Sequence[Incoming],
        accepted: Sequence[Accepted],
        accepted_at: float,
    ) -> None:
        """Hand freshly committed events to the couriers they were queued for."""
        subscribers = self._subscribers
        for event, result in zip(incoming, accepted, strict=True):
            if result.duplicate:
                continue
            webhook_ids = routes.get(event.name)
            if not webhook_ids:
                continue
            queued = QueuedEvent(result.seq, accepted_at, element(event.name, event.object_json))
            for webhook_id in webhook_ids:
                entry = subscribers.get(webhook_id)
                if entry is not None:
                    entry[1].push(queued)
