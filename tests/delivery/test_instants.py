"""The work of an instant: its hooks run in the step that sees it come, before any waiter
resumes; the pastes armed for it are sent there (a real tmux server, a real control client);
other work keeps clear of it."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from asched.core.models import NewCheckIn, Once
from asched.core.states import DeliveryState
from asched.delivery.engine import PASTE_ROOM_S, DeliveryEngine
from asched.delivery.pacing import Instants
from asched.delivery.typist import Typist
from asched.store.async_store import AsyncStore
from asched.tmux.client import TmuxClient
from tests.support.delivery import FAST
from tests.support.tmux import Server

pytestmark = pytest.mark.timeout(60)
needs_tmux = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


async def test_hooks_run_at_the_instant_before_any_waiter_resumes() -> None:
    instants = Instants(time.time)
    when = time.time() + 0.05
    seen: list[str] = []
    hook_now: list[float] = []

    async def waiter(n: int) -> None:
        await instants.wait(when)
        seen.append(f"waiter{n}")

    def hook(now: float) -> None:
        hook_now.append(now)
        seen.append("hook")

    tasks = [asyncio.create_task(waiter(n)) for n in range(3)]
    await asyncio.sleep(0)
    instants.on_ring(when, hook)
    async with asyncio.timeout(5):
        await asyncio.gather(*tasks)
    assert seen[0] == "hook" and sorted(seen[1:]) == ["waiter0", "waiter1", "waiter2"]
    assert hook_now[0] >= when  # never early
    assert time.time() >= when


async def test_a_past_instant_rings_at_once_and_a_failing_hook_stops_nothing() -> None:
    instants = Instants(time.time)
    when = time.time() - 10
    ran: list[str] = []

    def bad(_now: float) -> None:
        raise RuntimeError("a bug in a hook")

    instants.on_ring(when, bad)
    instants.on_ring(when, lambda _now: ran.append("second hook"))
    async with asyncio.timeout(2):
        await instants.wait(when)
    assert ran == ["second hook"]


async def test_a_cancelled_instant_runs_no_hook_and_lets_its_waiters_go() -> None:
    instants = Instants(time.time)
    when = time.time() + 30
    ran: list[float] = []
    instants.on_ring(when, ran.append)
    waiter = asyncio.create_task(instants.wait(when))
    await asyncio.sleep(0.01)
    for task in list(instants._tasks):
        task.cancel()
    async with asyncio.timeout(2):
        await waiter
    await asyncio.sleep(0.01)
    assert ran == []


async def test_a_wait_for_an_instant_that_just_rang_gets_a_ring_of_its_own() -> None:
    """A delivery late to its own instant arms it again (another check-in's paste had it):
    its hook must run before it resumes, never be skipped by the first ring's end."""
    instants = Instants(time.time)
    when = time.time() + 0.05
    order: list[str] = []
    later: list[asyncio.Task[None]] = []

    async def second() -> None:
        await instants.wait(when)
        order.append("second resumed")

    def first_hook(_now: float) -> None:
        order.append("first hook")
        instants.on_ring(when, lambda _now: order.append("second hook"))
        later.append(asyncio.create_task(second()))

    instants.on_ring(when, first_hook)
    async with asyncio.timeout(5):
        await instants.wait(when)
        while not later:
            await asyncio.sleep(0.001)
        await later[0]
    assert order == ["first hook", "second hook", "second resumed"]


async def test_the_instant_follows_the_given_clock() -> None:
    # A clock an hour ahead of the real one: the distance to the instant is what counts.
    ahead = 3600.0
    instants = Instants(lambda: time.time() + ahead)
    started = time.monotonic()
    async with asyncio.timeout(5):
        await instants.wait(time.time() + ahead + 0.1)
    assert time.monotonic() - started >= 0.09


def _engine(store: AsyncStore, tmux: TmuxClient, root: Path) -> DeliveryEngine:
    return DeliveryEngine(store, tmux, FAST, spool=root / "spool")


async def test_work_keeps_clear_of_a_paste_due_at_its_moment(
    store: AsyncStore, tmp_path: Path
) -> None:
    engine = _engine(store, TmuxClient(str(tmp_path / "no-sock")), tmp_path)
    now = time.time()
    assert engine.hold(now) == 0.0
    engine.ledger.fires[now] += 1  # a paste due now
    assert engine.hold(now) == pytest.approx(PASTE_ROOM_S, abs=1e-6)
    assert engine.hold(now + 0.003) == pytest.approx(PASTE_ROOM_S - 0.003, abs=1e-6)
    # A pass that would start just before it waits past it.
    assert engine.hold(now - 0.015) == pytest.approx(0.015 + PASTE_ROOM_S, abs=1e-6)
    assert engine.hold(now + 1.0) == 0.0 and engine.hold(now - 1.0) == 0.0


@dataclass
class OnTmux:
    """A typist on a real tmux server through its control client, and a pane whose program
    (``cat``) writes what it reads to ``out``."""

    tmux: TmuxClient
    typist: Typist
    instants: Instants
    pane: str
    out: Path

    async def written(self, text: str) -> None:
        async with asyncio.timeout(5):
            while not (self.out.exists() and self.out.read_text() == text):
                await asyncio.sleep(0.02)


@pytest.fixture
async def on_tmux(server: Server, tmp_path: Path) -> AsyncIterator[OnTmux]:
    out = tmp_path / "out.txt"
    pane = server.new_session("t", f"cat > {out}")
    tmux = TmuxClient(server.sock, timeout_s=5.0, control=True, attach_first=True)
    try:
        assert await tmux.connect_control()
        typist = Typist(_NoJournal(), tmux, tmp_path / "spool")
        yield OnTmux(tmux, typist, Instants(time.time), pane, out)
    finally:
        await tmux.aclose()


@needs_tmux
async def test_an_armed_paste_is_sent_by_its_instant_and_a_disarmed_one_never(
    on_tmux: OnTmux, tmp_path: Path
) -> None:
    typist, instants = on_tmux.typist, on_tmux.instants
    kept = typist.prepare(1, on_tmux.pane, "armed\n")
    dropped = typist.prepare(2, on_tmux.pane, "disarmed\n")
    late = typist.prepare(3, on_tmux.pane, "held up\n")
    await on_tmux.tmux.load_buffers([(p.buffer, p.text) for p in (kept, dropped, late)], tmp_path)
    when = time.time() + 0.1
    typist.arm(kept, when, when + 60, instants)
    typist.arm(dropped, when, when + 60, instants)
    typist.arm(late, when, when - 1, instants)  # past its latest time already
    typist.disarm(dropped)
    async with asyncio.timeout(5):
        await instants.wait(when)
    assert typist.sent(kept) and not typist.sent(dropped) and not typist.sent(late)
    await typist.paste(kept)  # the outcome of the paste the instant sent
    await on_tmux.written("armed\n")
    assert await on_tmux.tmux.buffer_names(typist.prefix) == {dropped.buffer, late.buffer}


@needs_tmux
async def test_a_paste_made_the_usual_way_is_never_sent_by_its_instant_as_well(
    on_tmux: OnTmux,
) -> None:
    typist, instants = on_tmux.typist, on_tmux.instants
    paste = typist.prepare(1, on_tmux.pane, "once\n")
    await on_tmux.tmux.load_buffers([(paste.buffer, paste.text)])
    when = time.time() + 0.2
    typist.arm(paste, when, when + 60, instants)
    await typist.paste(paste)  # before its instant (a late ring would do the same)
    await on_tmux.written("once\n")
    await on_tmux.tmux.load_buffers([(paste.buffer, "twice\n")])  # what a second paste types
    async with asyncio.timeout(5):
        await instants.wait(when)
    await asyncio.sleep(0.2)
    assert on_tmux.out.read_text() == "once\n" and not typist.sent(paste)
    assert await on_tmux.tmux.buffer_names(typist.prefix) == {paste.buffer}


class _NoJournal:
    async def mark_typing(self, items: list[tuple[int, str]]) -> dict[int, str]:
        return {}


@needs_tmux
async def test_check_ins_due_together_are_sent_by_their_instant_exactly_once(
    store: AsyncStore, server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the engine, as the daemon runs it (the control client on): three due at one
    instant and one alone, each typed once and verified, and not one of them through the
    usual paste calls."""
    outs = [tmp_path / f"r{n}.txt" for n in range(4)]
    for n, out in enumerate(outs):
        server.new_session(f"r{n}", f"cat > {out}")
    tmux = TmuxClient(server.sock, timeout_s=5.0, control=True, attach_first=True)
    assert await tmux.connect_control()
    usual: list[str] = []
    for name in ("paste_buffer", "paste_buffers"):
        original = getattr(tmux, name)

        async def spy(*args: object, _name: str = name, _orig: object = original, **kw: object):  # type: ignore[no-untyped-def]
            usual.append(_name)
            return await _orig(*args, **kw)  # type: ignore[operator]

        monkeypatch.setattr(tmux, name, spy)
    engine = _engine(store, tmux, tmp_path)
    try:
        base = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
        dues = [base, base, base, base + timedelta(milliseconds=300)]
        rows = []
        for n, due in enumerate(dues):
            new = NewCheckIn(target=f"r{n}:0", message=f"m{n}", rule=Once(due), next_due=due)
            checkin, delivery = await store.add_claimed(new, due)
            engine.submit(checkin, delivery)
            rows.append(delivery.id)
        async with asyncio.timeout(20):
            await engine.wait_idle()
        for n, out in enumerate(outs):
            assert out.read_text() == f"m{n}\n"
        for row_id in rows:
            row = await store.get_delivery(row_id)
            assert row is not None and row.state is DeliveryState.VERIFIED, row
        assert usual == []
    finally:
        await tmux.aclose()
