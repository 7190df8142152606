"""The benchmark's webhook endpoint: an aiohttp server on 127.0.0.1 that counts events.

    python bench/receiver.py [--port 0] [--max-seconds 3600] [--latency]

Prints ``port N`` on its first stdout line. Any POST is parsed as an UltraCart body
(``{"events": [...]}``) and its events are counted under the request's path; the
answer is 200. ``GET /_wait?path=P&target=N&timeout=S`` answers once path P has
counted N events (or after S seconds): ``{"events", "requests", "reached_at"}``,
``reached_at`` being this host's ``time.monotonic()`` (CLOCK_MONOTONIC, comparable
across processes) when path P last counted events: when exactly N events are sent,
the moment the N-th arrived. ``GET /_count?path=P`` answers at once;
``GET /_total?prefix=X`` sums the events of every path starting with X, at once.
Stops on SIGTERM/SIGINT, or by itself after ``--max-seconds``.

With ``--latency`` (bench/latency.py), the handler also takes ``time.monotonic()`` once
the body is read and, for each event whose object carries ``bench_sent_at`` (the
producer's ``time.monotonic()`` when it wrote the line), keeps now - bench_sent_at;
``GET /_latency?path=P`` answers ``{"latencies_ms": [...]}`` in arrival order. Without
the flag nothing of this runs (the other benchmarks count only).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from collections import defaultdict

import orjson
from aiohttp import web


class Counter:
    def __init__(self, latency: bool = False) -> None:
        self.latency = latency
        self.latencies: defaultdict[str, list[float]] = defaultdict(list)  # ms
        self.events: defaultdict[str, int] = defaultdict(int)
        self.requests: defaultdict[str, int] = defaultdict(int)
        self.last_at: dict[str, float] = {}  # when each path last counted events
        self.waiters: list[tuple[str, int, asyncio.Future[None]]] = []

    async def post(self, request: web.Request) -> web.Response:
        body = await request.read()
        received_at = time.monotonic()
        events = orjson.loads(body)["events"]
        count = len(events)
        path = request.path
        if self.latency:
            latencies = self.latencies[path]
            for element in events:
                for obj in element.values():
                    sent_at = obj.get("bench_sent_at") if isinstance(obj, dict) else None
                    if sent_at is not None:
                        latencies.append((received_at - sent_at) * 1000)
        self.events[path] += count
        self.requests[path] += 1
        self.last_at[path] = time.monotonic()
        total = self.events[path]
        for waiter in [w for w in self.waiters if w[0] == path and total >= w[1]]:
            self.waiters.remove(waiter)
            if not waiter[2].done():
                waiter[2].set_result(None)
        return web.Response(text="received")

    def _answer(self, path: str) -> web.Response:
        return web.json_response(
            {"events": self.events[path], "requests": self.requests[path],
             "reached_at": self.last_at.get(path)},
            dumps=lambda value: orjson.dumps(value).decode(),
        )

    async def wait(self, request: web.Request) -> web.Response:
        path = request.query["path"]
        target = int(request.query["target"])
        timeout = min(float(request.query.get("timeout", "60")), 3600.0)
        if self.events[path] < target:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            waiter = (path, target, future)
            self.waiters.append(waiter)
            try:
                await asyncio.wait_for(future, timeout)
            except TimeoutError:
                if waiter in self.waiters:
                    self.waiters.remove(waiter)
        return self._answer(path)

    async def count(self, request: web.Request) -> web.Response:
        return self._answer(request.query["path"])

    async def total(self, request: web.Request) -> web.Response:
        """Events counted so far under every path that starts with ``prefix``, at once."""
        prefix = request.query["prefix"]
        events = sum(count for path, count in self.events.items() if path.startswith(prefix))
        return web.Response(body=orjson.dumps({"events": events}),
                            content_type="application/json")

    async def latency_list(self, request: web.Request) -> web.Response:
        return web.Response(
            body=orjson.dumps({"latencies_ms": self.latencies[request.query["path"]]}),
            content_type="application/json",
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--max-seconds", type=float, default=3600.0)
    parser.add_argument("--latency", action="store_true",
                        help="keep each event's latency from its bench_sent_at (GET /_latency)")
    args = parser.parse_args()

    counter = Counter(args.latency)
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_get("/_wait", counter.wait)
    app.router.add_get("/_count", counter.count)
    app.router.add_get("/_latency", counter.latency_list)
    app.router.add_get("/_total", counter.total)
    app.router.add_post("/{tail:.*}", counter.post)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", args.port)
    await site.start()
    server = site._server
    assert isinstance(server, asyncio.Server) and server.sockets
    print(f"port {server.sockets[0].getsockname()[1]}", flush=True)
    sys.stdout.close()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await asyncio.wait_for(stop.wait(), args.max_seconds)
    except TimeoutError:
        pass
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
