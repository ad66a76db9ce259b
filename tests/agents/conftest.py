"""Fixtures for the tests against real agent UIs: the pinned UIs, a loopback API, one agent each.

Where the UIs cannot run (no node, not installed) the tests skip, except with
``ASCHED_REQUIRE_AGENTS=1`` (CI sets it): then they fail, never a silent skip.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

from tests.agents import uis
from tests.agents.fakeapi import FakeApi
from tests.support.tmux import Server


@pytest.fixture(scope="session")
def agent_uis() -> None:
    """The pinned agent UIs are installed (else skip, or fail under ASCHED_REQUIRE_AGENTS)."""
    why = uis.missing()
    if why:
        text = "; ".join(why) + " (./dev test installs them)"
        if os.environ.get("ASCHED_REQUIRE_AGENTS") == "1":
            pytest.fail(text)
        pytest.skip(text)


@pytest.fixture
def api() -> Iterator[FakeApi]:
    """The loopback model API the agents talk to."""
    fake = FakeApi()
    try:
        yield fake
    finally:
        fake.close()


@pytest.fixture
def launch(agent_uis: None, api: FakeApi, server: Server) -> Iterator[Callable[..., uis.Agent]]:
    """Start an agent UI of a kind in its own session; ``launch("claude")``, or
    ``launch("claude", prepare=f)`` to set up its environment first (see uis.start)."""
    started: list[uis.Agent] = []

    def start(kind: str, prepare: Callable[[dict[str, str]], None] | None = None) -> uis.Agent:
        # In the test's own tmux server (tests/conftest.py), killed at teardown; the agents are
        # ended before it, by pid, so that none writes into its temp HOME after its removal.
        name = f"{kind}{len(started) + 1}"
        agent = uis.start(server, server.root, kind, api.url, name, prepare)
        started.append(agent)
        return agent

    yield start
    for agent in started:
        agent.stop()
