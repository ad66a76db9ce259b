"""Pacing: a global rate budget, one queue per pane or target, and typing on the due instant."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

# The loop's timers count whole milliseconds (libuv under uvloop; epoll's timeout under the
# stdlib loop), so a sleep until an instant ends up to about a millisecond late, or under libuv
# early. A paste sleeps until this long before its instant, then yields to the loop until it has
# come: at most this much CPU per due instant, for a due -> pasted of tenths of a millisecond
# rather than one (docs/BENCHMARKS.md).
SPIN_S = 0.002


async def sleep_until(when: float, wall: Callable[[], float]) -> None:
    """Sleep until the wall-clock instant ``when`` (seconds since the epoch), to within the loop's
    turn (tens of microseconds) rather than its timer's millisecond."""
    left = when - wall()
    if left > SPIN_S:
        await asyncio.sleep(left - SPIN_S)
        left = when - wall()
    # Timed on the monotonic clock: a wall clock set back meanwhile cannot make this spin on.
    end = time.monotonic() + min(max(left, 0.0), SPIN_S * 2)
    while time.monotonic() < end:  # noqa: ASYNC110 (no event marks an instant: the clock does)
        await asyncio.sleep(0)


class Instants:
    """:func:`sleep_until` shared by every task waiting for the same instant.

    One task per instant yields to the loop through its last milliseconds, then wakes all its
    waiters at once: their tasks run in the same loop turn, so 100 pastes due together reach the
    typist's batch together. (When each of 100 waiters yielded by itself, a loop turn took about
    a millisecond, and the pastes of one instant were split over batches milliseconds apart.)
    Each waiter has a future of its own: one that is cancelled leaves the others be.
    """

    def __init__(self, wall: Callable[[], float]) -> None:
        self._wall = wall
        self._waiting: dict[float, list[asyncio.Future[None]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def wait(self, when: float) -> None:
        """Return at the wall-clock instant ``when``."""
        loop = asyncio.get_running_loop()
        mine: asyncio.Future[None] = loop.create_future()
        waiters = self._waiting.get(when)
        if waiters is None:
            waiters = self._waiting[when] = []
            task = loop.create_task(self._ring(when), name="instant")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        waiters.append(mine)
        await mine

    async def _ring(self, when: float) -> None:
        try:
            await sleep_until(when, self._wall)
        finally:
            for waiter in self._waiting.pop(when, []):
                if not waiter.done():
                    waiter.set_result(None)


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
