"""Run every benchmark, one after the other: ``python bench/run.py [--quick] [--both]``.

``--quick`` is the smoke mode CI runs: small N, one round, a few seconds per script,
and no assertion about speed (it needs no uvloop). Each benchmark also runs alone
(bench/ingest.py, e2e.py, e2e.py --sustained, unbatched.py, fanout.py, latency.py,
backlog.py).

Loops: by default everything runs on the default asyncio loop (the daemon's default).
``--uvloop`` runs the main figures (all but the backlog benchmark and the log_level
info rounds) with the daemon on uvloop (``serve --uvloop``), and the bare baselines
and the producer with it; ``--both`` runs the default pass, then the uvloop pass,
and prints the main figures side by side. Without uvloop installed, the uvloop pass
is skipped with a message. The end of the run is a summary: each main figure, its
baseline from the same run, the ratio and the target.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import backlog, common, e2e, fanout, ingest, latency, unbatched

INGEST_TARGET = 0.6  # issue 5: ingest >= 0.6x the bare ingest loop while deliveries run


def run_pass(forward: list[str], uvloop: bool) -> dict[str, Any]:
    """Every benchmark of one pass; their figures by name."""
    extra = ["--uvloop"] if uvloop else []
    figures: dict[str, Any] = {}

    def step(name: str, function: Any, arguments: list[str]) -> None:
        started = time.monotonic()
        figures[name] = function(forward + extra + arguments)
        figures[name]["wall_seconds"] = time.monotonic() - started
        print(f"({name}: {figures[name]['wall_seconds']:.0f}s)\n", flush=True)

    step("ingest", ingest.main, [])
    # The 12 s paced runs of e2e.py are left to --sustained (30 s at each rate).
    step("e2e", e2e.main, ["--rate"] + (["--no-info"] if uvloop else []))
    step("e2e_sustained", e2e.main, ["--sustained"])
    step("unbatched", unbatched.main, [])
    step("fanout", fanout.main, [])
    step("latency", latency.main, [])
    if not uvloop:
        step("backlog", backlog.main, [])
    return figures


def summary_rows(f: dict[str, Any]) -> list[list[str]]:
    """[figure, webhookd, baseline, ratio, target] for one pass."""
    rate = common.fmt_rate
    rows: list[list[str]] = []
    for result in f["ingest"]["results"]:
        ratio = result["ratio"]
        rows.append([f"ingest, {result['producers']} producer(s), no webhooks",
                     f"{rate(result['webhookd'])} ev/s", f"{rate(result['baseline'])} bare ingest",
                     f"{ratio:.2f}x", f">= {INGEST_TARGET}x: {common.met(ratio >= INGEST_TARGET)}"])
    m = f["e2e"]["medians"]
    ratio = m["burst_ack"] / m["bare_ingest"]
    rows.append(["ingest while deliveries run (e2e burst acks)", f"{rate(m['burst_ack'])} ev/s",
                 f"{rate(m['bare_ingest'])} bare ingest", f"{ratio:.2f}x",
                 f">= {INGEST_TARGET}x: {common.met(ratio >= INGEST_TARGET)}"])
    rows.append(["end to end, burst, deliveries of 100", f"{rate(m['burst'])} ev/s",
                 f"{rate(m['bare_ingest'])} bare ingest / {rate(m['bare_post'])} bare POST",
                 f"{f['e2e']['ratio_to_bare_ingest']:.2f}x / {f['e2e']['ratio_to_bare_post']:.2f}x",
                 ""])
    s = f["e2e_sustained"]
    if s["highest_rate_kept_up"]:
        value = (f"{rate(s['delivered_at_that_rate'])} ev/s (paced at "
                 f"{rate(s['highest_rate_kept_up'])}/s)")
    else:
        value = "none of the rates tried"
    rows.append([f"end to end, sustained {s['seconds']:g} s (highest paced rate kept up)", value,
                 f"{rate(s['bare_ingest'])} bare ingest", f"{s['ratio_to_bare_ingest']:.2f}x",
                 f">= {s['target_ratio']}x: {common.met(s['target_met'])}"])
    u = f["unbatched"]
    rows.append(["unbatched: maximum_events 1, concurrency 16",
                 f"{rate(u['medians']['webhookd'])} deliveries/s",
                 f"{rate(u['medians']['bare_post'])} bare POST loop (16 tasks)",
                 f"{u['ratio']:.2f}x", f">= {u['target_ratio']}x: {common.met(u['target_met'])}"])
    o = f["fanout"]
    rows.append([f"fan-out: 1 stream -> {o['webhooks']} webhooks, delivered in total",
                 f"{rate(o['medians']['delivered'])} ev/s",
                 f"{rate(o['medians']['bare_ingest'])} bare ingest",
                 f"{o['ratio_to_bare_ingest']:.2f}x",
                 f">= {rate(o['target_rate'])}/s: {common.met(o['target_met'])}"])
    lat = f["latency"]["medians_ms"]
    w, bi, bp = lat["webhookd"], lat["bare_ingest_ack"], lat["bare_post"]
    rows.append([f"latency at {f['latency']['rate']:g} ev/s, p50 / p99 / max",
                 f"{w['p50']:.1f} / {w['p99']:.1f} / {w['max']:.1f} ms",
                 f"bare ingest ack {bi['p50']:.1f} / {bi['p99']:.1f} / {bi['max']:.1f} + bare POST "
                 f"{bp['p50']:.1f} / {bp['p99']:.1f} / {bp['max']:.1f} ms", "",
                 f"p99 <= {f['latency']['target_p99_ms']:g} ms: "
                 + common.met(f["latency"]["target_met"])])
    if "backlog" in f:
        b = f["backlog"]
        rows.append([f"backlog of {b['backlog_events']:,}: peak RSS", f"{b['peak_rss_mb']:.1f} MB",
                     f"{b['medians']['fresh_vmhwm_mb']:.1f} MB fresh daemon", "",
                     f"<= 150 MB: {common.met(b['rss_target_met'])}"])
        rows.append(["  healthy webhook beside it", f"{rate(b['medians']['with_backlog'])} ev/s",
                     f"{rate(b['medians']['without'])} alone", f"{b['healthy_ratio']:.2f}x",
                     f">= 0.8x: {common.met(b['ratio_target_met'])}"])
        rows.append(["  restart: exec -> ready", f"{b['medians']['ready']:.2f} s",
                     f"{b['medians']['fresh_ready']:.2f} s empty database", "",
                     f"<= 3 s: {common.met(b['ready_target_met'])}"])
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    common.common_arguments(parser)
    parser.add_argument("--both", action="store_true",
                        help="the default-loop pass, then the uvloop pass, side by side")
    args = parser.parse_args(argv)
    forward: list[str] = []
    if args.quick:
        forward.append("--quick")
    if args.rounds:
        forward += ["--rounds", str(args.rounds)]
    if args.events:
        forward += ["--events", str(args.events)]
    if args.json:
        forward += ["--json", str(args.json)]
    if args.profile:
        forward += ["--profile", str(args.profile)]
    if args.keep:
        forward.append("--keep")
    loops = [False, True] if args.both else [args.uvloop]
    if True in loops and not common.uvloop_available():
        print("uvloop is not installed (pip install uvloop): skipping the uvloop pass\n")
        loops = [loop for loop in loops if not loop]
    started = time.monotonic()
    passes: dict[str, dict[str, Any]] = {}
    for uvloop in loops:
        name = "uvloop" if uvloop else "asyncio"
        print(f"==== {name} pass ====\n", flush=True)
        passes[name] = run_pass(forward, uvloop)
    print(f"all benchmarks: {time.monotonic() - started:.0f}s\n")
    for name, figures in passes.items():
        print(f"main figures, {name} loop (medians; baselines from the same pass):")
        common.print_table(["figure", "webhookd", "baseline (same run)", "ratio", "target"],
                           summary_rows(figures))
        print()
    if len(passes) == 2:
        print("side by side (webhookd on the default loop | on uvloop):")
        rows = []
        for plain, fast in zip(summary_rows(passes["asyncio"]), summary_rows(passes["uvloop"]),
                               strict=False):
            rows.append([plain[0], plain[1], fast[1], plain[3], fast[3]])
        common.print_table(["figure", "asyncio", "uvloop", "ratio (asyncio)", "ratio (uvloop)"],
                           rows)
    if args.quick:
        print("(--quick: smoke run, the figures mean nothing)")


if __name__ == "__main__":
    main()
