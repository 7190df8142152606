"""The in-memory event bus: the fast path from a commit to each webhook's courier.

SQLite is the truth; the bus only ever carries events that are already committed,
and a courier that cannot keep an event in memory finds it again in SQLite. Fan-out
is decided once, before the commit: the webhooks subscribed to the event's name, less
those whose filter for its payload key does not match. Routes are an immutable
snapshot replaced whole, so webhooks can come and go between commits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from webhookd.catalogue import EVENTS
from webhookd.filters import Pattern, matches
from webhookd.intake import parsed_object
from webhookd.model import Accepted, Incoming, QueuedEvent, element


class Subscriber(Protocol):
    def wants(self, seq: int) -> bool:
        """Whether :meth:`push` would keep this event (a full window would not)."""
        ...

    def push(self, event: QueuedEvent) -> None: ...


@dataclass(frozen=True, slots=True)
class Route:
    always: tuple[int, ...]  # webhooks that take every event of this name
    filtered: tuple[tuple[int, Pattern], ...]  # webhooks that take the matching ones


class Bus:
    def __init__(self) -> None:
        self._subscribers: dict[int, tuple[frozenset[str], Mapping[str, Pattern], Subscriber]] = {}
        self.routes: Mapping[str, Route] = {}

    def attach(
        self,
        webhook_id: int,
        events: frozenset[str],
        subscriber: Subscriber,
        filters: Mapping[str, Pattern] | None = None,
    ) -> None:
        """Route events of these names to ``subscriber`` from the next commit on."""
        self._subscribers[webhook_id] = (events, filters or {}, subscriber)
        self._rebuild()

    def detach(self, webhook_id: int) -> None:
        self._subscribers.pop(webhook_id, None)
        self._rebuild()

    def _rebuild(self) -> None:
        always: dict[str, list[int]] = {}
        filtered: dict[str, list[tuple[int, Pattern]]] = {}
        for webhook_id, (events, filters, _) in sorted(self._subscribers.items()):
            for name in events:
                pattern = filters.get(EVENTS[name].payload_key)
                if pattern is None:
                    always.setdefault(name, []).append(webhook_id)
                else:
                    filtered.setdefault(name, []).append((webhook_id, pattern))
        self.routes = {
            name: Route(tuple(always.get(name, ())), tuple(filtered.get(name, ())))
            for name in always.keys() | filtered.keys()
        }

    def targets(self, event: Incoming) -> tuple[int, ...]:
        """The webhooks an event is for: matched once, here, against the whole object."""
        route = self.routes.get(event.name)
        if route is None:
            return ()
        if not route.filtered:
            return route.always
        obj = parsed_object(event)  # LineError when orjson cannot read it
        return route.always + tuple(
            webhook_id for webhook_id, pattern in route.filtered if matches(pattern, obj)
        )

    def publish(
        self, incoming: Sequence[Incoming], accepted: Sequence[Accepted], accepted_at: float
    ) -> None:
        """Hand freshly committed events to the couriers they were queued for."""
        subscribers = self._subscribers
        for event, result in zip(incoming, accepted, strict=True):
            if result.duplicate or not event.targets:
                continue
            queued = None  # built once, and only if some window keeps it
            for webhook_id in event.targets:
                entry = subscribers.get(webhook_id)
                if entry is None or not entry[2].wants(result.seq):
                    continue  # a spilled window finds the event in SQLite later
                if queued is None:
                    queued = QueuedEvent(
                        result.seq, accepted_at, element(event.name, event.object_json)
                    )
                entry[2].push(queued)
