"""Diagnostic: time the daemon's write transactions and its courier's store waits.

    python bench/writer_trace.py [--events 100000] [--rate R] [--window 4096]
                                 [--maximum-events 100] [--concurrency 1] [--uvloop]

Runs a burst like bench/e2e.py (one webhook, deliveries of 100, the receiver on
127.0.0.1) but with the daemon started through this file, which wraps
``Store._transaction``, ``Sender.post`` and the courier's ``_next_delivery`` /
``_write`` with timers before
calling the real ``webhookd serve`` code. It prints, for the time the producer was
sending and for the time after: the number and size of the writer's transactions and
how long the courier waited for its commits and its POSTs. ``--maximum-events 1
--concurrency 16`` traces the unbatched benchmark's webhook instead.

It relies on private names of webhookd (``Store._transaction``,
``Courier._next_delivery``, ``Courier._write``); it is not part of ``bench/run.py`` and may need updating when
those change. Nothing in webhookd is modified: the wrapping happens in the child
process only.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common

THIS_FILE = str(Path(__file__).resolve())


def read_lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def serve_traced(config: str, out: str, use_uvloop: bool = False) -> None:
    """The child: ``webhookd serve`` with timers around the writer and the courier."""
    import atexit

    from webhookd import delivery, logs, sender, store
    from webhookd.server import run
    from webhookd.settings import load_config

    records: list[str] = []
    transaction = store.Store._transaction

    def timed_transaction(self: Any, ops: list[Any]) -> Any:
        started = time.monotonic()
        ran: list[Any] = []
        try:
            ran, outcomes = transaction(self, ops)
            return ran, outcomes
        finally:
            records.append(f"tx {started:.6f} {time.monotonic() - started:.6f} {len(ran)}")

    form = delivery.Courier._next_delivery
    write = delivery.Courier._write
    post = sender.Sender.post

    async def timed_form(self: Any) -> Any:
        started = time.monotonic()
        try:
            return await form(self)
        finally:
            records.append(f"form {started:.6f} {time.monotonic() - started:.6f}")

    async def timed_post(self: Any, *args: Any) -> Any:
        started = time.monotonic()
        try:
            return await post(self, *args)
        finally:
            records.append(f"post {started:.6f} {time.monotonic() - started:.6f}")

    async def timed_write(self: Any, run: Any, what: str) -> bool:
        # Every courier commit but the forming one goes through _write ("record", ...).
        started = time.monotonic()
        try:
            result: bool = await write(self, run, what)
            return result
        finally:
            if what != "form":
                records.append(f"record {started:.6f} {time.monotonic() - started:.6f}")

    checkpoint = store.Store.checkpoint

    async def timed_checkpoint(self: Any) -> Any:
        started = time.monotonic()
        frames = await checkpoint(self)
        records.append(f"ckpt {started:.6f} {time.monotonic() - started:.6f} {frames[0]}")
        return frames

    store.Store.checkpoint = timed_checkpoint  # type: ignore[method-assign]
    store.Store._transaction = timed_transaction  # type: ignore[method-assign]
    delivery.Courier._next_delivery = timed_form  # type: ignore[method-assign]
    sender.Sender.post = timed_post  # type: ignore[method-assign]
    delivery.Courier._write = timed_write  # type: ignore[method-assign]

    def dump() -> None:
        Path(out).write_text("\n".join(records) + "\n")

    atexit.register(dump)
    settings = load_config(config)
    logs.configure(settings.daemon.log_format, settings.daemon.log_level)
    run(settings, use_uvloop=use_uvloop)


def _summary(label: str, rows: list[tuple[float, float, int]], with_ops: bool) -> None:
    if not rows:
        print(f"  {label}: none")
        return
    durations = sorted(row[1] * 1000 for row in rows)
    p90 = durations[int(0.9 * (len(durations) - 1))]
    text = (f"  {label}: {len(rows)}, median {statistics.median(durations):.1f} ms, "
            f"p90 {p90:.1f} ms, max {durations[-1]:.1f} ms")
    if with_ops:
        text += f", ops per transaction median {statistics.median(r[2] for r in rows):.0f}"
    print(text)


async def trace(args: argparse.Namespace) -> None:
    with common.running_receiver() as receiver:
        path = "/trace"
        webhook = {"name": "bench", "url": receiver.url(path), "events": ["order_*"],
                   "maximum_events": args.maximum_events, "concurrency": args.concurrency}
        daemon = common.Daemon([webhook], log_level="warning", keep=args.keep)
        out = daemon.dir / "trace.txt"
        command = [sys.executable, THIS_FILE, "--serve", str(daemon.config), str(out)]
        if args.uvloop:
            command[1:1] = common.UVLOOP_PYTHON_FLAGS
            command.append("--uvloop")
        try:
            await daemon.start(command)
            produced = await common.produce(daemon.socket_path, args.events, 1,
                                            rate=args.rate, window=args.window)
            answer = await receiver.wait(path, args.events, 300.0)
            common.stop_process(daemon.process)
            lines = read_lines(out)
        finally:
            daemon.stop()
    end = answer["reached_at"]
    print(f"{args.events:,} events: acked in {produced.seconds:.2f}s ({produced.rate:,.0f}/s), "
          f"all delivered after {end - produced.started:.2f}s")
    parsed: dict[str, list[tuple[float, float, int]]] = {
        "tx": [], "form": [], "record": [], "post": [], "ckpt": []}
    for line in lines:
        parts = line.split()
        if len(parts) >= 3:
            ops = int(parts[3]) if len(parts) > 3 else 0
            parsed[parts[0]].append((float(parts[1]), float(parts[2]), ops))
    phases = [("while the producer was sending", produced.started, produced.finished),
              ("after the last ack", produced.finished, end)]
    for label, start, stop in phases:
        print(f"{label} ({stop - start:.2f}s):")
        for kind, name in (("tx", "writer transactions"),
                           ("form", "courier: wait for a delivery to form (and commit)"),
                           ("post", "courier: POST"),
                           ("ckpt", "WAL checkpoints beside the writer (frames in the WAL)"),
                           ("record", "courier: record an attempt (and form the next)")):
            _summary(name, [r for r in parsed[kind] if start <= r[0] < stop], kind == "tx")


def main() -> None:
    if len(sys.argv) in (4, 5) and sys.argv[1] == "--serve":
        serve_traced(sys.argv[2], sys.argv[3], sys.argv[4:] == ["--uvloop"])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rate", type=float, help="pace the producer (events/s)")
    parser.add_argument("--window", type=int, default=4096,
                        help="producer lines in flight (default 4096)")
    parser.add_argument("--maximum-events", type=int, default=100,
                        help="the webhook's maximum_events (default 100)")
    parser.add_argument("--concurrency", type=int, default=1,
                        help="the webhook's concurrency (default 1)")
    parser.add_argument("--uvloop", action="store_true", help="the daemon on uvloop")
    parser.add_argument("--keep", action="store_true")
    asyncio.run(trace(parser.parse_args()))


if __name__ == "__main__":
    main()
