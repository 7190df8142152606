"""What endpoints receive and how they can trust it, through the real server."""

from __future__ import annotations

import gzip
import sqlite3
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import trustme
from aiohttp import web
from standardwebhooks.webhooks import Webhook as Verifier

from tests.helpers import Daemon, Receiver, item_event, wait_for
from tests.helpers import attempt_log as attempts
from tests.inprocess import connect, running_server

SECRET_A = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SECRET_B = "whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"

ORDER = {
    "merchant_id": "DEMO",
    "order_id": "DEMO-1",
    "current_stage": "Shipping Department",
    "utms": [{"source": "mail"}],
    "shipping": {"ship_to_name": "Ada", "city": "Austin"},
    "billing": {"first_name": "Ada"},
    "items": [{"merchant_item_id": "A", "attributes": [{"name": "color"}], "cost": 5}],
}


def order(n: int, stage: str = "Shipping Department", **extra: Any) -> dict[str, Any]:
    obj = dict(ORDER, order_id=f"DEMO-{n}", current_stage=stage, n=n, **extra)
    return {"event": "order_create", "object": obj}


def hook(receiver: Receiver, name: str, **settings: Any) -> dict[str, Any]:
    webhook = {"name": name, "url": receiver.url(f"/{name}"), "events": ["order_*"]}
    webhook.update(settings)
    return webhook


async def test_signatures_verify_with_every_secret_and_stay_secret(
    short_tmp: Path, receiver: Receiver
) -> None:
    secrets_file = short_tmp / "secrets"
    secrets_file.write_text(f"{SECRET_A}\n{SECRET_B}\n")
    webhooks = [
        hook(receiver, "listed", signing_secret=[SECRET_A, SECRET_B]),
        hook(receiver, "filed", signing_secret_file=str(secrets_file)),
        hook(receiver, "single", signing_secret=SECRET_B),
    ]
    async with running_server(short_tmp, webhooks) as server:
        client = await connect(server)
        await client.publish([order(1)])
        await wait_for(lambda: len(receiver.requests) == 3, 5, "three deliveries")
        await client.close()
    for request in receiver.requests:
        entries = request.headers["webhook-signature"].split(" ")
        assert len(entries) == (1 if request.path == "/single" else 2)
        secrets = [SECRET_B] if request.path == "/single" else [SECRET_A, SECRET_B]
        for secret in secrets:
            assert Verifier(secret).verify(request.body, request.headers)["events"]
    stored = (short_tmp / "data" / "webhookd.db").read_bytes()
    signatures = [e for r in receiver.requests for e in r.headers["webhook-signature"].split()]
    for secret_text in (SECRET_A[6:], SECRET_B[6:], *(s[3:] for s in signatures)):
        assert secret_text.encode() not in stored
    logged = {h["name"]: h["value"] for h in orjson.loads(attempts(short_tmp)[0]["request_headers"])}
    assert logged["webhook-signature"] == "***"


async def test_gzip_with_content_length_and_limits_on_the_json(short_tmp: Path) -> None:
    raw = Receiver(decompress=False)  # sees the bytes as sent
    await raw.start()
    webhook = {
        "name": "gz", "url": raw.url("/gz"), "events": ["order_*"],
        "compress": True, "signing_secret": SECRET_A, "maximum_size": "3KB",
    }
    try:
        async with running_server(short_tmp, [webhook]) as server:
            client = await connect(server)
            await client.publish([order(i) for i in range(40)])
            await wait_for(lambda: sum(len(orjson.loads(gzip.decompress(r.body))["events"])
                                       for r in raw.requests) == 40, 5, "all events")
            await client.close()
    finally:
        await raw.stop()
    for request in raw.requests:
        headers, body = request.headers, request.body
        assert headers["Content-Encoding"] == "gzip"
        assert int(headers["Content-Length"]) == len(body)
        assert "chunked" not in headers.get("Transfer-Encoding", "")
        json_body = gzip.decompress(body)
        assert len(json_body) <= 3000 < len(json_body) + 3000  # the limit is on the JSON
        Verifier(SECRET_A).verify(json_body, headers)  # signed before compression
    assert len(raw.requests) > 1


async def test_expansions_versions_and_sizes(short_tmp: Path, receiver: Receiver) -> None:
    versions = [
        {
            "version": "2016-10-01",
            "rename": {"order.shipping.ship_to_name": "order.shipping.name"},
            "remove": ["order.utms"],
            "set_default": {"order.language_iso_code": "ENG"},
        }
    ]
    webhooks = [
        hook(receiver, "whole"),
        hook(receiver, "expanded", expansions={"order": "shipping,items.attributes"}),
        hook(receiver, "old", api_version="2016-10-01", expansions={"order": "shipping,utms"},
             maximum_size="1KB"),
    ]
    async with running_server(short_tmp, webhooks, api_versions=versions) as server:
        client = await connect(server)
        await client.publish([order(i) for i in range(10)])
        await wait_for(lambda: len(receiver.events()) == 30, 5, "all deliveries")
        await client.close()
    whole = receiver.events("/whole")[0]["order_create"]
    assert whole["shipping"] == ORDER["shipping"] and "billing" in whole
    expanded = receiver.events("/expanded")[0]["order_create"]
    assert "billing" not in expanded and "utms" not in expanded
    assert expanded["shipping"] == ORDER["shipping"]
    assert expanded["items"] == ORDER["items"]  # each element: base fields + attributes
    assert expanded["current_stage"] == "Shipping Department"  # base fields stay
    old_requests = [r for r in receiver.requests if r.path == "/old"]
    old = old_requests[0].events[0]["order_create"]
    assert old["shipping"] == {"name": "Ada", "city": "Austin"}
    assert old["language_iso_code"] == "ENG" and "utms" not in old and "items" not in old
    assert {r.headers["X-Webhook-Api-Version"] for r in old_requests} == {"2016-10-01"}
    assert receiver.requests[0].headers["X-Webhook-Api-Version"] in ("2017-03-01", "2016-10-01")
    assert all(len(r.body) <= 1000 for r in old_requests) and len(old_requests) > 1


async def test_filters_apply_at_fan_out(short_tmp: Path, receiver: Receiver) -> None:
    webhook = hook(
        receiver, "shipping", events=["order_*", "item_*"],
        filter={"order": {"current_stage": ["Shipping Department"], "n": [{"numeric": ["<", 5]}]}},
    )
    async with running_server(short_tmp, [webhook]) as server:
        client = await connect(server)
        await client.publish(
            [order(1), order(2, stage="Accounts Receivable"), item_event(3), order(7), order(4)]
        )
        await wait_for(lambda: len(receiver.events()) == 3, 5, "the matching events")
        await client.close()
    received = [next(iter(e.values())) for e in receiver.events()]
    assert [e.get("n") for e in received] == [1, 3, 4]
    db = sqlite3.connect(short_tmp / "data" / "webhookd.db")
    # Filtered-out events were never queued for the webhook (but are stored).
    assert db.execute("SELECT count(*) FROM events").fetchone() == (5,)
    db.close()


async def test_tls_with_ca_file_and_without(short_tmp: Path) -> None:
    ca = trustme.CA()
    certificate = ca.issue_cert("localhost", "127.0.0.1")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate.configure_cert(server_context)
    ca_file = short_tmp / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    received: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        received.append(request.path)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/{name}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    webhooks = [
        {"name": "trusted", "url": f"https://localhost:{port}/trusted", "events": ["order_*"],
         "ca_file": str(ca_file)},
        {"name": "untrusted", "url": f"https://127.0.0.1:{port}/untrusted", "events": ["order_*"],
         "retry_schedule": ["60s"]},
    ]
    try:
        async with running_server(short_tmp, webhooks) as server:
            client = await connect(server)
            await client.publish([order(1)])
            await wait_for(lambda: len(attempts(short_tmp)) == 2, 10, "both attempts")
            await client.close()
    finally:
        await runner.cleanup()
    assert received == ["/trusted"]
    errors = {a["uri"].rsplit("/", 1)[1]: a["error"] for a in attempts(short_tmp)}
    assert errors == {"trusted": None, "untrusted": "tls"}


async def test_blocked_networks_check_the_address_connected_to(
    short_tmp: Path, receiver: Receiver
) -> None:
    port = receiver.port
    webhooks = [
        {"name": "literal", "url": f"http://127.0.0.1:{port}/a", "events": ["order_*"]},
        {"name": "named", "url": f"http://localhost:{port}/b", "events": ["order_*"]},
        {"name": "mapped", "url": f"http://[::ffff:127.0.0.1]:{port}/c", "events": ["order_*"],
         "allow_http": True},
    ]
    schedule = {"retry_schedule": ["60s"]}
    daemon = {"blocked_networks": ["127.0.0.0/8", "::1/128"]}
    async with running_server(short_tmp, webhooks, daemon=daemon, defaults=schedule) as server:
        client = await connect(server)
        await client.publish([order(1)])
        await wait_for(lambda: len(attempts(short_tmp)) == 3, 10, "three attempts")
        await client.close()
    assert receiver.requests == []
    assert {a["error"] for a in attempts(short_tmp)} == {"blocked_address"}
    assert all("blocked_networks" in a["response"] for a in attempts(short_tmp))


async def test_egress_proxy_carries_the_requests(short_tmp: Path, receiver: Receiver) -> None:
    proxied: list[str] = []
    session = aiohttp.ClientSession()

    async def forward(request: web.Request) -> web.Response:
        # A minimal forward proxy: the request line holds the absolute target URL.
        proxied.append(str(request.url))
        async with session.request(
            request.method, request.url, headers=request.headers, data=await request.read()
        ) as answer:
            return web.Response(status=answer.status, body=await answer.read())

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", forward)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    # The proxy is the address connected to: a blocked receiver is still reached through it.
    daemon = {"proxy": f"http://127.0.0.1:{port}", "blocked_networks": ["10.0.0.0/8"]}
    try:
        async with running_server(short_tmp, [hook(receiver, "erp")], daemon=daemon) as server:
            client = await connect(server)
            await client.publish([order(1)])
            await wait_for(lambda: len(receiver.requests) == 1, 5, "the proxied delivery")
            await client.close()
    finally:
        await runner.cleanup()
        await session.close()
    assert proxied == [receiver.url("/erp")]
    assert receiver.requests[0].events[0]["order_create"]["order_id"] == "DEMO-1"


async def test_a_blocked_proxy_is_refused(short_tmp: Path, receiver: Receiver) -> None:
    daemon = {"proxy": "http://127.0.0.1:9", "blocked_networks": ["127.0.0.0/8"]}
    webhook = hook(receiver, "erp", retry_schedule=["60s"])
    async with running_server(short_tmp, [webhook], daemon=daemon) as server:
        client = await connect(server)
        await client.publish([order(1)])
        await wait_for(lambda: len(attempts(short_tmp)) == 1, 5, "the attempt")
        await client.close()
    assert attempts(short_tmp)[0]["error"] == "blocked_address"


async def test_the_daemon_process_signs_compresses_shapes_and_filters(
    short_tmp: Path, daemons: list[Daemon]
) -> None:
    """The same features through `python -m webhookd serve` and its TOML file."""
    raw = Receiver(decompress=False)
    await raw.start()
    webhook = {
        "name": "erp", "url": raw.url("/erp"), "events": ["order_*"],
        "signing_secret": [SECRET_A, SECRET_B], "compress": True,
        "expansions": {"order": "shipping"},
        "filter": {"order": {"current_stage": [{"prefix": "Shipping"}]}},
    }
    daemon = Daemon(short_tmp, [webhook])
    daemons.append(daemon)
    try:
        await daemon.started()
        client = await daemon.client()
        await client.publish([order(1), order(2, stage="Completed Order"), order(3)])
        await wait_for(lambda: sum(len(orjson.loads(gzip.decompress(r.body))["events"])
                                   for r in raw.requests) == 2, 10, "the matching events")
        await client.close()
        assert await daemon.stop() == 0
    finally:
        await raw.stop()
    events = [
        e["order_create"] for r in raw.requests for e in orjson.loads(gzip.decompress(r.body))["events"]
    ]
    assert [e["n"] for e in events] == [1, 3]
    assert all(set(e) == {"merchant_id", "order_id", "current_stage", "n", "shipping"}
               for e in events)
    for request in raw.requests:
        for secret in (SECRET_A, SECRET_B):
            Verifier(secret).verify(gzip.decompress(request.body), request.headers)
    log = daemon.log()
    assert SECRET_A[6:] not in log and SECRET_B[6:] not in log


async def test_the_daemon_process_versions_tls_and_blocked_addresses(
    short_tmp: Path, daemons: list[Daemon]
) -> None:
    """API versions, TLS with ca_file and blocked_networks through the daemon process."""
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    ca_file = short_tmp / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    app = web.Application()
    secure: list[dict[str, Any]] = []

    async def handle(request: web.Request) -> web.Response:
        secure.append(dict(request.headers) | {"body": await request.json()})
        return web.Response(text="ok")

    app.router.add_post("/secure", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    versions = [{"version": "2016-10-01", "rename": {"order.shipping.ship_to_name": "order.shipping.name"}}]
    webhooks = [
        {"name": "secure", "url": f"https://localhost:{port}/secure", "events": ["order_*"],
         "ca_file": str(ca_file), "api_version": "2016-10-01"},
        # Loopback even unmapped, so a failing check could never reach another host.
        {"name": "blocked", "url": "http://[::ffff:127.0.0.2]:9/x", "events": ["order_*"],
         "allow_http": True,
         "retry_schedule": ["60s"]},
    ]
    daemon = Daemon(short_tmp, webhooks, api_versions=versions,
                    blocked_networks=["127.0.0.2/32"])
    daemons.append(daemon)
    try:
        await daemon.started()
        client = await daemon.client()
        await client.publish([order(1)])
        await wait_for(lambda: len(secure) == 1 and len(attempts(short_tmp)) == 2, 10, "attempts")
        await client.close()
        assert await daemon.stop() == 0
    finally:
        await runner.cleanup()
    (request,) = secure
    assert request["X-Webhook-Api-Version"] == "2016-10-01"
    assert request["body"]["events"][0]["order_create"]["shipping"] == {
        "name": "Ada", "city": "Austin"
    }
    errors = {a["uri"]: a["error"] for a in attempts(short_tmp)}
    assert errors == {webhooks[0]["url"]: None, webhooks[1]["url"]: "blocked_address"}
