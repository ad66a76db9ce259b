"""The delivery engine: one claimed occurrence -> its message in one pane, once and never twice.

Each delivery walks the journal's state machine (:mod:`asched.core.states`, drawn in
docs/ARCHITECTURE.md), and every transition is committed before the next side effect: ``claimed``
-> ``typing`` (staged) -> ``typed`` (pasted) -> ``submitted`` (Enter) -> ``verified`` or
``unverified``; ``failed`` and ``skipped`` end a delivery that typed nothing.

A failure before typing (server, session or pane missing, a tmux timeout) is retried with backoff
and jitter inside the check-in's grace window, then recorded as ``failed(reason)``. A pane running
a shell gets nothing: ``skipped(shell)``. Ahead of the due time the body is *staged*: loaded into
a tmux buffer named after the delivery, then ``typing`` is committed; at the due time
``paste-buffer -d`` makes the paste and deletes the buffer. So a typing row whose buffer is still
loaded was never pasted (a restarted daemon pastes it), and one whose buffer is gone was.

Once pasted, a body is never typed again, with one exception: when the tmux server or the pane's
program went away before the Enter, the text went with them (no copy is left anywhere), and the
occurrence is claimed again (``server-lost``, ``pane-replaced``). An outcome that cannot be known
becomes ``unverified``, never a re-type (docs/OLD-SCHEDULER.md, failures 3, 6 and 20).

Deliveries to one pane are serialised and spaced by ``min_gap_s``; different panes proceed in
parallel up to ``max_parallel``; a global token bucket caps the rate, so no loop can flood an agent.
Each outcome is logged by :mod:`asched.delivery.outcomelog`: levels, a recurring skip said once.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from asched.core.logs import Repeats, body_preview, get_logger
from asched.core.models import CheckIn, Delivery
from asched.core.states import TEXT_LOST, DeliveryState
from asched.delivery.desk import Desk, Journal
from asched.delivery.hookbook import HookBook, HookEvent
from asched.delivery.looks import PaneLooks
from asched.delivery.outcomelog import OutcomeLog
from asched.delivery.outcomes import Deferred, Retry
from asched.delivery.pacing import KeyedLocks
from asched.delivery.pasting import PasteStep
from asched.delivery.recovery import Recovery
from asched.delivery.settings import DeliverySettings
from asched.delivery.typist import NotOurs, Typist
from asched.delivery.verify import Verifier
from asched.tmux.client import TmuxClient
from asched.tmux.errors import TmuxError, TmuxMissing
from asched.tmux.targets import parse_target

log = get_logger()

PREPARE_S = 0.25  # the preflight starts this long before typing
PASTE_ROOM_S = 0.008  # a preflight waits this long past a paste due at the same moment


class DeliveryEngine:
    """Runs deliveries as tasks; ``submit`` never blocks (the scheduler calls it).

    The steps of a delivery live in their own modules and share one :class:`Desk`:
    :class:`PasteStep` (guards, staging, the paste), :class:`Verifier` (Enter and the look),
    :class:`PaneLooks` (the waits), :class:`Recovery` (rows a previous run left in flight).
    This class queues them: per target, per pane, and against the global rate budget.
    """

    def __init__(
        self,
        store: Journal,
        tmux: TmuxClient,
        settings: DeliverySettings | None = None,
        *,
        spool: Path,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.tmux = tmux
        spool.mkdir(mode=0o700, exist_ok=True)
        self._typist = Typist(store, tmux, spool)
        self._desk = Desk(store, tmux, self._typist, settings or DeliverySettings(), wall)
        self.ledger = self._desk.ledger
        self._tasks: set[asyncio.Task[None]] = set()
        self._pane_locks = KeyedLocks()
        self._target_locks = KeyedLocks()
        self._crashes = Repeats()
        # Levels and the once-then-summarised recurring skip: see delivery/outcomelog.py.
        self.outcomes = OutcomeLog()
        looks = PaneLooks(self._desk)
        verifier = Verifier(self._desk, looks)
        self._paste_step = PasteStep(self._desk, looks, verifier)
        self._recovery = Recovery(
            self._desk, looks, verifier, self._pane_locks, self.submit, self._track
        )
        # Called whenever a delivery ends: a recurring check-in is not claimed again while an
        # occurrence of it is in flight (Store.due_checkins), so its next one waits for this.
        self.on_finished: Callable[[], None] = lambda: None

    @property
    def settings(self) -> DeliverySettings:
        """How deliveries behave now; a reload sets new ones (deliveries under way keep theirs
        for the step they are in, the next step reads the new)."""
        return self._desk.settings

    @settings.setter
    def settings(self, new: DeliverySettings) -> None:
        self._desk.settings = new

    @property
    def stopping(self) -> asyncio.Event:
        """Set by :meth:`drain`: deliveries that have not typed yet stay claimed for next time."""
        return self._desk.stopping

    # -- the scheduler's side ---------------------------------------------------------------

    def catching_up(self, checkin_id: int, due_at: datetime) -> bool:
        """True when a late delivery of this check-in already covers the occurrence at ``due_at``
        (see :meth:`Ledger.catching_up`)."""
        return self.ledger.catching_up(checkin_id, due_at)

    @property
    def hooks(self) -> HookBook:
        """What the agents' hooks reported: prompts received, turns running."""
        return self._desk.hooks

    def on_hook(self, event: HookEvent) -> None:
        """Take one hook event (the daemon's control socket calls this); a prompt that is the
        text of a delivery records that delivery as confirmed by the agent."""
        delivery_id = self._desk.hooks.record(event)
        log.debug("hook.received", pane=event.pane, kind=event.kind)
        if delivery_id is not None:
            self._track(self._confirm(delivery_id, event.pane), f"confirm-{delivery_id}")

    async def _confirm(self, delivery_id: int, pane: str) -> None:
        try:
            if await self._desk.store.confirm(delivery_id):
                log.info("delivery.confirmed", delivery_id=delivery_id, pane=pane)
        except Exception as exc:  # the journal failed: the delivery stands, unconfirmed
            log.error("delivery.confirm_failed", delivery_id=delivery_id, error=repr(exc))

    async def recover(self) -> int:
        """Resolve the journal rows a previous run left in flight; returns how many there were
        (see :mod:`asched.delivery.recovery`)."""
        return await self._recovery.recover()

    def submit(self, checkin: CheckIn, delivery: Delivery) -> None:
        """Start delivering ``delivery`` in a task of its own."""
        self.ledger.hold_untyped(delivery)
        task = self._track(self.deliver(checkin, delivery), f"delivery-{delivery.id}")
        task.add_done_callback(lambda _t: self.ledger.release_untyped(delivery.id))

    # -- one delivery ----------------------------------------------------------------------

    async def deliver(self, checkin: CheckIn, delivery: Delivery) -> None:
        """Deliver one claimed occurrence; every outcome ends in the journal, never as a crash."""
        started = time.monotonic()
        try:
            outcome = await self._deliver(checkin, delivery)
        except Deferred:
            log.info("delivery.deferred", delivery_id=delivery.id, checkin_id=checkin.id)
            return
        except NotOurs:
            log.warning("delivery.taken_elsewhere", delivery_id=delivery.id)
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must cost one delivery, not the daemon
            # The same error again (a full disk fails every delivery alike): no new traceback.
            full = self._crashes.first(exc)
            log.error(
                "delivery.crashed",
                delivery_id=delivery.id,
                error=repr(exc),
                exc_info=exc if full else None,
                **({} if full else {"repeated": self._crashes.count}),
            )
            await self._desk.record_crash(delivery.id, exc)
            return
        self.outcomes.record(
            checkin.id,
            checkin.target,
            outcome.state,
            outcome.reason,
            delivery_id=delivery.id,
            pane=outcome.pane,
            elapsed_ms=round((time.monotonic() - started) * 1000, 1),
            **body_preview(checkin.message),
        )

    async def _deliver(self, checkin: CheckIn, delivery: Delivery) -> Delivery:
        # When to type: the due time, plus this occurrence's share of the jitter. The preflight
        # (lookups, guards) runs just before, so that what it saw is still true when typing.
        fire_at = delivery.due_at.timestamp() + random.uniform(0, max(checkin.jitter_s, 0.0))
        await self._desk.sleep_or_defer(fire_at - PREPARE_S - self._desk.wall().timestamp())
        await self._yield_to_pastes(fire_at)
        # One at a time per target, in the order they were handed over: two check-ins for one
        # agent arrive in order even when tmux answers their lookups out of order.
        async with self._target_locks.hold(checkin.target):
            return await self._resolve_and_type(checkin, delivery, fire_at)

    async def _yield_to_pastes(self, fire_at: float) -> None:
        """Start a preflight only after the pastes due this very moment are made.

        A preflight (a lookup, the shell guard, loading the body) has a quarter of a second of
        slack; a paste due now has none. On two cores, check-ins due 0.2 s apart had the next
        one's preflight start at the instant the current one pasted, and slowed that paste.
        """
        for _ in range(3):
            wait = self._clear_of_pastes(self._desk.wall().timestamp(), before=fire_at)
            if wait <= 0:
                return
            await asyncio.sleep(wait)

    def hold(self, at: float) -> float:
        """How long a scheduler pass due at wall time ``at`` (epoch seconds) should wait, so as
        not to run (a store query, then the claimed deliveries' preflights) while a paste due
        at that moment is on its way: the rule of the preflights, for the pass that starts
        them. Check-ins due 0.2 s apart, the scheduler's lead, had each pass start at the
        instant of the previous paste."""
        return self._clear_of_pastes(at)

    def _clear_of_pastes(self, at: float, before: float = math.inf) -> float:
        """Seconds from ``at`` until the pastes due around then (due before ``before``) have
        had :data:`PASTE_ROOM_S`; 0 when none is near."""
        near = [f for f in self.ledger.fires if f < before and at - 0.005 <= f <= at + 0.02]
        return max(near) + PASTE_ROOM_S - at if near else 0.0

    async def _resolve_and_type(
        self, checkin: CheckIn, delivery: Delivery, fire_at: float
    ) -> Delivery:
        deadline = delivery.due_at.timestamp() + max(checkin.grace_s, 0.0)
        target = parse_target(checkin.target)
        attempt = 0
        while True:
            try:
                pane = await self._desk.tmux.resolve(target)
            except TmuxMissing as exc:
                # No tmux binary will not fix itself within a grace window: say so at once.
                return await self._desk.finish(delivery.id, DeliveryState.FAILED, exc.reason)
            except TmuxError as exc:
                reason = exc.reason
            else:
                contended = self._pane_locks.busy(pane.pane_id)
                try:
                    async with self._pane_locks.hold(pane.pane_id):
                        return await self._paste_step.type_into(
                            checkin, delivery, pane, deadline, contended, fire_at
                        )
                except Retry as exc:
                    reason = exc.reason
            # Nothing of it is in a pane: claim it again, back off, look again within grace.
            attempt += 1
            wait = self._desk.backoff(attempt)
            if reason in TEXT_LOST:
                # Replaced, not broken: the target names a new pane (or server) already, most
                # likely; a long back-off would let a pane that is replaced often never get it.
                wait = min(wait, 1.0)
            if self._desk.wall().timestamp() + wait > deadline:
                return await self._desk.finish(delivery.id, DeliveryState.FAILED, reason)
            log.info(
                "delivery.retry",
                delivery_id=delivery.id,
                reason=reason,
                attempt=attempt,
                wait_s=round(wait, 3),
            )
            await self._desk.store.transition(
                delivery.id, DeliveryState.CLAIMED, reason=reason, attempt=True
            )
            self.ledger.hold_untyped(delivery)
            await self._desk.sleep_or_defer(wait)

    def _track(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda _t: self.on_finished())
        return task

    @property
    def in_flight(self) -> int:
        """Deliveries still running."""
        return len(self._tasks)

    async def wait_idle(self) -> None:
        """Wait until no delivery runs (without stopping: new ones may still be submitted)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def drain(self) -> None:
        """Wait for every running delivery (the daemon bounds this with its drain timeout)."""
        self._desk.stopping.set()
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def cancel_all(self) -> None:
        """Cancel what is left after the drain timeout."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
