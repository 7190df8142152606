"""Latency: producer writes the line -> the receiver's handler, at a steady 500 events/s.

    python bench/latency.py [--rate 500] [--seconds 20] [--rounds R] [--quick] [--uvloop]

The producer writes one ~1.1 KB order_create line at a time on one connection to the
ingest socket, at a steady ``--rate`` (a due time per event; a line is written as soon
as it is due), and reads the replies concurrently. Each event's object carries
``bench_sent_at``: the producer's ``time.monotonic()`` just before that line is
written. bench/receiver.py (its own process, ``--latency`` mode) takes
``time.monotonic()`` in its handler once a POST's body is read, and keeps
now - bench_sent_at for each event of it. CLOCK_MONOTONIC is one clock for every
process on Linux, so the difference is the latency from the producer's write to the
receiver's handler. The first ``--warmup`` seconds of events (default 0.5 s) are
sent but not counted.

Interleaved rounds of:
- webhookd: the daemon (log_level "warning") with one webhook subscribed to
  ``order_*`` with default settings (``maximum_events`` 100, ``linger`` 0,
  ``concurrency`` 1), for ``--seconds`` (default 20 s; quick 2 s). Also shown: the
  ingest ack latency of the same events (write -> reply line at the producer);
- bare ingest: the same paced producer against bench/baseline.py (socket -> orjson ->
  SQLite commit -> reply); ack latency, the least a durable ingest costs;
- bare POST: this process POSTs each event alone, at the same pace, with one aiohttp
  ClientSession, to the same receiver process; the receiver's latency, the least an
  HTTP hop costs. (The two bare figures together are the floor of the daemon's path.)
Per round: p50, p99 and max, in ms; figures are medians over the rounds.
Target: webhookd p99 <= 25 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common

DEFAULT_RATE = 500.0
DEFAULT_SECONDS = 20.0
QUICK_SECONDS = 2.0
BARE_SECONDS = 5.0
QUICK_BARE_SECONDS = 0.5
WARMUP_SECONDS = 0.5
TARGET_P99_MS = 25.0


@dataclass
class Paced:
    sent_at: list[float]  # time.monotonic() at each write
    acked_at: list[float]  # time.monotonic() when each reply line arrived
    errors: int
    behind: float  # the most any write was late on its due time, seconds

    def ack_latencies_ms(self, skip: int) -> list[float]:
        return [(a - s) * 1000 for s, a in zip(self.sent_at[skip:], self.acked_at[skip:],
                                               strict=True)]


async def paced_produce(path: Path, count: int, rate: float, limit: float) -> Paced:
    """Write ``count`` lines one at a time at ``rate``/s, each stamped as it is written."""
    reader, writer = await asyncio.open_unix_connection(str(path), limit=2**20)
    sent_at = [0.0] * count
    acked_at = [0.0] * count
    errors = 0
    behind = 0.0

    async def receive() -> None:
        nonlocal errors
        replied = 0
        while replied < count:
            data = await reader.read(1 << 16)
            now = time.monotonic()
            if not data:
                raise ConnectionError(f"{path} hung up after {replied} of {count} replies")
            lines = data.count(b"\n")
            for index in range(replied, min(count, replied + lines)):
                acked_at[index] = now
            replied += lines
            errors += data.count(b'"ok":false')

    async def send() -> None:
        nonlocal behind
        started = time.monotonic()
        for index in range(count):
            due = started + index / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            now = time.monotonic()
            behind = max(behind, now - due)
            writer.write(common.latency_line(index, now))
            sent_at[index] = now
            if writer.transport.get_write_buffer_size() > 1 << 20:
                await writer.drain()

    try:
        async with asyncio.timeout(limit):
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(receive())
                tasks.create_task(send())
    finally:
        writer.close()
    return Paced(sent_at, acked_at, errors, behind)


def summary(latencies: list[float]) -> dict[str, float]:
    return {
        "count": len(latencies),
        "p50": common.percentile(latencies, 0.50),
        "p99": common.percentile(latencies, 0.99),
        "max": max(latencies) if latencies else float("nan"),
    }


def _count(rate: float, seconds: float) -> int:
    return max(1, round(rate * seconds))


async def daemon_round(receiver: common.Receiver, rate: float, seconds: float, warmup: int,
                       args: argparse.Namespace, tag: str) -> dict[str, dict[str, float]]:
    path = f"/l{tag}"
    webhook = {"name": "latency", "url": receiver.url(path), "events": ["order_*"]}
    count = warmup + _count(rate, seconds)
    limit = seconds * 2 + 60
    async with common.measured_daemon(args, f"latency-{tag}", f"webhookd round {tag} failed",
                                      [webhook]) as daemon:
        paced = await paced_produce(daemon.socket_path, count, rate, limit)
        answer = await receiver.wait(path, count, 60.0)
        latencies = await receiver.latencies(path)
    if paced.errors:
        raise RuntimeError(f"webhookd answered {paced.errors} errors")
    if answer["events"] != count or len(latencies) != count:
        raise RuntimeError(f"the receiver counted {answer['events']} events "
                           f"({len(latencies)} latencies), sent {count}")
    return {
        "delivery": summary(latencies[warmup:]),  # arrival order = acceptance order here
        "ack": summary(paced.ack_latencies_ms(warmup)),
        "info": {"requests": answer["requests"], "behind_ms": paced.behind * 1000,
                 "events": count - warmup},
    }


async def bare_ingest_round(rate: float, seconds: float, warmup: int,
                            args: argparse.Namespace) -> dict[str, float]:
    count = warmup + _count(rate, seconds)
    async with common.Baseline(keep=args.keep) as baseline:
        paced = await paced_produce(baseline.socket_path, count, rate, seconds * 2 + 60)
    if paced.errors:
        raise RuntimeError(f"the baseline answered {paced.errors} errors")
    return summary(paced.ack_latencies_ms(warmup))


async def bare_post_round(receiver: common.Receiver, rate: float, seconds: float, warmup: int,
                          tag: str) -> dict[str, float]:
    """Each event POSTed alone as it falls due (a task each, so a slow one delays no other)."""
    path = f"/p{tag}"
    url = receiver.url(path)
    count = warmup + _count(rate, seconds)
    headers = {"Content-Type": "application/json"}

    async def post(session: aiohttp.ClientSession, body: bytes) -> None:
        async with session.post(url, data=body, headers=headers) as response:
            await response.read()
            if response.status != 200:
                raise RuntimeError(f"the receiver answered {response.status}")

    async with asyncio.timeout(seconds * 2 + 60):
        async with aiohttp.ClientSession() as session, asyncio.TaskGroup() as tasks:
            started = time.monotonic()
            for index in range(count):
                delay = started + index / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.create_task(post(session, common.latency_body(index, time.monotonic())))
    await receiver.wait(path, count, 30.0)
    latencies = await receiver.latencies(path)
    return summary(latencies[warmup:])  # the first ``warmup`` to arrive


def _ms(values: list[float]) -> str:
    return " / ".join(f"{v:.1f}" for v in values)


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    rounds = common.rounds(args)
    rate = args.rate
    seconds = args.seconds or (QUICK_SECONDS if args.quick else DEFAULT_SECONDS)
    if args.events:
        seconds = args.events / rate
    bare_seconds = QUICK_BARE_SECONDS if args.quick else min(BARE_SECONDS, seconds)
    warmup = round(rate * args.warmup)
    size = len(common.latency_line(0, time.monotonic()))
    print(f"latency: {rate:,.0f} events/s of {size} bytes, one line per write, "
          f"{seconds:g} s per webhookd round ({_count(rate, seconds):,} events counted after "
          f"{warmup} warm-up), {bare_seconds:g} s per bare round, {rounds} interleaved rounds, "
          f"{common.loop_name()} loop; {common.machine()}", flush=True)
    results: dict[str, list[dict[str, float]]] = {"webhookd": [], "webhookd_ack": [],
                                                  "bare_ingest_ack": [], "bare_post": []}
    requests: list[float] = []
    behind: list[float] = []
    with common.running_receiver(latency=True) as receiver:
        for number in range(1, rounds + 1):
            result = await daemon_round(receiver, rate, seconds, warmup, args, str(number))
            results["webhookd"].append(result["delivery"])
            results["webhookd_ack"].append(result["ack"])
            requests.append(result["info"]["requests"])
            behind.append(result["info"]["behind_ms"])
            d, a = result["delivery"], result["ack"]
            print(f"  round {number}: webhookd    p50 {d['p50']:6.1f}  p99 {d['p99']:6.1f}  max "
                  f"{d['max']:6.1f} ms (ack p50 {a['p50']:.1f}, p99 {a['p99']:.1f}, max "
                  f"{a['max']:.1f} ms; {result['info']['requests']:,} POSTs; producer at most "
                  f"{result['info']['behind_ms']:.1f} ms behind its schedule)", flush=True)
            r = await bare_ingest_round(rate, bare_seconds, warmup, args)
            results["bare_ingest_ack"].append(r)
            print(f"  round {number}: bare ingest p50 {r['p50']:6.1f}  p99 {r['p99']:6.1f}  max "
                  f"{r['max']:6.1f} ms (ack)", flush=True)
            r = await bare_post_round(receiver, rate, bare_seconds, warmup, str(number))
            results["bare_post"].append(r)
            print(f"  round {number}: bare POST   p50 {r['p50']:6.1f}  p99 {r['p99']:6.1f}  max "
                  f"{r['max']:6.1f} ms", flush=True)
    medians = {name: {key: common.median([r[key] for r in rs]) for key in ("p50", "p99", "max")}
               for name, rs in results.items()}
    overall_max = max(r["max"] for r in results["webhookd"])
    figures: dict[str, Any] = {
        "rate": rate, "seconds": seconds, "warmup_events": warmup, "rounds": rounds,
        "loop": common.loop_name(), "medians_ms": medians, "rounds_detail_ms": results,
        "webhookd_max_over_rounds_ms": overall_max,
        "mean_events_per_post": (warmup + _count(rate, seconds)) / common.median(requests),
        "producer_behind_ms": behind,
        "target_p99_ms": TARGET_P99_MS,
        "target_met": medians["webhookd"]["p99"] <= TARGET_P99_MS,
    }
    print()

    def row(name: str, key: str, note: str = "") -> list[str]:
        m, rs = medians[key], results[key]
        return [name, f"{m['p50']:.1f}", f"{m['p99']:.1f}", f"{m['max']:.1f}",
                _ms([r["p99"] for r in rs]), note]

    floor = medians["bare_ingest_ack"]["p99"] + medians["bare_post"]["p99"]
    common.print_table(
        ["path", "p50 ms", "p99 ms", "max ms", "p99 rounds", "notes"],
        [
            row("webhookd: producer write -> receiver handler", "webhookd",
                f"target p99 <= {TARGET_P99_MS:g} ms: " + common.met(figures["target_met"])
                + f"; {figures['mean_events_per_post']:.2f} events/POST"),
            row("  same runs: producer write -> ingest ack", "webhookd_ack"),
            row("bare ingest: write -> ack (socket, orjson, SQLite commit)", "bare_ingest_ack"),
            row("bare POST: send -> receiver handler (aiohttp, 1 event/POST)", "bare_post",
                f"bare ingest p99 + bare POST p99 = {floor:.1f} ms"),
        ],
    )
    return figures


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = common.parser(__doc__)
    parser.add_argument("--rate", type=float, default=DEFAULT_RATE,
                        help=f"events/s (default {DEFAULT_RATE:g})")
    parser.add_argument("--seconds", type=float,
                        help=f"seconds per webhookd round (default {DEFAULT_SECONDS:g}, "
                        f"quick {QUICK_SECONDS:g}); --events N sets N / rate instead")
    parser.add_argument("--warmup", type=float, default=WARMUP_SECONDS,
                        help=f"seconds of events sent first and not counted "
                        f"(default {WARMUP_SECONDS:g})")
    args = parser.parse_args(argv)
    return common.finish(args, "latency", bench(args))


if __name__ == "__main__":
    main()
