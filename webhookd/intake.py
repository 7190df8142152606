"""The ingest line protocol of SPEC §3 as pure functions: a line in, an event or an error out."""

from __future__ import annotations

from datetime import datetime

import orjson

from webhookd.catalogue import EVENTS
from webhookd.model import Accepted, Incoming, event_id

_FIELDS = frozenset({"event", "object", "id", "occurred_at"})
MAX_PRODUCER_ID = 200


class LineError(Exception):
    """A line that cannot be accepted; ``code`` is the SPEC §3 error code."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def parse_line(line: bytes) -> Incoming:
    """Validate one NDJSON line (without its newline) into an :class:`Incoming`."""
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
    return Incoming(
        name=name,
        payload_key=event_type.payload_key,
        identity=orjson.dumps(identity).decode(),
        object_json=orjson.dumps(obj),
        producer_id=producer_id,
        occurred_at=occurred_at,
        obj=obj,
    )


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
