"""Shared parts of the benchmarks: events, a pipelining producer, the daemon, the
bare-library baseline and the receiver as subprocesses, medians and tables.

Everything talks over loopback or Unix sockets. Every wait is bounded in time and
every subprocess is stopped (SIGTERM, then SIGKILL) when its owner leaves.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiohttp
import orjson

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent

# -- events -------------------------------------------------------------------------------


def _order(number: int) -> dict[str, Any]:
    """A realistic UltraCart-like order (~1 KB as NDJSON). ``number`` fills the ids."""
    return {
        "merchant_id": "DEMO",
        "order_id": "DEMO-@NUM@",
        "current_stage": "Accounts Receivable",
        "creation_dts": "2026-12-04T15:00:00Z",
        "payment": {"payment_method": "Credit Card", "payment_status": "Processed"},
        "billing": {"first_name": "Ada", "last_name": "Lovelace",
                    "address1": "12 St James's Square", "city": "London",
                    "postal_code": "SW1Y 4JH", "country_code": "GB",
                    "email": "ada@example.com", "day_phone": "+44 20 7946 0000"},
        "shipping": {"ship_to_name": "Ada Lovelace", "address1": "12 St James's Square",
                     "city": "London", "postal_code": "SW1Y 4JH", "country_code": "GB",
                     "shipping_method": "Tracked 24"},
        "items": [
            {"merchant_item_id": "WIDGET-RED", "description": "Red widget, large",
             "quantity": 2, "cost": {"value": 19.99, "currency_code": "USD"},
             "distribution_center_code": "DFW"},
            {"merchant_item_id": "GADGET-9", "description": "Gadget nine, refurbished",
             "quantity": 1, "cost": {"value": 149.5, "currency_code": "USD"}},
        ],
        "summary": {"subtotal": {"value": 189.48}, "tax": {"value": 15.16},
                    "total": {"value": 212.59, "currency_code": "USD"}},
        "utms": [{"utm_source": "newsletter", "utm_campaign": "black-friday-2026"}],
        "language_iso_code": "ENG",
        "sequence": 0,
    }


def _templates() -> tuple[bytes, bytes]:
    """(line template, object template): ``%06d`` / ``%d`` placeholders for the number."""
    obj = orjson.dumps(_order(0)).replace(b"%", b"%%")
    obj = obj.replace(b"@NUM@", b"%06d").replace(b'"sequence":0', b'"sequence":%d')
    line = b'{"event":"order_create","object":' + obj + b"}\n"
    return line, obj


LINE_TEMPLATE, OBJECT_TEMPLATE = _templates()
EVENT_SIZE = len(LINE_TEMPLATE % (0, 0))


def event_lines(start: int, count: int) -> bytes:
    """``count`` NDJSON order_create lines with distinct order ids from ``start``."""
    template = LINE_TEMPLATE
    return b"".join([template % (n, n) for n in range(start, start + count)])


def _latency_template() -> bytes:
    """The line template with the producer's clock: ``%06d`` / ``%d`` / ``%.9f``."""
    line = LINE_TEMPLATE.replace(b'"sequence":%d', b'"sequence":%d,"bench_sent_at":%.9f')
    assert line != LINE_TEMPLATE
    return line


LATENCY_TEMPLATE = _latency_template()


def latency_line(number: int, sent_at: float) -> bytes:
    """One order_create line whose object carries ``bench_sent_at`` = ``sent_at``
    (the producer's ``time.monotonic()`` when it writes the line)."""
    return LATENCY_TEMPLATE % (number, number, sent_at)


def latency_body(number: int, sent_at: float) -> bytes:
    """A one-event delivery body (SPEC §4) whose object carries ``bench_sent_at``."""
    obj = OBJECT_TEMPLATE.replace(b'"sequence":%d', b'"sequence":%d,"bench_sent_at":%.9f')
    return b'{"events":[{"order_create":' + obj % (number, number, sent_at) + b"}]}"


def delivery_body(start: int, count: int) -> bytes:
    """The UltraCart body the daemon would send for these events (SPEC §4)."""
    template = OBJECT_TEMPLATE
    elements = [b'{"order_create":' + template % (n, n) + b"}" for n in range(start, start + count)]
    return b'{"events":[' + b",".join(elements) + b"]}"


# -- the producer ---------------------------------------------------------------------------


@dataclass
class Produced:
    events: int
    started: float  # time.monotonic() of the first write
    finished: float  # time.monotonic() when the last reply arrived
    errors: int

    @property
    def seconds(self) -> float:
        return self.finished - self.started

    @property
    def rate(self) -> float:
        return self.events / self.seconds


async def produce(
    path: Path,
    total: int,
    producers: int = 1,
    *,
    start_number: int = 0,
    window: int = 4096,
    chunk_lines: int = 64,
    rate: float | None = None,
    limit: float = 300.0,
) -> Produced:
    """Pipeline ``total`` events over ``producers`` connections; count replies.

    Each connection writes chunks of ``chunk_lines`` lines while fewer than ``window``
    lines await their reply, and reads replies concurrently. An event counts when its
    reply line arrives. Any ``"ok": false`` reply is an error. With ``rate``, the
    producers together send no faster than ``rate`` events/s (a steady stream).
    Fails after ``limit`` seconds.
    """
    shares = [total // producers + (1 if i < total % producers else 0) for i in range(producers)]
    connections = [
        await asyncio.open_unix_connection(str(path), limit=2**20) for _ in range(producers)
    ]
    errors = 0
    go = asyncio.Event()
    started = 0.0

    async def one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                  first: int, count: int) -> None:
        nonlocal errors
        replied = 0
        room = asyncio.Event()
        room.set()

        async def send() -> None:
            sent = 0
            await go.wait()
            while sent < count:
                while sent - replied + chunk_lines > window:
                    room.clear()
                    await room.wait()
                if rate is not None:
                    due = started + sent * producers / rate
                    if due > time.monotonic():
                        await asyncio.sleep(due - time.monotonic())
                n = min(chunk_lines, count - sent)
                writer.write(event_lines(first + sent, n))
                sent += n
                await writer.drain()

        async def receive() -> None:
            nonlocal replied, errors
            while replied < count:
                data = await reader.read(1 << 18)
                if not data:
                    raise ConnectionError(f"{path} hung up after {replied} of {count} replies")
                replied += data.count(b"\n")
                errors += data.count(b'"ok":false')
                room.set()

        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(send())
            tasks.create_task(receive())

    try:
        async with asyncio.timeout(limit):
            async with asyncio.TaskGroup() as tasks:
                first = start_number
                for (reader, writer), count in zip(connections, shares, strict=True):
                    tasks.create_task(one(reader, writer, first, count))
                    first += count
                await asyncio.sleep(0)
                started = time.monotonic()
                go.set()
            finished = time.monotonic()
    finally:
        for _, writer in connections:
            writer.close()
    return Produced(total, started, finished, errors)


# -- subprocesses -----------------------------------------------------------------------


def scratch_dir(tag: str) -> Path:
    """A short temporary directory (Unix socket paths are limited to 107 bytes)."""
    return Path(tempfile.mkdtemp(prefix=f"whb-{tag}-", dir="/tmp"))


async def wait_socket(path: Path, process: subprocess.Popen[bytes], what: str,
                      limit: float = 30.0) -> None:
    """Poll until ``path`` accepts a connection; fail if ``process`` dies or after ``limit`` s."""
    deadline = time.monotonic() + limit
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode} before it was ready")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            try:
                sock.connect(str(path))
                return
            except OSError:
                pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: {path} did not accept within {limit}s")
        await asyncio.sleep(0.02)


def stop_process(process: subprocess.Popen[bytes] | None, timeout: float = 20.0) -> int | None:
    """SIGTERM, wait up to ``timeout``, then SIGKILL. Returns the exit code."""
    if process is None:
        return None
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    return process.returncode


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return orjson.dumps(value).decode()
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    raise TypeError(value)


# -- uvloop ------------------------------------------------------------------------------

# Set by ``use_uvloop`` from each script's ``--uvloop``: the daemon (``serve --uvloop``),
# the bare ingest baseline and the benchmark's own process (producer, bare POST loops)
# then run on uvloop; the receiver always runs on the default loop (the fixed endpoint).
UVLOOP = False
# Extra interpreter flags for the uvloop daemon. Until commit after f40a288 it needed
# ``-O`` (an isinstance assert in IngestConnection.connection_made rejected uvloop's
# transports); that is fixed, so none are needed.
UVLOOP_PYTHON_FLAGS: list[str] = []


def uvloop_available() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def use_uvloop(enabled: bool) -> None:
    """Apply a script's ``--uvloop`` (fails early, with a message, if it is missing)."""
    global UVLOOP
    if enabled and not uvloop_available():
        raise SystemExit("--uvloop needs uvloop (pip install uvloop, or webhookd[uvloop])")
    UVLOOP = enabled


def loop_name() -> str:
    return "uvloop" if UVLOOP else "asyncio"


def run(main: Any) -> Any:
    """``asyncio.run(main)``, on uvloop when ``--uvloop`` was given."""
    if UVLOOP:
        import uvloop

        return uvloop.run(main)
    return asyncio.run(main)


class _Started:
    """``async with``: :meth:`start` on entering (and :meth:`stop` if that fails),
    :meth:`stop` on leaving."""

    async def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        try:
            return await self.start()
        except BaseException:
            self.stop()
            raise

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        traceback: TracebackType | None) -> None:
        self.stop()


class Daemon(_Started):
    """``python -m webhookd serve --config X`` in a fresh directory (``--uvloop`` too when
    the script was given ``--uvloop``)."""

    def __init__(self, webhooks: Sequence[dict[str, Any]] = (), log_level: str = "warning",
                 keep: bool = False, uvloop: bool | None = None) -> None:
        self.dir = scratch_dir("d")
        self.keep = keep
        self.uvloop = UVLOOP if uvloop is None else uvloop
        self.socket_path = self.dir / "run" / "ingest.sock"
        self.log_path = self.dir / "daemon.log"
        lines = [
            "[daemon]",
            f"data_dir = {_toml(str(self.dir / 'data'))}",
            f"socket_dir = {_toml(str(self.dir / 'run'))}",
            'log_format = "json"',
            f"log_level = {_toml(log_level)}",
        ]
        for webhook in webhooks:
            lines.append("[[webhooks]]")
            lines += [f"{key} = {_toml(value)}" for key, value in webhook.items()]
        self.config = self.dir / "webhookd.toml"
        self.config.write_text("\n".join(lines) + "\n")
        self.process: subprocess.Popen[bytes] | None = None

    def spawn(self, command: Sequence[str] | None = None) -> subprocess.Popen[bytes]:
        if command is None:
            command = [sys.executable, "-m", "webhookd", "serve", "--config", str(self.config)]
            if self.uvloop:
                command[1:1] = UVLOOP_PYTHON_FLAGS
                command.append("--uvloop")
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_DIR
            )
        return self.process

    async def start(self, command: Sequence[str] | None = None) -> Self:
        """Spawn (``command`` instead of ``webhookd serve`` if given), then wait until
        the ingest socket accepts (SPEC §6: ready)."""
        await wait_socket(self.socket_path, self.spawn(command), "webhookd")
        return self

    def stop(self) -> None:
        code = stop_process(self.process)
        if code not in (None, 0):
            print(f"warning: webhookd exited {code}; log tail:\n{self.log_tail()}", file=sys.stderr)
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)

    def explain(self) -> str:
        """What became of the daemon, for the message of a failed round."""
        if self.process is None:
            return "webhookd was not started"
        try:
            code: int | None = self.process.wait(3.0)  # it may be on its way out
        except subprocess.TimeoutExpired:
            code = None
        if code is None:
            return "webhookd is still running"
        why = " (0: it was told to stop, by SIGTERM/SIGINT)" if code == 0 else ""
        return f"webhookd exited with code {code}{why}; log tail:\n{self.log_tail()}"

    @contextmanager
    def explained(self, failed: str) -> Iterator[None]:
        """Any error of the block becomes ``RuntimeError(f"{failed}: {self.explain()}")``."""
        try:
            yield
        except Exception as exc:
            raise RuntimeError(f"{failed}: {self.explain()}") from exc

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def log_lines(self) -> int:
        try:
            with open(self.log_path, "rb") as log:
                return sum(1 for _ in log)
        except OSError:
            return 0


class Baseline(_Started):
    """The bare-library ingest loop of ``bench/baseline.py`` in a fresh directory."""

    def __init__(self, keep: bool = False, uvloop: bool | None = None) -> None:
        self.dir = scratch_dir("b")
        self.keep = keep
        self.uvloop = UVLOOP if uvloop is None else uvloop
        self.socket_path = self.dir / "ingest.sock"
        self.process: subprocess.Popen[bytes] | None = None

    def spawn(self) -> subprocess.Popen[bytes]:
        command = [sys.executable, str(BENCH_DIR / "baseline.py"), "--socket",
                   str(self.socket_path), "--db", str(self.dir / "baseline.db")]
        if self.uvloop:
            command.append("--uvloop")
        self.process = subprocess.Popen(command)
        return self.process

    async def start(self) -> Self:
        await wait_socket(self.socket_path, self.spawn(), "baseline")
        return self

    def stop(self) -> None:
        stop_process(self.process)
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)


async def baseline_round(events: int, args: argparse.Namespace, producers: int = 1) -> Produced:
    """``events`` over ``producers`` connections to a fresh bare-library baseline."""
    async with Baseline(keep=args.keep) as baseline:
        produced = await produce(baseline.socket_path, events, producers)
    if produced.errors:
        raise RuntimeError(f"the baseline answered {produced.errors} errors")
    return produced


class Receiver:
    """``bench/receiver.py``: an aiohttp server on 127.0.0.1 that counts events per path."""

    def __init__(self, latency: bool = False) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.latency = latency  # receiver.py --latency: see latencies()

    def start(self) -> Receiver:
        command = [sys.executable, str(BENCH_DIR / "receiver.py")]
        if self.latency:
            command.append("--latency")
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE)
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], 30.0)
        line = self.process.stdout.readline() if ready else b""  # "port N", "" if it died
        if not line.startswith(b"port "):
            stop_process(self.process)
            raise RuntimeError("the receiver did not start")
        self.port = int(line.split()[1])
        return self

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def _get(self, endpoint: str, params: dict[str, str], limit: float) -> dict[str, Any]:
        """GET ``endpoint`` of the receiver (at most ``limit`` seconds); its JSON answer."""
        async with aiohttp.ClientSession() as session:
            async with session.get(self.url(endpoint), params=params,
                                   timeout=aiohttp.ClientTimeout(total=limit)) as response:
                answer: dict[str, Any] = orjson.loads(await response.read())
        return answer

    async def wait(self, path: str, target: int, limit: float) -> dict[str, Any]:
        """Until ``path`` has counted ``target`` events (at most ``limit`` seconds):
        {"events", "requests", "reached_at"}."""
        answer = await self._get(
            "/_wait", {"path": path, "target": str(target), "timeout": str(limit)}, limit + 10
        )
        if answer["events"] < target:
            raise TimeoutError(
                f"receiver {path}: {answer['events']} of {target} events after {limit}s"
            )
        return answer

    async def count(self, path: str) -> int:
        """Events counted so far under ``path``."""
        return int((await self._get("/_count", {"path": path}, 30))["events"])

    async def total(self, prefix: str) -> int:
        """Events counted so far under every path starting with ``prefix`` (one snapshot)."""
        return int((await self._get("/_total", {"prefix": prefix}, 30))["events"])

    async def latencies(self, path: str) -> list[float]:
        """(``latency`` mode) For each event received under ``path``, in arrival order:
        the receiver's ``time.monotonic()`` in its handler minus the event object's
        ``bench_sent_at``, in milliseconds."""
        answer = await self._get("/_latency", {"path": path}, 60)
        return [float(value) for value in answer["latencies_ms"]]

    def stop(self) -> None:
        stop_process(self.process)


@contextmanager
def running_receiver(latency: bool = False) -> Iterator[Receiver]:
    receiver = Receiver(latency).start()
    try:
        yield receiver
    finally:
        receiver.stop()


# -- py-spy ------------------------------------------------------------------------------


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) used so far by each thread of a process."""
    tick = os.sysconf("SC_CLK_TCK")
    used: dict[int, float] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return used
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as stat:
                fields = stat.read().rpartition(")")[2].split()
        except OSError:
            continue
        used[int(tid)] = (int(fields[11]) + int(fields[12])) / tick
    return used


class Profiler:
    """The daemon's CPU per thread over the measured phase, printed on :meth:`stop`;
    with ``--profile DIR`` also ``py-spy record`` attached for that phase. As a context
    manager, the block is the measured phase. A second :meth:`stop` does nothing."""

    def __init__(self, out_dir: Path | None, pid: int | None, name: str) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.pid, self.name = pid, name
        self.cpu: dict[str, float] = {}  # loop / threads seconds, after stop()
        if pid is not None and out_dir is not None and shutil.which("py-spy") is None:
            print("--profile needs py-spy (pip install py-spy)", file=sys.stderr)
        elif pid is not None and out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            self.process = subprocess.Popen(
                ["py-spy", "record", "--pid", str(pid), "--rate", "250", "--nonblocking",
                 "--format", "raw", "--output", str(out_dir / f"{name}.txt"),
                 "--duration", "600"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            time.sleep(0.5)  # let it attach
        self._before = thread_cpu(pid) if pid is not None else {}

    def stop(self) -> None:
        if self.pid is not None and not self.cpu:
            after = thread_cpu(self.pid)
            spent = {tid: used - self._before.get(tid, 0.0) for tid, used in after.items()}
            loop = spent.pop(self.pid, 0.0)
            self.cpu = {"loop": loop, "threads": sum(spent.values())}
            print(f"    {self.name}: daemon CPU {loop:.2f} s on the event loop thread, "
                  f"{self.cpu['threads']:.2f} s on its other threads (SQLite)", flush=True)
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()


@asynccontextmanager
async def measured_daemon(args: argparse.Namespace, profile: str, failed: str,
                          webhooks: Sequence[dict[str, Any]] = (),
                          log_level: str = "warning") -> AsyncIterator[Daemon]:
    """A fresh daemon with ``webhooks`` (``--keep``), started; the block is its measured
    phase, under a :class:`Profiler` named ``profile`` (``--profile``). An error of the
    block becomes ``RuntimeError(f"{failed}: {daemon.explain()}")``. The daemon is
    stopped on leaving."""
    async with Daemon(webhooks, log_level=log_level, keep=args.keep) as daemon:
        assert daemon.process is not None
        with Profiler(args.profile, daemon.process.pid, profile), daemon.explained(failed):
            yield daemon


# -- figures ---------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (``fraction`` 0.99 for p99) of ``values``."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * fraction // 1))  # ceil(n * fraction), at least 1
    return ordered[min(len(ordered), int(rank)) - 1]


def met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def fmt_rate(value: float) -> str:
    return f"{value:,.0f}"


def fmt_rates(values: Sequence[float]) -> str:
    """The rates of the rounds: ``12,345 / 12,400 / 12,011``."""
    return " / ".join(fmt_rate(v) for v in values)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A Markdown table, so it can be pasted into BENCHMARKS.md as is."""
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]
    print("| " + " | ".join(str(h).ljust(w) for h, w in zip(headers, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) + " |")


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs ({model}), Python {platform.python_version()}"


def common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true",
                        help="smoke mode: small N, 1 round, a few seconds; asserts no speed")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 3, quick 1)")
    parser.add_argument("--events", type=int, help="events per round")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="py-spy record the daemon during each measured phase into DIR")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directories")
    parser.add_argument("--uvloop", action="store_true",
                        help="run the daemon (serve --uvloop), the bare baselines and this "
                        "process on uvloop (needs pip install uvloop)")


def write_json(path: Path | None, name: str, figures: dict[str, Any]) -> None:
    if path is None:
        return
    existing: dict[str, Any] = {}
    if path.exists():
        existing = orjson.loads(path.read_bytes())
    existing[name] = figures
    path.write_bytes(orjson.dumps(existing, option=orjson.OPT_INDENT_2))


def rounds(args: argparse.Namespace) -> int:
    """``--rounds``: 3 by default, 1 with ``--quick``."""
    return int(args.rounds or (1 if args.quick else 3))


def parser(doc: str | None) -> argparse.ArgumentParser:
    """A script's argument parser with the options every benchmark takes."""
    made = argparse.ArgumentParser(description=(doc or "").split("\n")[0])
    common_arguments(made)
    return made


def finish(args: argparse.Namespace, name: str, benchmark: Any) -> dict[str, Any]:
    """Run a script's benchmark coroutine on the chosen loop (with ``--quick``, then say
    the figures mean nothing) and write its JSON."""
    use_uvloop(args.uvloop)
    figures: dict[str, Any] = run(benchmark)
    if args.quick:
        print("(--quick: smoke run, the figures mean nothing)")
    write_json(args.json, name + ("_uvloop" if args.uvloop else ""), figures)
    return figures
