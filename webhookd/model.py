"""Small records shared by the engine's parts; no I/O here."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from typing import Any

BODY_PREFIX = b'{"events":['
BODY_SUFFIX = b"]}"
BODY_OVERHEAD = len(BODY_PREFIX) + len(BODY_SUFFIX)


def event_id(seq: int) -> str:
    """The daemon event id shown to producers and in logs."""
    return f"evt_{seq}"


def element(name: str, object_json: bytes) -> bytes:
    """One entry of the UltraCart ``events`` array: ``{"<event name>": <object>}``."""
    return b'{"' + name.encode() + b'":' + object_json + b"}"


def body(elements: list[bytes]) -> bytes:
    """The UltraCart delivery body: always an array, even for one event."""
    return BODY_PREFIX + b",".join(elements) + BODY_SUFFIX


@dataclass(slots=True)
class Incoming:
    """A validated line from a producer, not yet committed."""

    name: str
    payload_key: str
    identity: str
    object_json: bytes
    producer_id: str | None
    occurred_at: str | None
    obj: Any = None  # the parsed object, for filters at fan-out; not stored
    targets: tuple[int, ...] = ()  # the webhooks it is queued for, decided at fan-out


@dataclass(frozen=True, slots=True)
class Accepted:
    """The commit's answer for one :class:`Incoming`."""

    seq: int
    duplicate: bool


@dataclass(frozen=True, slots=True)
class QueuedEvent:
    """A committed event waiting in one webhook's queue."""

    seq: int
    accepted_at: float
    element: bytes


@dataclass(frozen=True, slots=True)
class Delivery:
    """One batch for one webhook, fixed before its first attempt."""

    id: str
    webhook_id: int
    events: tuple[QueuedEvent, ...]
    attempts: int = 0
    next_attempt_at: float | None = None  # a retry wait in progress (survives restarts)
    # The exact body when known: built once when the delivery is cut, and read back
    # after a restart for shaped objects, which the stored events would not rebuild.
    stored_body: bytes | None = None

    @property
    def body(self) -> bytes:
        if self.stored_body is not None:
            return self.stored_body
        return body([event.element for event in self.events])

    @property
    def first_accepted_at(self) -> float:
        return self.events[0].accepted_at


@dataclass(slots=True)
class WebhookState:
    """A webhook's delivery state, UltraCart's status fields plus what derives them."""

    disabled: bool = False
    disabled_reason: str | None = None
    consecutive_failures: int = 0
    next_retry_after: float | None = None
    last_success_at: float | None = None
    failing_since: float | None = None  # first failure after the last success


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one POST of a delivery did, as the attempt log stores it."""

    request_id: str
    delivery_id: str
    webhook_id: int
    attempt: int
    uri: str
    started_at: float
    duration_ms: int
    queue_delay_ms: int
    request_headers: list[dict[str, str]]
    status_code: int | None
    response: str
    response_headers: list[dict[str, str]]
    success: bool
    error: str | None
    warning: str | None


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# Two characters per 10 bits: 13 lookups make the 26 characters of a ULID.
_PAIRS = [high + low for high in _CROCKFORD for low in _CROCKFORD]
# Ids need uniqueness, not secrecy: a generator seeded once from the OS is enough, and
# spares a getrandom() system call (and a GIL handoff) per id.
_random = random.Random(os.urandom(32))


def new_id(prefix: str, now: float) -> str:
    """A time-sortable unique id (ULID layout: 48-bit ms clock, 80 random bits)."""
    value = (int(now * 1000) << 80) | _random.getrandbits(80)
    return prefix + "".join([_PAIRS[(value >> shift) & 1023] for shift in range(120, -1, -10)])
