"""End-to-end throughput: events/s from the producer to a webhook receiver process.

    python bench/e2e.py [--events N] [--rounds R] [--rate 10000 20000] [--no-info] [--quick]
    python bench/e2e.py --sustained [--sustained-rates 15000 20000 25000 30000]
                        [--sustained-seconds 30] [--rounds R] [--quick]

Interleaved rounds of:
- burst: the daemon (log_level "warning") with one webhook (maximum_events 100)
  pointing at bench/receiver.py on 127.0.0.1; the producer pipelines N events as
  fast as the daemon takes them; the time runs from the first write on the ingest
  socket until the receiver has counted all N events. Also shown: the rate of the
  ingest acks, the rate at which events reached the receiver while the producer was
  still sending (delivery alongside ingest), and after the last ack (the drain);
- burst at log_level "info" (the default), the same, to show what logging costs;
- sustained: the daemon with the same webhook, the producer paced at each ``--rate``
  (events/s) for 12 s; the delivered rate and the lag (last ack -> last delivery)
  tell whether the daemon keeps up with that stream;
- bare ingest: bench/baseline.py, the same N over the same socket protocol;
- bare POST: one aiohttp ClientSession POSTing bodies of 100 events (the daemon's
  body shape), one after the other, to the same receiver process.
Figures are medians over the rounds. ``--rate`` with no value skips the paced runs.

``--sustained``: instead of all that, the highest paced rate the daemon keeps up with
for ``--sustained-seconds`` (default 30 s). Same daemon and webhook as above; the
producer paced at each of ``--sustained-rates`` in turn, lowest first, one round each,
until one does not keep up (if all do, on up by the last step until one does not,
except with ``--quick``; keeps up = delivered >= 97% of the rate, i.e. N / (first
write -> N-th event at the receiver), and the last event arrived < 1 s after its
ack); then the gap between the highest rate that kept up (0 if none did) and that one
is halved, one round per step, down to ``--sustained-resolution`` (default 2,500/s,
rates rounded to 250/s). The highest rate that kept
up then runs ``--rounds`` - 1 more rounds and must keep up on their medians; if it
does not, the next lower rate that kept up is confirmed the same way. A bare ingest
round (the same socket protocol, 200,000 events as fast as acknowledged) follows
every daemon round; ratio = the confirmed rate's median delivered events/s / the
median bare ingest rate. Target: >= 0.45x.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common

DEFAULT_EVENTS = 200_000
DEFAULT_RATES = [10_000.0, 20_000.0]
SUSTAINED_SECONDS = 12
QUICK_EVENTS = 2_000
BATCH = 100
TARGET_RATE = 10_000
SUSTAINED_RATES = [20_000.0, 30_000.0, 40_000.0]
MAX_SUSTAINED_RATE = 200_000.0
SUSTAINED_TARGET_SECONDS = 30.0
QUICK_SUSTAINED_RATES = [2_000.0, 4_000.0]
QUICK_SUSTAINED_SECONDS = 1.0
SUSTAINED_RESOLUTION = 2_500
SUSTAINED_TARGET_RATIO = 0.45
KEEP_UP_SHARE = 0.97  # delivered at least this share of the offered rate...
KEEP_UP_LAG = 1.0  # ...and the last event arrived less than this many seconds after its ack


@dataclass
class E2E:
    rate: float  # producer's first write -> receiver counted all
    ack_rate: float  # producer's first write -> last ingest reply
    during_ingest_rate: float  # events at the receiver when the last reply came, per second
    drain_rate: float  # events delivered after the last reply, per second of lag
    lag: float  # last ingest reply -> receiver counted all, seconds
    requests: int
    log_lines: int


def _wait_timeout(events: int) -> float:
    return min(600.0, 30.0 + events / 500)


async def daemon_round(receiver: common.Receiver, events: int, log_level: str,
                       args: argparse.Namespace, tag: str, rate: float | None = None) -> E2E:
    path = f"/{tag}"
    webhook = {"name": "bench", "url": receiver.url(path), "events": ["order_*"],
               "maximum_events": BATCH}
    async with common.Daemon([webhook], log_level=log_level, keep=args.keep) as daemon:
        assert daemon.process is not None
        # common.measured_daemon, but the log is counted once the profiler has stopped
        with (common.Profiler(args.profile, daemon.process.pid, f"e2e-{tag}"),
              daemon.explained(f"webhookd round {tag} failed")):
            produced = await common.produce(daemon.socket_path, events, args.producers,
                                            rate=rate, limit=_wait_timeout(events))
            during = await receiver.count(path)
            answer = await receiver.wait(path, events, _wait_timeout(events))
        log_lines = daemon.log_lines()
    if produced.errors:
        raise RuntimeError(f"webhookd answered {produced.errors} errors")
    if answer["events"] != events:
        raise RuntimeError(f"the receiver counted {answer['events']} events, sent {events}")
    seconds = answer["reached_at"] - produced.started
    lag = max(0.0, answer["reached_at"] - produced.finished)
    return E2E(
        rate=events / seconds,
        ack_rate=produced.rate,
        during_ingest_rate=during / produced.seconds,
        drain_rate=(events - during) / lag if lag > 0.01 else float("nan"),
        lag=lag,
        requests=answer["requests"],
        log_lines=log_lines,
    )


async def ingest_round(events: int, args: argparse.Namespace) -> float:
    return (await common.baseline_round(events, args, args.producers)).rate


async def post_round(receiver: common.Receiver, events: int, tag: str) -> float:
    path = f"/{tag}"
    url = receiver.url(path)
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession() as session:
        deadline = time.monotonic() + _wait_timeout(events)
        started = time.monotonic()
        for first in range(0, events, BATCH):
            body = common.delivery_body(first, min(BATCH, events - first))
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"the receiver answered {response.status}")
            if time.monotonic() > deadline:
                raise TimeoutError("bare POST loop: out of time")
    answer = await receiver.wait(path, events, 30.0)
    return float(events / (answer["reached_at"] - started))


def _sustained_events(rate: float, quick: bool) -> int:
    return QUICK_EVENTS if quick else int(rate * SUSTAINED_SECONDS)


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    events = args.events or (QUICK_EVENTS if args.quick else DEFAULT_EVENTS)
    rounds = common.rounds(args)
    rates: list[float] = args.rate
    print(f"e2e: {events:,} events of {common.EVENT_SIZE} bytes per burst round, deliveries of "
          f"{BATCH}, {args.producers} producer(s), {rounds} interleaved rounds; sustained: "
          + ", ".join(f"{_sustained_events(r, args.quick):,} events at {r:,.0f}/s" for r in rates)
          + f"; {common.loop_name()} loop; {common.machine()}", flush=True)
    series: dict[str, list[float]] = {
        "burst": [], "burst_ack": [], "burst_during_ingest": [], "burst_drain": [],
        "burst_info": [], "bare_ingest": [], "bare_post": [],
    }
    for rate in rates:
        series[f"sustained_{rate:.0f}"] = []
        series[f"sustained_{rate:.0f}_lag"] = []
    requests: list[int] = []
    info_lines: list[int] = []
    with common.running_receiver() as receiver:
        for number in range(1, rounds + 1):
            result = await daemon_round(receiver, events, "warning", args, f"w{number}")
            series["burst"].append(result.rate)
            series["burst_ack"].append(result.ack_rate)
            series["burst_during_ingest"].append(result.during_ingest_rate)
            series["burst_drain"].append(result.drain_rate)
            requests.append(result.requests)
            print(f"  round {number}: burst (warning)   {result.rate:>9,.0f}/s end-to-end; "
                  f"acked at {result.ack_rate:,.0f}/s, delivered while ingesting "
                  f"{result.during_ingest_rate:,.0f}/s, then {result.drain_rate:,.0f}/s; "
                  f"{result.requests} POSTs", flush=True)
            if not args.no_info:
                result = await daemon_round(receiver, events, "info", args, f"i{number}")
                series["burst_info"].append(result.rate)
                info_lines.append(result.log_lines)
                print(f"  round {number}: burst (info)      {result.rate:>9,.0f}/s end-to-end; "
                      f"{result.log_lines} log lines", flush=True)
            for rate in rates:
                result = await daemon_round(receiver, _sustained_events(rate, args.quick),
                                            "warning", args, f"s{rate:.0f}-{number}", rate=rate)
                series[f"sustained_{rate:.0f}"].append(result.rate)
                series[f"sustained_{rate:.0f}_lag"].append(result.lag)
                print(f"  round {number}: sustained {rate:>6,.0f}/s {result.rate:>9,.0f}/s "
                      f"delivered, lag at the end {result.lag:.2f}s", flush=True)
            rate = await ingest_round(events, args)
            series["bare_ingest"].append(rate)
            print(f"  round {number}: bare ingest       {rate:>9,.0f}/s", flush=True)
            rate = await post_round(receiver, events, f"p{number}")
            series["bare_post"].append(rate)
            print(f"  round {number}: bare POST         {rate:>9,.0f}/s", flush=True)
    medians = {name: common.median(values) for name, values in series.items() if values}
    # Keeping up: delivered at >= 97% of the offered rate, and the last event arrived
    # less than 1 s after its ack (the backlog did not grow).
    keeps_up = {
        rate: medians[f"sustained_{rate:.0f}"] >= 0.97 * rate
        and medians[f"sustained_{rate:.0f}_lag"] < 1.0
        for rate in rates
    }
    figures: dict[str, Any] = {
        "events_per_round": events,
        "rounds": rounds,
        "producers": args.producers,
        "medians": medians,
        "rounds_detail": series,
        "ratio_to_bare_ingest": medians["burst"] / medians["bare_ingest"],
        "ratio_to_bare_post": medians["burst"] / medians["bare_post"],
        "mean_events_per_post": events / common.median(requests),
        "burst_target_met": medians["burst"] >= TARGET_RATE,
        "sustained_keeps_up": {f"{rate:.0f}": ok for rate, ok in keeps_up.items()},
    }
    if "burst_info" in medians:
        figures["info_vs_warning"] = medians["burst_info"] / medians["burst"]
        figures["info_log_lines"] = common.median(info_lines)

    def row(name: str, key: str, note: str = "") -> list[str]:
        return [name, common.fmt_rate(medians[key]), common.fmt_rates(series[key]), note]

    print()
    rows = [
        row("burst end-to-end, log_level warning", "burst",
            f"{figures['ratio_to_bare_ingest']:.2f}x bare ingest, "
            f"{figures['ratio_to_bare_post']:.2f}x bare POST; target >= {TARGET_RATE:,}/s: "
            + common.met(figures["burst_target_met"])),
        row("  same runs: ingest acks", "burst_ack"),
        row("  same runs: delivered while ingesting", "burst_during_ingest",
            "receiver count at the last ack / time to the last ack"),
        row("  same runs: delivered after the last ack", "burst_drain", "the drain"),
    ]
    if "burst_info" in medians:
        rows.append(row("burst end-to-end, log_level info", "burst_info",
                        f"{figures['info_vs_warning']:.2f}x the warning runs, "
                        f"{figures['info_log_lines']:.0f} log lines"))
    for rate in rates:
        lags = " / ".join(f"{lag:.2f}" for lag in series[f"sustained_{rate:.0f}_lag"])
        rows.append(row(f"sustained, producer paced at {rate:,.0f}/s", f"sustained_{rate:.0f}",
                        f"lag at the end {lags} s: "
                        + ("keeps up" if keeps_up[rate] else "does NOT keep up")))
    rows += [
        row("bare ingest (asyncio + orjson + aiosqlite)", "bare_ingest"),
        row(f"bare POST loop (aiohttp, {BATCH} events/POST)", "bare_post"),
    ]
    common.print_table(["run", "events/s (median)", "rounds", "notes"], rows)
    print(f"mean events per POST from webhookd (burst): {figures['mean_events_per_post']:.1f}")
    return figures


def keeps_up(rate: float, delivered: float, lag: float) -> bool:
    return delivered >= KEEP_UP_SHARE * rate and lag < KEEP_UP_LAG


async def sustained(args: argparse.Namespace) -> dict[str, Any]:
    """The highest paced rate that keeps up for ``--sustained-seconds`` (see the docstring)."""
    rounds = common.rounds(args)
    seconds = args.sustained_seconds or (
        QUICK_SUSTAINED_SECONDS if args.quick else SUSTAINED_TARGET_SECONDS)
    rates = sorted(args.sustained_rates or (QUICK_SUSTAINED_RATES if args.quick
                                            else SUSTAINED_RATES))
    ingest_events = args.events or (QUICK_EVENTS if args.quick else DEFAULT_EVENTS)
    resolution = args.sustained_resolution
    print(f"e2e sustained: the producer paced at {', '.join(f'{r:,.0f}' for r in rates)} "
          f"events/s (then halving the gap at the edge down to {resolution:,.0f}/s), "
          f"{seconds:g} s each, deliveries of {BATCH}, {args.producers} producer(s); "
          f"the best rate confirmed over {rounds} rounds; bare ingest {ingest_events:,} events "
          f"after every daemon round; {common.loop_name()} loop; {common.machine()}",
          flush=True)
    tried: dict[float, list[E2E]] = {}
    bare: list[float] = []
    counter = 0

    async def one(receiver: common.Receiver, rate: float) -> bool:
        nonlocal counter
        counter += 1
        events = max(1, round(rate * seconds))
        result = await daemon_round(receiver, events, "warning", args,
                                    f"sus{rate:.0f}-{counter}", rate=rate)
        tried.setdefault(rate, []).append(result)
        ok = keeps_up(rate, result.rate, result.lag)
        print(f"  {rate:>7,.0f}/s for {seconds:g} s: delivered {result.rate:>8,.0f}/s, lag at the "
              f"end {result.lag:.2f} s, acked at {result.ack_rate:,.0f}/s, "
              f"{events / max(1, result.requests):.1f} events/POST: "
              + ("keeps up" if ok else "does NOT keep up"), flush=True)
        ingest = await ingest_round(ingest_events, args)
        bare.append(ingest)
        print(f"  bare ingest {ingest:>9,.0f}/s", flush=True)
        return ok

    passed: list[float] = []
    with common.running_receiver() as receiver:
        for rate in rates:  # lowest first, up to the first that falls behind
            if not await one(receiver, rate):
                break
            passed.append(rate)
        # Every listed rate kept up: go on up by the last step until one does not
        # (not in the smoke run, which must stay short).
        step = rates[-1] - rates[-2] if len(rates) > 1 else rates[-1]
        while (len(passed) == len(rates) and rates[-1] < MAX_SUSTAINED_RATE
               and not args.quick):
            rates.append(rates[-1] + step)
            if not await one(receiver, rates[-1]):
                break
            passed.append(rates[-1])
        # Narrow the gap between the highest rate that kept up (0 if none) and the
        # lowest that did not, by halves, down to the resolution.
        failed = [rate for rate in rates if rate not in passed][:1]
        if failed:
            low, high = (passed[-1] if passed else 0.0), failed[0]
            while high - low > resolution:
                middle = round((low + high) / 2 / 250) * 250
                if middle in (low, high):
                    break
                if await one(receiver, middle):
                    passed.append(middle)
                    low = middle
                else:
                    high = middle
        confirmed: float | None = None
        for rate in sorted(passed, reverse=True):
            while len(tried[rate]) < rounds:
                await one(receiver, rate)
            results = tried[rate]
            if keeps_up(rate, common.median([r.rate for r in results]),
                        common.median([r.lag for r in results])):
                confirmed = rate
                break
            print(f"  {rate:,.0f}/s does not keep up on the median of {len(results)} rounds",
                  flush=True)
    bare_median = common.median(bare)
    table = []
    for rate in sorted(tried):
        results = tried[rate]
        delivered = common.median([r.rate for r in results])
        lag = common.median([r.lag for r in results])
        table.append({
            "rate": rate, "rounds": len(results), "delivered": delivered, "lag": lag,
            "delivered_rounds": [r.rate for r in results], "lag_rounds": [r.lag for r in results],
            "ack_rounds": [r.ack_rate for r in results],
            "keeps_up": keeps_up(rate, delivered, lag),
        })
    best = next((row for row in table if row["rate"] == confirmed), None)
    ratio = best["delivered"] / bare_median if best else 0.0
    figures: dict[str, Any] = {
        "seconds": seconds, "rates_tried": table, "rounds": rounds, "loop": common.loop_name(),
        "bare_ingest": bare_median, "bare_ingest_rounds": bare,
        "highest_rate_kept_up": confirmed,
        "delivered_at_that_rate": best["delivered"] if best else None,
        "ratio_to_bare_ingest": ratio, "target_ratio": SUSTAINED_TARGET_RATIO,
        "target_met": ratio >= SUSTAINED_TARGET_RATIO,
    }
    print()
    rows = []
    for row in table:
        rows.append([
            f"paced at {row['rate']:,.0f}/s for {seconds:g} s", str(row["rounds"]),
            common.fmt_rate(row["delivered"]), common.fmt_rates(row["delivered_rounds"]),
            " / ".join(f"{lag:.2f}" for lag in row["lag_rounds"]),
            "keeps up" if row["keeps_up"] else "does NOT keep up",
        ])
    rows.append(["bare ingest (asyncio + orjson + aiosqlite)", str(len(bare)),
                 common.fmt_rate(bare_median), common.fmt_rates(bare), "", ""])
    common.print_table(["run", "rounds", "delivered/s (median)", "delivered rounds",
                        "lag at the end, s", "verdict"], rows)
    if best:
        print(f"highest paced rate that keeps up for {seconds:g} s: {confirmed:,.0f}/s "
              f"(delivered {best['delivered']:,.0f}/s), {ratio:.2f}x bare ingest; target >= "
              f"{SUSTAINED_TARGET_RATIO}x: " + common.met(figures["target_met"]))
    else:
        print(f"no rate tried kept up for {seconds:g} s; target >= {SUSTAINED_TARGET_RATIO}x: "
              "NOT met")
    return figures


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = common.parser(__doc__)
    parser.add_argument("--producers", type=int, default=1,
                        help="producer connections (default 1)")
    parser.add_argument("--rate", type=float, nargs="*", default=DEFAULT_RATES,
                        help="events/s of the 12 s paced runs, one run per value "
                        "(default: 10000 20000; none: skip them)")
    parser.add_argument("--no-info", action="store_true",
                        help="skip the burst rounds at log_level info")
    parser.add_argument("--sustained", action="store_true",
                        help="only the sustained search: the highest paced rate that keeps "
                        "up for --sustained-seconds")
    parser.add_argument("--sustained-rates", type=float, nargs="+",
                        help="rates tried by --sustained (default 20000 30000 40000, on up "
                        "by the last step while they keep up; quick 2000 4000)")
    parser.add_argument("--sustained-resolution", type=float, default=SUSTAINED_RESOLUTION,
                        help="narrow the edge between the highest rate that kept up and the "
                        f"lowest that did not down to this (default {SUSTAINED_RESOLUTION:,})")
    parser.add_argument("--sustained-seconds", type=float,
                        help=f"seconds per --sustained round (default "
                        f"{SUSTAINED_TARGET_SECONDS:g}; quick {QUICK_SUSTAINED_SECONDS:g})")
    args = parser.parse_args(argv)
    if args.sustained:
        return common.finish(args, "e2e_sustained", sustained(args))
    return common.finish(args, "e2e", bench(args))


if __name__ == "__main__":
    main()
