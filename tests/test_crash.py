"""kill -9 at any moment: no acknowledged event is lost, only the delivery in flight at the
crash may arrive twice, and per webhook events first arrive in acceptance order.

SPEC §1 (Durable ack, At-least-once, Order), §3 (replies, producer ids) and §4 ("A
delivery", "Outcome"). The real daemon runs as a subprocess against a real receiver that
fails, hangs and answers 429 at random; nothing is mocked or patched. Every wait polls with
a deadline; the only sleeps are the random pre-kill delays and the producer's pacing.

The random moments come from a seeded ``random.Random``; the seed is printed (shown by
pytest on failure) and ``WEBHOOKD_CRASH_SEED=<seed>`` runs the same choices again (the
timing of a real process still varies).
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import os
import random
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.helpers import Daemon, IngestClient, Received, Receiver, ndjson, order_event, wait_for

pytestmark = pytest.mark.slow

ORDERS, ALL = "/orders", "/all"
# What each receiver path is subscribed to ("order_*" and "*"), by the names we send.
SUBSCRIBED = {ORDERS: {"order_create"}, ALL: {"order_create", "item_update"}}
SCHEDULE = ["100ms", "200ms", "300ms"] * 50  # short, and never exhausted by chance
ITERATIONS = 16
LOOP_BUDGET = 30.0  # seconds of kill/restart cycles at most, whatever ITERATIONS says


# -- helpers ----------------------------------------------------------------------------


def crash_seed() -> int:
    value = os.environ.get("WEBHOOKD_CRASH_SEED")
    return int(value) if value else random.SystemRandom().randrange(2**32)


def header(request: Received, name: str) -> str | None:
    for key, value in request.headers.items():
        if key.lower() == name:
            return value
    return None


def webhook_id(request: Received) -> str:
    value = header(request, "webhook-id")
    assert value, f"request without webhook-id: {request.headers}"
    return value


def elements(request: Received) -> list[tuple[str, dict[str, Any]]]:
    """(event name, object) of each element of a delivered body."""
    out = []
    for element in request.events:
        assert isinstance(element, dict) and len(element) == 1, element
        ((name, obj),) = element.items()
        out.append((name, obj))
    return out


def numbers(requests: list[Received], path: str) -> set[int]:
    return {obj["n"] for r in requests if r.path == path for _, obj in elements(r)}


def item_event(n: int, producer_id: str) -> dict[str, Any]:
    return {
        "event": "item_update",
        "object": {"merchant_item_id": f"ITEM-{n:06d}", "n": n},
        "id": producer_id,
    }


@dataclass
class Producer:
    """Pipelines events with unique producer ids and records every reply.

    Like a real producer, it sends again (same producer id, first thing on its next
    connection) every event whose reply it never read: one committed before the kill must
    be answered ``duplicate`` with its original id and not be queued a second time. So at
    the end every event sent has the daemon id (``evt_<seq>``) it was accepted under.
    """

    rng: random.Random
    events: dict[int, dict[str, Any]] = field(default_factory=dict)  # n -> event as sent
    seq: dict[int, int] = field(default_factory=dict)  # n -> seq of its ok reply
    sends: Counter[int] = field(default_factory=Counter)
    duplicates: set[int] = field(default_factory=set)  # n answered "duplicate": true
    unacked: list[int] = field(default_factory=list)  # sent, reply lost; in send order
    last_fresh: int = 0
    acked_per_run: list[int] = field(default_factory=list)

    def new_event(self) -> int:
        n = len(self.events)
        producer_id = f"crash-{n}"
        if self.rng.random() < 0.6:
            self.events[n] = order_event(n, producer_id)
        else:
            self.events[n] = item_event(n, producer_id)
        return n

    def on_reply(self, n: int, reply: dict[str, Any]) -> None:
        assert reply.get("ok") is True, f"event {n}: {reply}"
        assert reply.get("producer_id") == self.events[n]["id"], (n, reply)
        assert n not in self.seq, f"event {n} answered twice"
        assert reply["id"].startswith("evt_"), reply
        seq = int(reply["id"].removeprefix("evt_"))
        if reply.get("duplicate"):
            # Only an event sent before, whose reply the kill swallowed, can be known.
            assert self.sends[n] > 1, f"event {n} answered duplicate on its first send"
            self.duplicates.add(n)
        else:
            assert seq > self.last_fresh, (
                f"event {n} accepted as evt_{seq} after evt_{self.last_fresh}: daemon ids "
                "must increase in acceptance order"
            )
            self.last_fresh = seq
        self.seq[n] = seq

    async def run(self, client: IngestClient) -> None:
        """Send (resends first, then new events) and read replies until the daemon dies."""
        waiting: deque[int] = deque()  # sent, reply not read yet, in order
        resend, self.unacked = self.unacked, []
        dead = asyncio.Event()
        acked = 0

        async def send() -> None:
            batch = resend
            while not dead.is_set():
                if not batch:
                    batch = [self.new_event() for _ in range(self.rng.randint(1, 20))]
                waiting.extend(batch)
                self.sends.update(batch)
                await client.send(ndjson([self.events[n] for n in batch]))
                batch = []
                await asyncio.sleep(self.rng.uniform(0.0, 0.03))

        async def receive() -> None:
            nonlocal acked
            while True:
                line = await client.reader.readline()
                if not line:
                    return
                assert waiting, f"a reply for nothing sent: {line!r}"
                self.on_reply(waiting.popleft(), orjson.loads(line))
                acked += 1

        sender = asyncio.create_task(send())
        try:
            await receive()
        except ConnectionError:
            pass
        finally:
            dead.set()
            sender.cancel()  # the daemon is gone: nothing more to send
            await asyncio.gather(sender, return_exceptions=True)
        self.unacked = list(waiting)
        self.acked_per_run.append(acked)
        await client.close()

    async def settle(self, daemon: Daemon) -> int:
        """Send what is still unacknowledged plus one last event; return that last one."""
        client = await daemon.client()
        batch, self.unacked = [*self.unacked, self.new_event()], []
        self.sends.update(batch)
        for n, reply in zip(
            batch, await client.publish([self.events[n] for n in batch]), strict=True
        ):
            self.on_reply(n, reply)
        await client.close()
        return batch[-1]


@dataclass
class Chaos:
    """The receiver's answers: 500, 429 + Retry-After: 1, brief hangs, or 200."""

    receiver: Receiver
    rng: random.Random
    healthy: bool = False
    answers: list[int] = field(default_factory=list)  # status per request, in order

    def __call__(self, request: Received) -> tuple[int, dict[str, str]]:
        # Called right after the request is recorded and right before the handler reads
        # ``delay``, with no await in between: the delay set here is this request's.
        self.receiver.delay = 0.0
        status, headers = 200, {}
        if not self.healthy:
            roll = self.rng.random()
            if roll < 0.15:
                status = 500
            elif roll < 0.25:
                status, headers = 429, {"Retry-After": "1"}
            if self.rng.random() < 0.2:
                self.receiver.delay = self.rng.uniform(0.05, 0.4)
        self.answers.append(status)
        return status, headers


def check_webhook(
    path: str,
    requests: list[tuple[Received, int]],
    producer: Producer,
    starts: list[float],
    seed: int,
) -> dict[str, int]:
    """(a) every event subscribed arrived, nothing else; (b) repeats only as resends of
    one delivery, byte for byte, and a delivery answered 2xx only after a kill; (c) first
    arrivals in acceptance order; (d) no older delivery after a newer one started."""
    where = f"[{path}, seed {seed}]"

    def run(at: float) -> int:
        """Which daemon process sent a request that arrived at ``at``: each one is
        started (``starts``) only after the previous one was killed, so a request of a
        killed process that arrives late still counts as its own."""
        return bisect.bisect_right(starts, at)

    bodies: dict[str, bytes] = {}
    last: dict[str, tuple[float, int]] = {}  # webhook-id -> (arrived at, status answered)
    carrier: dict[int, str] = {}  # n -> the delivery that first brought it
    first_arrivals: list[int] = []  # seq of each event at its first arrival
    current = None
    resent = resent_after_success = 0
    for request, status in requests:
        wid = webhook_id(request)
        if wid in bodies:
            resent += 1
            assert request.body == bodies[wid], (
                f"{where} delivery {wid} was resent with a different body"
            )
            assert wid == current, (
                f"{where} delivery {wid} was sent again after a newer one ({current}) "
                "had started (concurrency = 1)"
            )
            at, answered = last[wid]
            if 200 <= answered < 300:
                resent_after_success += 1
                # Sent by a daemon that was killed before it recorded the success?
                assert run(at) < run(request.at), (
                    f"{where} delivery {wid} was answered {answered} at {at:.3f} and sent "
                    f"again at {request.at:.3f} by the same daemon process, without a crash"
                )
        else:
            bodies[wid], current = request.body, wid
            for name, obj in elements(request):
                n = obj.get("n")
                assert n in producer.events, f"{where} an event never sent arrived: {obj}"
                sent = producer.events[n]
                assert name in SUBSCRIBED[path], f"{where} {name} is not subscribed"
                assert (name, obj) == (sent["event"], sent["object"]), (
                    f"{where} event {n} arrived changed: {name} {obj}"
                )
                assert n not in carrier, (
                    f"{where} event {n} arrived in two deliveries, {carrier[n]} and {wid}: "
                    "only a resend of the same delivery may repeat an event"
                )
                carrier[n] = wid
                first_arrivals.append(producer.seq[n])
        last[wid] = (request.at, status)

    expected = {n for n, e in producer.events.items() if e["event"] in SUBSCRIBED[path]}
    missing = sorted(expected - set(carrier))
    assert not missing, f"{where} {len(missing)} acknowledged events never arrived: {missing[:20]}"
    out_of_order = [(a, b) for a, b in itertools.pairwise(first_arrivals) if b <= a]
    assert not out_of_order, (
        f"{where} first arrivals not in acceptance order (evt seqs): {out_of_order[:10]}"
    )
    return {
        "requests": len(requests),
        "deliveries": len(bodies),
        "resent": resent,
        "resent_after_2xx": resent_after_success,
    }


# -- kill -9 at random moments, repeatedly --------------------------------------------------


async def test_kill_9_at_random_moments_loses_no_acknowledged_event(
    short_tmp: Path, daemons: list[Daemon], receiver: Receiver
) -> None:
    seed = crash_seed()
    print(f"crash test seed: {seed} (WEBHOOKD_CRASH_SEED={seed} to replay)")
    rng = random.Random(seed)
    producer = Producer(random.Random(seed + 1))
    chaos = Chaos(receiver, random.Random(seed + 2))
    receiver.answer = chaos
    webhooks = [
        {
            "name": "orders",
            "url": receiver.url(ORDERS),
            "events": ["order_*"],
            "maximum_events": 10,
            "retry_schedule": SCHEDULE,
        },
        {
            "name": "all",
            "url": receiver.url(ALL),
            "events": ["*"],
            "maximum_events": 25,
            "retry_schedule": SCHEDULE,
        },
    ]
    daemon = Daemon(short_tmp, webhooks)
    daemons.append(daemon)

    kills: list[float] = []
    starts: list[float] = []  # wall clock before each daemon process is started
    in_post = 0
    began = time.monotonic()
    while len(kills) < ITERATIONS and time.monotonic() - began < LOOP_BUDGET:
        starts.append(time.time())
        await daemon.started()
        session = asyncio.create_task(producer.run(await daemon.client()))
        # Sometimes right after start (queue recovery, resumed deliveries), mostly later.
        delay = rng.uniform(0.0, 0.15) if rng.random() < 0.2 else rng.uniform(0.15, 1.2)
        await asyncio.sleep(delay)
        if session.done():
            session.result()  # the producer failed: show why
            raise AssertionError(
                f"the daemon hung up on the producer before the kill:\n{daemon.log()[-3000:]}"
            )
        in_post += receiver.active > 0
        kills.append(time.time())
        daemon.kill()
        async with asyncio.timeout(15):
            await session
    assert len(kills) >= 5, f"only {len(kills)} kill/restart cycles fit in the time budget"

    # A healthy endpoint: everything acknowledged must now reach every subscribed webhook.
    chaos.healthy = True
    starts.append(time.time())
    await daemon.started()
    last = await producer.settle(daemon)
    assert not producer.unacked
    assert set(producer.seq) == set(producer.events)
    expected = {
        path: {n for n, e in producer.events.items() if e["event"] in subscribed}
        for path, subscribed in SUBSCRIBED.items()
    }
    assert last in expected[ORDERS] or last in expected[ALL]

    def all_arrived() -> bool:
        return all(numbers(receiver.requests, path) >= expected[path] for path in expected)

    try:
        await wait_for(all_arrived, 60, "every acknowledged event at every subscribed webhook")
    finally:
        for path in expected:
            missing = sorted(expected[path] - numbers(receiver.requests, path))
            if missing:
                print(f"{path}: {len(missing)} missing, e.g. {missing[:20]}")
    assert await daemon.stop() == 0, daemon.log()[-3000:]

    assert len(chaos.answers) == len(receiver.requests)
    stats = {}
    for path in expected:
        requests = [
            (request, status)
            for request, status in zip(receiver.requests, chaos.answers, strict=True)
            if request.path == path
        ]
        stats[path] = check_webhook(path, requests, producer, starts, seed)
    print(
        f"seed {seed}: {len(kills)} kills ({in_post} with a request open at the receiver) "
        f"in {time.monotonic() - began:.1f}s; {len(producer.events)} events, acked per run "
        f"{producer.acked_per_run}, {len(producer.duplicates)} answered duplicate on "
        f"resend; per webhook {stats}"
    )


# -- kill -9 at two exact moments -----------------------------------------------------------


async def test_kill_9_during_a_post_and_during_a_retry_wait(
    short_tmp: Path, daemons: list[Daemon], receiver: Receiver
) -> None:
    # 1. While a POST is in flight: the endpoint holds the request when the daemon dies.
    webhooks = [
        {"name": "erp", "url": receiver.url("/post"), "events": ["order_*"], "maximum_events": 5}
    ]
    (short_tmp / "post").mkdir()
    daemon = Daemon(short_tmp / "post", webhooks)
    daemons.append(daemon)
    await daemon.started()
    receiver.delay = 5.0
    client = await daemon.client()
    replies = await client.publish([order_event(n, f"post-{n}") for n in range(20)])
    assert all(reply["ok"] for reply in replies), replies
    await client.close()
    await wait_for(lambda: len(receiver.requests) >= 1, 10, "the first POST")
    in_flight = receiver.requests[0]
    daemon.kill()
    assert len(receiver.requests) == 1
    receiver.delay = 0.0
    await daemon.started()
    await wait_for(
        lambda: numbers(receiver.requests, "/post") >= set(range(20)),
        20,
        "the 20 events after the restart",
    )
    assert await daemon.stop() == 0
    resent = receiver.requests[1]
    assert webhook_id(resent) == webhook_id(in_flight), "the in-flight delivery lost its id"
    assert resent.body == in_flight.body, "the in-flight delivery was resent changed"
    ids = [webhook_id(r) for r in receiver.requests]
    assert ids.count(webhook_id(in_flight)) == 2
    assert len(set(ids)) == len(ids) - 1, f"only the in-flight delivery may repeat: {ids}"
    order = [obj["n"] for r in receiver.requests[1:] for _, obj in elements(r)]
    assert order == list(range(20)), order

    # 2. During a retry wait: the endpoint failed, the retry is 3 s away, the daemon dies.
    start = len(receiver.requests)
    failing = True

    def answer(request: Received) -> tuple[int, dict[str, str]] | None:
        return (500, {}) if failing else None

    receiver.answer = answer
    webhooks = [
        {
            "name": "erp",
            "url": receiver.url("/retry"),
            "events": ["order_*"],
            "maximum_events": 5,
            "retry_schedule": ["3s"],
        }
    ]
    (short_tmp / "retry").mkdir()
    daemon = Daemon(short_tmp / "retry", webhooks)
    daemons.append(daemon)
    await daemon.started()
    client = await daemon.client()
    replies = await client.publish([order_event(n, f"retry-{n}") for n in range(10)])
    assert all(reply["ok"] for reply in replies), replies
    await client.close()
    await wait_for(lambda: len(receiver.requests) > start, 10, "the failing POST")
    failed = receiver.requests[start]
    wid = webhook_id(failed)
    await wait_for(
        lambda: any(wid in line and "500" in line for line in daemon.log().splitlines()),
        10,
        "the failed attempt in the daemon's log",
    )
    # Kill 1 s after the failure: well inside the 3 s (+-20%) wait before the retry.
    await asyncio.sleep(max(0.0, failed.at + 1.0 - time.time()))
    daemon.kill()
    assert len(receiver.requests) == start + 1, "the retry came before the kill"
    failing = False
    await daemon.started()
    await wait_for(
        lambda: numbers(receiver.requests, "/retry") >= set(range(10)),
        20,
        "the 10 events after the restart",
    )
    assert await daemon.stop() == 0
    after = receiver.requests[start + 1 :]
    assert webhook_id(after[0]) == wid, "the delivery waiting to retry lost its id"
    assert after[0].body == failed.body, "the delivery waiting to retry was resent changed"
    ids = [webhook_id(r) for r in after]
    assert len(set(ids)) == len(ids), f"a delivery arrived twice after the restart: {ids}"
    order = [obj["n"] for r in after for _, obj in elements(r)]
    assert order == list(range(10)), order
