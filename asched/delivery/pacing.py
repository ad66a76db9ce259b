"""Pacing: a global rate budget, one queue per pane or target, and typing on the due instant."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from asched.core.logs import get_logger
from asched.core.wallclock import WallTimer

log = get_logger()

# The loop's timers count whole milliseconds (libuv under uvloop; epoll's timeout under the
# stdlib loop), so a loop sleep until an instant ends up to about a millisecond late, or under
# libuv early. Where no timerfd can be had, a paste sleeps until this long before its instant,
# then yields to the loop until it has come.
SPIN_S = 0.002


async def sleep_until(when: float, wall: Callable[[], float]) -> None:
    """Sleep until the wall-clock instant ``when`` (seconds since the epoch), to within the loop's
    turn (tens of microseconds) rather than its timer's millisecond, by yielding to the loop
    through the last :data:`SPIN_S` (the way :class:`Instants` waits without a timerfd)."""
    left = when - wall()
    if left > SPIN_S:
        await asyncio.sleep(left - SPIN_S)
        left = when - wall()
    # Timed on the monotonic clock: a wall clock set back meanwhile cannot make this spin on.
    end = time.monotonic() + min(max(left, 0.0), SPIN_S * 2)
    while time.monotonic() < end:  # noqa: ASYNC110 (no event marks an instant: the clock does)
        await asyncio.sleep(0)


class Instants:
    """One wake-up per instant for every task waiting for it, with the work of the instant
    done in the loop step that sees it come.

    Each instant has a timerfd on the wall clock (:class:`~asched.core.wallclock.WallTimer`),
    which the kernel fires to the microsecond, while the loop sleeps: its reader runs the
    instant's hooks (:meth:`on_ring`: the pastes armed for it are written to tmux there), then
    wakes every waiter at once, so that their tasks run in the same loop turn. The daemon is
    off the CPU up to the instant: a process that had spun through the last milliseconds was
    the one the kernel preempted for the tmux client its write woke, on the same core, for
    half a millisecond (docs/BENCHMARKS.md). A clock set back before the instant rings it at
    once: a staged paste is never held back by the jump. Without a timerfd (not Linux), the
    wait is :func:`sleep_until`. Each waiter has a future of its own: one that is cancelled
    leaves the others be.
    """

    def __init__(self, wall: Callable[[], float]) -> None:
        self._wall = wall
        # The instants not rung yet. Once one rings, a wait for the same time (a delivery
        # late to its own instant) gets a slot and a ring of its own.
        self._slots: dict[float, _Slot] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def wait(self, when: float) -> None:
        """Return at the wall-clock instant ``when``."""
        mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._slot(when).waiters.append(mine)
        await mine

    def on_ring(self, when: float, hook: Callable[[float], None]) -> None:
        """Call ``hook(now)`` when the instant ``when`` has come, before its waiters resume;
        never when the wait for it is cancelled. A hook must not raise."""
        self._slot(when).hooks.append(hook)

    def _slot(self, when: float) -> _Slot:
        """The slot of ``when``, with the task that rings it started."""
        slot = self._slots.get(when)
        if slot is None:
            slot = self._slots[when] = _Slot()
            task = asyncio.get_running_loop().create_task(self._ring(when, slot), name="instant")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return slot

    async def _ring(self, when: float, slot: _Slot) -> None:
        try:
            timer = WallTimer()
        except OSError:
            timer = None
        try:
            if timer is None:
                await sleep_until(when, self._wall)
                self._sound(when, slot)
            else:
                await self._on_timer(timer, when, slot)
        except BaseException:
            slot.hooks.clear()  # a cancelled wait does none of the instant's work
            raise
        finally:
            if timer is not None:
                timer.close()
            self._sound(when, slot)  # no-op after a ring; after a cancel, the waiters go

    async def _on_timer(self, timer: WallTimer, when: float, slot: _Slot) -> None:
        """Wait on ``timer`` armed for ``when``, and sound the instant from its reader."""
        loop = asyncio.get_running_loop()
        rang: asyncio.Future[None] = loop.create_future()

        def readable() -> None:
            # "due", or "clock-set": the instant counts as come (see the class docstring).
            if timer.collect() is not None and not rang.done():
                self._sound(when, slot)
                rang.set_result(None)

        # Armed on the real clock: ``wall`` may be a test's clock, whose distance counts.
        timer.arm(time.time() + (when - self._wall()))
        loop.add_reader(timer.fileno(), readable)
        try:
            await rang
        finally:
            loop.remove_reader(timer.fileno())

    def _sound(self, when: float, slot: _Slot) -> None:
        """The instant has come: its hooks, then its waiters (each once)."""
        if self._slots.get(when) is slot:
            del self._slots[when]
        hooks, slot.hooks = slot.hooks, []
        if hooks:
            now = self._wall()
            for hook in hooks:
                try:
                    hook(now)
                except Exception as exc:
                    # A bug: the waiters must still wake (they do the instant's work their
                    # usual way), and the other hooks still run.
                    log.error("instant.hook_failed", error=repr(exc))
        waiters, slot.waiters = slot.waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


@dataclass(slots=True)
class _Slot:
    """What one instant does when it comes: its hooks, then its waiters."""

    hooks: list[Callable[[float], None]] = field(default_factory=list)
    waiters: list[asyncio.Future[None]] = field(default_factory=list)


class TokenBucket:
    """A global rate budget: ``rate`` tokens a second, at most ``burst`` saved up."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self._clock = clock
        self._stamp = clock()

    def delay(self) -> float:
        """Take a token; returns how long to wait before using it (0 when one was at hand)."""
        now = self._clock()
        self.tokens = min(self.burst, self.tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        self.tokens -= 1.0
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


class KeyedLocks:
    """One FIFO lock per key, forgotten when nobody holds or waits for it (panes come and go)."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    def busy(self, key: str) -> bool:
        """True when someone holds or waits for ``key``."""
        return key in self._locks

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        """Hold ``key``'s lock for the body."""
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)
