"""Check-ins typed into the real Claude Code and Gemini CLI: submitted once, and asched says so.

Each test starts the real UI (pinned in package.json) in a real tmux pane and delivers through
the daemon's own engine (``asched send``'s path, or a spawned daemon). The ground truth is the
agent's own record of the prompts it submitted (tests/agents/uis.py), never asched's journal; the
test then holds asched's verdict against it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from asched.cli.send import send_now
from asched.core.models import Delivery, NewCheckIn, Once
from asched.core.paths import DB_NAME
from asched.core.states import DeliveryState
from asched.delivery.profiles import BUILTIN
from asched.delivery.settings import DeliverySettings
from asched.store.store import Store
from tests.agents.fakeapi import FakeApi
from tests.agents.uis import KINDS, Agent
from tests.support.daemons import Spawner

pytestmark = pytest.mark.timeout(240)
Launch = Callable[[str], Agent]


def _same(got: str, sent: str) -> bool:
    # Gemini keeps a pasted CR as LF and may end a prompt with the newline a swallowed Enter
    # made: whitespace at the ends is not the message. Codex drops the "@" of a file mention.
    def norm(text: str) -> str:
        return text.replace("\r", "\n").strip()

    return norm(got) == norm(sent) or norm(got) == norm(sent).replace("@", "")


async def _send(
    agent: Agent, tmp: Path, message: str, settings: DeliverySettings | None = None, **kw: float
) -> Delivery:
    state = tmp / "state"
    state.mkdir(mode=0o700, exist_ok=True)
    return await send_now(
        state, agent.pane, message, tmux_socket=agent.server.sock, settings=settings, **kw
    )


MESSAGES = {
    "one line": "asched check-in: what is blocked right now?",
    "three lines": "asched check-in\n1. what changed\n2. what is blocked",
    "an empty line": "asched check-in\n\nafter an empty line",
    "2,000 characters": " ".join(f"word{n:04d}" for n in range(223))[:2000],
    # Claude's and Codex's first Enter only picks the @file suggestion: a second must submit it.
    "ending in @STATUS.md": "asched check-in: please update @STATUS.md",
}


@pytest.mark.parametrize("kind", KINDS)
async def test_each_check_in_is_submitted_once_and_verified(
    launch: Launch, short_tmp: Path, kind: str
) -> None:
    # One after another into one agent (a launch costs seconds): each is held against the
    # prompts the agent recorded since the one before.
    agent = launch(kind)
    for case, message in MESSAGES.items():
        before = len(agent.prompts())
        row = await _send(agent, short_tmp, message)
        got = agent.settled()[before:]
        assert [_same(p, message) for p in got] == [True], (case, got, row)
        assert row.state is DeliveryState.VERIFIED, (case, row)


@pytest.mark.parametrize("kind", KINDS)
async def test_a_busy_agent_queues_the_check_in_and_submits_it_once(
    launch: Launch, api: FakeApi, short_tmp: Path, kind: str
) -> None:
    agent = launch(kind)
    api.hold_s = 4.0  # the first prompt's request hangs: the agent is working
    agent.server.tmux("send-keys", "-t", agent.pane, "-l", "first task")
    time.sleep(0.3)
    agent.server.tmux("send-keys", "-t", agent.pane, "Enter")
    assert agent.wait_prompts(1, timeout=10) == ["first task"]
    api.hold_s = 0.0
    message = "asched check-in while you work"
    row = await _send(agent, short_tmp, message)
    assert row.state is DeliveryState.VERIFIED, row  # queued by the UI: it has it
    got = agent.wait_prompts(2, timeout=30)
    got = agent.settled()
    assert got[0] == "first task" and [_same(p, message) for p in got[1:]] == [True], got


@pytest.mark.parametrize("kind", KINDS)
async def test_half_typed_text_is_never_touched(launch: Launch, short_tmp: Path, kind: str) -> None:
    agent = launch(kind)
    typed = "half typed by a person"
    agent.server.tmux("send-keys", "-t", agent.pane, "-l", typed)
    time.sleep(0.5)
    before = agent.screen()
    row = await _send(agent, short_tmp, "asched check-in: hello", grace_s=2.0)
    assert (row.state, row.reason) == (DeliveryState.SKIPPED, "input-busy"), row
    assert agent.settled(quiet_s=1.0) == []
    after = agent.screen()
    line = [r for r in after if typed in r]
    assert len(line) == 1 and line == [r for r in before if typed in r], after


@pytest.mark.parametrize("kind", KINDS)
async def test_a_forced_swallowed_enter_is_recovered_or_never_called_verified(
    launch: Launch, short_tmp: Path, kind: str
) -> None:
    # Settle 0: the Enter arrives with the paste. Gemini takes it as a newline (its 40 ms
    # unsafe-paste window): asched must see the text still there and press Enter again.
    agent = launch(kind)
    settings = DeliverySettings(settle_s=0.0)
    message = "asched check-in\nline 2\nline 3\nline 4\nline 5\nline 6"
    outcomes = []
    for n in range(3):
        text = f"{message} round {n}"
        before = len(agent.prompts())
        row = await _send(agent, short_tmp, text, settings)
        got = agent.settled()[before:]
        submitted = [_same(p, text) for p in got]
        assert submitted in ([True], []), (got, row)
        if row.state is DeliveryState.VERIFIED:
            assert submitted == [True], (got, row)
        else:
            assert row.state is DeliveryState.UNVERIFIED, row
            if not submitted:  # left in the input area: clear it for the next round
                agent.server.tmux("send-keys", "-t", agent.pane, "C-c")
                await asyncio.sleep(2.5)
        outcomes.append((row.state, row.attempts))
    print(kind, "settle 0:", outcomes)


@pytest.mark.parametrize("kind", KINDS)
async def test_without_recovery_a_swallowed_enter_is_unverified(
    launch: Launch, short_tmp: Path, kind: str
) -> None:
    # One Enter allowed: asched's verdict must still be the truth. Claude's and Codex's Enter
    # after an @file mention only picks the suggestion, every time: a swallow we can count on.
    # Gemini's swallow (settle 0) depends on timing: whichever happens, the verdict must match.
    agent = launch(kind)
    one_enter = tuple(replace(p, enters=1) if p.name == kind else p for p in BUILTIN)
    if kind in ("claude", "codex"):
        settings = DeliverySettings(profiles=one_enter)
        text = "asched check-in: please update @STATUS.md"
    else:
        settings = DeliverySettings(settle_s=0.0, profiles=one_enter)
        text = "asched check-in\nline 2\nline 3\nline 4\nline 5\nline 6"
    row = await _send(agent, short_tmp, text, settings)
    got = agent.settled()
    if kind in ("claude", "codex"):
        assert got == [], got
    if got:
        assert [_same(p, text) for p in got] == [True] and row.state is DeliveryState.VERIFIED
    else:
        assert (row.state, row.reason) == (DeliveryState.UNVERIFIED, "text-still-in-input"), row


def test_twenty_in_a_row_into_each_agent_from_one_daemon(launch: Launch, short_tmp: Path) -> None:
    # One daemon at its default settings, 20 check-ins due 0.2 s apart for each agent: the
    # per-pane gap and the settle space them; each agent gets all 20, in order, once each.
    agents = [launch(kind) for kind in KINDS]
    spawner = Spawner(short_tmp, "uvloop")
    try:
        _twenty(agents, spawner, short_tmp)
    finally:
        spawner.cleanup()


def _twenty(agents: list[Agent], spawner: Spawner, short_tmp: Path) -> None:
    state = short_tmp / "state"
    state.mkdir(mode=0o700)
    start = datetime.now(UTC) + timedelta(seconds=3)
    messages = {
        a.kind: [f"asched check-in {n:02d} of 20 for {a.kind}" for n in range(20)] for a in agents
    }
    with Store.open(state / DB_NAME) as store:
        store.add_many(
            NewCheckIn(
                target=a.pane,
                message=m,
                rule=Once(start + timedelta(seconds=0.2 * n)),
                next_due=start + timedelta(seconds=0.2 * n),
                grace_s=120.0,
            )
            for a in agents
            for n, m in enumerate(messages[a.kind])
        )
    d = spawner.spawn(state, extra=["--tmux-socket", agents[0].server.sock])
    d.notify.wait_for("READY", "1", timeout=15)
    for a in agents:
        a.wait_prompts(20, timeout=90)
    for a in agents:
        got = a.settled(quiet_s=2.0)
        assert got == messages[a.kind], (a.kind, got)
    with Store.open(state / DB_NAME) as store:
        rows = store.history(limit=100)
    assert [r.state for r in rows] == [DeliveryState.VERIFIED] * 20 * len(agents), [
        (r.id, r.target, r.state, r.reason) for r in rows if r.state is not DeliveryState.VERIFIED
    ]
