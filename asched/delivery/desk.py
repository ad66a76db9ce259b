"""What every step of a delivery shares: the journal, tmux, the typist, the settings of the
moment, the clock and the daemon's stop; and what every step does alike (finish a row, back off,
sleep unless stopping, record a crash)."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from asched.core.logs import get_logger
from asched.core.models import CheckIn, Delivery
from asched.core.states import DeliveryState
from asched.delivery.hookbook import HookBook
from asched.delivery.ledger import Ledger
from asched.delivery.outcomes import Deferred
from asched.delivery.pacing import Instants, TokenBucket
from asched.delivery.settings import DeliverySettings
from asched.delivery.typist import Typist
from asched.tmux.client import TmuxClient

log = get_logger()


class Journal(Protocol):
    """The store calls the engine makes (AsyncStore in the daemon)."""

    async def transition(
        self,
        delivery_id: int,
        state: DeliveryState,
        *,
        reason: str | None = None,
        pane: str | None = None,
        attempt: bool = False,
        late: bool = False,
    ) -> Delivery: ...

    async def in_flight(self) -> list[Delivery]: ...

    async def get_checkin(self, checkin_id: int) -> CheckIn | None: ...

    async def mark_typing(self, items: list[tuple[int, str]]) -> dict[int, str]: ...

    async def get_delivery(self, delivery_id: int) -> Delivery | None: ...

    async def confirm(self, delivery_id: int) -> bool: ...


class Desk:
    """The shared state of one engine's deliveries (see the module docstring)."""

    def __init__(
        self,
        store: Journal,
        tmux: TmuxClient,
        typist: Typist,
        settings: DeliverySettings,
        wall: Callable[[], datetime],
    ) -> None:
        self.store = store
        self.tmux = tmux
        self.typist = typist
        self.wall = wall
        self.stopping = asyncio.Event()
        self.ledger = Ledger()
        self.hooks = HookBook()  # what the agents' hooks reported (confirmations, turns)
        self._settings = settings
        self.bucket = TokenBucket(settings.rate_per_s, settings.burst)
        self.instants = Instants(lambda: wall().timestamp())

    @property
    def settings(self) -> DeliverySettings:
        """How deliveries behave now; a reload sets new ones (deliveries under way keep theirs
        for the step they are in, the next step reads the new)."""
        return self._settings

    @settings.setter
    def settings(self, new: DeliverySettings) -> None:
        old, self._settings = self._settings, new
        if (new.rate_per_s, new.burst) != (old.rate_per_s, old.burst):
            # The budget is rebuilt, full: a reload that raised it takes effect at once, one
            # that lowered it from the next delivery on.
            self.bucket = TokenBucket(new.rate_per_s, new.burst)

    async def finish(self, delivery_id: int, state: DeliveryState, reason: str | None) -> Delivery:
        """Commit the row's outcome."""
        return await self.store.transition(delivery_id, state, reason=reason)

    def backoff(self, attempt: int) -> float:
        """How long to wait before try ``attempt + 1``: exponential, capped, with jitter."""
        base = min(self.settings.retry_base_s * 2.0 ** (attempt - 1), self.settings.retry_max_s)
        return base * random.uniform(0.5, 1.0)

    async def sleep_or_defer(self, seconds: float) -> None:
        """Sleep, unless the daemon is stopping: then raise :class:`Deferred` (nothing typed)."""
        if seconds <= 0:
            if self.stopping.is_set():
                raise Deferred
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), timeout=seconds)
        if self.stopping.is_set():
            raise Deferred

    async def record_crash(self, delivery_id: int, exc: Exception) -> None:
        """End the row of a delivery that crashed on a bug, so it is not left in flight."""
        # Past "claimed", text may be in the pane: that is "unverified", never "failed".
        reason = f"internal: {type(exc).__name__}"
        attempt = 0
        while True:
            try:
                row = await self.store.get_delivery(delivery_id)
                if row is None or row.state.final:
                    return
                state = (
                    DeliveryState.FAILED
                    if row.state is DeliveryState.CLAIMED
                    else DeliveryState.UNVERIFIED
                )
                await self.finish(delivery_id, state, reason)
                return
            except Exception as again:
                # The journal itself fails (a full disk, a lock held past the busy timeout).
                # A row left in flight holds its check-in back (one occurrence at a time), so
                # keep trying while the daemon runs; a stop leaves it to the next start.
                attempt += 1
                if attempt == 1:
                    log.error("delivery.unrecorded", delivery_id=delivery_id, error=repr(again))
                if self.stopping.is_set():
                    return
                await asyncio.sleep(self.backoff(attempt))
