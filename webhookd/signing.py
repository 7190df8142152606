"""Standard Webhooks signatures (v1): HMAC-SHA256 over ``id.timestamp.body``. Pure code.

A secret is ``whsec_`` followed by the base64 of the key bytes. With several secrets
(rotation) the header carries one ``v1,<base64>`` entry per secret, space-separated,
so receivers holding either the old or the new secret verify.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

PREFIX = "whsec_"


class SecretError(ValueError):
    """A signing secret is not ``whsec_`` + base64."""


def decode_secret(secret: str) -> bytes:
    """The HMAC key of a ``whsec_...`` secret."""
    if not secret.startswith(PREFIX):
        raise SecretError("a signing secret starts with \"whsec_\"")
    try:
        key = base64.b64decode(secret[len(PREFIX) :], validate=True)
    except binascii.Error:
        raise SecretError("a signing secret is \"whsec_\" followed by base64") from None
    if len(key) < 16:
        raise SecretError("a signing secret needs at least 16 bytes of key (24 to 64 advised)")
    return key


def signature(keys: tuple[bytes, ...], message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value: ``v1,<base64>`` per key, space-separated."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    return " ".join(
        "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        for key in keys
    )
