"""The scheduler loop on a real SQLite store, with an injected clock (once with the real one)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog.testing

from asched.core.models import CatchUp, CheckIn, Cron, Delivery, Every, NewCheckIn, Once
from asched.core.states import DeliveryState
from asched.daemon.scheduler import Scheduler, SystemClock
from asched.store.async_store import AsyncStore
from asched.store.store import Store

T0 = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)


class FakeClock:
    """Wall and monotonic time that only move when the test says so; a sleep returns at once
    (``run_once`` is driven by the test) and records when it was asked to end."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start
        self.m = 1000.0
        self.sleeps: list[datetime | None] = []

    def wall(self) -> datetime:
        return self.now

    def mono(self) -> float:
        return self.m

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        self.m += seconds

    def jump_wall(self, seconds: float) -> None:
        """The wall clock is set (NTP, an admin): monotonic time barely moves."""
        self.now += timedelta(seconds=seconds)
        self.m += 0.01

    async def sleep_until(self, when: datetime | None, wake: asyncio.Event) -> None:
        self.sleeps.append(when)
        await asyncio.sleep(0)


class IdleClock(FakeClock):
    """A sleep that lasts until the fake wall clock reaches its end, or a wake-up."""

    def __init__(self, start: datetime = T0) -> None:
        super().__init__(start)
        self.moved = asyncio.Event()

    def advance(self, seconds: float) -> None:
        super().advance(seconds)
        self.moved.set()

    async def sleep_until(self, when: datetime | None, wake: asyncio.Event) -> None:
        self.sleeps.append(when)
        while not wake.is_set() and (when is None or self.now < when):
            self.moved.clear()
            waiters = [asyncio.ensure_future(e.wait()) for e in (wake, self.moved)]
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            for w in waiters:
                w.cancel()


class CountingStore:
    """The store, counting the scheduler's reads of it."""

    def __init__(self, store: AsyncStore) -> None:
        self._store = store
        self.passes = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    async def due_checkins(self, now: datetime, limit: int = 1000) -> list[CheckIn]:
        self.passes += 1
        return await self._store.due_checkins(now, limit)


class Recorder:
    """A dispatch that records what it was handed.

    With ``finish`` (the database's path), it also ends each delivery at once, as a quick engine
    would: a check-in with an occurrence in flight is not due again until that one ends.
    """

    def __init__(self, finish: Path | None = None) -> None:
        self.got: list[tuple[CheckIn, Delivery]] = []
        self.finish = finish

    def __call__(self, checkin: CheckIn, delivery: Delivery) -> None:
        self.got.append((checkin, delivery))
        if self.finish is not None:
            with Store.open(self.finish) as s:
                s.transition(delivery.id, DeliveryState.FAILED, reason="recorded")

    def due_times(self) -> list[datetime]:
        return [d.due_at for _, d in self.got]


def every(seconds: int, first: datetime, **kw: object) -> NewCheckIn:
    return NewCheckIn(
        target="work:0", message="status?", rule=Every(seconds, first), next_due=first, **kw
    )  # type: ignore[arg-type]


async def test_fires_on_time_and_only_once(store: AsyncStore) -> None:
    clock, rec = FakeClock(), Recorder()
    due = T0 + timedelta(seconds=10)
    c = await store.add_checkin(
        NewCheckIn(target="work:0", message="hi", rule=Once(due), next_due=due)
    )
    sched = Scheduler(store, rec, clock)
    assert await sched.run_once() == due - timedelta(seconds=sched.lead_s)
    assert rec.got == []
    clock.advance(10)
    await sched.run_once()
    assert [d.checkin_id for _, d in rec.got] == [c.id]
    assert rec.got[0][1].late is False
    clock.advance(10)
    assert await sched.run_once() is None  # nothing left: only a wake-up brings a pass
    assert len(rec.got) == 1
    stored = await store.get_checkin(c.id)
    assert stored is not None and stored.next_due is None and stored.last_due == due


async def test_every_fires_each_slot(store: AsyncStore, tmp_path: Path) -> None:
    clock, rec = FakeClock(), Recorder(finish=tmp_path / "asched.db")
    await store.add_checkin(every(60, T0 + timedelta(seconds=60)))
    sched = Scheduler(store, rec, clock)
    for _ in range(10):
        clock.advance(60)
        await sched.run_once()
    assert rec.due_times() == [T0 + timedelta(seconds=60 * k) for k in range(1, 11)]


async def test_sleeps_until_the_next_due_time_however_far(store: AsyncStore) -> None:
    # No cap (asched once re-read the store every 30 s): the wall-clock timer that ends the
    # sleep also ends it when the clock is set, so a far due time is safe (wallclock.py).
    clock, rec = FakeClock(), Recorder()
    sched = Scheduler(store, rec, clock)
    await store.add_checkin(every(86400, T0 + timedelta(days=3)))
    assert await sched.run_once() == T0 + timedelta(days=3, seconds=-sched.lead_s)
    await store.add_checkin(every(3600, T0 + timedelta(hours=1)))
    assert await sched.run_once() == T0 + timedelta(hours=1, seconds=-sched.lead_s)


async def test_idle_the_store_is_read_only_when_due_or_woken(store: AsyncStore) -> None:
    # An hour idle with one check-in due at its end: one pass at the start, one per wake-up
    # (a CLI write), one at the due time; none in between, however much time passes.
    clock, rec = IdleClock(), Recorder()
    c = await store.add_checkin(every(3600, T0 + timedelta(hours=1)))
    counting = CountingStore(store)
    sched = Scheduler(counting, rec, clock)  # type: ignore[arg-type]
    stopping = asyncio.Event()
    task = asyncio.create_task(sched.run(stopping))

    async def settled(sleeps: int) -> None:
        async with asyncio.timeout(5):
            while len(clock.sleeps) < sleeps:
                await asyncio.sleep(0)
        for _ in range(10):  # and nothing more comes of it
            await asyncio.sleep(0)

    await settled(1)
    assert clock.sleeps == [T0 + timedelta(hours=1, seconds=-sched.lead_s)]
    for _ in range(59 * 2):  # 59 minutes, in 30 s steps
        clock.advance(30)
        await asyncio.sleep(0)
    await settled(1)
    assert counting.passes == 1 and len(clock.sleeps) == 1
    sched.wake()
    await settled(2)
    assert counting.passes == 2 and rec.got == []
    clock.advance(60)
    await settled(3)
    assert counting.passes == 3 and [ch.id for ch, _ in rec.got] == [c.id]
    stopping.set()
    async with asyncio.timeout(5):
        await task


async def test_the_system_clock_sleeps_to_a_wall_time_or_a_wake() -> None:
    # The real timerfd (wallclock.py): never returns before the wall time; a wake ends a sleep
    # of an hour, or of no time at all, at once.
    clock, wake = SystemClock(), asyncio.Event()
    try:
        for _ in range(3):
            when = clock.wall() + timedelta(milliseconds=30)
            async with asyncio.timeout(5):
                await clock.sleep_until(when, wake)
            assert clock.wall() >= when
        for far in (clock.wall() + timedelta(hours=1), None):
            asyncio.get_running_loop().call_later(0.02, wake.set)
            async with asyncio.timeout(5):
                await clock.sleep_until(far, wake)
            assert wake.is_set()
            wake.clear()
        async with asyncio.timeout(5):  # a due time already past: at once
            await clock.sleep_until(clock.wall() - timedelta(days=1), wake)
    finally:
        clock.close()


async def test_late_within_grace_delivers_once_marked_late(store: AsyncStore) -> None:
    clock, rec = FakeClock(), Recorder()
    await store.add_checkin(every(60, T0 + timedelta(seconds=60), grace_s=120.0))
    sched = Scheduler(store, rec, clock)
    clock.advance(60 + 90)  # 90 s late: within grace, one slot (T0+120) also missed
    await sched.run_once()
    assert len(rec.got) == 1
    checkin, delivery = rec.got[0]
    assert delivery.late is True and delivery.due_at == T0 + timedelta(seconds=60)
    stored = await store.get_checkin(checkin.id)
    assert stored is not None and stored.next_due == T0 + timedelta(seconds=180)


@pytest.mark.parametrize("policy", [CatchUp.SKIP, CatchUp.ONCE])
async def test_past_grace_follows_the_policy(store: AsyncStore, policy: CatchUp) -> None:
    clock, rec = FakeClock(), Recorder()
    c = await store.add_checkin(
        every(60, T0 + timedelta(seconds=60), grace_s=30.0, catch_up=policy)
    )
    sched = Scheduler(store, rec, clock)
    clock.advance(60 + 15 * 3600)  # the reference replayed 15-hour-old check-ins at start
    await sched.run_once()
    history = await store.history(c.id)
    assert len(history) == 1  # one row for the whole outage, never one per missed slot
    if policy is CatchUp.SKIP:
        assert rec.got == []
        assert history[0].state is DeliveryState.SKIPPED and history[0].reason == "missed"
    else:
        assert len(rec.got) == 1 and rec.got[0][1].late
    stored = await store.get_checkin(c.id)
    assert stored is not None and stored.next_due is not None
    assert clock.now < stored.next_due <= clock.now + timedelta(seconds=60)


async def test_forward_jump_of_a_day_no_burst_no_stall(store: AsyncStore, tmp_path: Path) -> None:
    clock, rec = FakeClock(), Recorder(finish=tmp_path / "asched.db")
    c = await store.add_checkin(every(60, T0 + timedelta(seconds=60)))
    sched = Scheduler(store, rec, clock)
    for _ in range(3):
        clock.advance(60)
        await sched.run_once()
    clock.jump_wall(86400)
    await sched.run_once()
    assert len(rec.got) == 3  # past the 300 s grace: skipped, not a burst of 1,440
    history = await store.history(c.id, limit=1000)
    assert len(history) == 4 and history[0].reason == "missed"
    for _ in range(5):
        clock.advance(60)
        await sched.run_once()
    assert len(rec.got) == 8
    dues = rec.due_times()
    assert len(set(dues)) == len(dues)


async def test_backward_jump_of_an_hour_no_duplicate_no_stall(
    store: AsyncStore, tmp_path: Path
) -> None:
    clock, rec = FakeClock(), Recorder(finish=tmp_path / "asched.db")
    c = await store.add_checkin(every(60, T0 + timedelta(seconds=60)))
    cron_first = T0 + timedelta(minutes=5)
    k = await store.add_checkin(
        NewCheckIn(
            target="work:1",
            message="cron",
            rule=Cron("*/5 * * * *", "UTC"),
            next_due=cron_first,
        )
    )
    sched = Scheduler(store, rec, clock)
    for _ in range(10):
        clock.advance(60)
        await sched.run_once()
    before = len(rec.got)
    assert before == 12  # ten interval slots and two cron slots
    clock.jump_wall(-3600)
    await sched.run_once()
    assert len(rec.got) == before  # no burst
    stored = await store.get_checkin(c.id)
    assert stored is not None and stored.next_due is not None
    assert clock.now < stored.next_due <= clock.now + timedelta(seconds=60)  # no stall
    for _ in range(10):
        clock.advance(60)
        await sched.run_once()
    interval_rows = [d for ch, d in rec.got if ch.id == c.id]
    cron_rows = [d for ch, d in rec.got if ch.id == k.id]
    assert len(interval_rows) == 20  # every minute on, across the jump
    assert len(cron_rows) == 4
    # No occurrence was handed over twice.
    ids = [d.id for _, d in rec.got]
    assert len(set(ids)) == len(ids)
    journal = await store.history(limit=1000)
    assert len(journal) == len(rec.got)


async def test_exhausted_by_count_and_until(store: AsyncStore, tmp_path: Path) -> None:
    clock, rec = FakeClock(), Recorder(finish=tmp_path / "asched.db")
    a = await store.add_checkin(every(60, T0 + timedelta(seconds=60), remaining=3))
    b = await store.add_checkin(
        every(60, T0 + timedelta(seconds=60), until=T0 + timedelta(minutes=2))
    )
    sched = Scheduler(store, rec, clock)
    for _ in range(6):
        clock.advance(60)
        await sched.run_once()
    assert sum(ch.id == a.id for ch, _ in rec.got) == 3
    assert sum(ch.id == b.id for ch, _ in rec.got) == 2


async def test_three_hundred_due_in_the_same_second_all_dispatched(store: AsyncStore) -> None:
    clock, rec = FakeClock(), Recorder()
    due = T0 + timedelta(seconds=1)
    await store.add_many(
        NewCheckIn(target=f"s{i}:0", message=f"m{i}", rule=Once(due), next_due=due)
        for i in range(300)
    )
    sched = Scheduler(store, rec, clock)
    clock.advance(1.9)  # the pass runs late within the second
    await sched.run_once()
    assert len(rec.got) == 300
    assert all(not d.late for _, d in rec.got)
    assert await store.in_flight() != []


async def test_two_schedulers_never_claim_one_occurrence_twice(store: AsyncStore) -> None:
    clock, rec = FakeClock(), Recorder()
    due = T0 + timedelta(seconds=1)
    await store.add_many(
        NewCheckIn(target=f"s{i}:0", message="x", rule=Once(due), next_due=due) for i in range(50)
    )
    a, b = Scheduler(store, rec, clock), Scheduler(store, rec, clock)
    clock.advance(2)
    await asyncio.gather(a.run_once(), b.run_once())
    ids = [c.id for c, _ in rec.got]
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 50


async def test_a_failing_pass_is_logged_and_retried(store: AsyncStore) -> None:
    rec = Recorder()

    class Flaky:
        def __init__(self) -> None:
            self.calls = 0

        def __getattr__(self, name: str) -> object:
            return getattr(store, name)

        async def due_checkins(self, now: datetime, limit: int = 1000) -> list[CheckIn]:
            self.calls += 1
            if self.calls == 1:
                raise RuntimeError("disk hiccup")
            return await store.due_checkins(now, limit)

    flaky = Flaky()
    clock = FakeClock()
    stopping = asyncio.Event()
    sched = Scheduler(flaky, rec, clock)  # type: ignore[arg-type]
    task = asyncio.create_task(sched.run(stopping))
    async with asyncio.timeout(5):
        while flaky.calls < 3:
            await asyncio.sleep(0)
    stopping.set()
    async with asyncio.timeout(5):
        await task
    assert clock.sleeps[0] == T0 + timedelta(seconds=1)  # the back-off after the failed pass


async def test_wakes_on_add_with_the_real_clock(store: AsyncStore) -> None:
    got: list[float] = []
    stopping = asyncio.Event()

    def dispatch(checkin: CheckIn, delivery: Delivery) -> None:
        got.append(time.time() - delivery.due_at.timestamp())

    sched = Scheduler(store, dispatch)
    task = asyncio.create_task(sched.run(stopping))
    await asyncio.sleep(0.05)  # the loop is now asleep until woken (nothing is due)
    due = datetime.now(UTC) + timedelta(milliseconds=200)
    await store.add_checkin(NewCheckIn(target="w:0", message="x", rule=Once(due), next_due=due))
    sched.wake()
    async with asyncio.timeout(5):
        while not got:
            await asyncio.sleep(0.005)
    stopping.set()
    async with asyncio.timeout(5):
        await task
    assert -sched.lead_s - 0.002 <= got[0] < 0.05, f"dispatched {got[0] * 1000:.1f} ms after due"


async def test_a_rule_that_no_longer_computes_does_not_stop_the_others(store: AsyncStore) -> None:
    clock, rec = FakeClock(), Recorder()
    due = T0 + timedelta(seconds=1)
    bad = await store.add_checkin(
        NewCheckIn(target="w:0", message="x", rule=Cron("0 * * * *", "UTC"), next_due=due)
    )
    good = await store.add_checkin(every(60, due))
    # The zone vanishes from the system (a tzdata upgrade): written behind the store's back.
    conn = sqlite3.connect(store.path, isolation_level=None)
    conn.execute("UPDATE checkins SET tz = 'Gone/Zone' WHERE id = ?", (bad.id,))
    conn.close()
    sched = Scheduler(store, rec, clock)
    clock.advance(2)
    await sched.run_once()
    assert [c.id for c, _ in rec.got] == [good.id]
    (row,) = await store.history(bad.id)
    assert (row.state, row.reason) == (DeliveryState.FAILED, "bad-rule")
    gone = await store.get_checkin(bad.id)
    assert gone is not None and gone.next_due is None


async def test_an_occurrence_in_flight_holds_the_next_one_back(
    store: AsyncStore, tmp_path: Path
) -> None:
    # A pane held up for 10 slots (the engine never finished the first occurrence): the
    # scheduler claims nothing more meanwhile, and does not spin (it sleeps to the next wake-up,
    # not 0 s); once the held occurrence ends, the one slot it left is claimed, late, once.
    clock, rec = FakeClock(), Recorder()
    c = await store.add_checkin(every(60, T0 + timedelta(seconds=60), grace_s=3600.0))
    sched = Scheduler(store, rec, clock)
    clock.advance(60)
    await sched.run_once()
    assert len(rec.got) == 1
    for _ in range(10):
        clock.advance(60)
        assert await sched.run_once() is None  # held back: woken when the delivery ends
    assert len(rec.got) == 1
    with Store.open(tmp_path / "asched.db") as s:
        s.transition(rec.got[0][1].id, DeliveryState.FAILED, reason="recorded")
    await sched.run_once()
    assert len(rec.got) == 2
    second = rec.got[1][1]
    assert second.due_at == T0 + timedelta(seconds=120) and second.late
    stored = await store.get_checkin(c.id)
    assert stored is not None and stored.next_due == T0 + timedelta(seconds=720)


async def test_a_late_slot_that_a_later_paste_covers_is_missed_not_typed(store: AsyncStore) -> None:
    # The engine says an older occurrence reached the pane after this slot: the slot is journaled
    # skipped(missed) under either policy, so a hold ends with one late copy, not two.
    clock, rec = FakeClock(), Recorder()
    await store.add_checkin(every(60, T0 + timedelta(seconds=60), catch_up=CatchUp.ONCE))
    sched = Scheduler(store, rec, clock, catching_up=lambda _id, _due: True)
    clock.advance(60)
    await sched.run_once()  # on time: not asked
    assert len(rec.got) == 1
    with Store.open(store.path) as s:
        s.transition(rec.got[0][1].id, DeliveryState.FAILED, reason="recorded")
    clock.advance(65)
    await sched.run_once()
    assert len(rec.got) == 1
    newest = (await store.history())[0]
    assert (newest.state, newest.reason, newest.late) == (DeliveryState.SKIPPED, "missed", True)


async def test_a_failure_on_every_pass_is_logged_in_full_once_then_counted(
    store: AsyncStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A full disk fails every pass alike: one traceback, then a line at the 10th repeat, then a
    # line when passes work again; not a traceback a second.
    sched = Scheduler(store, Recorder(), FakeClock())
    stopping = asyncio.Event()
    calls = 0
    real = store.due_checkins

    async def full_disk(*args: Any, **kwargs: Any) -> list[CheckIn]:
        nonlocal calls
        calls += 1
        if calls > 12:
            stopping.set()
            return await real(*args, **kwargs)
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(store, "due_checkins", full_disk)
    with structlog.testing.capture_logs() as logs:
        await asyncio.wait_for(sched.run(stopping), 10)
    failed = [e for e in logs if e["event"] == "scheduler.pass_failed"]
    assert [("exc_info" in e, e.get("repeated")) for e in failed] == [(True, None), (False, 10)]
    assert [e["failed_passes"] for e in logs if e["event"] == "scheduler.pass_recovered"] == [12]


async def test_a_pass_keeps_clear_of_a_paste_due_at_its_moment(store: AsyncStore) -> None:
    """The engine says how long a pass at a given time should wait (a paste is due then):
    the pass at the start waits that long, and the next sleep ends that much later."""
    clock, rec = FakeClock(), Recorder()
    due = T0 + timedelta(seconds=10)
    await store.add_checkin(NewCheckIn(target="work:0", message="hi", rule=Once(due), next_due=due))
    asked: list[float] = []

    def hold(at: float) -> float:
        asked.append(at)
        return 0.004

    sched = Scheduler(store, rec, clock, hold=hold)
    stopping = asyncio.Event()
    task = asyncio.create_task(sched.run(stopping))
    async with asyncio.timeout(5):
        while not clock.sleeps:
            await asyncio.sleep(0.001)
    stopping.set()
    async with asyncio.timeout(5):
        await task
    wake = due - timedelta(seconds=sched.lead_s)
    assert asked[:2] == [T0.timestamp(), wake.timestamp()]
    assert clock.sleeps[0] == wake + timedelta(seconds=0.004)
