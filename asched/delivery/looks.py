"""Looking at a pane, and waiting on what it shows: the input area, copy mode, quiet, a server
that stopped answering. Every wait is bounded by a wall time and cut short by a stop."""

from __future__ import annotations

import asyncio
import time

from asched.core.logs import get_logger
from asched.core.models import CheckIn
from asched.core.states import PANE_REPLACED, SERVER_LOST
from asched.delivery.desk import Desk
from asched.delivery.outcomes import TextLost
from asched.delivery.profiles import InputArea, Profile, holds, read_input
from asched.tmux.errors import ServerMissing, TmuxError
from asched.tmux.panes import PaneInfo
from asched.tmux.shellguard import foreground_guard
from asched.tmux.targets import parse_target

log = get_logger()


class PaneLooks:
    """The looks and waits the delivery steps make at a pane."""

    def __init__(self, desk: Desk) -> None:
        self.desk = desk

    async def input_area(self, pane_id: str, profile: Profile) -> InputArea | None:
        screen = await self.desk.typist.look(pane_id)
        return read_input(profile, screen.rows)

    async def await_paste_shown(
        self, pane_id: str, text: str, profile: Profile, pane_pid: int | None
    ) -> str | None:
        """Wait (``paste_show_s`` at most) until the pasted text, and nothing else, shows in the
        input area; None then, else why no Enter may follow (other text there, no input area).

        Raises :class:`TextLost` when the server, or the program that got the paste, is gone:
        the text went with them.
        """
        until = time.monotonic() + max(self.desk.settings.paste_show_s, 0.0)
        while True:
            try:
                area = await self.input_area(pane_id, profile)
            except ServerMissing:
                raise TextLost(SERVER_LOST) from None
            except TmuxError as exc:
                return f"look: {exc.reason}"
            if area is not None and holds(area, text):
                return None
            if time.monotonic() >= until:
                await self._check_same_program(pane_id, pane_pid)
                # The guard saw it empty before the paste: other text is someone else's.
                if area is None:
                    return "input-unknown"
                return "paste-not-seen" if area.empty else "input-changed"
            await asyncio.sleep(0.05)  # a long paste may still be arriving, or being drawn

    async def _check_same_program(self, pane_id: str, pane_pid: int | None) -> None:
        """Raise :class:`TextLost` when the pane no longer runs the program that got the text."""
        try:
            pane = await self.desk.tmux.resolve(parse_target(pane_id))
        except ServerMissing:
            raise TextLost(SERVER_LOST) from None
        except TmuxError:
            return  # gone or unreadable: the Enter, or the verdict, will say
        if pane_pid is not None and pane.pane_pid != pane_pid:
            raise TextLost(PANE_REPLACED)

    async def await_empty_input(
        self, delivery_id: int, pane: PaneInfo, profile: Profile, deadline: float
    ) -> str | None:
        """The input guard: None when the input area is empty (or none is known), else the
        reason to skip, after waiting for it to empty within the grace window."""
        if not profile.knows_input:
            return None
        waited = False
        while True:
            area = await self.input_area(pane.pane_id, profile)
            if area is not None and area.empty:
                return None
            now = self.desk.wall().timestamp()
            if now >= deadline:
                return "input-busy" if area is not None else "input-unknown"
            if not waited:
                log.info(
                    "delivery.input_wait",
                    delivery_id=delivery_id,
                    pane=pane.pane_id,
                    profile=profile.name,
                    why="text on the input line" if area is not None else "no input area",
                )
                waited = True
            await self.desk.sleep_or_defer(min(0.5, deadline - now))

    async def profile_of(self, pane_id: str) -> Profile:
        """The profile of the program in the pane now (for rows settled after a crash)."""
        pane = await self.desk.tmux.resolve(parse_target(pane_id))
        fg = await asyncio.to_thread(foreground_guard, pane, self.desk.settings.shells)
        return self.desk.settings.profile_for(fg)

    async def leave_copy_mode(self, pane: PaneInfo, deadline: float) -> PaneInfo:
        if not pane.in_mode:
            return pane
        if self.desk.settings.copy_mode == "cancel":
            await self.desk.tmux.cancel_mode(pane.pane_id)
            log.info("delivery.copy_mode_cancelled", pane=pane.pane_id)
            return await self.desk.tmux.resolve(parse_target(pane.pane_id))
        log.info("delivery.copy_mode_wait", pane=pane.pane_id)
        while pane.in_mode and self.desk.wall().timestamp() < deadline:
            await self.desk.sleep_or_defer(0.2)
            pane = await self.desk.tmux.resolve(parse_target(pane.pane_id))
        return pane

    def _busy_for(self, pane: PaneInfo, idle_s: float) -> bool:
        # tmux 3.3a keeps activity per window (#{window_activity}), not per pane, in whole
        # seconds rounded down: the last output may be up to a second later than it says.
        return self.desk.wall().timestamp() - (pane.activity + 1) < idle_s

    async def busy(self, pane: PaneInfo, profile: Profile, idle_s: float) -> bool:
        """Busy: output within ``idle_s``, or the profile's "working" mark on screen (an agent
        waiting on a slow API prints nothing for a while, yet is not idle).

        An agent that reports through its hooks is judged by its own turns instead: busy while a
        turn runs and for ``idle_s`` after it ended (:class:`~asched.delivery.hookbook.HookBook`).
        """
        if self.desk.hooks.hooked(pane.pane_id):
            return self.desk.hooks.busy(pane.pane_id, idle_s)
        if self._busy_for(pane, idle_s):
            return True
        if profile.pattern("busy") is None:
            return False
        area = await self.input_area(pane.pane_id, profile)
        return area is not None and area.busy

    async def await_quiet(
        self, checkin: CheckIn, pane: PaneInfo, profile: Profile, deadline: float
    ) -> PaneInfo:
        """With ``idle_wait``, look again until the pane is quiet or the grace window ends.

        An agent that is working is never interrupted; one that has stalled gets its nudge at the
        first quiet moment (docs/OLD-SCHEDULER.md, failures 16-17).
        """
        assert checkin.idle_s is not None
        while checkin.idle_wait and await self.busy(pane, profile, checkin.idle_s):
            now = self.desk.wall().timestamp()
            if now >= deadline:
                break
            # Look again when it would be quiet, or within a second: output may stop any time.
            # A profile's working mark costs a screen read per look: not more than 5 a second.
            floor = 0.2 if profile.pattern("busy") is not None else 0.05
            wait = min(max(pane.activity + 1 + checkin.idle_s - now, floor), 1.0, deadline - now)
            await self.desk.sleep_or_defer(wait)
            pane = await self.desk.tmux.resolve(parse_target(pane.pane_id))
        return pane

    async def await_answer(self, until: float | None) -> bool:
        """After a tmux call timed out: wait (bounded by the wall time ``until``) for the server
        to answer again; False when it did not, or is gone."""
        attempt = 0
        while until is not None:
            try:
                await self.desk.tmux.run("display-message", "-p", "")
                return True
            except ServerMissing:
                return False
            except TmuxError:
                attempt += 1
                wait = self.desk.backoff(attempt)
                if self.desk.wall().timestamp() + wait > until:
                    return False
                log.info("delivery.tmux_silent", attempt=attempt, wait_s=round(wait, 3))
                await asyncio.sleep(wait)  # committed: a stop does not cut this short
        return False

    async def await_mode_end(self, pane_id: str, until: float | None) -> bool:
        """After an Enter refused for a pane in a mode: True once the pane left it (waited for
        within ``until``, or cancelled under ``copy_mode = "cancel"``), else False."""
        if until is None:
            return False
        try:
            pane = await self.desk.tmux.resolve(parse_target(pane_id))
            pane = await self.leave_copy_mode(pane, until)
        except TmuxError:
            return False
        return not pane.in_mode
