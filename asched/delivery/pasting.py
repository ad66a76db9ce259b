"""One delivery's way into a pane, once its pane is held: pacing, the guards (no shell, quiet,
an empty input area), staging, the paste at the due time, and what a paste that timed out did.

Everything before ``typing`` is committed may be retried (:class:`Retry`); from the paste on, the
body is never typed again, except when it is known lost with its server or program
(:class:`TextLost`).
"""

from __future__ import annotations

import asyncio
import time

from asched.core.models import LATE_S, CatchUp, CheckIn, Delivery
from asched.core.states import PANE_REPLACED, SERVER_LOST, DeliveryState
from asched.delivery.desk import Desk
from asched.delivery.looks import PaneLooks
from asched.delivery.outcomes import SWALLOWED, Retry, TextLost
from asched.delivery.settings import with_prefix
from asched.delivery.ttyline import CANON_LINE_MAX, longest_line_bytes, too_long_for
from asched.delivery.typist import Paste, Withdrawn
from asched.delivery.verify import Verifier
from asched.tmux.errors import (
    BufferMissing,
    PaneDead,
    PaneReplaced,
    ServerMissing,
    TargetAmbiguous,
    TargetMissing,
    TmuxError,
    TmuxTimeout,
)
from asched.tmux.panes import PaneInfo
from asched.tmux.shellguard import Foreground, foreground_guard
from asched.tmux.targets import parse_target

RECHECK_AFTER_S = 0.05  # checks that took longer than this waited: the pane is looked at again
SHELL_RECHECK_S = 0.05  # a pane that looks like a shell is looked at again after this
HELD_UP_SLACK_S = 1.0  # a delivery this much later than its grace allows was held up


class PasteStep:
    """Types one delivery into the pane it resolved to (the caller holds that pane's lock)."""

    def __init__(self, desk: Desk, looks: PaneLooks, verifier: Verifier) -> None:
        self.desk = desk
        self.ledger = desk.ledger
        self.looks = looks
        self.verifier = verifier

    async def type_into(
        self,
        checkin: CheckIn,
        delivery: Delivery,
        pane: PaneInfo,
        deadline: float,
        contended: bool,
        fire_at: float,
    ) -> Delivery:
        # Spacing per pane and the global budget come before the preflight, which must be fresh.
        gap = (
            self.ledger.pane_last.get(pane.pane_id, -1e9)
            + self.desk.settings.min_gap_s
            - time.monotonic()
        )
        budget_wait = self.desk.bucket.delay()
        waited = gap > 0 or budget_wait > 0 or contended
        await self.desk.sleep_or_defer(max(gap, 0.0) + budget_wait)
        try:
            if waited:
                # The pane may have changed while we queued: look again.
                pane = await self.desk.tmux.resolve(parse_target(pane.pane_id))
            pane = await self.looks.leave_copy_mode(pane, deadline)
        except TmuxError as exc:
            return await self._fail_or_retry(delivery.id, exc)
        if pane.dead:
            return await self.desk.finish(delivery.id, DeliveryState.FAILED, "pane-dead")
        if pane.in_mode:
            return await self.desk.finish(delivery.id, DeliveryState.SKIPPED, "copy-mode")
        checked = await self._guards(checkin, delivery, pane, deadline)
        if isinstance(checked, Delivery):
            return checked
        pane, fg = checked
        text = with_prefix(self.desk.settings.prefix, checkin.message)
        if longest_line_bytes(text) > CANON_LINE_MAX and await asyncio.to_thread(
            too_long_for, pane.tty, text
        ):
            # The pane's program would get a cut line, and the screen would look delivered.
            return await self.desk.finish(delivery.id, DeliveryState.FAILED, "line-too-long")
        paste = self.desk.typist.prepare(
            delivery.id, pane.pane_id, text, pane.pane_pid, parse_target(checkin.target)
        )
        # Staged ahead of the due time: the body is loaded into its buffer and then "typing" is
        # committed, so that the due time costs one tmux call. After a crash, a typing row whose
        # buffer is still loaded was never pasted, and the next daemon pastes it (paste.Typist).
        try:
            await self.desk.typist.stage(paste)
        except Withdrawn:
            # Paused or removed while it waited: the store skipped the row with that reason.
            row = await self.desk.store.get_delivery(delivery.id)
            assert row is not None
            return row
        except TmuxError as exc:
            return await self._fail_or_retry(delivery.id, exc)
        # Committed: from here the delivery runs to its end even when the daemon is stopping
        # (the drain waits for it); a crash leaves it to the next start.
        self.ledger.fires[fire_at] += 1
        try:
            # Sent by the instant itself, in the loop step that sees it come: no task switch
            # lies between the due time and the paste (docs/BENCHMARKS.md, "near the floor").
            self.desk.typist.arm(paste, fire_at, self._until(checkin, fire_at), self.desk.instants)
            try:
                await self.desk.instants.wait(fire_at)
            except BaseException:
                self.desk.typist.disarm(paste)
                raise
            return await self._paste_and_submit(checkin, delivery, pane, paste, fg, fire_at)
        finally:
            self.ledger.fires[fire_at] -= 1
            if self.ledger.fires[fire_at] <= 0:
                del self.ledger.fires[fire_at]

    async def _guards(
        self, checkin: CheckIn, delivery: Delivery, pane: PaneInfo, deadline: float
    ) -> tuple[PaneInfo, Foreground] | Delivery:
        """The checks before staging: no shell, quiet enough (idle flags), an empty input area.

        Returns the pane and its foreground program, or the finished row. The waits for quiet
        or for an empty input area may last the whole grace window, and the program may change
        meanwhile (an agent exits to its shell, whose prompt then reads the keyboard): after a
        wait, the pane is looked at again and the checks repeat (three passes at most: on a
        loaded machine a pass may look slow without having waited).
        """
        for _ in range(3):
            fg = await asyncio.to_thread(foreground_guard, pane, self.desk.settings.shells)
            if fg.shell:
                # Confirmed by a second look: a launcher script caught in the middle of an exec
                # can look like a shell for a moment (1 look in 150 on a just-made pane).
                await asyncio.sleep(SHELL_RECHECK_S)
                fg = await asyncio.to_thread(foreground_guard, pane, self.desk.settings.shells)
            if fg.starting:
                # Forked by tmux, not yet exec'd: what it becomes (a shell?) is not known yet.
                raise Retry("pane-starting")
            if fg.shell:
                return await self.desk.finish(delivery.id, DeliveryState.SKIPPED, "shell")
            profile = self.desk.settings.profile_for(fg)
            started = time.monotonic()
            try:
                if checkin.idle_s is not None:
                    pane = await self.looks.await_quiet(checkin, pane, profile, deadline)
                    if await self.looks.busy(pane, profile, checkin.idle_s):
                        return await self.desk.finish(delivery.id, DeliveryState.SKIPPED, "busy")
                refusal = await self.looks.await_empty_input(delivery.id, pane, profile, deadline)
            except TmuxError as exc:
                return await self._fail_or_retry(delivery.id, exc)
            if refusal is not None:
                # Never paste onto text on the input line: a person's half-typed words, or an
                # earlier check-in that is stuck there, would be merged with ours and sent as one.
                return await self.desk.finish(delivery.id, DeliveryState.SKIPPED, refusal)
            if time.monotonic() - started < RECHECK_AFTER_S:
                return pane, fg  # no wait: what the checks saw is still fresh
            try:
                pane = await self.desk.tmux.resolve(parse_target(pane.pane_id))
            except TmuxError as exc:
                return await self._fail_or_retry(delivery.id, exc)
            if pane.dead or pane.in_mode:
                state = DeliveryState.FAILED if pane.dead else DeliveryState.SKIPPED
                return await self.desk.finish(
                    delivery.id, state, "pane-dead" if pane.dead else "copy-mode"
                )
        return pane, fg

    async def _paste_and_submit(
        self,
        checkin: CheckIn,
        delivery: Delivery,
        pane: PaneInfo,
        paste: Paste,
        fg: Foreground,
        fire_at: float,
    ) -> Delivery:
        # Held up for longer than the grace window (a stopped process, a long queue): a check-in
        # that skips missed occurrences must not arrive this late. Measured from when it was to
        # be typed, so that waits inside the window (copy mode, quiet, retries) and a jitter
        # never count against it.
        now = self.desk.wall().timestamp()
        until = self._until(checkin, fire_at)
        # A paste its instant sent was made in time, however late this task runs.
        held_up = now > until and not self.desk.typist.sent(paste)
        if held_up and checkin.catch_up is CatchUp.SKIP:
            await self.desk.typist.unstage(paste)
            return await self.desk.finish(delivery.id, DeliveryState.SKIPPED, "missed")
        # The point of no return: the body may reach the pane now, and is never typed again.
        again = False
        while True:
            if again and self.desk.wall().timestamp() > until:
                await self.desk.typist.unstage(paste)
                return await self.desk.finish(
                    delivery.id, DeliveryState.UNVERIFIED, "paste: timeout"
                )
            try:
                await self.desk.typist.paste(paste)
                break
            except BufferMissing:
                if again:  # the timed-out client's command ran after all, just now
                    await self._still_ours(checkin, pane)
                    return await self._settle_unknown_paste(
                        checkin, delivery, pane, paste, fg, until, fire_at
                    )
                # Not pasted, and the staged copy is gone: the server was replaced meanwhile.
                raise TextLost(SERVER_LOST) from None
            except PaneReplaced:
                # Another program than the one the checks saw: nothing pasted; look again.
                raise TextLost(PANE_REPLACED) from None
            except PaneDead as exc:
                # tmux refused before pasting: nothing reached the pane, and its program exited.
                return await self.desk.finish(delivery.id, DeliveryState.FAILED, exc.reason)
            except TargetMissing:
                # The pane is gone (nothing pasted): the target may name a new pane by now.
                raise TextLost(PANE_REPLACED) from None
            except ServerMissing:
                raise TextLost(SERVER_LOST) from None
            except TmuxTimeout:
                # The client was killed, but a server that was frozen runs the command it had
                # already sent when it wakes: the paste may still happen, late. Nothing else may
                # be typed into this pane before that is known (two texts would join on one
                # line), so wait (holding the pane) until tmux answers and ask the buffer.
                self.ledger.last_pasted[checkin.id] = now  # it may have been (see catching_up)
                gone = await self._await_paste_outcome(paste, until)
                if gone is None:
                    return await self.desk.finish(
                        delivery.id, DeliveryState.UNVERIFIED, "paste: timeout"
                    )
                if gone:
                    # Pasted, or refused by its guard (the pane was replaced or renamed away
                    # meanwhile; the guard deletes the buffer too): the pane tells which.
                    await self._still_ours(checkin, pane)
                    return await self._settle_unknown_paste(
                        checkin, delivery, pane, paste, fg, until, fire_at
                    )
                again = True  # its buffer is still loaded: it was never pasted; paste it now
            except TmuxError as exc:
                # Another failure: whether the paste was made is unknown.
                await self.desk.typist.unstage(paste)
                return await self.desk.finish(
                    delivery.id, DeliveryState.UNVERIFIED, f"paste: {exc.reason}"
                )
        self.ledger.last_pasted[checkin.id] = self.desk.wall().timestamp()
        # Only now: until its paste is known, a late delivery is the catch-up still to come, and
        # a scheduler pass in between must not claim one of its own.
        self.ledger.release_untyped(delivery.id)
        self.ledger.note_typed(pane.pane_id, self.desk.settings.min_gap_s)
        # Late is about when the text reached the pane, not when it was claimed: a hold (a
        # rate budget, a frozen server, a wait for quiet) makes a delivery claimed in time late.
        late = self.desk.wall().timestamp() - fire_at > LATE_S
        await self.desk.store.transition(delivery.id, DeliveryState.TYPED, late=late)
        profile = self.desk.settings.profile_for(fg)
        await asyncio.sleep(self.desk.settings.settle_for(profile, fg.names))
        outcome = await self.verifier.submit_and_verify(
            delivery.id, pane.pane_id, paste.text, pane.pane_pid, profile, until
        )
        self.ledger.last_pasted[checkin.id] = (
            self.desk.wall().timestamp()
        )  # submitted by now, if ever
        return outcome

    @staticmethod
    def _until(checkin: CheckIn, fire_at: float) -> float:
        """The latest wall time the paste of ``fire_at`` may be made at: later, it was held up
        (a stopped process, a long queue) and a check-in that skips missed occurrences skips."""
        return fire_at + max(checkin.grace_s, 0.0) + HELD_UP_SLACK_S

    async def _fail_or_retry(self, delivery_id: int, exc: TmuxError) -> Delivery:
        """A tmux error before anything was typed. A pane gone or replaced, a server gone or not
        answering may be right again within grace: raise :class:`Retry` (the target is looked
        up afresh); a dead pane or an ambiguous target fail now."""
        transient = isinstance(exc, (ServerMissing, TmuxTimeout)) or (
            isinstance(exc, TargetMissing) and not isinstance(exc, (PaneDead, TargetAmbiguous))
        )
        if transient:
            raise Retry(exc.reason)
        return await self.desk.finish(delivery_id, DeliveryState.FAILED, exc.reason)

    async def _await_paste_outcome(self, paste: Paste, until: float) -> bool | None:
        """After a paste client timed out: True once tmux answers and the buffer is gone (pasted,
        or refused by the paste's guard), False when it is still loaded (never pasted), None when
        tmux did not answer in time. Raises :class:`TextLost` when the server is gone."""
        while True:
            try:
                names = await self.desk.tmux.buffer_names(paste.buffer, missing_ok=False)
                return paste.buffer not in names
            except ServerMissing:
                raise TextLost(SERVER_LOST) from None  # the text, if any, went with it
            except TmuxError:
                if not await self.looks.await_answer(until):
                    return None

    async def _still_ours(self, checkin: CheckIn, pane: PaneInfo) -> None:
        """Raise :class:`TextLost` unless the target still names ``pane``, with its program.

        A paste whose outcome is unknown went either into this pane or nowhere (its guard
        refused: the pane was replaced or renamed away). If the pane is no longer the target's,
        the text, if any, is with a program that is not the one asked for: deliver it afresh.
        """
        try:
            now = await self.desk.tmux.resolve(parse_target(checkin.target))
        except ServerMissing:
            raise TextLost(SERVER_LOST) from None
        except TmuxError:
            raise TextLost(PANE_REPLACED) from None
        if (now.pane_id, now.pane_pid) != (pane.pane_id, pane.pane_pid):
            raise TextLost(PANE_REPLACED)

    async def _settle_unknown_paste(
        self,
        checkin: CheckIn,
        delivery: Delivery,
        pane: PaneInfo,
        paste: Paste,
        fg: Foreground,
        until: float,
        fire_at: float,
    ) -> Delivery:
        """The timed-out paste was made when tmux woke: settle it as a restart would, by looking
        (text alone in the input area gets its Enter; anything else is unverified)."""
        now = self.desk.wall().timestamp()
        self.ledger.last_pasted[checkin.id] = now
        self.ledger.release_untyped(delivery.id)
        self.ledger.note_typed(pane.pane_id, self.desk.settings.min_gap_s)
        profile = self.desk.settings.profile_for(fg)
        try:
            verdict = await self.verifier.judge(pane.pane_id, paste.text, profile)
        except TmuxError as exc:
            verdict = f"look: {exc.reason}"
        if verdict != SWALLOWED:
            return await self.desk.finish(
                delivery.id, DeliveryState.UNVERIFIED, f"paste: timeout, {verdict or 'not-seen'}"
            )
        late = now - fire_at > LATE_S
        await self.desk.store.transition(delivery.id, DeliveryState.TYPED, late=late)
        outcome = await self.verifier.submit_and_verify(
            delivery.id, pane.pane_id, paste.text, pane.pane_pid, profile, until
        )
        self.ledger.last_pasted[checkin.id] = self.desk.wall().timestamp()
        return outcome
