"""Fan-out: one event stream to 50 webhooks, events/s delivered in total.

    python bench/fanout.py [--events N] [--webhooks 50] [--rounds R] [--quick] [--uvloop]

Interleaved rounds of:
- webhookd: the daemon (log_level "warning") with 50 webhooks, all subscribed to
  ``order_*`` with ``maximum_events = 100``, each on its own path of one
  bench/receiver.py process (127.0.0.1). The producer pipelines N events as fast as
  they are acknowledged. Rate = 50 x N / (the producer's first write -> the last of
  the 50 paths counted its N-th event): events delivered per second, summed over the
  webhooks, until every webhook has every event. Also shown: the ingest acks of the
  same runs and the deliveries/s after the last ack;
- bare ingest: bench/baseline.py (socket -> orjson -> SQLite, group commit) with the
  same N events, for reference: what one copy of the stream costs to take in.
Target: >= 50,000 events/s delivered. Figures are medians over the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common

DEFAULT_EVENTS = 20_000
QUICK_EVENTS = 200
WEBHOOKS = 50
BATCH = 100
TARGET_RATE = 50_000


def _limit(total_deliveries: int) -> float:
    return min(900.0, 60.0 + total_deliveries / 2_000)


async def daemon_round(receiver: common.Receiver, events: int, webhooks: int,
                       args: argparse.Namespace, tag: str) -> dict[str, float]:
    prefix = f"/f{tag}-"
    paths = [f"{prefix}{i:02d}" for i in range(webhooks)]
    config = [{"name": f"fan{i:02d}", "url": receiver.url(path), "events": ["order_*"],
               "maximum_events": BATCH} for i, path in enumerate(paths)]
    limit = _limit(events * webhooks)
    async with common.measured_daemon(args, f"fanout-{tag}", f"webhookd round {tag} failed",
                                      config) as daemon:
        produced = await common.produce(daemon.socket_path, events, limit=limit)
        during = await receiver.total(prefix)
        answers = await asyncio.gather(*(receiver.wait(path, events, limit) for path in paths))
    if produced.errors:
        raise RuntimeError(f"webhookd answered {produced.errors} errors")
    for path, answer in zip(paths, answers, strict=True):
        if answer["events"] != events:
            raise RuntimeError(f"{path}: the receiver counted {answer['events']}, sent {events}")
    total = events * webhooks
    last = max(answer["reached_at"] for answer in answers)
    first_done = min(answer["reached_at"] for answer in answers)
    lag = last - produced.finished
    return {
        "rate": total / (last - produced.started),
        "ack_rate": produced.rate,
        "during_ingest_rate": during / produced.seconds,
        "drain_rate": (total - during) / lag if lag > 0.01 else float("nan"),
        "spread": last - first_done,  # first webhook complete -> last webhook complete
        "requests": sum(answer["requests"] for answer in answers),
    }


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    events = args.events or (QUICK_EVENTS if args.quick else DEFAULT_EVENTS)
    rounds = common.rounds(args)
    webhooks = args.webhooks
    print(f"fanout: {events:,} events of {common.EVENT_SIZE} bytes per round to {webhooks} "
          f"webhooks (maximum_events {BATCH}) = {events * webhooks:,} event deliveries, "
          f"{rounds} interleaved rounds, {common.loop_name()} loop; {common.machine()}",
          flush=True)
    series: dict[str, list[float]] = {"delivered": [], "ack": [], "during_ingest": [],
                                      "drain": [], "spread": [], "bare_ingest": []}
    requests: list[float] = []
    with common.running_receiver() as receiver:
        for number in range(1, rounds + 1):
            result = await daemon_round(receiver, events, webhooks, args, str(number))
            for key, name in (("rate", "delivered"), ("ack_rate", "ack"),
                              ("during_ingest_rate", "during_ingest"), ("drain_rate", "drain"),
                              ("spread", "spread")):
                series[name].append(result[key])
            requests.append(result["requests"])
            print(f"  round {number}: webhookd {result['rate']:>9,.0f} events/s delivered in "
                  f"total (acked at {result['ack_rate']:,.0f}/s; delivered "
                  f"{result['during_ingest_rate']:,.0f}/s while ingesting, then "
                  f"{result['drain_rate']:,.0f}/s; {result['requests']:,.0f} POSTs; last "
                  f"webhook done {result['spread']:.2f}s after the first)", flush=True)
            rate = (await common.baseline_round(events, args)).rate
            series["bare_ingest"].append(rate)
            print(f"  round {number}: bare ingest {rate:>9,.0f} events/s", flush=True)
    medians = {name: common.median(values) for name, values in series.items()}
    figures: dict[str, Any] = {
        "events_per_round": events, "webhooks": webhooks, "rounds": rounds,
        "loop": common.loop_name(), "medians": medians, "rounds_detail": series,
        "mean_events_per_post": events * webhooks / common.median(requests),
        "ratio_to_bare_ingest": medians["delivered"] / medians["bare_ingest"],
        "target_rate": TARGET_RATE, "target_met": medians["delivered"] >= TARGET_RATE,
    }
    print()
    common.print_table(
        ["run", "events/s (median)", "rounds", "notes"],
        [
            [f"webhookd, 1 stream -> {webhooks} webhooks, delivered in total",
             common.fmt_rate(medians["delivered"]), common.fmt_rates(series["delivered"]),
             f"{figures['ratio_to_bare_ingest']:.2f}x bare ingest; target >= "
             f"{TARGET_RATE:,}/s: " + common.met(figures["target_met"])],
            ["  same runs: ingest acks (events in)", common.fmt_rate(medians["ack"]),
             common.fmt_rates(series["ack"]), ""],
            ["  same runs: delivered while ingesting", common.fmt_rate(medians["during_ingest"]),
             common.fmt_rates(series["during_ingest"]), "all webhooks, up to the last ack"],
            ["  same runs: delivered after the last ack", common.fmt_rate(medians["drain"]),
             common.fmt_rates(series["drain"]), "the drain, all webhooks"],
            ["bare ingest (asyncio + orjson + aiosqlite)", common.fmt_rate(medians["bare_ingest"]),
             common.fmt_rates(series["bare_ingest"]), "one copy of the stream, taken in"],
        ],
    )
    print(f"mean events per POST: {figures['mean_events_per_post']:.1f}; last webhook complete "
          f"{medians['spread']:.2f}s after the first (median)")
    return figures


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = common.parser(__doc__)
    parser.add_argument("--webhooks", type=int, default=WEBHOOKS,
                        help=f"webhooks subscribed to the stream (default {WEBHOOKS})")
    args = parser.parse_args(argv)
    return common.finish(args, "fanout", bench(args))


if __name__ == "__main__":
    main()
