from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.helpers import Daemon, Receiver


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = Receiver()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def short_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Unix socket paths are limited to 107 bytes; pytest's tmp paths can be long.
    return tmp_path_factory.mktemp("w")


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    """Daemons started by a test; any still running at its end are killed."""
    started: list[Daemon] = []
    yield started
    for daemon in started:
        daemon.kill()
