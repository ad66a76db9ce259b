"""The scheduler loop: sleep until the next check-in is due (or a wake-up), claim, hand over.

One pass: read the wall clock, notice clock jumps, fetch what is due, apply each check-in's misfire
policy, claim the occurrence and advance ``next_due`` in one store transaction, and hand claimed
deliveries to the dispatcher. Then sleep until the next due time, however far, or a wake-up. The
loop never iterates over missed slots: the next occurrence is always computed from "now" by
:func:`asched.core.triggers.next_due`, which jumps.

An idle daemon wakes for nothing else: the store is read at the due time and when something may
have changed it, never on a timer. What changes the schedule wakes the loop:

- the command line (and the MCP server) write, then send ``wake`` on the control socket; a write
  during a pass still cuts the next sleep short (the flag is cleared before the pass, not after);
- the control socket listens before the first pass reads the store, so a write made while the
  daemon starts is either read by that pass or followed by a wake it receives;
- a delivery ending (``DeliveryEngine.on_finished``), the fleet changing rows, a reload;
- a write by other means (``sqlite3`` by hand) is read after ``asched reload`` or SIGHUP, which
  wake the loop whether or not the config file is valid.

The sleep is a timerfd on the wall clock (:mod:`asched.core.wallclock`): it ends when the wall
clock reaches the due time, however it got there, and at once when the clock is set, so a far due
time needs no cap to survive an NTP step or a suspend.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from asched.core.errors import StoreReplaced
from asched.core.logs import Repeats, get_logger
from asched.core.models import LATE_S, CatchUp, CheckIn, Delivery, Every, Once
from asched.core.states import DeliveryState
from asched.core.triggers import next_due
from asched.core.wallclock import WallTimer
from asched.store.journal import Claim

log = get_logger()

JUMP_THRESHOLD_S = 2.0
RETRY_S = 1.0  # after a failed pass (a full disk, a locked database)
BATCH = 1000
# Claim this long before the due time; the engine does its preflight meanwhile and waits for the
# due time itself. Long enough for a burst's lookups and guards (100 panes take ~100 ms here).
LEAD_S = 0.2
_TICK = timedelta(milliseconds=1)


class Clock(Protocol):
    """Wall and monotonic time, and a sleep until a wall time that an event can cut short."""

    def wall(self) -> datetime:
        """Now, as aware UTC."""
        ...

    def mono(self) -> float:
        """A reading in seconds of a clock that is never set (the wall clock's jumps show
        against it)."""
        ...

    async def sleep_until(self, when: datetime | None, wake: asyncio.Event) -> None:
        """Return when the wall clock reaches ``when`` (None: no time at all), as soon as
        ``wake`` is set, or when the wall clock is set, whichever is first."""
        ...


class SystemClock:
    """The real clocks; the sleep is a timerfd on the wall clock (asched/core/wallclock.py)."""

    def __init__(self) -> None:
        self._timer: WallTimer | None = None

    def wall(self) -> datetime:
        """``datetime.now(UTC)``."""
        return datetime.now(UTC)

    def mono(self) -> float:
        """``CLOCK_BOOTTIME``: monotonic, and counting time suspended, so that a resume is not
        taken for a jump of the wall clock."""
        return time.clock_gettime(time.CLOCK_BOOTTIME)

    async def sleep_until(self, when: datetime | None, wake: asyncio.Event) -> None:
        """Watch the timerfd and ``wake`` together; no other wake-up, however far ``when`` is."""
        if wake.is_set():
            return
        if self._timer is None:
            self._timer = WallTimer()
        timer = self._timer
        timer.arm(None if when is None else when.timestamp())
        loop = asyncio.get_running_loop()
        rang: asyncio.Future[str] = loop.create_future()

        def readable() -> None:
            why = timer.collect()
            if why is not None and not rang.done():
                rang.set_result(why)

        loop.add_reader(timer.fileno(), readable)
        woken = asyncio.ensure_future(wake.wait())
        try:
            await asyncio.wait((rang, woken), return_when=asyncio.FIRST_COMPLETED)
        finally:
            loop.remove_reader(timer.fileno())
            woken.cancel()
            rang.cancel()
        if rang.done() and not rang.cancelled() and rang.result() == "clock-set":
            log.debug("clock.set")

    def close(self) -> None:
        """Close the timerfd (a later sleep opens a new one)."""
        if self._timer is not None:
            self._timer.close()
            self._timer = None


class SchedulerStore(Protocol):
    """The part of the store the loop uses (both the real AsyncStore and test fakes)."""

    def check_file(self) -> None:
        """Raise StoreReplaced when the database file was removed or replaced."""
        ...

    async def due_checkins(self, now: datetime, limit: int = BATCH) -> list[CheckIn]: ...

    async def next_due_time(self) -> datetime | None: ...

    async def claim_many(self, claims: Iterable[Claim]) -> list[Delivery | None]: ...

    async def list_checkins(self, target: str | None = None) -> list[CheckIn]: ...

    async def reschedule(
        self, checkin_id: int, expected_next: datetime, new_next: datetime
    ) -> bool: ...


Dispatch = Callable[[CheckIn, Delivery], None]


@dataclass(slots=True)
class PassStats:
    """What one pass did; the loop logs these and tests assert on them."""

    claimed: int = 0
    skipped: int = 0
    lost_race: int = 0


class Scheduler:
    """The loop. ``dispatch`` must not block: it starts the delivery and returns."""

    def __init__(
        self,
        store: SchedulerStore,
        dispatch: Dispatch,
        clock: Clock | None = None,
        *,
        jump_threshold_s: float = JUMP_THRESHOLD_S,
        lead_s: float = LEAD_S,
        catching_up: Callable[[int, datetime], bool] = lambda _id, _due: False,
        repeating: Callable[[int], bool] = lambda _id: False,
        hold: Callable[[float], float] = lambda _at: 0.0,
    ) -> None:
        self.store = store
        self.dispatch = dispatch
        self.catching_up = catching_up
        # True for a check-in whose latest outcomes are the same skip (delivery/outcomelog.py):
        # its claims go to debug, with its outcomes, instead of flooding info every occurrence.
        self.repeating = repeating
        # How long a pass that would start at a wall time (epoch seconds) should wait: the
        # engine keeps passes clear of an instant it pastes at (DeliveryEngine.hold).
        self.hold = hold
        # The real clock when none is given; its timerfd is then this scheduler's to close.
        self._system_clock: SystemClock | None = None
        if clock is None:
            clock = self._system_clock = SystemClock()
        self.clock: Clock = clock
        self.jump_threshold_s = jump_threshold_s
        self.lead_s = lead_s
        self._wake = asyncio.Event()
        self._last: tuple[datetime, float] | None = None
        self._failures = Repeats()

    def wake(self) -> None:
        """Cut the current sleep short (a CLI write, a reload)."""
        self._wake.set()

    async def run(self, stopping: asyncio.Event) -> None:
        """Loop until ``stopping`` is set; a failing pass is logged and retried, never fatal."""
        stop_waiter = asyncio.create_task(self._forward(stopping), name="scheduler-stop")
        try:
            while not stopping.is_set():
                # Cleared before the pass, not after: a CLI write that lands during the pass
                # must still cut the following sleep short.
                self._wake.clear()
                held = self.hold(self.clock.wall().timestamp())
                if held > 0:
                    await asyncio.sleep(held)
                try:
                    wake_at = await self.run_once()
                except StoreReplaced:
                    raise  # not a bad pass: every pass from now on would use the wrong file
                except Exception as exc:  # one bad pass must not end the loop
                    # A full disk fails every pass alike: one traceback, then a count.
                    if self._failures.first(exc):
                        log.error("scheduler.pass_failed", error=repr(exc), exc_info=exc)
                    elif Repeats.worth_a_line(self._failures.count):
                        log.error(
                            "scheduler.pass_failed", error=repr(exc), repeated=self._failures.count
                        )
                    wake_at = self.clock.wall() + timedelta(seconds=RETRY_S)
                else:
                    if self._failures.count:
                        log.info("scheduler.pass_recovered", failed_passes=self._failures.clear())
                if stopping.is_set():
                    break
                if wake_at is not None:
                    # Not at an instant the engine pastes at: the pass would only wait then.
                    wake_at += timedelta(seconds=self.hold(wake_at.timestamp()))
                await self.clock.sleep_until(wake_at, self._wake)
        finally:
            stop_waiter.cancel()
            if self._system_clock is not None:
                self._system_clock.close()  # its timerfd; the next run opens another

    async def _forward(self, stopping: asyncio.Event) -> None:
        await stopping.wait()
        self._wake.set()

    async def run_once(self) -> datetime | None:
        """One pass; returns the wall time of the next pass (None: only a wake-up brings one)."""
        self.store.check_file()
        now = self.clock.wall()
        await self._check_clock(now)
        stats = PassStats()
        while True:
            # Claimed a little early: the engine does its preflight (resolve, guards) in the lead
            # time and types at the due time, so the due-to-pasted path is one tmux call.
            due = await self.store.due_checkins(now + timedelta(seconds=self.lead_s), BATCH)
            if due:
                await self._fire_all(due, now, stats)
            if len(due) < BATCH:
                break
        if stats.claimed or stats.skipped or stats.lost_race:
            log.debug(
                "scheduler.pass",
                claimed=stats.claimed,
                skipped=stats.skipped,
                lost_race=stats.lost_race,
            )
        nxt = await self.store.next_due_time()
        # Due in the past (claimed late, or a check-in held back meanwhile): a pass at once.
        return None if nxt is None else nxt - timedelta(seconds=self.lead_s)

    async def _check_clock(self, now: datetime) -> None:
        mono = self.clock.mono()
        last, self._last = self._last, (now, mono)
        if last is None:
            return
        expected = last[0] + timedelta(seconds=mono - last[1])
        delta_s = (now - expected).total_seconds()
        if abs(delta_s) <= self.jump_threshold_s:
            return
        log.warning("clock.jump", delta_s=round(delta_s, 3))
        if delta_s < 0:
            await self._rebase_after_backward_jump(now, delta_s)

    async def _rebase_after_backward_jump(self, now: datetime, delta_s: float) -> None:
        # After the wall clock went back, a recurring check-in's stored next_due lies a whole jump
        # away: without this it would stall for that long. An interval keeps its elapsed-time
        # rhythm (shifted with the clock); a cron rule takes its next wall-clock slot. The store
        # moves the check-in to a new generation, so a wall time that comes round again is a new
        # occurrence, never a duplicate of a delivered one.
        moved = 0
        for checkin in await self.store.list_checkins():
            if checkin.paused or checkin.next_due is None or isinstance(checkin.rule, Once):
                continue
            try:
                if isinstance(checkin.rule, Every):
                    shifted = checkin.next_due + timedelta(seconds=delta_s)
                    candidate = next_due(Every(checkin.rule.interval_s, shifted), now - _TICK)
                else:
                    candidate = next_due(checkin.rule, now)
            except Exception:  # noqa: S112 - the pass journals it as bad-rule when it falls due
                continue
            if (
                candidate is not None
                and candidate < checkin.next_due
                and await self.store.reschedule(checkin.id, checkin.next_due, candidate)
            ):
                moved += 1
        log.info("clock.rebased", checkins=moved)

    async def _fire_all(self, due: list[CheckIn], now: datetime, stats: PassStats) -> None:
        """Apply the misfire policy to each due check-in, claim them all in one transaction."""
        claims = []
        for checkin in due:
            assert checkin.next_due is not None
            late_s = (now - checkin.next_due).total_seconds()
            try:
                nxt = self._following(checkin, now)
            except Exception as exc:
                # A rule that no longer computes (a time zone gone from the system's database)
                # ends this check-in with a journal row; it must not stop every other one.
                log.error("checkin.bad_rule", checkin_id=checkin.id, error=str(exc))
                claims.append(
                    Claim(checkin.id, checkin.next_due, None, DeliveryState.FAILED, "bad-rule")
                )
                continue
            # Missed by more than the grace: "skip" skips it; "once" delivers it. And a late
            # occurrence that a late delivery of an older one already covers (it reached the pane
            # after this slot, see catching_up) is missed under either policy: a hold (a frozen
            # server, a rate budget) ends with one late copy, never a second.
            covered = late_s > LATE_S and self.catching_up(checkin.id, checkin.next_due)
            if covered or (late_s > checkin.grace_s and checkin.catch_up is CatchUp.SKIP):
                claims.append(
                    Claim(checkin.id, checkin.next_due, nxt, DeliveryState.SKIPPED, "missed", True)
                )
            else:
                claims.append(Claim(checkin.id, checkin.next_due, nxt, late=late_s > LATE_S))
        results = await self.store.claim_many(claims)
        for checkin, claim, delivery in zip(due, claims, results, strict=True):
            if delivery is None:
                stats.lost_race += 1
                continue
            late_ms = round((now - claim.due_at).total_seconds() * 1000, 1)
            if delivery.state is DeliveryState.FAILED:
                stats.skipped += 1
                continue
            if delivery.state is DeliveryState.SKIPPED:
                stats.skipped += 1
                log.info(
                    "checkin.missed",
                    checkin_id=checkin.id,
                    target=checkin.target,
                    due_at=claim.due_at.isoformat(),
                    late_ms=late_ms,
                )
                continue
            stats.claimed += 1
            log.log(
                logging.DEBUG if self.repeating(checkin.id) else logging.INFO,
                "checkin.claimed",
                checkin_id=checkin.id,
                delivery_id=delivery.id,
                target=checkin.target,
                late_ms=late_ms,
            )
            self.dispatch(checkin, delivery)

    @staticmethod
    def _following(checkin: CheckIn, now: datetime) -> datetime | None:
        """The occurrence after this one: from ``now``, so missed slots are jumped, not replayed."""
        if checkin.remaining is not None and checkin.remaining <= 1:
            return None
        assert checkin.next_due is not None
        rule = checkin.rule
        if isinstance(rule, Every):
            # Anchored on this occurrence: after a re-base the rhythm continues from there.
            rule = Every(rule.interval_s, checkin.next_due)
        nxt = next_due(rule, max(now, checkin.next_due))
        if nxt is not None and checkin.until is not None and nxt > checkin.until:
            return None
        return nxt
