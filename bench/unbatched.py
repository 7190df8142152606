"""Unbatched delivery: deliveries/s with ``maximum_events = 1`` and ``concurrency = 16``.

    python bench/unbatched.py [--events N] [--rounds R] [--quick] [--uvloop] [--json FILE]

Interleaved rounds of:
- webhookd: the daemon (log_level "warning") with one webhook subscribed to
  ``order_*``, ``maximum_events = 1``, ``concurrency = 16``, its URL on
  bench/receiver.py (its own process, 127.0.0.1). The producer pipelines N events as
  fast as they are acknowledged; every event is one delivery (one POST, one attempt
  logged). Rate = N / (the producer's first write -> the receiver counted the N-th
  event), i.e. deliveries/s as the receiver sees them. Also shown: the ingest acks
  and the deliveries/s after the last ack (the drain, with ingest out of the way);
- bare POST loop: 16 tasks sharing one aiohttp ClientSession, each POSTing
  one-event bodies of the daemon's shape (``{"events":[{"order_create":{...}}]}``,
  with the daemon's headers) one after the other, to the same receiver process, N
  POSTs in all. Rate = N / (first POST -> the receiver counted the N-th).
Ratio = webhookd / bare POST; target >= 0.6x. Figures are medians over the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common

DEFAULT_EVENTS = 10_000
QUICK_EVENTS = 500
CONCURRENCY = 16
TARGET_RATIO = 0.6


def _limit(events: int) -> float:
    return min(900.0, 60.0 + events / 100)


async def daemon_round(receiver: common.Receiver, events: int, args: argparse.Namespace,
                       tag: str) -> dict[str, float]:
    path = f"/u{tag}"
    webhook = {"name": "unbatched", "url": receiver.url(path), "events": ["order_*"],
               "maximum_events": 1, "concurrency": CONCURRENCY}
    async with common.measured_daemon(args, f"unbatched-{tag}", f"webhookd round {tag} failed",
                                      [webhook]) as daemon:
        produced = await common.produce(daemon.socket_path, events, limit=_limit(events))
        during = await receiver.count(path)
        answer = await receiver.wait(path, events, _limit(events))
    if produced.errors:
        raise RuntimeError(f"webhookd answered {produced.errors} errors")
    if answer["events"] != events or answer["requests"] != events:
        raise RuntimeError(f"the receiver counted {answer['events']} events in "
                           f"{answer['requests']} POSTs, sent {events} events")
    lag = answer["reached_at"] - produced.finished
    return {
        "rate": events / (answer["reached_at"] - produced.started),
        "ack_rate": produced.rate,
        "during_ingest_rate": during / produced.seconds,
        "drain_rate": (events - during) / lag if lag > 0.01 else float("nan"),
    }


async def post_round(receiver: common.Receiver, events: int, tag: str) -> float:
    """16 tasks, one ClientSession, one-event POSTs until N have been sent."""
    path = f"/b{tag}"
    url = receiver.url(path)
    numbers = iter(range(events))
    deadline = time.monotonic() + _limit(events)

    async def worker(session: aiohttp.ClientSession) -> None:
        for number in numbers:  # shared iterator: each number is taken once
            headers = {"Content-Type": "application/json", "User-Agent": "webhookd/bench",
                       "X-Webhook-Api-Version": "2017-03-01",
                       "webhook-id": f"msg_bench{number:012d}",
                       "webhook-timestamp": str(int(time.time()))}
            async with session.post(url, data=common.delivery_body(number, 1),
                                    headers=headers) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"the receiver answered {response.status}")
            if time.monotonic() > deadline:
                raise TimeoutError("bare POST loop: out of time")

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.monotonic()
        async with asyncio.TaskGroup() as tasks:
            for _ in range(CONCURRENCY):
                tasks.create_task(worker(session))
    answer = await receiver.wait(path, events, 30.0)
    return float(events / (answer["reached_at"] - started))


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    events = args.events or (QUICK_EVENTS if args.quick else DEFAULT_EVENTS)
    rounds = common.rounds(args)
    print(f"unbatched: {events:,} events of {common.EVENT_SIZE} bytes per round, "
          f"maximum_events 1, concurrency {CONCURRENCY}, {rounds} interleaved rounds, "
          f"{common.loop_name()} loop; {common.machine()}", flush=True)
    series: dict[str, list[float]] = {"webhookd": [], "ack": [], "during_ingest": [],
                                      "drain": [], "bare_post": []}
    with common.running_receiver() as receiver:
        for number, order in zip(range(1, rounds + 1), itertools.cycle([0, 1]), strict=False):
            # Alternate which goes first, so neither always runs on a warmer machine.
            for which in ((0, 1) if order == 0 else (1, 0)):
                if which == 0:
                    result = await daemon_round(receiver, events, args, str(number))
                    series["webhookd"].append(result["rate"])
                    series["ack"].append(result["ack_rate"])
                    series["during_ingest"].append(result["during_ingest_rate"])
                    series["drain"].append(result["drain_rate"])
                    print(f"  round {number}: webhookd {result['rate']:>8,.0f} deliveries/s "
                          f"(acked at {result['ack_rate']:,.0f}/s, delivered "
                          f"{result['during_ingest_rate']:,.0f}/s while ingesting, then "
                          f"{result['drain_rate']:,.0f}/s)", flush=True)
                else:
                    rate = await post_round(receiver, events, str(number))
                    series["bare_post"].append(rate)
                    print(f"  round {number}: bare POST loop {rate:>8,.0f} POSTs/s", flush=True)
    medians = {name: common.median(values) for name, values in series.items()}
    ratio = medians["webhookd"] / medians["bare_post"]
    figures: dict[str, Any] = {
        "events_per_round": events, "rounds": rounds, "loop": common.loop_name(),
        "concurrency": CONCURRENCY, "medians": medians, "rounds_detail": series,
        "ratio": ratio, "target_ratio": TARGET_RATIO, "target_met": ratio >= TARGET_RATIO,
    }
    print()
    common.print_table(
        ["run", "deliveries/s (median)", "rounds", "notes"],
        [
            ["webhookd, maximum_events 1, concurrency 16", common.fmt_rate(medians["webhookd"]),
             common.fmt_rates(series["webhookd"]),
             f"{ratio:.2f}x bare POST; target >= {TARGET_RATIO}x: "
             + common.met(figures["target_met"])],
            ["  same runs: ingest acks", common.fmt_rate(medians["ack"]),
             common.fmt_rates(series["ack"]), ""],
            ["  same runs: delivered while ingesting", common.fmt_rate(medians["during_ingest"]),
             common.fmt_rates(series["during_ingest"]),
             "receiver count at the last ack / its time"],
            ["  same runs: delivered after the last ack", common.fmt_rate(medians["drain"]),
             common.fmt_rates(series["drain"]), "the drain"],
            [f"bare POST loop (aiohttp, {CONCURRENCY} tasks, 1 event/POST)",
             common.fmt_rate(medians["bare_post"]), common.fmt_rates(series["bare_post"]), ""],
        ],
    )
    return figures


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = common.parser(__doc__)
    args = parser.parse_args(argv)
    return common.finish(args, "unbatched", bench(args))


if __name__ == "__main__":
    main()
