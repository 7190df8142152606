"""Retries, endpoint state, order, concurrency and rate limits against a real receiver."""

from __future__ import annotations

import asyncio
import itertools
import os
import stat
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from tests.helpers import Received, Receiver, order_event, wait_for
from tests.inprocess import connect, running_server
from webhookd.client import admin_request


def hook(receiver: Receiver, name: str = "erp", **settings: Any) -> dict[str, Any]:
    webhook = {"name": name, "url": receiver.url(f"/{name}"), "events": ["order_*"]}
    webhook.update(settings)
    return webhook


def n_of(request: Received) -> list[int]:
    return [event["order_create"]["n"] for event in request.events]


def distinct(receiver: Receiver, path: str | None = None) -> list[int]:
    """Event numbers in arrival order, each delivery id counted once."""
    seen: set[str] = set()
    out: list[int] = []
    for request in receiver.requests:
        if path is not None and request.path != path:
            continue
        if request.headers["webhook-id"] not in seen:
            seen.add(request.headers["webhook-id"])
            out += n_of(request)
    return out


async def test_schedule_exhausted_marks_failed_and_the_next_goes_on(
    short_tmp: Path, receiver: Receiver
) -> None:
    receiver.answer = lambda r: (500, {}) if 0 in n_of(r) else None
    webhook = hook(receiver, retry_schedule=["100ms", "200ms"])
    async with running_server(short_tmp, [webhook]) as server:
        client = await connect(server)
        await client.publish([order_event(0)])
        await wait_for(lambda: len(receiver.requests) == 1, 5, "the first attempt")
        await client.publish([order_event(1), order_event(2)])
        await wait_for(lambda: 2 in distinct(receiver), 10, "the next delivery")
        courier = server.couriers["erp"]
        assert courier.counters["gave_up"] == 1 and courier.state.consecutive_failures == 0
        await client.close()
    attempts_of_0 = [r for r in receiver.requests if n_of(r) == [0]]
    assert len(attempts_of_0) == 3  # immediate + one per step
    gaps = [b.at - a.at for a, b in itertools.pairwise(attempts_of_0)]
    assert 0.08 <= gaps[0] and 0.16 <= gaps[1]  # 100 ms and 200 ms, -20% jitter at most
    # Strict order: 1 and 2 went only after 0 was given up.
    assert receiver.requests.index(attempts_of_0[-1]) < len(receiver.requests) - 1
    assert distinct(receiver) == [0, 1, 2]


async def test_retry_after_is_honoured_and_capped(short_tmp: Path, receiver: Receiver) -> None:
    answers = {"/slow": iter([(429, {"Retry-After": "1"})]),
               "/capped": iter([(503, {"Retry-After": "3600"})])}
    receiver.answer = lambda r: next(answers[r.path], None)
    webhooks = [
        hook(receiver, "slow", retry_schedule=["50ms", "5s"]),
        hook(receiver, "capped", retry_schedule=["50ms", "300ms"]),
    ]
    async with running_server(short_tmp, webhooks) as server:
        client = await connect(server)
        await client.publish([order_event(1)])
        await wait_for(lambda: len(receiver.requests) == 4, 10, "both retries")
        await client.close()
    by_path = {path: [r.at for r in receiver.requests if r.path == path] for path in answers}
    slow = by_path["/slow"][1] - by_path["/slow"][0]
    capped = by_path["/capped"][1] - by_path["/capped"][0]
    assert 0.95 <= slow < 2  # at least the given second, not the 50 ms step
    assert 0.25 <= capped < 1  # at most the largest step (300 ms), not an hour


async def test_410_disables_at_once_and_enable_resumes_where_it_stopped(
    short_tmp: Path, receiver: Receiver
) -> None:
    receiver.status = 410
    async with running_server(short_tmp, [hook(receiver, retry_schedule=["50ms"] * 5)]) as server:
        admin = server.admin.path
        client = await connect(server)
        await client.publish([order_event(0)])
        await wait_for(lambda: server.couriers["erp"].state.disabled, 5, "the 410 to disable")
        await client.publish([order_event(i) for i in range(1, 20)])  # keeps queueing
        status, view = await admin_request(admin, "GET", "/v1/webhooks/erp")
        assert status == 200 and view["disabled"] is True
        assert "410" in view["disabled_reason"] and view["pending"] == 20
        assert len(receiver.requests) == 1  # sends nothing while disabled
        receiver.status = 200
        status, view = await admin_request(admin, "POST", "/v1/webhooks/erp/enable")
        assert status == 200 and view["disabled"] is False
        await wait_for(lambda: len(set(distinct(receiver))) == 20, 10, "the backlog")
        await client.close()
    assert receiver.requests[1].headers["webhook-id"] == receiver.requests[0].headers["webhook-id"]
    assert distinct(receiver) == list(range(20))


async def test_disable_after_and_disabled_survives_a_restart(
    short_tmp: Path, receiver: Receiver
) -> None:
    receiver.status = 500
    webhook = hook(receiver, retry_schedule=["50ms"] * 100, disable_after="300ms")
    async with running_server(short_tmp, [webhook]) as server:
        client = await connect(server)
        await client.publish([order_event(0)])
        await wait_for(lambda: server.couriers["erp"].state.disabled, 5, "disable_after")
        assert server.couriers["erp"].state.disabled_reason == "no success for 300ms"
        await client.close()
    tried = len(receiver.requests)
    receiver.status = 200
    async with running_server(short_tmp, [webhook]) as server:
        status, data = await admin_request(server.admin.path, "GET", "/v1/status")
        assert status == 200
        (row,) = data["webhooks"]
        assert row["state"] == "disabled" and row["pending"] == 1
        await admin_request(server.admin.path, "POST", "/v1/webhooks/erp/enable")
        await wait_for(lambda: len(receiver.requests) == tried + 1, 5, "the retry after enable")
        await wait_for(lambda: server.couriers["erp"].state.last_success_at is not None, 5)
    assert distinct(receiver) == [0]  # the same delivery, resumed


async def test_concurrency_runs_deliveries_in_parallel(short_tmp: Path, receiver: Receiver) -> None:
    receiver.delay = 0.3
    webhook = hook(receiver, concurrency=4, maximum_events=1)
    async with running_server(short_tmp, [webhook]) as server:
        client = await connect(server)
        await client.publish([order_event(i) for i in range(12)])
        await wait_for(lambda: len(receiver.requests) == 12, 10, "all deliveries")
        await client.close()
    assert receiver.max_active == 4
    assert sorted(distinct(receiver)) == list(range(12))


async def test_rate_limit_caps_one_webhook_without_stalling_others(
    short_tmp: Path, receiver: Receiver
) -> None:
    webhooks = [
        hook(receiver, "limited", maximum_events=1, rate_limit="5/s"),
        hook(receiver, "free", maximum_events=1),
    ]
    async with running_server(short_tmp, webhooks) as server:
        client = await connect(server)
        await client.publish([order_event(i) for i in range(6)])
        await wait_for(lambda: len(distinct(receiver, "/free")) == 6, 5, "the free webhook")
        free_done = time.time()
        await wait_for(lambda: len(distinct(receiver, "/limited")) == 6, 5, "the limited one")
        await client.close()
    limited = [r.at for r in receiver.requests if r.path == "/limited"]
    assert limited[-1] - limited[0] >= 0.95  # 5 gaps of 200 ms
    assert free_done < limited[-1]


async def test_a_timing_out_endpoint_does_not_slow_the_others(
    short_tmp: Path, receiver: Receiver
) -> None:
    receiver.answer = lambda r: None
    slow = Receiver(delay=30)
    await slow.start()
    try:
        webhooks = [
            {"name": "slow", "url": slow.url(), "events": ["order_*"], "timeout": "1s"},
            hook(receiver, "fast"),
        ]
        async with running_server(
            short_tmp, webhooks, daemon={"shutdown_timeout": "100ms"}
        ) as server:
            client = await connect(server)
            started = time.monotonic()
            for start in range(0, 500, 50):
                await client.publish([order_event(i) for i in range(start, start + 50)])
            await wait_for(lambda: len(distinct(receiver)) == 500, 10, "the fast webhook")
            assert time.monotonic() - started < 3  # never waited for the slow one's timeout
            assert distinct(receiver) == list(range(500))
            await client.close()
    finally:
        await slow.stop()


async def test_admin_api_and_cli(short_tmp: Path, receiver: Receiver) -> None:
    async with running_server(short_tmp, [hook(receiver)]) as server:
        path = server.admin.path
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert await admin_request(path, "GET", "/healthz") == (200, {"ok": True})
        status, body = await admin_request(path, "GET", "/v1/webhooks/nope")
        assert status == 404 and body["error"] == "not_found"
        status, hooks = await admin_request(path, "GET", "/v1/webhooks")
        assert [h["name"] for h in hooks] == ["erp"] and hooks[0]["source"] == "config"
        assert hooks[0]["retry_schedule"] == ["5s", "5m", "30m", "2h", "5h", "10h", "10h"]
        config = short_tmp / "cli.toml"
        config.write_text(f'[daemon]\nsocket_dir = "{short_tmp / "run"}"\n')

        async def cli(*args: str) -> tuple[int, str, str]:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "webhookd", "--config", str(config), *args,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )
            out, err = await process.communicate()
            assert process.returncode is not None
            return process.returncode, out.decode(), err.decode()

        code, out, _ = await cli("status", "--json")
        assert code == 0 and orjson.loads(out)["webhooks"][0]["state"] == "active"
        code, out, _ = await cli("webhooks", "disable", "erp")
        assert code == 0 and "erp: disabled" in out
        code, out, _ = await cli("webhooks", "show", "erp", "--json")
        assert orjson.loads(out)["disabled_reason"] == "disabled by the operator"
        code, out, _ = await cli("status")
        assert code == 0 and "disabled" in out
        code, _, err = await cli("webhooks", "enable", "nope")
        assert code == 1 and "no webhook named 'nope'" in err
    code, _, err = await cli("status")
    assert code == 1 and "webhookd is not running" in err and "admin.sock" in err
    assert len(err.strip().splitlines()) == 1


async def test_a_new_webhook_gets_only_events_accepted_after_it_exists(
    short_tmp: Path, receiver: Receiver
) -> None:
    old = hook(receiver, "old")
    async with running_server(short_tmp, [old]) as server:
        client = await connect(server)
        await client.publish([order_event(i) for i in range(3)])
        await client.close()
    async with running_server(short_tmp, [old, hook(receiver, "new")]) as server:
        client = await connect(server)
        await client.publish([order_event(3)])
        await wait_for(lambda: distinct(receiver, "/old") == [0, 1, 2, 3], 5, "old webhook")
        await wait_for(lambda: distinct(receiver, "/new") == [3], 5, "new webhook")
        await client.close()
