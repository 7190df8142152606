"""What one webhook receives for one event: its API version, then its expansions.

Pure code. Objects arrive in the daemon's version; a webhook pinned to an older one
gets them stepped down, then cut to its expansions with that version's names.
"""

from __future__ import annotations

import orjson

from webhookd.catalogue import EVENTS
from webhookd.expansions import apply
from webhookd.model import QueuedEvent, element
from webhookd.versions import downgrade
from webhookd.webhook import Webhook


def shape(webhook: Webhook, event: QueuedEvent) -> QueuedEvent:
    """The event as ``webhook`` receives it (the same object when nothing changes)."""
    if not webhook.shaped:
        return event
    try:
        ((name, obj),) = orjson.loads(event.element).items()
    except orjson.JSONDecodeError:
        return event  # valid JSON orjson cannot hold (1e400): delivered as sent
    key = EVENTS[name].payload_key
    obj = downgrade(obj, key, webhook.version_steps)
    tree = webhook.expansions.get(key)
    if tree is not None:
        obj = apply(obj, tree)
    try:
        shaped = orjson.dumps(obj)
    except orjson.JSONEncodeError:
        return event  # nested deeper than orjson writes (254 levels): delivered as sent
    return QueuedEvent(event.seq, event.accepted_at, element(name, shaped))
