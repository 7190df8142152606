"""Couriers against a real receiver on 127.0.0.1: batching, the attempt log, memory bounds."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import orjson

from tests.helpers import Receiver, order_event, wait_for
from tests.helpers import attempt_log as attempts
from tests.inprocess import connect, running_server


def hook(receiver: Receiver, **settings: Any) -> dict[str, Any]:
    webhook = {"name": "erp", "url": receiver.url("/erp"), "events": ["order_*"]}
    webhook.update(settings)
    return webhook


def numbers(receiver: Receiver) -> list[int]:
    return [event["order_create"]["n"] for event in receiver.events()]


async def test_an_idle_webhook_sends_at_once_and_batches_while_in_flight(
    short_tmp: Path, receiver: Receiver
) -> None:
    receiver.delay = 0.3
    async with running_server(short_tmp, [hook(receiver)]) as server:
        client = await connect(server)
        await client.publish([order_event(0)])
        await wait_for(lambda: len(receiver.requests) == 1, 5, "the first request")
        await client.publish([order_event(i) for i in range(1, 51)])
        await wait_for(lambda: len(receiver.events()) == 51, 10, "all events")
        assert [len(r.events) for r in receiver.requests] == [1, 50]
        assert numbers(receiver) == list(range(51))
        await client.close()


async def test_linger_collects_events_unless_the_delivery_is_full(
    short_tmp: Path, receiver: Receiver
) -> None:
    webhooks = [
        hook(receiver, linger="400ms"),
        hook(receiver, name="full", url=receiver.url("/full"), linger="60s", maximum_events=5),
    ]
    async with running_server(short_tmp, webhooks) as server:
        client = await connect(server)
        for i in range(3):
            await client.publish([order_event(i)])
        await wait_for(lambda: len(receiver.events("/erp")) == 3, 5, "the lingering delivery")
        assert [len(r.events) for r in receiver.requests if r.path == "/erp"] == [3]
        # "full" never waits its 60 s linger: 5 events fill a delivery.
        await client.publish([order_event(i) for i in range(3, 5)])
        await wait_for(lambda: len(receiver.events("/full")) == 5, 5, "a full delivery")
        await client.close()


async def test_retries_keep_the_delivery_id_and_events_and_log_every_attempt(
    short_tmp: Path, receiver: Receiver
) -> None:
    answers = iter([500, 302, 200])
    receiver.answer = lambda _: (next(answers), {"Location": receiver.url("/elsewhere")})
    webhook = hook(
        receiver,
        authentication="basic",
        basic_username="erp",
        basic_password="s3cret",
        headers={"X-Env": "test"},
    )
    async with running_server(
        short_tmp, [webhook], daemon={"log_body_limit": 4}, defaults={"retry_schedule": ["50ms"] * 200}
    ) as server:
        client = await connect(server)
        await client.publish([order_event(i) for i in range(3)])
        await wait_for(lambda: len(receiver.requests) == 3, 10, "three attempts")
        await client.close()
    ids = {r.headers["webhook-id"] for r in receiver.requests}
    assert len(ids) == 1 and ids.pop().startswith("msg_")
    assert len({r.body for r in receiver.requests}) == 1
    assert all(r.path == "/erp" for r in receiver.requests)  # the 302 was not followed
    log = attempts(short_tmp)
    assert [(a["attempt"], a["status_code"], a["success"], a["error"]) for a in log] == [
        (1, 500, 0, "500"),
        (2, 302, 0, "302"),
        (3, 200, 1, None),
    ]
    assert {a["delivery_id"] for a in log} == {receiver.requests[0].headers["webhook-id"]}
    assert log[2]["response"] == "rece"  # cut to log_body_limit
    headers = {h["name"]: h["value"] for h in orjson.loads(log[0]["request_headers"])}
    assert headers["Authorization"] == "***" and headers["X-Env"] == "***"
    assert headers["webhook-id"] == log[0]["delivery_id"]
    assert "s3cret" not in (short_tmp / "data" / "webhookd.db").read_bytes().decode("latin-1")
    sent = receiver.requests[0].headers
    assert sent["Authorization"] == "Basic ZXJwOnMzY3JldA==" and sent["X-Env"] == "test"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_failures_are_classified(short_tmp: Path, receiver: Receiver) -> None:
    receiver.delay = 2
    webhooks = [
        {"name": "refused", "url": f"http://127.0.0.1:{free_port()}/x", "events": ["order_*"]},
        hook(receiver, name="slow", timeout="200ms"),
        # TLS to an endpoint that speaks plain HTTP: the handshake fails.
        {"name": "tls", "url": f"https://127.0.0.1:{receiver.port}/t", "events": ["order_*"]},
    ]
    async with running_server(short_tmp, webhooks, defaults={"retry_schedule": ["60s"]}) as server:
        client = await connect(server)
        await client.publish([order_event(1)])
        await wait_for(lambda: len(attempts(short_tmp)) == 3, 10, "three attempts")
        await client.close()
    errors = {a["uri"]: a["error"] for a in attempts(short_tmp)}
    assert errors == {
        webhooks[0]["url"]: "connection",
        webhooks[1]["url"]: "timeout",
        webhooks[2]["url"]: "tls",
    }


async def test_an_oversize_event_is_sent_alone_with_a_warning(
    short_tmp: Path, receiver: Receiver
) -> None:
    async with running_server(short_tmp, [hook(receiver, maximum_size="1KB")]) as server:
        client = await connect(server)
        await client.publish([order_event(1), order_event(2, pad="x" * 5000), order_event(3)])
        await wait_for(lambda: len(receiver.events()) == 3, 5, "all three events")
        await client.close()
    assert [len(r.events) for r in receiver.requests][-2:] != [2]
    assert all(len(r.body) <= 1000 for r in receiver.requests if len(r.events) > 1)
    warnings = [a["warning"] for a in attempts(short_tmp) if a["warning"]]
    assert len(warnings) == 1 and "over maximum_size" in warnings[0]


async def test_a_dead_endpoint_backlog_stays_in_sqlite_not_in_memory(
    short_tmp: Path, receiver: Receiver
) -> None:
    receiver.status = 503
    window = 50
    async with running_server(
        short_tmp, [hook(receiver, maximum_events=20)], defaults={"retry_schedule": ["50ms"] * 200}, window_events=window
    ) as server:
        courier = server.couriers["erp"]
        client = await connect(server)
        peak = 0
        for start in range(0, 2000, 100):
            await client.publish([order_event(i) for i in range(start, start + 100)])
            peak = max(peak, courier.buffered)
        assert peak <= 2 * window
        receiver.status = 200

        def all_arrived() -> bool:
            nonlocal peak
            peak = max(peak, courier.buffered)
            return len(set(numbers(receiver))) == 2000

        await wait_for(all_arrived, 30, "the backlog to drain")
        assert peak <= 2 * window
        await client.close()
    # Order held across the spill: successful requests carry 0..1999 in order.
    successful: list[int] = []
    seen_ids: set[str] = set()
    for request in receiver.requests:
        delivery_id = request.headers["webhook-id"]
        if delivery_id in seen_ids:
            continue
        seen_ids.add(delivery_id)
        successful += [e["order_create"]["n"] for e in request.events]
    assert successful == list(range(2000))


async def test_a_restart_resends_pending_deliveries_under_the_same_id(
    short_tmp: Path, receiver: Receiver
) -> None:
    receiver.status = 503
    schedule = {"retry_schedule": ["1s"] * 5}
    async with running_server(short_tmp, [hook(receiver)], defaults=schedule) as server:
        client = await connect(server)
        await client.publish([order_event(i) for i in range(5)])
        await wait_for(lambda: len(receiver.requests) == 1, 5, "the first attempt")
        await client.publish([order_event(i) for i in range(5, 10)])
        await client.close()
    first = receiver.requests[0]
    receiver.status = 200
    async with running_server(short_tmp, [hook(receiver)], defaults=schedule):
        await wait_for(lambda: len(receiver.requests) >= 3, 10, "the resends")
    resend = receiver.requests[1]
    assert resend.headers["webhook-id"] == first.headers["webhook-id"]
    assert resend.body == first.body
    # The retry wait survived the restart: no resend before the stored time (1 s -20%).
    assert resend.at - first.at >= 0.75
    assert numbers(receiver)[5:] == list(range(10))
