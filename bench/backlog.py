"""Backlog: bounded memory, healthy throughput beside a dead endpoint, restart time.

    python bench/backlog.py [--backlog N] [--events N] [--rounds R] [--quick] [--json FILE]

The daemon (``python -m webhookd serve``, log_level "warning") has two webhooks
subscribed to the same ``order_*`` events, both with deliveries of 100:
- "dead": ``http://127.0.0.1:<port>/`` where a TCP socket is bound but not listening,
  so every attempt fails at once with connection refused; ``retry_schedule`` is 1,000
  steps of "1s" and ``disable_after = "30d"``, so it neither gives up nor is disabled
  during the run: its delivery of 100 retries every ~1 s and everything behind it
  stays queued;
- "healthy": bench/receiver.py on 127.0.0.1.

1. Build: the producer pipelines ``--backlog`` events (default 1,000,000) over the
   ingest socket; the healthy webhook delivers all of them; the dead one keeps them
   all pending (checked through the admin API). The daemon's VmRSS is sampled every
   50 ms on a thread (``/proc/<pid>/status``) and its VmHWM (the kernel's peak) is
   read before every stop. Target: peak RSS <= 150 MB for every daemon process that
   holds the backlog.
2. Healthy throughput, interleaved rounds of ``--events`` events (default 200,000):
   (a) the daemon holding the backlog (the dead webhook's queue only grows), (b) a
   fresh daemon on a fresh data directory with the healthy webhook only. Rate =
   events / (producer's first write -> receiver counted the last one), as the burst
   of bench/e2e.py. Target: median (a) / median (b) >= 0.8.
3. Restart: SIGTERM the daemon holding the backlog (while (b) runs it is down), then
   start it again on the same database; time from ``Popen`` until the ingest socket
   accepts a connection AND ``GET /healthz`` on ``<socket_dir>/admin.sock`` answers
   200. Then one event is sent; the time until it reaches the healthy receiver is the
   time to the first delivery after the restart. Target: ready <= 3 s.
Figures are medians over the rounds; every loop and wait is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common

DEFAULT_BACKLOG = 1_000_000
DEFAULT_EVENTS = 200_000
QUICK_BACKLOG = 20_000
QUICK_EVENTS = 2_000
BATCH = 100
RSS_TARGET_MB = 150.0
RATIO_TARGET = 0.8
READY_TARGET_S = 3.0
HEALTHY_PATH = "/backlog"
SAMPLE_INTERVAL = 0.05

# -- memory ---------------------------------------------------------------------------


def proc_status(pid: int) -> dict[str, int]:
    """The ``kB`` fields of /proc/<pid>/status (VmRSS, VmHWM, RssAnon, RssFile...), in kB."""
    fields: dict[str, int] = {}
    with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
        for line in status:
            name, _, value = line.partition(":")
            parts = value.split()
            if len(parts) == 2 and parts[1] == "kB":
                fields[name] = int(parts[0])
    return fields


def mb(kilobytes: float) -> float:
    return kilobytes / 1024


class MemoryWatch:
    """Samples one process's VmRSS on a thread; keeps the peak per named phase."""

    def __init__(self, pid: int, label: str, phase: str,
                 interval: float = SAMPLE_INTERVAL) -> None:
        self.pid = pid
        self.label = label
        self.phase = phase
        self.interval = interval
        self.peaks: dict[str, int] = {}  # phase -> max sampled VmRSS, kB
        self.peak_anon: dict[str, int] = {}  # phase -> max sampled RssAnon, kB
        self.samples = 0
        self.hwm = 0  # VmHWM, kB, as last read
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"rss-{pid}", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        try:
            fields = proc_status(self.pid)
        except OSError:
            return
        rss, anon = fields.get("VmRSS", 0), fields.get("RssAnon", 0)
        self.samples += 1
        self.hwm = max(self.hwm, fields.get("VmHWM", 0))
        phase = self.phase
        self.peaks[phase] = max(self.peaks.get(phase, 0), rss)
        self.peak_anon[phase] = max(self.peak_anon.get(phase, 0), anon)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def set_phase(self, phase: str) -> None:
        self._sample()  # the end of the previous phase
        self.phase = phase

    def finish(self) -> dict[str, Any]:
        """Read VmHWM one last time (call before the process is stopped); stop sampling."""
        self._sample()
        self._stop.set()
        self._thread.join(5)
        return {"process": self.label, "vmhwm_mb": mb(self.hwm), "samples": self.samples,
                "phases_mb": {k: mb(v) for k, v in self.peaks.items()},
                "phases_anon_mb": {k: mb(v) for k, v in self.peak_anon.items()}}


# -- the daemon's sockets ----------------------------------------------------------------


def ingest_accepts(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(str(path))
            return True
        except OSError:
            return False


async def admin_get(admin_path: Path, path: str, limit: float = 30.0) -> Any:
    connector = aiohttp.UnixConnector(path=str(admin_path))
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.get(f"http://webhookd{path}",
                               timeout=aiohttp.ClientTimeout(total=limit)) as response:
            if response.status != 200:
                raise RuntimeError(f"admin {path}: HTTP {response.status}")
            return orjson.loads(await response.read())


@dataclass
class Ready:
    ingest: float  # Popen -> ingest socket accepts, s
    admin: float  # Popen -> GET /healthz answers 200, s

    @property
    def both(self) -> float:
        return max(self.ingest, self.admin)


async def wait_ready(daemon: common.Daemon, spawned_at: float, limit: float = 60.0) -> Ready:
    """Poll (every 5 ms) the ingest socket and the admin /healthz until both answer."""
    assert daemon.process is not None
    admin_path = daemon.socket_path.parent / "admin.sock"
    ingest_at: float | None = None
    admin_at: float | None = None
    deadline = spawned_at + limit
    connector = aiohttp.UnixConnector(path=str(admin_path), force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        while ingest_at is None or admin_at is None:
            if daemon.process.poll() is not None:
                raise RuntimeError(f"webhookd exited before it was ready: {daemon.explain()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"webhookd not ready after {limit}s")
            if ingest_at is None and ingest_accepts(daemon.socket_path):
                ingest_at = time.monotonic()
            if admin_at is None:
                try:
                    async with session.get("http://webhookd/healthz",
                                           timeout=aiohttp.ClientTimeout(total=2)) as response:
                        if response.status == 200:
                            await response.read()
                            admin_at = time.monotonic()
                except (aiohttp.ClientError, OSError, TimeoutError):
                    pass
            if ingest_at is None or admin_at is None:
                await asyncio.sleep(0.005)
    return Ready(ingest_at - spawned_at, admin_at - spawned_at)


# -- the benchmark ---------------------------------------------------------------------


@dataclass
class Burst:
    rate: float  # first write -> receiver counted all
    ack_rate: float
    drain_rate: float  # events delivered after the last ack, per second of lag
    lag: float  # last ack -> receiver counted all, s


@dataclass
class State:
    """The daemon that holds the backlog, across its restarts."""

    daemon: common.Daemon
    receiver: common.Receiver
    dead_port: int
    next_number: int = 0  # the next order number to produce (distinct ids)
    delivered: int = 0  # events the healthy receiver has counted under HEALTHY_PATH
    watch: MemoryWatch | None = None
    processes: list[dict[str, Any]] = field(default_factory=list)  # one per daemon process


def webhooks(receiver: common.Receiver, path: str, dead_port: int | None) -> list[dict[str, Any]]:
    hooks: list[dict[str, Any]] = [
        {"name": "healthy", "url": receiver.url(path), "events": ["order_*"],
         "maximum_events": BATCH},
    ]
    if dead_port is not None:
        hooks.append({
            "name": "dead", "url": f"http://127.0.0.1:{dead_port}/", "events": ["order_*"],
            "maximum_events": BATCH, "timeout": "5s", "retry_schedule": ["1s"] * 1000,
            "disable_after": "30d",
        })
    return hooks


def _limit(events: int) -> float:
    return min(1200.0, 60.0 + events / 2000)


async def burst(daemon: common.Daemon, receiver: common.Receiver, path: str, first: int,
                events: int, already: int) -> Burst:
    """Produce ``events`` from order number ``first``; wait until the receiver has
    ``already + events`` under ``path``."""
    produced = await common.produce(daemon.socket_path, events, start_number=first,
                                    limit=_limit(events))
    if produced.errors:
        raise RuntimeError(f"webhookd answered {produced.errors} errors")
    during = await receiver.count(path) - already
    answer = await receiver.wait(path, already + events, _limit(events))
    if answer["events"] != already + events:
        raise RuntimeError(f"the receiver counted {answer['events']}, expected {already + events}")
    lag = max(0.0, answer["reached_at"] - produced.finished)
    return Burst(
        rate=events / (answer["reached_at"] - produced.started),
        ack_rate=produced.rate,
        drain_rate=(events - during) / lag if lag > 0.01 else float("nan"),
        lag=lag,
    )


def stop_backlog_daemon(state: State) -> float:
    """Read the process's VmHWM, SIGTERM it; return the seconds it took to exit."""
    process = state.daemon.process
    assert process is not None and state.watch is not None
    state.processes.append(state.watch.finish())
    state.watch = None
    started = time.monotonic()
    code = common.stop_process(process)
    seconds = time.monotonic() - started
    if code != 0:
        raise RuntimeError(f"webhookd exited {code} on SIGTERM: {state.daemon.log_tail()}")
    return seconds


async def restart(state: State) -> dict[str, float]:
    """Start the backlog daemon again; time ready and the first delivery after it."""
    daemon = state.daemon
    spawned_at = time.monotonic()
    process = daemon.spawn()
    state.watch = MemoryWatch(process.pid, f"restart {len(state.processes)}",
                              "restart: until ready")
    ready = await wait_ready(daemon, spawned_at)
    state.watch.set_phase("restart: first delivery")
    await common.produce(daemon.socket_path, 1, start_number=state.next_number, limit=30)
    state.next_number += 1
    answer = await state.receiver.wait(HEALTHY_PATH, state.delivered + 1, 60.0)
    state.delivered += 1
    state.watch.set_phase("idle after restart")
    return {"ready": ready.both, "ready_ingest": ready.ingest, "ready_admin": ready.admin,
            "first_delivery": answer["reached_at"] - spawned_at}


async def pending(daemon: common.Daemon, name: str) -> int:
    view = await admin_get(daemon.socket_path.parent / "admin.sock", f"/v1/webhooks/{name}")
    return int(view["pending"])


async def build(state: State, backlog: int, args: argparse.Namespace) -> dict[str, Any]:
    daemon = state.daemon
    await daemon.start()
    assert daemon.process is not None
    state.watch = MemoryWatch(daemon.process.pid, "built the backlog", "idle after start")
    await asyncio.sleep(0.5)
    state.watch.set_phase("build: ingest")
    with common.Profiler(args.profile, daemon.process.pid, "backlog-build"):
        produced = await common.produce(daemon.socket_path, backlog, limit=_limit(backlog))
        state.watch.set_phase("build: healthy drains")
        answer = await state.receiver.wait(HEALTHY_PATH, backlog, _limit(backlog))
    if produced.errors:
        raise RuntimeError(f"webhookd answered {produced.errors} errors")
    state.next_number = backlog
    state.delivered = backlog
    state.watch.set_phase("idle with backlog")
    dead_pending = await pending(daemon, "dead")
    healthy_pending = await pending(daemon, "healthy")
    if dead_pending < backlog:
        raise RuntimeError(f"the dead webhook holds {dead_pending} pending, expected {backlog}")
    await asyncio.sleep(1.0)  # a few of the dead webhook's retries with the backlog in place
    return {
        "ack_rate": produced.rate,
        "ack_seconds": produced.seconds,
        "healthy_caught_up_seconds": answer["reached_at"] - produced.started,
        "dead_pending": dead_pending,
        "healthy_pending": healthy_pending,
        "rss_now_mb": mb(proc_status(daemon.process.pid).get("VmRSS", 0)),
    }


async def fresh_round(receiver: common.Receiver, events: int, tag: str,
                      args: argparse.Namespace) -> tuple[Burst, float, Ready]:
    """The healthy webhook alone in a fresh daemon: (burst, VmHWM in MB, start to ready)."""
    path = f"/fresh-{tag}"
    daemon = common.Daemon(webhooks(receiver, path, None), log_level="warning", keep=args.keep)
    try:
        spawned_at = time.monotonic()
        daemon.spawn()
        ready = await wait_ready(daemon, spawned_at)
        assert daemon.process is not None
        with daemon.explained(f"fresh round {tag} failed"):
            result = await burst(daemon, receiver, path, 0, events, 0)
        hwm = mb(proc_status(daemon.process.pid).get("VmHWM", 0))
    finally:
        daemon.stop()
    return result, hwm, ready


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    backlog = args.backlog or (QUICK_BACKLOG if args.quick else DEFAULT_BACKLOG)
    events = args.events or (QUICK_EVENTS if args.quick else DEFAULT_EVENTS)
    rounds = common.rounds(args)
    print(f"backlog: {backlog:,} events of {common.EVENT_SIZE} bytes pending for a dead "
          f"endpoint beside a healthy webhook (deliveries of {BATCH}); healthy throughput "
          f"over {events:,} events, {rounds} interleaved rounds, {common.loop_name()} loop; "
          f"{common.machine()}",
          flush=True)
    started = time.monotonic()
    dead = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    dead.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    series: dict[str, list[float]] = {
        "with_backlog": [], "with_backlog_ack": [], "with_backlog_drain": [],
        "without": [], "without_ack": [], "without_drain": [],
        "stop_seconds": [], "ready": [], "ready_ingest": [], "ready_admin": [],
        "first_delivery": [], "fresh_vmhwm_mb": [], "fresh_ready": [],
    }
    try:
        with common.running_receiver() as receiver:
            port = dead.getsockname()[1]
            daemon = common.Daemon(webhooks(receiver, HEALTHY_PATH, port), log_level="warning",
                                   keep=args.keep)
            state = State(daemon, receiver, port)
            try:
                with daemon.explained("building the backlog failed"):
                    built = await build(state, backlog, args)
                print(f"  build: {backlog:,} events acked in {built['ack_seconds']:.1f}s "
                      f"({built['ack_rate']:,.0f}/s); healthy caught up after "
                      f"{built['healthy_caught_up_seconds']:.1f}s; pending: dead "
                      f"{built['dead_pending']:,}, healthy {built['healthy_pending']:,}; "
                      f"VmRSS now {built['rss_now_mb']:.1f} MB", flush=True)
                for number in range(1, rounds + 1):
                    assert state.watch is not None and daemon.process is not None
                    state.watch.set_phase(f"round {number}: healthy burst")
                    with (common.Profiler(args.profile, daemon.process.pid,
                                          f"backlog-round{number}"),
                          daemon.explained(f"round {number} failed")):
                        with_backlog = await burst(daemon, receiver, HEALTHY_PATH,
                                                   state.next_number, events, state.delivered)
                    state.next_number += events
                    state.delivered += events
                    state.watch.set_phase("idle with backlog")
                    series["with_backlog"].append(with_backlog.rate)
                    series["with_backlog_ack"].append(with_backlog.ack_rate)
                    series["with_backlog_drain"].append(with_backlog.drain_rate)
                    stop_seconds = stop_backlog_daemon(state)
                    series["stop_seconds"].append(stop_seconds)
                    print(f"  round {number}: healthy with the backlog {with_backlog.rate:>9,.0f}/s "
                          f"(acks {with_backlog.ack_rate:,.0f}/s, then "
                          f"{with_backlog.drain_rate:,.0f}/s); VmHWM of that process "
                          f"{state.processes[-1]['vmhwm_mb']:.1f} MB; SIGTERM -> exit "
                          f"{stop_seconds:.2f}s", flush=True)

                    without, hwm, fresh_ready = await fresh_round(receiver, events, str(number),
                                                                  args)
                    series["fresh_ready"].append(fresh_ready.both)
                    series["without"].append(without.rate)
                    series["without_ack"].append(without.ack_rate)
                    series["without_drain"].append(without.drain_rate)
                    series["fresh_vmhwm_mb"].append(hwm)
                    print(f"  round {number}: healthy alone, fresh   {without.rate:>9,.0f}/s "
                          f"(acks {without.ack_rate:,.0f}/s, then {without.drain_rate:,.0f}/s); "
                          f"VmHWM {hwm:.1f} MB; empty database ready in {fresh_ready.both:.2f}s",
                          flush=True)

                    with daemon.explained(f"restart {number} failed"):
                        restarted = await restart(state)
                    for key, value in restarted.items():
                        series[key].append(value)
                    print(f"  round {number}: restart with the backlog: ready in "
                          f"{restarted['ready']:.2f}s (ingest {restarted['ready_ingest']:.2f}s, "
                          f"admin /healthz {restarted['ready_admin']:.2f}s), first delivery "
                          f"{restarted['first_delivery']:.2f}s after Popen", flush=True)
                await asyncio.sleep(1.0)
                dead_pending = await pending(daemon, "dead")
                stop_backlog_daemon(state)
            finally:
                if state.watch is not None:
                    state.watch.finish()
                daemon.stop()
    finally:
        dead.close()

    medians = {name: common.median(values) for name, values in series.items() if values}
    peak = max(p["vmhwm_mb"] for p in state.processes)
    ratio = medians["with_backlog"] / medians["without"]
    figures: dict[str, Any] = {
        "backlog_events": backlog,
        "event_bytes": common.EVENT_SIZE,
        "events_per_round": events,
        "rounds": rounds,
        "build": built,
        "dead_pending_at_end": dead_pending,
        "peak_rss_mb": peak,
        "peak_rss_by_process_mb": [p["vmhwm_mb"] for p in state.processes],
        "processes": state.processes,  # VmHWM and peak sampled VmRSS/RssAnon by phase
        "medians": medians,
        "rounds_detail": series,
        "healthy_ratio": ratio,
        "rss_target_met": peak <= RSS_TARGET_MB,
        "ratio_target_met": ratio >= RATIO_TARGET,
        "ready_target_met": medians["ready"] <= READY_TARGET_S
        and max(series["ready"]) <= READY_TARGET_S,
        "seconds": time.monotonic() - started,
    }

    def values(key: str, form: str) -> str:
        return " / ".join(format(v, form) for v in series[key])

    print()
    common.print_table(["measure", "value", "rounds / detail", "target"], [
        ["peak RSS of the daemon holding the backlog (VmHWM)", f"{peak:.1f} MB",
         " / ".join(f"{p['vmhwm_mb']:.1f}" for p in state.processes) + " MB (per process)",
         f"<= {RSS_TARGET_MB:.0f} MB: {common.met(figures['rss_target_met'])}"],
        ["  reference: VmHWM of a fresh daemon, healthy webhook only",
         f"{medians['fresh_vmhwm_mb']:.1f} MB", values("fresh_vmhwm_mb", ".1f") + " MB", ""],
        ["healthy ev/s with the backlog", common.fmt_rate(medians["with_backlog"]),
         values("with_backlog", ",.0f"), ""],
        ["healthy ev/s alone (fresh daemon)", common.fmt_rate(medians["without"]),
         values("without", ",.0f"), ""],
        ["  ratio", f"{ratio:.2f}x", "",
         f">= {RATIO_TARGET}: {common.met(figures['ratio_target_met'])}"],
        ["  same runs, acks: with / alone",
         f"{medians['with_backlog_ack']:,.0f} / {medians['without_ack']:,.0f}",
         values("with_backlog_ack", ",.0f") + " | " + values("without_ack", ",.0f"), ""],
        ["  same runs, after the last ack: with / alone",
         f"{medians['with_backlog_drain']:,.0f} / {medians['without_drain']:,.0f}",
         values("with_backlog_drain", ",.0f") + " | " + values("without_drain", ",.0f"), ""],
        ["restart with the backlog: Popen -> ingest + admin ready",
         f"{medians['ready']:.2f} s", values("ready", ".2f") + " s",
         f"<= {READY_TARGET_S:.0f} s: {common.met(figures['ready_target_met'])}"],
        ["  Popen -> ingest accepts / admin /healthz 200",
         f"{medians['ready_ingest']:.2f} / {medians['ready_admin']:.2f} s",
         values("ready_ingest", ".2f") + " | " + values("ready_admin", ".2f"), ""],
        ["  reference: Popen -> ready, fresh daemon on an empty database",
         f"{medians['fresh_ready']:.2f} s", values("fresh_ready", ".2f") + " s", ""],
        ["  Popen -> first delivery at the healthy receiver",
         f"{medians['first_delivery']:.2f} s", values("first_delivery", ".2f") + " s", ""],
        ["  SIGTERM -> exit", f"{medians['stop_seconds']:.2f} s",
         values("stop_seconds", ".2f") + " s", ""],
    ])
    print("peak sampled VmRSS by phase, MB (RssAnon in brackets):")
    for process in state.processes:
        print(f"  {process['process']}: " + ", ".join(
            f"{phase} {value:.1f} ({process['phases_anon_mb'][phase]:.1f})"
            for phase, value in process["phases_mb"].items()))
    print(f"dead webhook pending at the end: {dead_pending:,}; "
          f"took {figures['seconds']:.0f}s")
    return figures


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = common.parser(__doc__)
    parser.add_argument("--backlog", type=int,
                        help=f"events pending for the dead endpoint (default {DEFAULT_BACKLOG:,}, "
                        f"quick {QUICK_BACKLOG:,})")
    args = parser.parse_args(argv)
    return common.finish(args, "backlog", bench(args))


if __name__ == "__main__":
    main()
