"""Ingest throughput: events/s durably acknowledged over the Unix socket.

    python bench/ingest.py [--producers 1 8] [--events N] [--rounds R] [--quick]

For each producer count, interleaved rounds of (a) the real daemon with no webhooks
and (b) the bare-library baseline of bench/baseline.py, each a fresh process on a
fresh database. An event counts when its reply line arrives at the producer; the
rate is events / (first write -> last reply). Figures are medians over the rounds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common

DEFAULT_EVENTS = 200_000
QUICK_EVENTS = 2_000
TARGET_RATIO = 0.5


async def daemon_round(events: int, producers: int, args: argparse.Namespace,
                       tag: str) -> common.Produced:
    async with common.measured_daemon(args, f"ingest-{tag}", "webhookd round failed") as daemon:
        produced = await common.produce(daemon.socket_path, events, producers)
    if produced.errors:
        raise RuntimeError(f"webhookd answered {produced.errors} errors")
    return produced


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    events = args.events or (QUICK_EVENTS if args.quick else DEFAULT_EVENTS)
    rounds = common.rounds(args)
    figures: dict[str, Any] = {"events_per_round": events, "rounds": rounds, "results": []}
    print(f"ingest: {events:,} events of {common.EVENT_SIZE} bytes per round, "
          f"{rounds} interleaved rounds, {common.loop_name()} loop; {common.machine()}", flush=True)
    for producers in args.producers:
        daemon_rates: list[float] = []
        baseline_rates: list[float] = []
        for number in range(1, rounds + 1):
            tag = f"p{producers}-r{number}"
            result = await daemon_round(events, producers, args, tag)
            daemon_rates.append(result.rate)
            print(f"  producers={producers} round {number}: webhookd {result.rate:>9,.0f}/s "
                  f"({result.seconds:.2f}s)", flush=True)
            result = await common.baseline_round(events, args, producers)
            baseline_rates.append(result.rate)
            print(f"  producers={producers} round {number}: baseline {result.rate:>9,.0f}/s "
                  f"({result.seconds:.2f}s)", flush=True)
        daemon, baseline = common.median(daemon_rates), common.median(baseline_rates)
        figures["results"].append({
            "producers": producers,
            "webhookd": daemon,
            "baseline": baseline,
            "ratio": daemon / baseline,
            "webhookd_rounds": daemon_rates,
            "baseline_rounds": baseline_rates,
        })
    print()
    rows = []
    for r in figures["results"]:
        rows.append([
            str(r["producers"]),
            common.fmt_rate(r["webhookd"]),
            common.fmt_rate(r["baseline"]),
            f"{r['ratio']:.2f}x",
            common.met(r["ratio"] >= TARGET_RATIO),
            common.fmt_rates(r["webhookd_rounds"]),
            common.fmt_rates(r["baseline_rounds"]),
        ])
    common.print_table(
        ["producers", "webhookd ev/s", "baseline ev/s", "ratio",
         f"target >= {TARGET_RATIO}x", "webhookd rounds", "baseline rounds"],
        rows,
    )
    return figures


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = common.parser(__doc__)
    parser.add_argument("--producers", type=int, nargs="+", default=[1, 8],
                        help="producer connections; one run per value (default: 1 8)")
    args = parser.parse_args(argv)
    return common.finish(args, "ingest", bench(args))


if __name__ == "__main__":
    main()
