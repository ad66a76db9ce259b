"""Shared fixtures: a private temp dir per test, and daemons that are always ended by pid."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import structlog

from asched.store.async_store import AsyncStore
from tests.cliharness import run, state, wakes  # noqa: F401 - fixtures for the CLI tests
from tests.support.daemons import Spawner, spawner_fixture
from tests.support.tmux import Server

CHAOS = Path(__file__).resolve().parent / "chaos"


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """The chaos suite (minutes of kills and floods) runs only when named: `pytest tests/chaos`."""
    if collection_path != CHAOS:
        return None
    for arg in config.args:
        named = Path(arg.split("::")[0]).resolve()
        if named == CHAOS or CHAOS in named.parents:
            return None
    return True


@pytest.fixture(autouse=True)
def _structlog_restored() -> Iterator[None]:
    """A test that runs a command in process (``asched send``, the demo) points structlog at the
    stderr pytest captured for it; the tests after it must not log into that closed stream."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short, unique temp dir: AF_UNIX socket paths must stay under 108 bytes."""
    with tempfile.TemporaryDirectory(prefix="asched-t-") as d:
        yield Path(d)


@pytest.fixture(params=["uvloop", "asyncio"])
def loop_name(request: pytest.FixtureRequest) -> str:
    """Lifecycle tests run under both event loops."""
    return str(request.param)


@pytest.fixture
def spawner(short_tmp: Path, loop_name: str) -> Iterator[Spawner]:
    """Spawns daemons on ``loop_name``; SIGKILLs leftovers at teardown."""
    yield from spawner_fixture(short_tmp, loop_name)


@pytest.fixture
def server() -> Iterator[Server]:
    """A private tmux server (started by its first session), killed at teardown."""
    root = Path(tempfile.mkdtemp(prefix="asched-"))  # short: AF_UNIX paths < 108 bytes
    srv = Server(root)
    try:
        yield srv
    finally:
        srv.kill()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[AsyncStore]:
    """A store the daemon's way (AsyncStore, its own thread) on a fresh file; modules that
    mean another store define their own ``store``."""
    s = await AsyncStore.open(tmp_path / "asched.db")
    try:
        yield s
    finally:
        await s.aclose()
