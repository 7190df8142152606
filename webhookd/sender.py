"""POSTing a delivery with aiohttp and classifying what happened.

One ClientSession is shared by every webhook. Redirects are never followed: a 3xx
is a failed attempt like any other non-2xx answer. Every socket is checked against
``blocked_networks`` when it is about to connect, so the address actually connected
to is what counts, whether the URL named a host or an IP literal (with a proxy, that
is the proxy's address).
"""

from __future__ import annotations

import asyncio
import base64
import errno
import gzip
import ipaddress
import socket
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from webhookd import __version__
from webhookd.config import IPNetwork
from webhookd.signing import signature
from webhookd.webhook import Webhook

USER_AGENT = f"webhookd/{__version__}"
MASK = "***"


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one POST, before it becomes an attempt log record."""

    started_at: float
    duration_ms: int
    request_headers: list[dict[str, str]]
    status_code: int | None
    response: str
    response_headers: list[dict[str, str]]
    error: str | None

    @property
    def success(self) -> bool:
        return self.error is None

    def header(self, name: str) -> str | None:
        """A response header's value (case-insensitive), if present."""
        lowered = name.lower()
        for header in self.response_headers:
            if header["name"].lower() == lowered:
                return header["value"]
        return None


class BlockedAddress(OSError):
    """The address about to be connected to is in ``blocked_networks``."""


def is_blocked(address: str, blocked: Sequence[IPNetwork]) -> bool:
    """Whether an IP address is in a blocked network (IPv4-mapped IPv6 unmapped first)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == network.version and ip in network for network in blocked)


def classify(exc: BaseException) -> str:
    """The attempt log's error class for an exception raised by a request."""
    if isinstance(exc, aiohttp.ClientConnectorError) and isinstance(exc.os_error, BlockedAddress):
        return "blocked_address"
    if isinstance(exc, BlockedAddress):
        return "blocked_address"
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return "timeout"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "dns"
    if isinstance(
        exc,
        aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError | ssl.SSLError,
    ):
        return "tls"
    return "connection"


def request_headers(
    webhook: Webhook, delivery_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """The headers of SPEC §4 for one attempt (real values: never log these).

    ``body`` is the JSON before compression: that is what is signed.
    """
    headers = dict(webhook.headers)
    headers.update(
        {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Webhook-Api-Version": webhook.api_version,
            "webhook-id": delivery_id,
            "webhook-timestamp": str(timestamp),
        }
    )
    if webhook.basic_username is not None and webhook.basic_password is not None:
        credentials = f"{webhook.basic_username}:{webhook.basic_password}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(credentials).decode("ascii")
    if webhook.signing_keys:
        headers["webhook-signature"] = signature(
            webhook.signing_keys, delivery_id, timestamp, body
        )
    if webhook.compress:
        headers["Content-Encoding"] = "gzip"
    return headers


def masked(headers: dict[str, str], webhook: Webhook) -> list[dict[str, str]]:
    """Headers as they may be stored and shown: secrets and custom values as ***."""
    secret_names = {name.lower() for name, _ in webhook.headers}
    secret_names |= {"authorization", "webhook-signature"}
    return [
        {"name": name, "value": MASK if name.lower() in secret_names else value}
        for name, value in headers.items()
    ]


class Sender:
    """Owns the shared ClientSession."""

    def __init__(
        self,
        log_body_limit: int,
        blocked_networks: Sequence[IPNetwork] = (),
        proxy: str | None = None,
    ) -> None:
        self.log_body_limit = log_body_limit
        self.blocked_networks = tuple(blocked_networks)
        self.proxy = proxy
        self._session: aiohttp.ClientSession | None = None

    def _socket(self, addr_info: Any) -> socket.socket:
        family, kind, proto, _, address = addr_info
        if is_blocked(address[0], self.blocked_networks):
            raise BlockedAddress(errno.EACCES, f"{address[0]} is in blocked_networks")
        return socket.socket(family, kind, proto)

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=60, socket_factory=self._socket)
        self._session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=True,
            skip_auto_headers=("Accept", "Accept-Encoding"),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def post(self, webhook: Webhook, delivery_id: str, body: bytes) -> Outcome:
        assert self._session is not None, "Sender.start() was not awaited"
        started_at = time.time()
        clock = time.monotonic()
        headers = request_headers(webhook, delivery_id, int(started_at), body)
        shown = masked(headers, webhook)
        # gzip ourselves: aiohttp's compress= would switch to chunked encoding.
        data = gzip.compress(body, compresslevel=5) if webhook.compress else body
        try:
            async with asyncio.timeout(webhook.timeout):
                async with self._session.post(
                    webhook.url,
                    data=data,
                    headers=headers,
                    allow_redirects=False,
                    ssl=webhook.ssl_context or True,
                    proxy=self.proxy,
                ) as response:
                    text = await self._read_limited(response)
                    status = response.status
                    response_headers = [
                        {"name": name, "value": value} for name, value in response.headers.items()
                    ]
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            return Outcome(
                started_at,
                round((time.monotonic() - clock) * 1000),
                shown,
                None,
                str(exc) or type(exc).__name__,
                [],
                classify(exc),
            )
        return Outcome(
            started_at,
            round((time.monotonic() - clock) * 1000),
            shown,
            status,
            text,
            response_headers,
            None if 200 <= status < 300 else str(status),
        )

    async def _read_limited(self, response: aiohttp.ClientResponse) -> str:
        # Read at most the log's limit: a huge answer must not fill our memory.
        chunks: list[bytes] = []
        remaining = self.log_body_limit
        content = response.content
        while remaining > 0:
            chunk = await content.read(remaining)
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
            if content.at_eof():  # the usual short answer: no second read for b""
                break
        return b"".join(chunks).decode("utf-8", errors="replace")
