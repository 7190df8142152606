"""End-to-end tests: the real daemon as a subprocess, a real HTTP receiver, real sockets.

Nothing is mocked. Every wait polls with a deadline (``wait_for``); no test sleeps
and hopes. SPEC sections 1-4 and 6 are the contract checked here.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import os
import random
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.helpers import (
    Daemon,
    IngestClient,
    Received,
    Receiver,
    item_event,
    ndjson,
    order_event,
    wait_for,
)

pytestmark = pytest.mark.slow

# The fixed pause before a retry until the retry policy exists (SPEC brief: 5 s).
RETRY_PAUSE = 5.0


# -- helpers ----------------------------------------------------------------------------


def hook(
    receiver: Receiver, name: str, path: str, events: list[str], **extra: Any
) -> dict[str, Any]:
    return {"name": name, "url": receiver.url(path), "events": events, **extra}


async def start_daemon(
    daemons: list[Daemon], workdir: Path, webhooks: list[dict[str, Any]], **settings: Any
) -> Daemon:
    daemon = Daemon(workdir, webhooks, **settings)
    daemons.append(daemon)
    await daemon.started()
    return daemon


def header(request: Received, name: str) -> str | None:
    for key, value in request.headers.items():
        if key.lower() == name.lower():
            return value
    return None


def webhook_id(request: Received) -> str:
    value = header(request, "webhook-id")
    assert value, f"request without webhook-id: {request.headers}"
    return value


def numbers(events: list[dict[str, Any]]) -> list[int]:
    """The ``n`` of each delivered element ({"<event>": {... "n": N}})."""
    out = []
    for element in events:
        assert isinstance(element, dict) and len(element) == 1, element
        (obj,) = element.values()
        out.append(obj["n"])
    return out


def batches(requests: list[Received]) -> list[tuple[str, list[dict[str, Any]]]]:
    """Deliveries by webhook-id, in order of first appearance.

    Asserts that every request repeating a webhook-id carries exactly the events of
    its first request (a retry resends exactly those events under that id).
    """
    by_id: dict[str, list[dict[str, Any]]] = {}
    order: list[str] = []
    for request in requests:
        wid = webhook_id(request)
        events = request.events
        if wid in by_id:
            assert by_id[wid] == events, f"delivery {wid} was resent with different events"
        else:
            by_id[wid] = events
            order.append(wid)
    return [(wid, by_id[wid]) for wid in order]


def distinct_numbers(requests: list[Received]) -> list[int]:
    """The ``n`` of every event of every distinct delivery, in delivery order.

    A delivery sent twice (a retry or a resend after a crash) counts once; an event
    appearing in two *different* deliveries is a duplicate the spec forbids.
    """
    out = [n for _, events in batches(requests) for n in numbers(events)]
    assert len(out) == len(set(out)), f"an event arrived in two different deliveries: {out}"
    return out


def ack_numbers(replies: list[dict[str, Any]]) -> list[int]:
    seqs = []
    for reply in replies:
        assert reply["ok"] is True, reply
        assert reply["id"].startswith("evt_"), reply
        seqs.append(int(reply["id"].removeprefix("evt_")))
    return seqs


def records_about(daemon: Daemon, text: str) -> list[dict[str, Any]]:
    """The daemon's JSON log records that mention ``text`` anywhere."""
    return [r for r in daemon.log_records() if text in orjson.dumps(r).decode()]


def delivered_numbers(receiver: Receiver) -> set[int]:
    return {n for request in receiver.requests for n in numbers(request.events)}


async def marker(daemon: Daemon, receiver: Receiver, n: int) -> None:
    """Publish order ``n`` and wait for it: anything sent before it has arrived by then
    (per-webhook order), so a stray duplicate or a wrongly kept event would show."""
    client = await daemon.client()
    ack_numbers(await client.publish([order_event(n)]))
    await client.close()
    await wait_for(lambda: n in delivered_numbers(receiver), 30, f"marker event {n}")


def accepting(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(str(path))
        except OSError:
            return False
    return True


async def pipelined(
    client: IngestClient, events: list[dict[str, Any]], writes: int
) -> list[dict[str, Any]]:
    """Send ``events`` in ``writes`` big writes while reading the replies concurrently
    (the daemon stops reading from a producer that does not read its replies)."""
    size = -(-len(events) // writes)

    async def send() -> None:
        for start in range(0, len(events), size):
            await client.send(ndjson(events[start : start + size]))

    sender = asyncio.create_task(send())
    replies = await client.replies(len(events), timeout=60)
    await sender
    return replies


def run_cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "webhookd", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# -- 1. bulk ingest, batching, order, exactly once -----------------------------------------


async def test_ten_thousand_events_arrive_once_in_order_within_batch_limits(
    short_tmp: Path, daemons: list[Daemon], receiver: Receiver
) -> None:
    maximum_size = 20_000
    daemon = await start_daemon(
        daemons,
        short_tmp,
        [hook(receiver, "erp", "/erp", ["order_*"], maximum_events=100, maximum_size="20KB")],
    )
    rng = random.Random(1)
    events = []
    for n in range(10_000):
        # Blocks of small events (maximum_events binds) and of 200-300-byte events
        # (maximum_size binds).
        pad = "" if (n // 1000) % 2 == 0 else "x" * rng.randint(130, 230)
        events.append(order_event(n, pad=pad) if pad else order_event(n))
    # A slow endpoint while publishing: the backlog must be batched, not sent 1 by 1.
    receiver.delay = 0.3
    client = await daemon.client()
    replies = await pipelined(client, events, writes=4)
    receiver.delay = 0.0
    await client.close()

    seqs = ack_numbers(replies)
    assert all(a < b for a, b in itertools.pairwise(seqs)), "ack ids not increasing"
    assert not any(reply.get("duplicate") for reply in replies)

    await wait_for(
        lambda: sum(len(r.events) for r in receiver.requests) >= len(events),
        60,
        "all 10,000 events to arrive",
    )
    await marker(daemon, receiver, 10_000)
    delivered = [n for request in receiver.requests for n in numbers(request.events)]
    assert delivered == list(range(10_001)), "events lost, duplicated or reordered"

    elements = [orjson.dumps({e["event"]: e["object"]}) for e in events]
    position = 0
    hit_count_limit = hit_size_limit = False
    for request in receiver.requests[:-1]:  # all but the marker's
        assert request.path == "/erp"
        body = request.json
        assert list(body) == ["events"] and isinstance(body["events"], list)
        for element, sent in zip(
            body["events"], events[position : position + len(body["events"])], strict=True
        ):
            assert element == {"order_create": sent["object"]}, "not UltraCart's shape"
        count = len(body["events"])
        assert 1 <= count <= 100, f"a request with {count} events"
        assert len(request.body) <= maximum_size, f"a body of {len(request.body)} bytes"
        position += count
        if count == 100:
            hit_count_limit = True
        elif position < len(events) and len(request.body) + 1 + len(elements[position]) > (
            maximum_size
        ):
            hit_size_limit = True
    assert hit_count_limit, "no request was limited by maximum_events: batching not exercised"
    assert hit_size_limit, "no request was limited by maximum_size: batching not exercised"


async def test_backlog_larger_than_the_memory_window_arrives_once_in_order(
    short_tmp: Path, daemons: list[Daemon], receiver: Receiver
) -> None:
    # 25,000 events behind one slow request: more than the courier keeps in memory
    # (10,000), so the rest must be read back from SQLite, each event exactly once.
    daemon = await start_daemon(daemons, short_tmp, [hook(receiver, "erp", "/erp", ["order_*"])])
    total = 25_000
    receiver.delay = 1.0
    client = await daemon.client()
    acked = await client.publish([order_event(0)])
    await wait_for(lambda: len(receiver.requests) >= 1, 10, "the first request")
    acked += await pipelined(client, [order_event(n) for n in range(1, total)], writes=10)
    ack_numbers(acked)
    receiver.delay = 0.0
    await wait_for(lambda: len(delivered_numbers(receiver)) >= total, 60, "the whole backlog")
    await marker(daemon, receiver, total)
    delivered = [n for request in receiver.requests for n in numbers(request.events)]
    assert delivered == list(range(total + 1))


async def test_single_event_over_maximum_size_is_sent_alone(
    short_tmp: Path, daemons: list[Daemon], receiver: Receiver
) -> None:
    daemon = await start_daemon(
        daemons,
        short_tmp,
        [hook(receiver, "erp", "/erp", ["order_*"], maximum_size="1KB")],
    )
    receiver.delay = 0.3  # let the three events queue up behind the first
    client = await daemon.client()
    replies = await client.publish([order_event(0), order_event(1, pad="y" * 3000), order_event(2)])
    ack_numbers(replies)
    await wait_for(lambda: len(receiver.events()) >= 3, 15, "three events")
    assert [numbers(r.events) for r in receiver.requests] == [[0], [1], [2]]
    big = receiver.requests[1]
    assert len(big.body) > 3000
    # Its attempt is logged with a warning; the others are not.
    await wait_for(
        lambda: any(r.get("level") == "warning" for r in records_about(daemon, webhook_id(big))),
        5,
        "a warning about the oversize delivery",
    )
    for small in (receiver.requests[0], receiver.requests[2]):
        assert not any(
            r.get("level") == "warning" for r in records_about(daemon, webhook_id(small))
        )


async def test_concurrent_producers_are_delivered_in_acceptance_order(
    short_tmp: Path, daemons: list[Daemon], receiver: Receiver
) -> None:
    daemon = await start_daemon(
        daemons, short_tmp, [hook(receiver, "erp", "/erp", ["order_*"], maximum_events=50)]
    )
    accepted: dict[int, int] = {}  # n -> daemon sequence number

    async def producer(first: int) -> None:
        client = await daemon.client()
        for start in range(first, first + 2000, 100):
            batch = [order_event(n) for n in range(start, start + 100)]
            replies = await client.publish(batch)
            for event, seq in zip(batch, ack_numbers(replies), strict=True):
                accepted[event["object"]["n"]] = seq
        await client.close()

    await asyncio.gather(*(producer(p * 10_000) for p in range(4)))
    assert len(set(accepted.values())) == 8000, "two events got the same id"
    await wait_for(lambda: len(delivered_numbers(receiver)) >= 8000, 30, "every producer's events")
    await marker(daemon, receiver, 99_999)
    delivered = distinct_numbers(receiver.requests)[:-1]
    assert sorted(delivered) == sorted(accepted)
    assert delivered == sorted(delivered, key=accepted.__getitem__), "not in acceptance order"
    # Producers really were interleaved (else this test proves little).
    assert delivered != sorted(delivered)


# -- 2. fan-out by subscription -------------------------------------------------------------


async def test_fan_out_follows_subscriptions(
    short_tmp: Path, daemons: list[Daemon], receiver: Receiver
) -> None:
    daemon = await start_daemon(
        daemons,
        short_tmp,
        [
            hook(receiver, "orders", "/orders", ["order_*"]),
            hook(receiver, "subs", "/subs", ["auto_order_*", "item_update"]),
            hook(receiver, "all", "/all", ["*"]),
        ],
    )
    events: list[dict[str, Any]] = []
    for n in range(40):
        kind = n % 5
        if kind == 0:
            events.append(
                {"event": "auto_order_create", "object": {"auto_order_oid": 1000 + n, "n": n}}
            )
        elif kind == 1:
            events.append(order_event(n))
        elif kind == 2:
            events.append(item_event(n, "item_update"))
        elif kind == 3:
            events.append(item_event(n, "item_create"))
        else:
            events.append(
                {"event": "auto_order_rebill", "object": {"auto_order_oid": 2000 + n, "n": n}}
            )
    client = await daemon.client()
    ack_numbers(await client.publish(events))
    await client.close()

    def expected(names: set[str]) -> list[tuple[str, int]]:
        return [(e["event"], e["object"]["n"]) for e in events if e["event"] in names]

    want = {
        "/orders": expected({"order_create"}),
        "/subs": expected({"auto_order_create", "auto_order_rebill", "item_update"}),
        "/all": expected({e["event"] for e in events}),
    }

    def got(path: str) -> list[tuple[str, int]]:
        return [
            (name, obj["n"]) for element in receiver.events(path) for name, obj in element.items()
        ]

    await wait_for(
        lambda: all(len(got(path)) >= len(events_) for path, events_ in want.items()),
        20,
        "every webhook's events",
    )
    assert {r.path for r in receiver.requests} == set(want)
    for path, events_ in want.items():
        assert got(path) == events_, f"{path} got the wrong subset or order"
    assert not any(name.startswith("auto_order") for name, _ in got("/orders"))
    # Each webhook has its own deliveries.
    ids = {path: {webhook_id(r) for r in receiver.requests if r.path == path} for path in want}
    assert not (ids["/orders"] & ids["/subs"]) and not (ids["/orders"] & ids["/all"])


# -- 3. headers ---------------------------------------------------------------------------


async def test_delivery_headers_and_basic_auth(
    short_tmp: Path, daemons: list[Daemon], receiver: Receiver
) -> None:
    password_file = short_tmp / "erp.password"
    password_file.write_text("s3cret-Pa55\n")
    daemon = await start_daemon(
        daemons,
        short_tmp,
        [
            hook(
                receiver,
                "erp",
                "/erp",
                ["order_*"],
                authentication="basic",
                basic_username="erp-user",
                basic_password_file=str(password_file),
                headers={"X-Env": "test"},
            ),
            hook(receiver, "plain", "/plain", ["order_*"]),
        ],
    )
    client = await daemon.client()
    ack_numbers(await client.publish([order_event(1)]))
    await wait_for(lambda: len(receiver.requests) >= 2, 10, "both deliveries")
    before = time.time()
    by_path = {r.path: r for r in receiver.requests}
    for request in by_path.values():
        user_agent = header(request, "User-Agent")
        assert user_agent is not None and user_agent.startswith("webhookd/"), user_agent
        assert header(request, "Content-Type") == "application/json"
        assert header(request, "X-Webhook-Api-Version") == "2017-03-01"
        assert (header(request, "webhook-id") or "").startswith("msg_")
        timestamp = header(request, "webhook-timestamp")
        assert timestamp is not None and timestamp.isdigit()
        assert abs(int(timestamp) - before) < 60
        assert header(request, "webhook-signature") is None  # no signing secret
        assert header(request, "Content-Encoding") is None
    erp, plain = by_path["/erp"], by_path["/plain"]
    expected = "Basic " + base64.b64encode(b"erp-user:s3cret-Pa55").decode()
    assert header(erp, "Authorization") == expected
    assert header(erp, "X-Env") == "test"
    assert header(plain, "Authorization") is None
    assert header(plain, "X-Env") is None
    assert webhook_id(erp) != webhook_id(plain)
    await wait_for(lambda: len(records_about(daemon, webhook_id(erp))) >= 1, 5, "attempt log")
    assert "s3cret-Pa55" not in daemon.log(), "the basic password leaked into the log"


# -- 4. retry --------------------------------------------------------------------------------


async def test_failed_delivery_is_retried_with_same_id_and_events(
    short_tmp: Path, daemons: list[Daemon], receiver: Receiver
) -> None:
    daemon = await start_daemon(daemons, short_tmp, [hook(receiver, "erp", "/erp", ["order_*"])])
    failures = 1

    def answer(request: Received) -> tuple[int, dict[str, str]] | None:
        if len(receiver.requests) <= failures:
            return 500, {}
        return None

    receiver.answer = answer
    receiver.delay = 0.2  # later events pile up behind the first delivery
    client = await daemon.client()
    ack_numbers(await client.publish([order_event(n) for n in range(20)]))
    await wait_for(lambda: len(receiver.requests) >= 2, RETRY_PAUSE + 10, "the first retry")
    first, retry = receiver.requests[0], receiver.requests[1]
    assert webhook_id(retry) == webhook_id(first)
    assert retry.events == first.events
    assert retry.body == first.body, "a retry must resend exactly the same body"
    # Only the timestamp moves on (by the pause before the retry, 5 s +-20%).
    assert (
        int(header(retry, "webhook-timestamp") or 0) - int(header(first, "webhook-timestamp") or 0)
        >= 3
    )
    receiver.delay = 0.0
    await wait_for(
        lambda: set(distinct_numbers(receiver.requests)) >= set(range(20)),
        2 * RETRY_PAUSE + 15,
        "every event after the retries",
    )
    assert distinct_numbers(receiver.requests) == list(range(20))
    # The failing delivery held back the later ones: nothing new was sent meanwhile.
    assert {webhook_id(r) for r in receiver.requests[: failures + 1]} == {webhook_id(first)}
    await marker(daemon, receiver, 1000)
    assert distinct_numbers(receiver.requests) == [*range(20), 1000]
    # The failed attempt is logged, with its status, as a warning or an error.
    failed = [
        r
        for r in records_about(daemon, webhook_id(first))
        if r.get("level") in ("warning", "error") and "500" in orjson.dumps(r).decode()
    ]
    assert len(failed) == failures, records_about(daemon, webhook_id(first))


# -- 5, 6. SIGTERM with a request in flight --------------------------------------------------


async def test_sigterm_lets_in_flight_request_finish_and_keeps_queue(
    short_tmp: Path, daemons: list[Daemon], receiver: Receiver
) -> None:
    webhooks = [hook(receiver, "erp", "/erp", ["order_*"])]
    daemon = await start_daemon(daemons, short_tmp, webhooks, shutdown_timeout="10s")
    receiver.delay = 2.0
    client = await daemon.client()
    acked = await client.publish([order_event(0)])
    await wait_for(lambda: len(receiver.requests) >= 1, 10, "the first request")
    acked += await client.publish([order_event(n) for n in range(1, 50)])
    ack_numbers(acked)
    await client.close()
    in_flight = webhook_id(receiver.requests[0])

    sent = time.monotonic()
    daemon.signal(signal.SIGTERM)
    assert await daemon.wait_exit(10 + 5) == 0
    elapsed = time.monotonic() - sent
    # It waited for the request (2 s minus what had already passed), within the deadline.
    assert 0.5 <= elapsed < 10, f"exited after {elapsed:.2f}s"
    assert len(receiver.requests) == 1, "a new delivery started during shutdown"

    receiver.delay = 0.0
    await daemon.started()
    await wait_for(
        lambda: set(distinct_numbers(receiver.requests)) >= set(range(50)),
        20,
        "the pending events after restart",
    )
    await marker(daemon, receiver, 1000)
    assert distinct_numbers(receiver.requests) == [*range(50), 1000]
    # The in-flight request was allowed to finish (and was recorded): not sent again.
    assert [webhook_id(r) for r in receiver.requests].count(in_flight) == 1
    assert await daemon.stop() == 0


async def test_sigterm_with_hanging_endpoint_exits_at_shutdown_timeout(
    short_tmp: Path, daemons: list[Daemon], receiver: Receiver
) -> None:
    webhooks = [hook(receiver, "erp", "/erp", ["order_*"])]
    daemon = await start_daemon(daemons, short_tmp, webhooks, shutdown_timeout="1s")
    receiver.delay = 3.0  # far longer than shutdown_timeout
    client = await daemon.client()
    acked = await client.publish([order_event(0)])
    await wait_for(lambda: len(receiver.requests) >= 1, 10, "the first request")
    acked += await client.publish([order_event(n) for n in range(1, 30)])
    ack_numbers(acked)
    await client.close()
    in_flight = webhook_id(receiver.requests[0])

    sent = time.monotonic()
    daemon.signal(signal.SIGTERM)
    assert await daemon.wait_exit(10) == 0
    elapsed = time.monotonic() - sent
    assert elapsed < 1.0 + 2.5, f"exited {elapsed:.2f}s after SIGTERM, shutdown_timeout is 1s"

    receiver.delay = 0.0
    await daemon.started()
    await wait_for(
        lambda: set(distinct_numbers(receiver.requests)) >= set(range(30)),
        20,
        "every event after restart",
    )
    await marker(daemon, receiver, 1000)
    assert distinct_numbers(receiver.requests) == [*range(30), 1000]
    # The cut-off delivery was resent under its own id, first.
    assert webhook_id(receiver.requests[1]) == in_flight
    assert receiver.requests[1].events == receiver.requests[0].events
    assert await daemon.stop() == 0


# -- 7. restart resumes pending deliveries ------------------------------------------------


async def test_restart_resumes_pending_events_with_their_webhook_id(
    short_tmp: Path, daemons: list[Daemon], receiver: Receiver
) -> None:
    webhooks = [hook(receiver, "erp", "/erp", ["order_*"], maximum_events=7)]
    daemon = await start_daemon(daemons, short_tmp, webhooks)
    receiver.status = 503
    client = await daemon.client()
    ack_numbers(await client.publish([order_event(n) for n in range(40)]))
    await client.close()
    await wait_for(lambda: len(receiver.requests) >= 1, 10, "a failed attempt")
    failed_ids = {webhook_id(r) for r in receiver.requests}
    assert len(failed_ids) == 1  # a failing delivery holds back the rest
    assert await daemon.stop() == 0
    failed_before = len(receiver.requests)

    # Restart on the same data with a smaller maximum_events: a delivery formed before
    # keeps its id and its events; later ones follow the new setting.
    receiver.status = 200
    webhooks = [hook(receiver, "erp", "/erp", ["order_*"], maximum_events=3)]
    daemon = await start_daemon(daemons, short_tmp, webhooks)
    await wait_for(
        lambda: set(distinct_numbers(receiver.requests)) >= set(range(40)),
        20,
        "every event after restart",
    )
    await marker(daemon, receiver, 1000)
    assert distinct_numbers(receiver.requests) == [*range(40), 1000]
    resumed = receiver.requests[failed_before]
    assert webhook_id(resumed) in failed_ids, "the formed delivery lost its webhook-id"
    assert resumed.body == receiver.requests[0].body
    assert 1 <= len(resumed.events) <= 7
    assert all(len(r.events) <= 3 for r in receiver.requests[failed_before + 1 :])


# -- 8. kill -9 loses no acknowledged event ------------------------------------------------


async def test_kill_9_right_after_acks_loses_nothing(
    short_tmp: Path, daemons: list[Daemon], receiver: Receiver
) -> None:
    daemon = await start_daemon(daemons, short_tmp, [hook(receiver, "erp", "/erp", ["order_*"])])
    receiver.delay = 0.05
    client = await daemon.client()
    replies = await pipelined(client, [order_event(n) for n in range(3000)], writes=3)
    daemon.kill()
    ack_numbers(replies)

    # Again, with a delivery in flight at the crash: only it may arrive twice.
    receiver.delay = 0.5
    await daemon.started()
    await wait_for(lambda: len(receiver.requests) >= 1, 10, "a request in flight")
    daemon.kill()
    in_flight = webhook_id(receiver.requests[0])

    receiver.delay = 0.0
    await daemon.started()
    await wait_for(
        lambda: set(distinct_numbers(receiver.requests)) >= set(range(3000)),
        30,
        "every acknowledged event after kill -9",
    )
    await marker(daemon, receiver, 5000)
    assert distinct_numbers(receiver.requests) == [*range(3000), 5000]
    assert webhook_id(receiver.requests[1]) == in_flight, "the in-flight delivery was not resent"


async def test_kill_9_mid_stream_loses_no_acknowledged_event(
    short_tmp: Path, daemons: list[Daemon], receiver: Receiver
) -> None:
    daemon = await start_daemon(daemons, short_tmp, [hook(receiver, "erp", "/erp", ["order_*"])])
    client = await daemon.client()
    total = 20_000
    acked: list[int] = []
    killed = asyncio.Event()

    async def produce() -> None:
        try:
            for start in range(0, total, 250):
                await client.send(ndjson([order_event(n) for n in range(start, start + 250)]))
        except (ConnectionError, BrokenPipeError):
            pass

    async def consume() -> None:
        while True:
            try:
                line = await client.reader.readline()
            except ConnectionError:
                return
            if not line:
                return
            reply = orjson.loads(line)
            assert reply["ok"] is True, reply
            acked.append(len(acked))
            if len(acked) == 2000:
                daemon.kill()
                killed.set()

    producer = asyncio.create_task(produce())
    async with asyncio.timeout(60):
        await consume()
    await producer
    assert killed.is_set(), "the stream ended before the kill"
    assert len(acked) < total, "everything was acknowledged before the kill: no mid-stream crash"

    await daemon.started()
    await wait_for(
        lambda: set(distinct_numbers(receiver.requests)) >= set(acked),
        30,
        f"the {len(acked)} acknowledged events after kill -9",
    )
    await marker(daemon, receiver, 10 * total)
    delivered = distinct_numbers(receiver.requests)[:-1]
    # Everything acknowledged, in order, then possibly some committed but unacknowledged
    # events (never one that was not sent).
    assert delivered[: len(acked)] == acked
    assert delivered == list(range(len(delivered)))
    assert len(delivered) <= total


# -- 9. one daemon per data dir ---------------------------------------------------------------


async def test_second_serve_on_same_data_dir_is_refused(
    short_tmp: Path, daemons: list[Daemon], receiver: Receiver
) -> None:
    daemon = await start_daemon(daemons, short_tmp, [hook(receiver, "erp", "/erp", ["order_*"])])
    second = await asyncio.to_thread(run_cli, "serve", "--config", str(daemon.config))
    assert second.returncode == 2, second
    assert "another webhookd is running on" in second.stderr + second.stdout
    assert str(daemon.data_dir) in second.stderr + second.stdout
    # The first daemon is unharmed: its socket still works and delivers.
    assert daemon.process is not None and daemon.process.poll() is None
    client = await daemon.client()
    ack_numbers(await client.publish([order_event(7)]))
    await wait_for(lambda: len(receiver.events()) >= 1, 10, "a delivery")
    assert numbers(receiver.events()) == [7]


async def test_live_socket_of_another_daemon_is_not_taken_over(
    short_tmp: Path, daemons: list[Daemon], receiver: Receiver
) -> None:
    (short_tmp / "a").mkdir()
    (short_tmp / "b").mkdir()
    first = await start_daemon(daemons, short_tmp / "a", [])
    client = await first.client()
    assert ack_numbers(await client.publish([order_event(1)])) == [1]
    await client.close()

    second = Daemon(short_tmp / "b", [], socket_dir=str(first.socket_dir))
    daemons.append(second)
    second.start()
    await wait_for(
        lambda: (
            second.process is not None
            and (second.process.poll() is not None or "server.ready" in second.log())
        ),
        15,
        "the second daemon to start or give up",
    )
    # The socket still leads to the first daemon (its next event id is 2)...
    client = await first.client()
    assert ack_numbers(await client.publish([order_event(2)])) == [2]
    await client.close()
    # ...and the second one refused to start.
    assert await second.wait_exit(5) != 0


# -- 10. SIGHUP --------------------------------------------------------------------------------


async def test_sighup_does_not_kill_the_daemon(
    short_tmp: Path, daemons: list[Daemon], receiver: Receiver
) -> None:
    daemon = await start_daemon(daemons, short_tmp, [hook(receiver, "erp", "/erp", ["order_*"])])

    def reload_warning() -> bool:
        return any(
            record.get("level") == "warning"
            and "reload not supported yet" in orjson.dumps(record).decode()
            for record in daemon.log_records()
        )

    daemon.signal(signal.SIGHUP)
    await wait_for(reload_warning, 10, "a warning about reload")
    assert daemon.process is not None and daemon.process.poll() is None
    client = await daemon.client()
    ack_numbers(await client.publish([order_event(1)]))
    await wait_for(lambda: len(receiver.events()) >= 1, 10, "a delivery after SIGHUP")
    assert daemon.process.poll() is None
    assert await daemon.stop() == 0


# -- 11. sockets and file modes ---------------------------------------------------------------


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


async def test_stale_socket_is_replaced_and_modes_are_right(
    short_tmp: Path, daemons: list[Daemon], receiver: Receiver
) -> None:
    daemon = await start_daemon(daemons, short_tmp, [hook(receiver, "erp", "/erp", ["order_*"])])
    assert mode(daemon.ingest_path) == 0o660
    assert stat.S_ISSOCK(os.lstat(daemon.ingest_path).st_mode)
    assert mode(daemon.data_dir) == 0o700
    client = await daemon.client()
    ack_numbers(await client.publish([order_event(0)]))  # the database has been written
    await client.close()
    db_files = sorted(daemon.data_dir.glob("webhookd.db*"))
    assert daemon.data_dir / "webhookd.db" in db_files
    for path in db_files:
        assert mode(path) == 0o600, f"{path.name} has mode {mode(path):o}"

    daemon.kill()
    assert daemon.ingest_path.exists(), "kill -9 should leave the socket file behind"
    with (
        socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock,
        pytest.raises(ConnectionRefusedError),
    ):
        sock.connect(str(daemon.ingest_path))

    await daemon.started()  # waits until the (new) socket accepts connections
    assert mode(daemon.ingest_path) == 0o660
    client = await daemon.client()
    ack_numbers(await client.publish([order_event(1)]))
    # Event 0 may come twice (in flight at the kill), under one webhook-id.
    await wait_for(lambda: 1 in delivered_numbers(receiver), 10, "deliveries after restart")
    assert distinct_numbers(receiver.requests) == [0, 1]
    assert await daemon.stop() == 0
    assert not daemon.ingest_path.exists(), "a clean stop should remove the socket"


async def test_configured_socket_mode(
    short_tmp: Path, daemons: list[Daemon], receiver: Receiver
) -> None:
    daemon = await start_daemon(
        daemons, short_tmp, [hook(receiver, "erp", "/erp", ["order_*"])], socket_mode="0600"
    )
    assert mode(daemon.ingest_path) == 0o600
    client = await daemon.client()
    ack_numbers(await client.publish([order_event(0)]))


# -- 12. the publish CLI ----------------------------------------------------------------------


async def test_publish_cli(short_tmp: Path, daemons: list[Daemon], receiver: Receiver) -> None:
    daemon = await start_daemon(daemons, short_tmp, [hook(receiver, "erp", "/erp", ["order_*"])])
    config = str(daemon.config)

    good = short_tmp / "good.ndjson"
    good.write_bytes(
        ndjson([order_event(n, producer_id=f"p{n}") for n in range(3)])
        + ndjson([order_event(99, producer_id="p1")])  # a repeated producer id
    )
    result = await asyncio.to_thread(run_cli, "publish", "--config", config, str(good))
    assert result.returncode == 0, result
    assert "ok 3, duplicate 1, error 0" in result.stdout

    again = await asyncio.to_thread(run_cli, "publish", "--config", config, str(good))
    assert again.returncode == 0, again
    assert "ok 0, duplicate 4, error 0" in again.stdout

    bad = short_tmp / "bad.ndjson"
    bad.write_bytes(ndjson([order_event(3)]) + b"\n" + b"{not json\n" + ndjson([order_event(4)]))
    result = await asyncio.to_thread(run_cli, "publish", "--config", config, str(bad))
    assert result.returncode == 1, result
    assert "ok 2, duplicate 0, error 1" in result.stdout
    error_lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(error_lines) == 1, result.stderr
    assert "line 3" in error_lines[0] and "invalid_json" in error_lines[0]

    await wait_for(lambda: delivered_numbers(receiver) >= set(range(5)), 10, "the published events")
    assert distinct_numbers(receiver.requests) == [0, 1, 2, 3, 4]

    assert await daemon.stop() == 0
    down = await asyncio.to_thread(run_cli, "publish", "--config", config, str(good))
    assert down.returncode == 1, down
    message = down.stderr.strip()
    assert "not running" in message and "\n" not in message, down.stderr
    assert "ok " not in down.stdout


# -- 13. ingest during shutdown -----------------------------------------------------------------


async def test_lines_after_shutdown_began_are_refused_and_acked_ones_kept(
    short_tmp: Path, daemons: list[Daemon], receiver: Receiver
) -> None:
    webhooks = [hook(receiver, "erp", "/erp", ["order_*"])]
    daemon = await start_daemon(daemons, short_tmp, webhooks, shutdown_timeout="10s")
    receiver.delay = 2.0  # keep the shutdown busy with an in-flight request
    client = await daemon.client()
    acked = ack_numbers(await client.publish([order_event(n) for n in range(10)]))
    assert len(acked) == 10
    await wait_for(lambda: len(receiver.requests) >= 1, 10, "a request in flight")

    daemon.signal(signal.SIGTERM)
    # Shutdown has begun when the socket stops accepting new producers.
    await wait_for(lambda: not accepting(daemon.ingest_path), 10, "intake to stop")
    assert daemon.process is not None and daemon.process.poll() is None

    late = [order_event(n) for n in range(10, 20)]
    try:
        await client.send(ndjson(late))
        late_replies = []
        for _ in late:
            line = await asyncio.wait_for(client.reader.readline(), 15)
            if not line:
                break  # closed: allowed
            late_replies.append(orjson.loads(line))
    except ConnectionError:
        late_replies = []
    for reply in late_replies:
        assert reply["ok"] is False and reply["error"] == "shutting_down", reply
    assert await daemon.wait_exit(15) == 0

    receiver.delay = 0.0
    await daemon.started()
    await wait_for(
        lambda: set(distinct_numbers(receiver.requests)) >= set(range(10)),
        20,
        "the acknowledged events after restart",
    )
    # Refused events would (wrongly) show up before the marker.
    await marker(daemon, receiver, 100)
    assert distinct_numbers(receiver.requests) == [*range(10), 100]


async def test_stream_racing_sigterm_loses_no_acked_event(
    short_tmp: Path, daemons: list[Daemon], receiver: Receiver
) -> None:
    webhooks = [hook(receiver, "erp", "/erp", ["order_*"])]
    daemon = await start_daemon(daemons, short_tmp, webhooks, shutdown_timeout="5s")
    receiver.delay = 0.3  # shutdown waits for a request in flight: intake stays read
    client = await daemon.client()
    limit = 200_000
    sent = 0
    replies: list[dict[str, Any]] = []

    async def produce() -> None:
        nonlocal sent
        try:
            while sent < limit:
                await client.send(ndjson([order_event(n) for n in range(sent, sent + 200)]))
                sent += 200
        except ConnectionError:
            pass

    producer = asyncio.create_task(produce())
    async with asyncio.timeout(60):
        while True:
            try:
                line = await client.reader.readline()
            except ConnectionError:
                break
            if not line:
                break
            replies.append(orjson.loads(line))
            if len(replies) == 3000:
                daemon.signal(signal.SIGTERM)
    producer.cancel()
    await asyncio.gather(producer, return_exceptions=True)
    assert await daemon.wait_exit(15) == 0
    assert len(replies) < sent, "the stream was not cut by the shutdown"

    # Lines read are answered: ok while intake was open, shutting_down after.
    codes = ["ok" if r["ok"] else r["error"] for r in replies]
    assert set(codes) <= {"ok", "shutting_down"}, set(codes)
    oks = codes.count("ok")
    assert codes[:oks] == ["ok"] * oks, "an ok after a shutting_down reply"
    assert oks >= 3000
    ack_numbers(replies[:oks])

    receiver.delay = 0.0
    await daemon.started()
    await marker(daemon, receiver, 10 * limit)
    # Every acknowledged event, and nothing that was refused or never answered.
    assert distinct_numbers(receiver.requests) == [*range(oks), 10 * limit]


async def test_sigint_stops_cleanly(
    short_tmp: Path, daemons: list[Daemon], receiver: Receiver
) -> None:
    daemon = await start_daemon(daemons, short_tmp, [hook(receiver, "erp", "/erp", ["order_*"])])
    client = await daemon.client()
    ack_numbers(await client.publish([order_event(0)]))
    await client.close()
    await wait_for(lambda: 0 in delivered_numbers(receiver), 10, "a delivery")
    daemon.signal(signal.SIGINT)
    assert await daemon.wait_exit(10) == 0
    assert not daemon.ingest_path.exists()


# -- the ingest protocol over the real socket (SPEC §3) ---------------------------------------


async def test_bad_lines_get_error_replies_and_never_close_the_connection(
    short_tmp: Path, daemons: list[Daemon], receiver: Receiver
) -> None:
    daemon = await start_daemon(
        daemons, short_tmp, [hook(receiver, "erp", "/erp", ["order_*"])], max_event_size="1KB"
    )
    client = await daemon.client()
    big = orjson.dumps(order_event(900, pad="z" * 5000))
    # An over-long line that arrives in several writes, between good ones.
    await client.send(ndjson([order_event(0)]) + big[:100])
    await client.send(big[100:3000])
    await client.send(
        big[3000:]
        + b"\n"
        + b"\xff\xfe not utf-8\n"
        + b"{not json\n"
        + b"[1, 2]\n"
        + b'{"event": "order_create", "object": {"merchant_id": "DEMO"}}\n'
        + b'{"event": "order_launch", "object": {"order_id": "X"}}\n'
        + b'{"event": "order_create", "object": "DEMO-1"}\n'
        + orjson.dumps(order_event(901) | {"occurred_at": "yesterday"})
        + b"\n"
        + ndjson([order_event(1, producer_id="same"), order_event(902, producer_id="same")])
        + ndjson([order_event(2)])
    )
    replies = await client.replies(12, timeout=10)
    codes = [r["id"] if r["ok"] else r["error"] for r in replies]
    assert codes[1:9] == [
        "too_large",
        "invalid_json",
        "invalid_json",
        "invalid_event",
        "invalid_event",
        "unknown_event",
        "invalid_event",
        "invalid_event",
    ], replies
    assert all(r.get("detail") for r in replies[1:9])
    first, same, again, last = replies[0], replies[9], replies[10], replies[11]
    assert first["ok"] and same["ok"] and last["ok"], replies
    assert "duplicate" not in same
    # A repeated producer id in the same write (same group commit): the original id.
    duplicate = {"ok": True, "id": same["id"], "producer_id": "same", "duplicate": True}
    assert again == duplicate
    assert (await client.publish([order_event(903, producer_id="same")]))[0] == duplicate
    # The connection is still usable after all of that.
    ack_numbers(await client.publish([order_event(3)]))
    await marker(daemon, receiver, 4)
    assert distinct_numbers(receiver.requests) == [0, 1, 2, 3, 4]


async def test_over_long_last_line_before_eof_is_answered(
    short_tmp: Path, daemons: list[Daemon]
) -> None:
    daemon = await start_daemon(daemons, short_tmp, [], max_event_size="1KB")
    client = await daemon.client()
    big = orjson.dumps(order_event(1, pad="z" * 5000))
    await client.send(ndjson([order_event(0)]) + big)  # the last line has no newline
    client.writer.write_eof()
    replies = []
    async with asyncio.timeout(10):
        while line := await client.reader.readline():
            replies.append(orjson.loads(line))
    assert [r["ok"] for r in replies] == [True, False], replies
    assert replies[1]["error"] == "too_large"


# -- systemd notifications (SPEC §6) -------------------------------------------------------


async def test_systemd_notify_ready_watchdog_stopping(
    short_tmp: Path, daemons: list[Daemon], receiver: Receiver
) -> None:
    notify_path = short_tmp / "notify.sock"
    messages: list[str] = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify_socket:
        notify_socket.bind(str(notify_path))
        notify_socket.setblocking(False)

        def received(prefix: str) -> bool:
            while True:
                try:
                    messages.append(notify_socket.recv(4096).decode())
                except BlockingIOError:
                    break
            return any(line.startswith(prefix) for m in messages for line in m.splitlines())

        daemon = Daemon(short_tmp, [hook(receiver, "erp", "/erp", ["order_*"])])
        daemons.append(daemon)
        daemon.start(extra_env={"NOTIFY_SOCKET": str(notify_path), "WATCHDOG_USEC": "200000"})
        await wait_for(lambda: received("READY=1"), 15, "READY=1")
        # Ready means the ingest socket accepts connections now.
        assert accepting(daemon.ingest_path), "READY=1 before the socket accepts connections"
        ready = next(m for m in messages if "READY=1" in m)
        assert "STATUS=" in ready, ready
        await wait_for(
            lambda: received("WATCHDOG=1") and sum("WATCHDOG=1" in m for m in messages) >= 3,
            10,
            "watchdog pings every WatchdogSec/2",
        )
        daemon.signal(signal.SIGTERM)
        await wait_for(lambda: received("STOPPING=1"), 10, "STOPPING=1")
        assert await daemon.wait_exit(10) == 0
