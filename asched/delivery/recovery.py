"""After a crash: the journal rows a previous run left in flight are settled, never retyped.

``claimed`` rows never reached a pane and are delivered. A ``typing`` row whose staged buffer is
still loaded was never pasted: it is pasted now (``paste-buffer -d``, so at most once). Rows that
reached ``typing`` or later otherwise are settled by looking at the pane: text still alone on the
input line gets its Enter, anything else is ``unverified``.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any

from asched.core.logs import get_logger
from asched.core.models import LATE_S, PAUSED, REMOVED, CatchUp, CheckIn, Delivery
from asched.core.states import PANE_REPLACED, SERVER_LOST, DeliveryState
from asched.delivery.desk import Desk
from asched.delivery.looks import PaneLooks
from asched.delivery.outcomes import SWALLOWED, TextLost
from asched.delivery.pacing import KeyedLocks
from asched.delivery.profiles import GENERIC
from asched.delivery.settings import with_prefix
from asched.delivery.verify import Verifier
from asched.tmux.errors import (
    BufferMissing,
    PaneDead,
    PaneReplaced,
    ServerMissing,
    TargetMissing,
    TmuxError,
)
from asched.tmux.shellguard import foreground_guard
from asched.tmux.targets import parse_target

log = get_logger()

SEND_SLACK_S = 60.0  # an `asched send` row older than its grace plus this is abandoned

Submit = Callable[[CheckIn, Delivery], None]
Track = Callable[[Coroutine[Any, Any, None], str], "asyncio.Task[None]"]


class Recovery:
    """Settles what the last run left in flight (see the module docstring)."""

    def __init__(
        self,
        desk: Desk,
        looks: PaneLooks,
        verifier: Verifier,
        pane_locks: KeyedLocks,
        submit: Submit,
        track: Track,
    ) -> None:
        self.desk = desk
        self.ledger = desk.ledger
        self.looks = looks
        self.verifier = verifier
        self.pane_locks = pane_locks
        self._submit = submit
        self._track = track
        self._staged_at_start: set[str] = set()  # buffers the last run left for rows in flight

    async def recover(self) -> int:
        """Resolve the journal rows a previous run left in flight; returns how many there were.

        ``claimed`` rows never reached a pane: they are delivered (or skipped when past grace).
        A ``typing`` row whose staged buffer is still loaded was never pasted: it is pasted now
        (``paste-buffer -d``, so at most once). Other rows that reached ``typing`` or later are
        settled by looking at the pane, never by typing the body again: text still on the input
        line gets its Enter; anything else is ``unverified``. At most one copy of an occurrence
        ever reaches a pane. Buffers of ours that belong to no row in flight are deleted.
        """
        rows = await self.desk.store.in_flight()
        try:
            staged = await self.desk.typist.staged()
        except TmuxError:
            staged = set()  # unknown: such rows are settled by looking at the pane, as before
        # Kept: the buffers of typing rows (committed, maybe never pasted) and of a running
        # `asched send`. A claimed row of ours is staged afresh when it is delivered.
        checkins = {row.id: await self.desk.store.get_checkin(row.checkin_id) for row in rows}
        live: set[str] = set()
        for row in rows:
            owner = checkins[row.id]
            if row.state is DeliveryState.TYPING or (owner is not None and owner.origin == "send"):
                live.add(self.desk.typist.buffer(row.id))
        await self.desk.tmux.delete_buffers(sorted(staged - live))
        self._staged_at_start = staged & live
        for row in rows:
            checkin = checkins[row.id]
            log.info("delivery.recovering", delivery_id=row.id, state=str(row.state))
            if checkin is None and row.state is DeliveryState.CLAIMED:
                # Removed while it waited: nothing of it was typed, and nothing will be.
                await self.desk.finish(row.id, DeliveryState.SKIPPED, REMOVED)
            elif checkin is None:
                await self.desk.finish(row.id, DeliveryState.FAILED, "checkin-removed")
            elif row.state is DeliveryState.CLAIMED:
                late_s = self.desk.wall().timestamp() - row.due_at.timestamp()
                if checkin.paused and checkin.origin != "send":
                    await self.desk.finish(row.id, DeliveryState.SKIPPED, PAUSED)
                elif checkin.origin == "send":
                    # `asched send` delivers its own row, without the lock: never take it over
                    # while it may still be at work; end it once it surely is not.
                    if late_s > checkin.grace_s + SEND_SLACK_S:
                        await self.desk.finish(row.id, DeliveryState.FAILED, "sender-gone")
                elif late_s > checkin.grace_s and checkin.catch_up is CatchUp.SKIP:
                    await self.desk.finish(row.id, DeliveryState.SKIPPED, "missed")
                else:
                    self._submit(checkin, row)
            elif (
                checkin.origin != "send"
                or row.started_at.timestamp()
                < self.desk.wall().timestamp() - (checkin.grace_s + SEND_SLACK_S)
            ):
                # Until it is settled, it counts as a delivery not typed yet: the scheduler must
                # not add a catch-up of its own for the same stretch (see catching_up).
                self.ledger.hold_untyped(row)
                task = self._track(self._settle(checkin, row), f"recover-{row.id}")
                task.add_done_callback(functools.partial(self._release_settled, row.id))
        return len(rows)

    def _release_settled(self, delivery_id: int, _task: asyncio.Task[None]) -> None:
        self.ledger.release_untyped(delivery_id)

    async def _settle(self, checkin: CheckIn, row: Delivery) -> None:
        try:
            if row.pane is None:
                await self._settle_locked(checkin, row)
                return
            # A fresh delivery to this pane must not paste between our look and our Enter.
            async with self.pane_locks.hold(row.pane):
                await self._settle_locked(checkin, row)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must cost one row, not leave it in flight unseen
            log.error("delivery.crashed", delivery_id=row.id, error=repr(exc), exc_info=exc)
            await self.desk.record_crash(row.id, exc)

    async def _settle_locked(self, checkin: CheckIn, row: Delivery) -> None:
        text = with_prefix(self.desk.settings.prefix, checkin.message)
        pane = row.pane
        buffer = self.desk.typist.buffer(row.id)
        if (
            row.state is DeliveryState.TYPING
            and pane is not None
            and buffer in self._staged_at_start
        ):
            # Committed to and never pasted: paste it now, unless its policy says it is too late.
            late_s = self.desk.wall().timestamp() - row.due_at.timestamp()
            if late_s > checkin.grace_s and checkin.catch_up is CatchUp.SKIP:
                await self.desk.tmux.delete_buffers([buffer])
                await self.desk.finish(row.id, DeliveryState.SKIPPED, "missed")
            else:
                await self._paste_staged(checkin, row, pane, text, buffer)
            return
        await self._settle_by_looking(checkin, row, pane, text)

    async def _settle_by_looking(
        self, checkin: CheckIn, row: Delivery, pane: str | None, text: str
    ) -> None:
        if pane is None:
            await self.desk.finish(row.id, DeliveryState.UNVERIFIED, "interrupted")
            return
        profile = GENERIC
        try:
            profile = await self.looks.profile_of(pane)
            verdict = await self.verifier.judge(pane, text, profile)
        except TmuxError as exc:
            verdict = f"look: {exc.reason}"
        if row.state is DeliveryState.SUBMITTED:
            state = DeliveryState.VERIFIED if verdict is None else DeliveryState.UNVERIFIED
            await self.desk.finish(row.id, state, verdict)
            return
        if verdict != SWALLOWED:
            await self.desk.finish(row.id, DeliveryState.UNVERIFIED, f"interrupted-{row.state}")
            return
        if row.state is DeliveryState.TYPING:
            late = self.desk.wall().timestamp() - row.due_at.timestamp() > LATE_S
            await self.desk.store.transition(row.id, DeliveryState.TYPED, late=late)
        try:
            await self.verifier.submit_and_verify(row.id, pane, text, profile=profile)
        except TextLost as lost:
            # Seen on the line a moment ago, gone with its server now: deliver it afresh.
            await self._reclaim(checkin, row, lost.reason)

    async def _paste_staged(
        self, checkin: CheckIn, row: Delivery, pane_id: str, text: str, buffer: str
    ) -> None:
        # "typing" was committed and the paste never made (its buffer is still loaded). The
        # pane may have changed since: the same checks as before any paste, on a fresh look.
        log.info("delivery.resuming", delivery_id=row.id, pane=pane_id)
        skip: tuple[DeliveryState, str] | None = None
        try:
            pane = await self.desk.tmux.resolve(parse_target(pane_id))
        except ServerMissing:
            # The server that held the buffer and the pane is gone, and the text with them.
            await self._reclaim(checkin, row, SERVER_LOST)
            return
        except TmuxError as exc:
            skip = (DeliveryState.FAILED, exc.reason)
        else:
            fg = await asyncio.to_thread(foreground_guard, pane, self.desk.settings.shells)
            profile = self.desk.settings.profile_for(fg)
            if pane.dead:
                skip = (DeliveryState.FAILED, "pane-dead")
            elif pane.in_mode:
                skip = (DeliveryState.SKIPPED, "copy-mode")
            elif fg.shell or fg.starting:
                skip = (DeliveryState.SKIPPED, "shell")
            elif profile.knows_input:
                # The input guard, on one look: a restart does not wait for a person's text.
                try:
                    area = await self.looks.input_area(pane_id, profile)
                except ServerMissing:
                    await self._reclaim(checkin, row, SERVER_LOST)
                    return
                except TmuxError as exc:
                    area, skip = None, (DeliveryState.FAILED, exc.reason)
                if skip is None and (area is None or not area.empty):
                    reason = "input-busy" if area is not None else "input-unknown"
                    skip = (DeliveryState.SKIPPED, reason)
        if skip is not None:
            await self.desk.tmux.delete_buffers([buffer])
            await self.desk.finish(row.id, *skip)
            return
        try:
            await self.desk.tmux.paste_buffer(pane_id, buffer, pane.pane_pid)
        except BufferMissing:
            # Pasted meanwhile (an orphaned client of the last run finishing): look, never retype.
            await self._settle_by_looking(checkin, row, pane_id, text)
            return
        except PaneReplaced:  # nothing pasted, and the target may name a new pane: again
            await self._reclaim(checkin, row, PANE_REPLACED)
            return
        except PaneDead as exc:  # nothing pasted, buffer deleted
            await self.desk.finish(row.id, DeliveryState.FAILED, exc.reason)
            return
        except TargetMissing:  # gone: nothing pasted, and the target may name a new pane
            await self._reclaim(checkin, row, PANE_REPLACED)
            return
        except TmuxError as exc:
            await self.desk.tmux.delete_buffers([buffer])
            await self.desk.finish(row.id, DeliveryState.UNVERIFIED, f"paste: {exc.reason}")
            return
        pasted_at = self.desk.wall().timestamp()
        self.ledger.last_pasted[checkin.id] = pasted_at
        self.ledger.note_typed(pane_id, self.desk.settings.min_gap_s)
        late = pasted_at - row.due_at.timestamp() > LATE_S
        await self.desk.store.transition(row.id, DeliveryState.TYPED, late=late)
        await asyncio.sleep(self.desk.settings.settle_for(profile, fg.names))
        try:
            await self.verifier.submit_and_verify(row.id, pane_id, text, pane.pane_pid, profile)
        except TextLost as lost:
            await self._reclaim(checkin, row, lost.reason)

    async def _reclaim(self, checkin: CheckIn, row: Delivery, reason: str) -> None:
        """The text is lost with its server or program (``reason`` in TEXT_LOST): deliver the
        occurrence afresh."""
        again = await self.desk.store.transition(
            row.id, DeliveryState.CLAIMED, reason=reason, attempt=True
        )
        self._submit(checkin, again)
