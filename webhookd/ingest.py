"""The ingest socket of SPEC §3: NDJSON lines in, one reply per line, in order.

Framing is our own: asyncio's ``readline()`` limit would split an over-long line
into two "lines". Each chunk read becomes one write op; ops waiting while a
commit runs share the next transaction (group commit). A line is answered only
after its commit.
"""

from __future__ import annotations

import asyncio
import grp
import os
import socket
import stat
import time
from collections import deque
from pathlib import Path
from typing import cast

import structlog

from webhookd.bus import Bus
from webhookd.intake import LineError, error_reply, ok_reply, parse_line
from webhookd.model import Accepted, Incoming
from webhookd.store import Store

log = structlog.get_logger("webhookd.ingest")

# Stop reading from a producer that has this many lines awaiting their replies.
PAUSE_AT = 8192
RESUME_AT = 1024


class _Reply:
    __slots__ = ("data",)

    def __init__(self, data: bytes | None = None) -> None:
        self.data = data


class IngestConnection(asyncio.Protocol):
    def __init__(self, server: IngestServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self._partial = b""
        self._discarding = 0  # bytes of an over-long line skipped so far, 0 = not skipping
        self._replies: deque[_Reply] = deque()
        self._unanswered = 0
        self._paused_reading = False
        self._paused_writing = False
        self._eof = False

    # -- asyncio callbacks ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not an isinstance check: uvloop's transports are not asyncio.Transport subclasses.
        self.transport = cast(asyncio.Transport, transport)
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        self.transport = None

    def pause_writing(self) -> None:
        self._paused_writing = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._paused_writing = False
        self._update_reading()

    def eof_received(self) -> bool:
        if self._discarding:
            # An over-long last line without its newline is still a line.
            self._replies.append(_Reply(self._too_large(self._discarding)))
            self._discarding = 0
        if self._partial.strip():
            # A last line without its newline is still a line.
            self._lines_received([self._partial])
        self._partial = b""
        self._eof = True
        self._flush()
        return True  # keep the write side open until the remaining replies are out

    def data_received(self, data: bytes) -> None:
        limit = self.server.max_event_size
        if self._discarding:
            newline = data.find(b"\n")
            if newline < 0:
                self._discarding += len(data)
                return
            self._discarding += newline
            self._replies.append(_Reply(self._too_large(self._discarding)))
            self._discarding = 0
            data = data[newline + 1 :]
        lines = (self._partial + data).split(b"\n") if self._partial else data.split(b"\n")
        partial = lines.pop()
        if len(partial) > limit:
            self._discarding = len(partial)
            partial = b""
        self._partial = partial
        self._lines_received(lines)

    # -- lines -----------------------------------------------------------------------

    def _too_large(self, size: int) -> bytes:
        limit = self.server.max_event_size
        return error_reply("too_large", f"line of {size} bytes is over max_event_size ({limit})")

    def _lines_received(self, lines: list[bytes]) -> None:
        limit = self.server.max_event_size
        shutting_down = self.server.shutting_down
        bus = self.server.bus
        batch: list[Incoming] = []
        slots: list[_Reply] = []
        replies = self._replies
        for line in lines:
            if len(line) > limit:
                replies.append(_Reply(self._too_large(len(line))))
                continue
            if not line.strip():
                continue  # blank lines separate nothing and get no reply
            if shutting_down:
                replies.append(_Reply(error_reply("shutting_down", "webhookd is stopping")))
                continue
            try:
                event = parse_line(line)
                event.targets = bus.targets(event)
            except LineError as exc:
                replies.append(_Reply(error_reply(exc.code, exc.detail)))
                continue
            # The parsed object (if a filter needed it) is dropped now: thousands of
            # them held until the commit cost memory and long garbage collections.
            event.obj = None
            slot = _Reply()
            replies.append(slot)
            batch.append(event)
            slots.append(slot)
        if batch:
            self._commit(batch, slots)
        self._flush()

    def _commit(self, batch: list[Incoming], slots: list[_Reply]) -> None:
        server = self.server
        bus = server.bus
        now = time.time()
        self._unanswered += len(batch)
        self._update_reading()

        def after_commit(accepted: list[Accepted]) -> None:
            bus.publish(batch, accepted, now)

        future = server.store.submit(
            server.store.ingest_op(batch, now), after_commit, weight=len(batch)
        )

        def done(future: asyncio.Future[list[Accepted]]) -> None:
            self._unanswered -= len(batch)
            if future.cancelled() or future.exception() is not None:
                exc = None if future.cancelled() else future.exception()
                log.error("ingest.commit_failed", error=str(exc), events=len(batch))
                data = error_reply("unavailable", f"commit failed, nothing stored: {exc}")
                for slot in slots:
                    slot.data = data
            else:
                for slot, event, accepted in zip(slots, batch, future.result(), strict=True):
                    slot.data = ok_reply(accepted, event.producer_id)
            self._flush()
            self._update_reading()

        future.add_done_callback(done)

    def _flush(self) -> None:
        replies = self._replies
        out: list[bytes] = []
        while replies and replies[0].data is not None:
            data = replies.popleft().data
            assert data is not None
            out.append(data)
        if out and self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(out))
        if not replies:
            self.server.replies_flushed.set()
            if self._eof and self.transport is not None:
                self.transport.close()  # the producer is done and has every reply

    def _update_reading(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        should_pause = self._paused_writing or self._unanswered >= PAUSE_AT
        if should_pause and not self._paused_reading:
            self.transport.pause_reading()
            self._paused_reading = True
        elif (
            not should_pause
            and self._paused_reading
            and self._unanswered <= RESUME_AT
        ):
            self.transport.resume_reading()
            self._paused_reading = False

    @property
    def idle(self) -> bool:
        return not self._replies


class IngestServer:
    """Owns the listening socket and its connections."""

    def __init__(
        self,
        store: Store,
        bus: Bus,
        path: Path,
        mode: int,
        group: str | None,
        max_event_size: int,
    ) -> None:
        self.store = store
        self.bus = bus
        self.path = path
        self.mode = mode
        self.group = group
        self.max_event_size = max_event_size
        self.connections: set[IngestConnection] = set()
        self.shutting_down = False
        self.replies_flushed = asyncio.Event()
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        sock = bind_unix_socket(self.path, self.mode, self.group)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_unix_server(
            lambda: IngestConnection(self), sock=sock, backlog=256
        )

    def stop_accepting(self) -> None:
        """No new connections; lines read from now on are answered ``shutting_down``."""
        self.shutting_down = True
        if self._server is not None:
            self._server.close()

    async def close(self, grace: float = 5.0) -> None:
        """Wait (up to ``grace``) for replies owed to producers, then close every connection."""
        try:
            async with asyncio.timeout(grace):
                while any(not c.idle for c in self.connections):
                    self.replies_flushed.clear()
                    await self.replies_flushed.wait()
        except TimeoutError:
            log.warning("ingest.replies_abandoned", connections=len(self.connections))
        for connection in list(self.connections):
            if connection.transport is not None:
                connection.transport.close()
        if self._server is not None:
            await self._server.wait_closed()
        remove_socket(self.path)


def bind_unix_socket(path: Path, mode: int, group: str | None = None) -> socket.socket:
    """A listening Unix socket that has its mode (and group) before it has its name.

    The socket is bound under a temporary name, given its permissions, then renamed
    into place, so no producer can ever connect through a too-open socket.
    """
    if len(os.fsencode(path)) > 107:
        raise OSError(f"socket path {path} is too long for a Unix socket (max 107 bytes)")
    if _listening(path):
        raise OSError(f"{path} is in use: another process (another webhookd?) listens on it")
    remove_socket(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    remove_socket(temporary)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        old_umask = os.umask(0o777)  # nobody may connect until the mode is set
        try:
            sock.bind(os.fspath(temporary))
        finally:
            os.umask(old_umask)
        if group is not None:
            os.chown(temporary, -1, grp.getgrnam(group).gr_gid)
        os.chmod(temporary, mode)
        os.rename(temporary, path)
        sock.listen(256)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        remove_socket(temporary)
        raise
    return sock


def _listening(path: Path) -> bool:
    """Whether something accepts connections on ``path`` (a live socket, not a stale one)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(os.fspath(path))
        except OSError:
            return False
    return True


def remove_socket(path: Path) -> None:
    """Remove a stale socket file; refuse to remove anything that is not a socket."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise OSError(f"{path} exists and is not a socket; not removing it")
    os.unlink(path)
