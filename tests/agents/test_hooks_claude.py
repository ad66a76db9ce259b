"""Claude Code's hooks tell asched what it received: checked against the real UI, offline.

Each test installs asched's hooks into the agent's HOME (``asched hooks install claude``, the
user's command) before the UI starts, runs a real daemon on the test's tmux server, and holds the
journal against the agent's own record of its prompts (tests/agents/uis.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from asched.core.models import Delivery, NewCheckIn, Once
from asched.core.paths import DB_NAME
from asched.core.states import DeliveryState
from asched.daemon import control
from asched.store.store import Store
from tests.agents.fakeapi import FakeApi
from tests.agents.uis import Agent
from tests.cliharness import asched_process
from tests.support.daemons import DaemonProc, Spawner, wait_until

pytestmark = pytest.mark.timeout(240)
Launch = Callable[..., Agent]


@pytest.fixture
def loop_name() -> str:
    """The daemon on uvloop only (the conftest's spawner otherwise runs every test under both)."""
    return "uvloop"


def _hooked(state: Path) -> Callable[[dict[str, str]], None]:
    """Install asched's hooks, talking to the daemon on ``state``, into an agent's HOME."""

    def prepare(env: dict[str, str]) -> None:
        settings = Path(env["HOME"]) / ".claude" / "settings.json"
        r = asched_process("hooks", "install", "claude", "--settings", str(settings), state=state)
        assert r.returncode == 0 and "hooks installed" in r.stdout, r

    return prepare


def _start(spawner: Spawner, state: Path, agent: Agent, config: str = "") -> DaemonProc:
    if config:
        spawner.write_config(config)
    d = spawner.spawn(state, extra=["--tmux-socket", agent.server.sock, "--log-level", "debug"])
    d.notify.wait_for("READY", "1", timeout=15)
    return d


def _add(state: Path, agent: Agent, message: str, **kw: object) -> int:
    due = datetime.now(UTC) + timedelta(seconds=1)
    with Store.open(state / DB_NAME) as store:
        row = store.add_checkin(
            NewCheckIn(target=agent.pane, message=message, rule=Once(due), next_due=due, **kw)  # type: ignore[arg-type]
        )
    control.send(state, "wake")  # as `asched add` does: the daemon looks at once
    return row.id


def _row(state: Path, checkin_id: int) -> Delivery | None:
    with Store.open(state / DB_NAME) as store:
        rows = store.history(checkin_id=checkin_id, limit=5)
    return rows[0] if rows else None


def _final(state: Path, checkin_id: int, timeout: float = 30.0) -> Delivery:
    assert wait_until(
        lambda: (r := _row(state, checkin_id)) is not None and r.state.final, timeout=timeout
    ), _row(state, checkin_id)
    row = _row(state, checkin_id)
    assert row is not None
    return row


def test_a_delivered_check_in_is_confirmed_and_a_swallowed_one_is_not(
    launch: Launch, spawner: Spawner, short_tmp: Path
) -> None:
    state = short_tmp / "state"
    state.mkdir(mode=0o700)
    agent = launch("claude", prepare=_hooked(state))
    # One Enter only: Claude's Enter after an @file mention picks the suggestion, every time,
    # and must not be pressed again here (that would be the recovery this test goes without).
    _start(spawner, state, agent, "[agents.claude]\nenters = 1\n")

    message = "asched check-in: confirmed by your hooks?"
    ok = _add(state, agent, message)
    assert agent.wait_prompts(1, timeout=30) == [message]  # the agent's own record
    assert wait_until(lambda: (r := _row(state, ok)) is not None and r.confirmed_at, timeout=15)
    row = _row(state, ok)
    assert row is not None and row.state is DeliveryState.VERIFIED, row
    assert row.confirmed_at is not None and row.confirmed_at >= row.started_at, row

    swallowed = "asched check-in: please update @STATUS.md"
    bad = _add(state, agent, swallowed)
    row = _final(state, bad)
    assert (row.state, row.reason) == (DeliveryState.UNVERIFIED, "text-still-in-input"), row
    time.sleep(2.0)  # a confirmation would come within milliseconds of a submitted prompt
    assert agent.settled() == [message]
    row = _row(state, bad)
    assert row is not None and row.confirmed_at is None, row


def test_when_idle_waits_while_the_agents_turn_runs_and_lands_after_it_ends(
    launch: Launch, api: FakeApi, spawner: Spawner, short_tmp: Path
) -> None:
    state = short_tmp / "state"
    state.mkdir(mode=0o700)
    agent = launch("claude", prepare=_hooked(state))
    d = _start(spawner, state, agent)
    api.hold_s = 6.0  # the turn's request hangs this long, then ends in an API error
    agent.server.tmux("send-keys", "-t", agent.pane, "-l", "a long task")
    time.sleep(0.3)
    agent.server.tmux("send-keys", "-t", agent.pane, "Enter")
    assert agent.wait_prompts(1, timeout=15) == ["a long task"]
    began = time.time()
    api.hold_s = 0.0
    message = "asched check-in: when you are idle"
    cid = _add(state, agent, message, idle_s=1.0, idle_wait=True, grace_s=60.0)
    got = agent.wait_prompts(2, timeout=60)
    assert got == ["a long task", message], got
    # The agent's record: the check-in reached it after the turn's 6 s, not at its due time.
    stamps = dict((text, at) for at, text in agent.records())
    assert stamps[message] - began > 5.0, (began, stamps)
    row = _final(state, cid)
    assert row.state is DeliveryState.VERIFIED and row.confirmed_at is not None, row
    # The daemon heard the turn end through the hook, before it typed.
    events = d.events(strict=False)
    ended = [
        e
        for e in events
        if e.get("event") == "hook.received" and e.get("kind") in ("stop", "stop-failure")
    ]
    typed = [e for e in events if e.get("event") == "checkin.delivered"]
    assert ended and typed and ended[0]["timestamp"] <= typed[0]["timestamp"], (ended, typed)


def test_a_dead_daemon_leaves_the_agent_unaffected(
    launch: Launch, spawner: Spawner, short_tmp: Path
) -> None:
    state = short_tmp / "state"
    state.mkdir(mode=0o700)
    agent = launch("claude", prepare=_hooked(state))
    d = _start(spawner, state, agent)
    d.proc.kill()
    d.proc.wait(timeout=10)
    agent.server.tmux("send-keys", "-t", agent.pane, "-l", "hello with no daemon")
    time.sleep(0.3)
    agent.server.tmux("send-keys", "-t", agent.pane, "Enter")
    assert agent.wait_prompts(1, timeout=15) == ["hello with no daemon"]
    agent.settled()
    screen = "\n".join(agent.screen())
    assert "hook error" not in screen.lower() and "blocked" not in screen.lower(), screen
