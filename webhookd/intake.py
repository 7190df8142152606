"""The ingest line protocol of SPEC §3 as pure functions: a line in, an event or an error out.

Two parsers. The fast one (msgspec) validates the whole line as JSON but builds
Python objects only for the envelope and the object's identity, and keeps the
object's JSON exactly as the producer sent it. A line it does not accept goes to the
full one (orjson), which finds and names the problem. The object itself is parsed
only when a filter needs it (:func:`parsed_object`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
import orjson

from webhookd.catalogue import CATEGORIES, EVENTS
from webhookd.model import Accepted, Incoming, event_id

_FIELDS = frozenset({"event", "object", "id", "occurred_at"})
MAX_PRODUCER_ID = 200


class _Envelope(msgspec.Struct, forbid_unknown_fields=True):
    event: str
    object: msgspec.Raw
    id: str | None = None
    occurred_at: str | None = None


_ENVELOPE = msgspec.json.Decoder(_Envelope)
# Per identity field: a decoder that reads that one field and skips (validating) the rest.
_IDENTITY = {
    field: msgspec.json.Decoder(
        msgspec.defstruct(f"Identity_{field}", [(field, str | int | None, None)])
    )
    for field in {category.identity for category in CATEGORIES}
}
# The identity is stored as its JSON; orjson writes integers of up to 64 bits.
_IDENTITY_RANGE = range(-(2**63), 2**64)


class LineError(Exception):
    """A line that cannot be accepted; ``code`` is the SPEC §3 error code."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def parse_line(line: bytes) -> Incoming:
    """Validate one NDJSON line (without its newline) into an :class:`Incoming`."""
    try:
        if not line.isascii():
            line.decode()  # strict UTF-8, as orjson checks it
        return _parse_fast(line)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError):
        pass
    return _parse_full(line)


def _parse_fast(line: bytes) -> Incoming:
    envelope = _ENVELOPE.decode(line)
    name = envelope.event
    event_type = EVENTS.get(name)
    if event_type is None:
        raise LineError("unknown_event", f"unknown event {name!r}")
    object_json = bytes(envelope.object)
    if object_json[:1] != b"{":
        raise msgspec.ValidationError("not an object")  # the full parser says why
    field = event_type.identity
    identity = getattr(_IDENTITY[field].decode(object_json), field)
    if identity is None or identity == "" or (
        isinstance(identity, int) and identity not in _IDENTITY_RANGE
    ):
        raise msgspec.ValidationError("no usable identity")
    producer_id = envelope.id
    if producer_id is not None and (not producer_id or len(producer_id) > MAX_PRODUCER_ID):
        raise msgspec.ValidationError("bad id")
    if envelope.occurred_at is not None:
        _check_timestamp(envelope.occurred_at)
    return Incoming(
        name=name,
        payload_key=event_type.payload_key,
        identity=orjson.dumps(identity).decode(),
        object_json=object_json,
        producer_id=producer_id,
        occurred_at=envelope.occurred_at,
    )


def _parse_full(line: bytes) -> Incoming:
    try:
        document = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise LineError("invalid_json", f"not valid UTF-8 JSON: {exc}") from None
    if not isinstance(document, dict):
        raise LineError("invalid_event", f"expected a JSON object, got {type(document).__name__}")
    extra = document.keys() - _FIELDS
    if extra:
        raise LineError("invalid_event", f"unknown field {sorted(extra)[0]!r}")
    name = document.get("event")
    if not isinstance(name, str):
        raise LineError("invalid_event", "\"event\" is required and must be a string")
    event_type = EVENTS.get(name)
    if event_type is None:
        raise LineError("unknown_event", f"unknown event {name!r}")
    obj = document.get("object")
    if not isinstance(obj, dict):
        raise LineError("invalid_event", "\"object\" is required and must be a JSON object")
    identity = obj.get(event_type.identity)
    if isinstance(identity, bool) or not isinstance(identity, str | int) or identity == "":
        raise LineError(
            "invalid_event",
            f"object.{event_type.identity} is required for {name} (a string or an integer)",
        )
    producer_id = document.get("id")
    if producer_id is not None and (
        not isinstance(producer_id, str) or not producer_id or len(producer_id) > MAX_PRODUCER_ID
    ):
        raise LineError(
            "invalid_event", f"\"id\" must be a string of 1 to {MAX_PRODUCER_ID} characters"
        )
    occurred_at = document.get("occurred_at")
    if occurred_at is not None:
        _check_timestamp(occurred_at)
    try:
        object_json = orjson.dumps(obj)
    except TypeError as exc:  # orjson writes at most 254 levels of nesting
        raise LineError("invalid_event", f"object cannot be stored: {exc}") from None
    return Incoming(
        name=name,
        payload_key=event_type.payload_key,
        identity=orjson.dumps(identity).decode(),
        object_json=object_json,
        producer_id=producer_id,
        occurred_at=occurred_at,
        obj=obj,
    )


def parsed_object(event: Incoming) -> Any:
    """The event's object as Python values (parsed once, for filters)."""
    if event.obj is None:
        try:
            event.obj = orjson.loads(event.object_json)
        except orjson.JSONDecodeError as exc:  # valid JSON that orjson cannot hold
            raise LineError("invalid_json", f"cannot be read for filters: {exc}") from None
    return event.obj


def _check_timestamp(value: object) -> None:
    if isinstance(value, str) and len(value) >= 20 and value[10] in "Tt ":
        try:
            parsed = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            if parsed.tzinfo is not None:
                return
    raise LineError(
        "invalid_event",
        "\"occurred_at\" must be an RFC 3339 timestamp with an offset, "
        "e.g. \"2026-12-04T15:00:00Z\"",
    )


def ok_reply(accepted: Accepted, producer_id: str | None) -> bytes:
    reply: dict[str, object] = {"ok": True, "id": event_id(accepted.seq)}
    if producer_id is not None:
        reply["producer_id"] = producer_id
    if accepted.duplicate:
        reply["duplicate"] = True
    return orjson.dumps(reply) + b"\n"


def error_reply(code: str, detail: str) -> bytes:
    return orjson.dumps({"ok": False, "error": code, "detail": detail}) + b"\n"
