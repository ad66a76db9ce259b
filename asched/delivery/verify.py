"""The Enter, and the look that says whether the text left the input area (``verified``)."""

from __future__ import annotations

import asyncio

from asched.core.logs import get_logger
from asched.core.models import Delivery
from asched.core.states import PANE_REPLACED, SERVER_LOST, DeliveryState
from asched.delivery.desk import Desk
from asched.delivery.looks import PaneLooks
from asched.delivery.outcomes import SWALLOWED, TextLost
from asched.delivery.profiles import GENERIC, Profile, holds, read_input
from asched.tmux.errors import PaneInMode, PaneReplaced, ServerMissing, TmuxError, TmuxTimeout

log = get_logger()

INPUT_UNKNOWN = "input-unknown"  # the verdict when the profile's input area is not on the screen
UNREADABLE_LOOKS = 4  # looks after an Enter before an unreadable input area is the verdict


class Verifier:
    """Presses Enter after a paste and judges, by looking, whether the text was submitted."""

    def __init__(self, desk: Desk, looks: PaneLooks) -> None:
        self.desk = desk
        self.looks = looks

    async def submit_and_verify(
        self,
        delivery_id: int,
        pane_id: str,
        text: str,
        pane_pid: int | None = None,
        profile: Profile = GENERIC,
        until: float | None = None,
    ) -> Delivery:
        """Press Enter after the text is in the input area, then look whether it left it.

        ``pane_pid``: the pane's program when the text was pasted; the Enter goes only to it.
        With a profile that knows the input area, the Enter waits until the paste shows there,
        and a swallowed Enter (the text, or its collapsed placeholder, still alone in the input
        area) is pressed again up to ``profile.enters`` times in all, each one journaled; the
        text is never typed twice. ``verified`` means the input area is back to empty.
        Raises :class:`TextLost` when the server or that program is gone before the Enter.
        ``until`` (a wall time): an Enter or a look that timed out waits for tmux to answer again
        until then, since a frozen server still presses the Enter it was sent when it wakes.
        """
        if profile.knows_input:
            refusal = await self.looks.await_paste_shown(pane_id, text, profile, pane_pid)
            if refusal is not None:
                return await self.desk.finish(delivery_id, DeliveryState.UNVERIFIED, refusal)
        # A prompt event from the agent's hooks with this very text confirms the delivery.
        self.desk.hooks.expect(pane_id, delivery_id, text)
        presses = 0
        while True:
            try:
                await self.desk.typist.enter((pane_id, pane_pid))
            except ServerMissing:
                if presses:  # the first Enter may have submitted it: never type it again
                    return await self.desk.finish(
                        delivery_id, DeliveryState.UNVERIFIED, SERVER_LOST
                    )
                raise TextLost(SERVER_LOST) from None
            except PaneReplaced:
                if presses:
                    return await self.desk.finish(
                        delivery_id, DeliveryState.UNVERIFIED, PANE_REPLACED
                    )
                raise TextLost(PANE_REPLACED) from None
            except PaneInMode as exc:
                # Someone went into copy mode after the paste: the Enter would go to the mode.
                # Wait for it to end (or end it, by the copy_mode setting), then press it.
                if not await self.looks.await_mode_end(pane_id, until):
                    return await self.desk.finish(
                        delivery_id, DeliveryState.UNVERIFIED, f"enter: {exc.reason}"
                    )
                continue
            except TmuxTimeout as exc:
                # Sent, and maybe pressed when the server wakes: look once it answers.
                if not await self.looks.await_answer(until):
                    return await self.desk.finish(
                        delivery_id, DeliveryState.UNVERIFIED, f"enter: {exc.reason}"
                    )
            except TmuxError as exc:
                return await self.desk.finish(
                    delivery_id, DeliveryState.UNVERIFIED, f"enter: {exc.reason}"
                )
            presses += 1
            await self.desk.store.transition(
                delivery_id,
                DeliveryState.SUBMITTED,
                reason=None if presses == 1 else "enter-again",
                attempt=presses > 1,
            )
            await asyncio.sleep(self.desk.settings.verify_delay_s)
            try:
                verdict = await self._judge_patiently(pane_id, text, profile, until, pane_pid)
                if verdict == SWALLOWED and presses < profile.enters:
                    # Rendering may lag the Enter: only a second look that still shows our
                    # text alone in the input area makes another Enter.
                    await asyncio.sleep(self.desk.settings.verify_delay_s)
                    verdict = await self.judge(pane_id, text, profile, pane_pid)
            except TmuxError as exc:
                return await self.desk.finish(
                    delivery_id, DeliveryState.UNVERIFIED, f"verify: {exc.reason}"
                )
            if verdict is None:
                return await self.desk.finish(delivery_id, DeliveryState.VERIFIED, None)
            if verdict != SWALLOWED or presses >= profile.enters:
                return await self.desk.finish(delivery_id, DeliveryState.UNVERIFIED, verdict)
            # Two looks (2 x verify_delay_s) have passed since the last key: past any paste window.
            log.info("delivery.enter_again", delivery_id=delivery_id, pane=pane_id, press=presses)

    async def _judge_patiently(
        self,
        pane_id: str,
        text: str,
        profile: Profile,
        until: float | None,
        pane_pid: int | None = None,
    ) -> str | None:
        """:meth:`judge`, once more after tmux answers again if a look timed out, and again
        while the input area cannot be read (up to :data:`UNREADABLE_LOOKS` looks)."""
        try:
            verdict = await self.judge(pane_id, text, profile, pane_pid)
        except TmuxTimeout:
            if not await self.looks.await_answer(until):
                raise
            verdict = await self.judge(pane_id, text, profile, pane_pid)
        for _ in range(UNREADABLE_LOOKS - 1):
            if verdict != INPUT_UNKNOWN:
                break
            # An agent UI redraws its whole screen after a submit, and on a loaded machine the
            # look can land mid-redraw (Gemini CLI, 1 run in 10 with a CPU hog beside it): an
            # input area not found is not yet an answer.
            await asyncio.sleep(self.desk.settings.verify_delay_s)
            verdict = await self.judge(pane_id, text, profile, pane_pid)
        return verdict

    async def judge(
        self, pane_id: str, text: str, profile: Profile, pane_pid: int | None = None
    ) -> str | None:
        """After an Enter: None when submitted, else the reason it is not known to be.

        With ``pane_pid`` (the program the text was typed into), a pane that runs another
        program now is never "submitted": an empty screen then says nothing about our text.
        """
        screen = await self.desk.typist.look(pane_id)
        if pane_pid is not None and screen.pane_pid not in (None, pane_pid):
            return "pane-replaced-after-enter"
        if not profile.knows_input:
            # No input area is known: the end of the text must have left the cursor line.
            tail = _tail(text)
            return SWALLOWED if tail and tail in screen.cursor_line else None
        area = read_input(profile, screen.rows)
        if area is None:
            return INPUT_UNKNOWN
        if area.empty:
            return None
        return SWALLOWED if holds(area, text) else "input-changed"


def _tail(text: str, width: int = 40) -> str:
    """The last non-empty line of ``text``, at most ``width`` characters from its end.

    Verification looks for this on the cursor line; a short tail survives prompts and wrapping.
    """
    lines = [ln.rstrip() for ln in text.splitlines() if ln.strip()]
    return lines[-1][-width:] if lines else ""
