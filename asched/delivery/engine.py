"""The delivery engine: one claimed occurrence -> its message in one pane, once and never twice.

Each delivery walks the journal's state machine, and every transition is committed before the next
side effect::

    claimed -preflight, stage-> typing -paste-> typed -settle, Enter-> submitted -look-> verified
                                                                                   \\-> unverified

A failure before typing (server, session or pane missing, a tmux timeout) is retried with backoff
and jitter inside the check-in's grace window, then recorded as ``failed(reason)``. A pane running
a shell gets nothing: ``skipped(shell)``. Ahead of the due time the body is *staged*: loaded into
a tmux buffer named after the delivery, then ``typing`` is committed; at the due time
``paste-buffer -d`` makes the paste and deletes the buffer. So a typing row whose buffer is still
loaded was never pasted (a restarted daemon pastes it), and one whose buffer is gone was.

Once pasted, a body is never typed again, with one exception: when the tmux server or the pane's
program went away before the Enter, the text went with them (no copy is left anywhere), and the
occurrence is claimed again (``server-lost``, ``pane-replaced``). An outcome that cannot be known
becomes ``unverified``, never a re-type (REFERENCE failures 3, 6, 20).

Deliveries to one pane are serialised and spaced by ``min_gap_s``; different panes proceed in
parallel up to ``max_parallel``; a global token bucket caps the rate, so no loop can flood an agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from asched.core.logs import Repeats, body_preview, get_logger
from asched.core.models import LATE_S, PAUSED, REMOVED, CatchUp, CheckIn, Delivery
from asched.core.states import PANE_REPLACED, SERVER_LOST, TEXT_LOST, DeliveryState
from asched.delivery.profiles import BUILTIN, GENERIC, InputArea, Profile, holds, pick, read_input
from asched.delivery.ttyline import CANON_LINE_MAX, longest_line_bytes, too_long_for
from asched.delivery.typist import NotOurs, Paste, Typist, Withdrawn
from asched.tmux.client import (
    BufferMissing,
    PaneDead,
    PaneInfo,
    PaneInMode,
    PaneReplaced,
    ServerMissing,
    TargetAmbiguous,
    TargetMissing,
    TmuxClient,
    TmuxError,
    TmuxMissing,
    TmuxTimeout,
)
from asched.tmux.shellguard import DEFAULT_SHELLS, Foreground, foreground_guard
from asched.tmux.targets import parse_target

log = get_logger()

PREPARE_S = 0.25  # the preflight starts this long before typing
PASTE_ROOM_S = 0.008  # a preflight waits this long past a paste due at the same moment
RECHECK_AFTER_S = 0.05  # checks that took longer than this waited: the pane is looked at again
SHELL_RECHECK_S = 0.05  # a pane that looks like a shell is looked at again after this
HELD_UP_SLACK_S = 1.0  # a delivery this much later than its grace allows was held up
SEND_SLACK_S = 60.0  # an `asched send` row older than its grace plus this is abandoned


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    """How deliveries behave; durations in seconds."""

    settle_s: float = 0.5
    settle_by_program: dict[str, float] = field(default_factory=dict)
    profiles: tuple[Profile, ...] = BUILTIN  # tried in order; GENERIC when none matches
    verify_delay_s: float = 0.15
    paste_show_s: float = 2.0  # how long a pasted text may take to appear in an input area
    prefix: str = ""
    shells: frozenset[str] = DEFAULT_SHELLS
    copy_mode: str = "wait"  # "wait" for the pane to leave it (within grace), or "cancel" it
    max_parallel: int = 16  # tmux clients at once (TmuxClient's max_calls)
    min_gap_s: float = 0.5
    rate_per_s: float = 50.0
    burst: int = 500
    retry_base_s: float = 0.5
    retry_max_s: float = 15.0

    def settle_for(self, profile: Profile, names: tuple[str, ...] = ()) -> float:
        """The settle delay before Enter: ``settle_by_program`` for one of the foreground
        ``names``, else the profile's own, else ``settle_s``."""
        for name in names:
            if name in self.settle_by_program:
                return self.settle_by_program[name]
        return self.settle_s if profile.settle_s is None else profile.settle_s

    def profile_for(self, fg: Foreground) -> Profile:
        """The agent profile of the program in the foreground."""
        return pick(fg.names, fg.cmdlines, self.profiles)


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


class _Deferred(Exception):
    """The daemon is stopping before typing began: leave the row claimed for the next start."""


class _Retry(Exception):
    """Nothing was typed and a moment later may do: claim the occurrence again, back off, retry
    within the grace window, else fail with ``reason``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _TextLost(_Retry):
    """Before our Enter, the text was lost: no copy of it is left anywhere.

    Either the paste never reached a server (no one listened on the socket), or the server that
    held the pane died, or the pane's program was replaced (``respawn-pane``, or a new server
    reusing the pane id): the unsent input line went with them. Typing it again cannot make a
    second copy, so the occurrence is claimed again. ``reason`` is one of ``TEXT_LOST``.
    """


class DeliveryEngine:
    """Runs deliveries as tasks; ``submit`` never blocks (the scheduler calls it)."""

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
        self._settings = settings or DeliverySettings()
        self._wall = wall
        self._tasks: set[asyncio.Task[None]] = set()
        # Deliveries that have not pasted yet, by id and counted per check-in (see catching_up).
        self._untyped_ids: dict[int, int] = {}
        self._untyped: Counter[int] = Counter()
        self._last_pasted: dict[int, float] = {}  # check-in id -> when one was last pasted
        self._staged_at_start: set[str] = set()  # buffers the last run left for rows in flight
        self._fires: Counter[float] = Counter()  # when the staged deliveries paste
        self._pane_locks = KeyedLocks()
        self._target_locks = KeyedLocks()
        self._pane_last: dict[str, float] = {}
        self._crashes = Repeats()
        self._bucket = TokenBucket(self._settings.rate_per_s, self._settings.burst)
        self.stopping = asyncio.Event()
        # Called whenever a delivery ends: a recurring check-in is not claimed again while an
        # occurrence of it is in flight (Store.due_checkins), so its next one waits for this.
        self.on_finished: Callable[[], None] = lambda: None
        spool.mkdir(mode=0o700, exist_ok=True)
        self._typist = Typist(store, tmux, spool)

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
            self._bucket = TokenBucket(new.rate_per_s, new.burst)

    # -- the scheduler's side ---------------------------------------------------------------

    def submit(self, checkin: CheckIn, delivery: Delivery) -> None:
        """Start delivering ``delivery`` in a task of its own."""
        self._hold_untyped(delivery)
        task = self._track(self.deliver(checkin, delivery), f"delivery-{delivery.id}")
        task.add_done_callback(lambda _t: self._release_untyped(delivery.id))

    def catching_up(self, checkin_id: int, due_at: datetime) -> bool:
        """True when a late delivery of this check-in already covers the occurrence at ``due_at``.

        The scheduler asks before it claims an occurrence that is late. An older occurrence of
        the same check-in, held up as well (a stopped process, a frozen server, a rate budget, a
        wait for quiet), is the catch-up if it has not typed yet, or if it reached the pane
        (pasted, or submitted) at or after ``due_at``: the pane already holds this very text from
        later than this slot. One stretch of hold-up brings one late delivery, never two.
        """
        if self._untyped[checkin_id] > 0:
            return True
        pasted = self._last_pasted.get(checkin_id)
        return pasted is not None and pasted >= due_at.timestamp()

    def _hold_untyped(self, delivery: Delivery) -> None:
        if delivery.id in self._untyped_ids:
            return
        self._untyped_ids[delivery.id] = delivery.checkin_id
        self._untyped[delivery.checkin_id] += 1

    def _release_untyped(self, delivery_id: int) -> None:
        checkin_id = self._untyped_ids.pop(delivery_id, None)
        if checkin_id is not None:
            self._untyped[checkin_id] -= 1
            if self._untyped[checkin_id] <= 0:
                del self._untyped[checkin_id]

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
        self.stopping.set()
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def cancel_all(self) -> None:
        """Cancel what is left after the drain timeout."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- one delivery ----------------------------------------------------------------------

    async def deliver(self, checkin: CheckIn, delivery: Delivery) -> None:
        """Deliver one claimed occurrence; every outcome ends in the journal, never as a crash."""
        started = time.monotonic()
        try:
            outcome = await self._deliver(checkin, delivery)
        except _Deferred:
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
            await self._record_crash(delivery.id, exc)
            return
        log.info(
            "checkin.delivered" if outcome.state is DeliveryState.VERIFIED else "checkin.outcome",
            delivery_id=delivery.id,
            checkin_id=checkin.id,
            target=checkin.target,
            state=str(outcome.state),
            reason=outcome.reason,
            pane=outcome.pane,
            elapsed_ms=round((time.monotonic() - started) * 1000, 1),
            **body_preview(checkin.message),
        )

    async def _deliver(self, checkin: CheckIn, delivery: Delivery) -> Delivery:
        # When to type: the due time, plus this occurrence's share of the jitter. The preflight
        # (lookups, guards) runs just before, so that what it saw is still true when typing.
        fire_at = delivery.due_at.timestamp() + random.uniform(0, max(checkin.jitter_s, 0.0))
        await self._sleep_or_defer(fire_at - PREPARE_S - self._wall().timestamp())
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
            now = self._wall().timestamp()
            near = [f for f in self._fires if f < fire_at and now - 0.005 <= f <= now + 0.02]
            if not near:
                return
            await asyncio.sleep(max(near) + PASTE_ROOM_S - now)

    async def _resolve_and_type(
        self, checkin: CheckIn, delivery: Delivery, fire_at: float
    ) -> Delivery:
        deadline = delivery.due_at.timestamp() + max(checkin.grace_s, 0.0)
        target = parse_target(checkin.target)
        attempt = 0
        while True:
            try:
                pane = await self.tmux.resolve(target)
            except TmuxMissing as exc:
                # No tmux binary will not fix itself within a grace window: say so at once.
                return await self._finish(delivery.id, DeliveryState.FAILED, exc.reason)
            except TmuxError as exc:
                reason = exc.reason
            else:
                contended = self._pane_locks.busy(pane.pane_id)
                try:
                    async with self._pane_locks.hold(pane.pane_id):
                        return await self._type_into(
                            checkin, delivery, pane, deadline, contended, fire_at
                        )
                except _Retry as exc:
                    reason = exc.reason
            # Nothing of it is in a pane: claim it again, back off, look again within grace.
            attempt += 1
            wait = self._backoff(attempt)
            if reason in TEXT_LOST:
                # Replaced, not broken: the target names a new pane (or server) already, most
                # likely; a long back-off would let a pane that is replaced often never get it.
                wait = min(wait, 1.0)
            if self._wall().timestamp() + wait > deadline:
                return await self._finish(delivery.id, DeliveryState.FAILED, reason)
            log.info(
                "delivery.retry",
                delivery_id=delivery.id,
                reason=reason,
                attempt=attempt,
                wait_s=round(wait, 3),
            )
            await self.store.transition(
                delivery.id, DeliveryState.CLAIMED, reason=reason, attempt=True
            )
            self._hold_untyped(delivery)
            await self._sleep_or_defer(wait)

    async def _type_into(
        self,
        checkin: CheckIn,
        delivery: Delivery,
        pane: PaneInfo,
        deadline: float,
        contended: bool,
        fire_at: float,
    ) -> Delivery:
        # Spacing per pane and the global budget come before the preflight, which must be fresh.
        gap = self._pane_last.get(pane.pane_id, -1e9) + self.settings.min_gap_s - time.monotonic()
        budget_wait = self._bucket.delay()
        waited = gap > 0 or budget_wait > 0 or contended
        await self._sleep_or_defer(max(gap, 0.0) + budget_wait)
        try:
            if waited:
                # The pane may have changed while we queued: look again.
                pane = await self.tmux.resolve(parse_target(pane.pane_id))
            pane = await self._leave_copy_mode(pane, deadline)
        except TmuxError as exc:
            return await self._fail_or_retry(delivery.id, exc)
        if pane.dead:
            return await self._finish(delivery.id, DeliveryState.FAILED, "pane-dead")
        if pane.in_mode:
            return await self._finish(delivery.id, DeliveryState.SKIPPED, "copy-mode")
        checked = await self._guards(checkin, delivery, pane, deadline)
        if isinstance(checked, Delivery):
            return checked
        pane, fg = checked
        text = with_prefix(self.settings.prefix, checkin.message)
        if longest_line_bytes(text) > CANON_LINE_MAX and await asyncio.to_thread(
            too_long_for, pane.tty, text
        ):
            # The pane's program would get a cut line, and the screen would look delivered.
            return await self._finish(delivery.id, DeliveryState.FAILED, "line-too-long")
        paste = self._typist.prepare(
            delivery.id, pane.pane_id, text, pane.pane_pid, parse_target(checkin.target)
        )
        # Staged ahead of the due time: the body is loaded into its buffer and then "typing" is
        # committed, so that the due time costs one tmux call. After a crash, a typing row whose
        # buffer is still loaded was never pasted, and the next daemon pastes it (paste.Typist).
        try:
            await self._typist.stage(paste)
        except Withdrawn:
            # Paused or removed while it waited: the store skipped the row with that reason.
            row = await self.store.get_delivery(delivery.id)
            assert row is not None
            return row
        except TmuxError as exc:
            return await self._fail_or_retry(delivery.id, exc)
        # Committed: from here the delivery runs to its end even when the daemon is stopping
        # (the drain waits for it); a crash leaves it to the next start.
        self._fires[fire_at] += 1
        try:
            await asyncio.sleep(max(0.0, fire_at - self._wall().timestamp()))
            return await self._paste_and_submit(checkin, delivery, pane, paste, fg, fire_at)
        finally:
            self._fires[fire_at] -= 1
            if self._fires[fire_at] <= 0:
                del self._fires[fire_at]

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
            fg = await asyncio.to_thread(foreground_guard, pane, self.settings.shells)
            if fg.shell:
                # Confirmed by a second look: a launcher script caught in the middle of an exec
                # can look like a shell for a moment (1 look in 150 on a just-made pane).
                await asyncio.sleep(SHELL_RECHECK_S)
                fg = await asyncio.to_thread(foreground_guard, pane, self.settings.shells)
            if fg.starting:
                # Forked by tmux, not yet exec'd: what it becomes (a shell?) is not known yet.
                raise _Retry("pane-starting")
            if fg.shell:
                return await self._finish(delivery.id, DeliveryState.SKIPPED, "shell")
            profile = self.settings.profile_for(fg)
            started = time.monotonic()
            try:
                if checkin.idle_s is not None:
                    pane = await self._await_quiet(checkin, pane, profile, deadline)
                    if await self._busy(pane, profile, checkin.idle_s):
                        return await self._finish(delivery.id, DeliveryState.SKIPPED, "busy")
                refusal = await self._await_empty_input(delivery.id, pane, profile, deadline)
            except TmuxError as exc:
                return await self._fail_or_retry(delivery.id, exc)
            if refusal is not None:
                # Never paste onto text on the input line: a person's half-typed words, or an
                # earlier check-in that is stuck there, would be merged with ours and sent as one.
                return await self._finish(delivery.id, DeliveryState.SKIPPED, refusal)
            if time.monotonic() - started < RECHECK_AFTER_S:
                return pane, fg  # no wait: what the checks saw is still fresh
            try:
                pane = await self.tmux.resolve(parse_target(pane.pane_id))
            except TmuxError as exc:
                return await self._fail_or_retry(delivery.id, exc)
            if pane.dead or pane.in_mode:
                state = DeliveryState.FAILED if pane.dead else DeliveryState.SKIPPED
                return await self._finish(
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
        now = self._wall().timestamp()
        until = fire_at + max(checkin.grace_s, 0.0) + HELD_UP_SLACK_S
        held_up = now > until
        if held_up and checkin.catch_up is CatchUp.SKIP:
            await self._typist.unstage(paste)
            return await self._finish(delivery.id, DeliveryState.SKIPPED, "missed")
        # The point of no return: the body may reach the pane now, and is never typed again.
        again = False
        while True:
            if again and self._wall().timestamp() > until:
                await self._typist.unstage(paste)
                return await self._finish(delivery.id, DeliveryState.UNVERIFIED, "paste: timeout")
            try:
                await self._typist.paste(paste)
                break
            except BufferMissing:
                if again:  # the timed-out client's command ran after all, just now
                    await self._still_ours(checkin, pane)
                    return await self._settle_unknown_paste(
                        checkin, delivery, pane, paste, fg, until, fire_at
                    )
                # Not pasted, and the staged copy is gone: the server was replaced meanwhile.
                raise _TextLost(SERVER_LOST) from None
            except PaneReplaced:
                # Another program than the one the checks saw: nothing pasted; look again.
                raise _TextLost(PANE_REPLACED) from None
            except PaneDead as exc:
                # tmux refused before pasting: nothing reached the pane, and its program exited.
                return await self._finish(delivery.id, DeliveryState.FAILED, exc.reason)
            except TargetMissing:
                # The pane is gone (nothing pasted): the target may name a new pane by now.
                raise _TextLost(PANE_REPLACED) from None
            except ServerMissing:
                raise _TextLost(SERVER_LOST) from None
            except TmuxTimeout:
                # The client was killed, but a server that was frozen runs the command it had
                # already sent when it wakes: the paste may still happen, late. Nothing else may
                # be typed into this pane before that is known (two texts would join on one
                # line), so wait (holding the pane) until tmux answers and ask the buffer.
                self._last_pasted[checkin.id] = now  # it may have been (see catching_up)
                gone = await self._await_paste_outcome(paste, until)
                if gone is None:
                    return await self._finish(
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
                await self._typist.unstage(paste)
                return await self._finish(
                    delivery.id, DeliveryState.UNVERIFIED, f"paste: {exc.reason}"
                )
        self._last_pasted[checkin.id] = self._wall().timestamp()
        # Only now: until its paste is known, a late delivery is the catch-up still to come, and
        # a scheduler pass in between must not claim one of its own.
        self._release_untyped(delivery.id)
        self._note_typed(pane.pane_id)
        # Late is about when the text reached the pane, not when it was claimed: a hold (a
        # rate budget, a frozen server, a wait for quiet) makes a delivery claimed in time late.
        late = self._wall().timestamp() - fire_at > LATE_S
        await self.store.transition(delivery.id, DeliveryState.TYPED, late=late)
        profile = self.settings.profile_for(fg)
        await asyncio.sleep(self.settings.settle_for(profile, fg.names))
        outcome = await self.submit_and_verify(
            delivery.id, pane.pane_id, paste.text, pane.pane_pid, profile, until
        )
        self._last_pasted[checkin.id] = self._wall().timestamp()  # submitted by now, if ever
        return outcome

    async def _fail_or_retry(self, delivery_id: int, exc: TmuxError) -> Delivery:
        """A tmux error before anything was typed. A pane gone or replaced, a server gone or not
        answering may be right again within grace: raise :class:`_Retry` (the target is looked
        up afresh); a dead pane or an ambiguous target fail now."""
        transient = isinstance(exc, (ServerMissing, TmuxTimeout)) or (
            isinstance(exc, TargetMissing) and not isinstance(exc, (PaneDead, TargetAmbiguous))
        )
        if transient:
            raise _Retry(exc.reason)
        return await self._finish(delivery_id, DeliveryState.FAILED, exc.reason)

    async def _await_paste_outcome(self, paste: Paste, until: float) -> bool | None:
        """After a paste client timed out: True once tmux answers and the buffer is gone (pasted,
        or refused by the paste's guard), False when it is still loaded (never pasted), None when
        tmux did not answer in time. Raises :class:`_TextLost` when the server is gone."""
        while True:
            try:
                names = await self.tmux.buffer_names(paste.buffer, missing_ok=False)
                return paste.buffer not in names
            except ServerMissing:
                raise _TextLost(SERVER_LOST) from None  # the text, if any, went with it
            except TmuxError:
                if not await self._await_answer(until):
                    return None

    async def _still_ours(self, checkin: CheckIn, pane: PaneInfo) -> None:
        """Raise :class:`_TextLost` unless the target still names ``pane``, with its program.

        A paste whose outcome is unknown went either into this pane or nowhere (its guard
        refused: the pane was replaced or renamed away). If the pane is no longer the target's,
        the text, if any, is with a program that is not the one asked for: deliver it afresh.
        """
        try:
            now = await self.tmux.resolve(parse_target(checkin.target))
        except ServerMissing:
            raise _TextLost(SERVER_LOST) from None
        except TmuxError:
            raise _TextLost(PANE_REPLACED) from None
        if (now.pane_id, now.pane_pid) != (pane.pane_id, pane.pane_pid):
            raise _TextLost(PANE_REPLACED)

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
        now = self._wall().timestamp()
        self._last_pasted[checkin.id] = now
        self._release_untyped(delivery.id)
        self._note_typed(pane.pane_id)
        profile = self.settings.profile_for(fg)
        try:
            verdict = await self._judge(pane.pane_id, paste.text, profile)
        except TmuxError as exc:
            verdict = f"look: {exc.reason}"
        if verdict != _SWALLOWED:
            return await self._finish(
                delivery.id, DeliveryState.UNVERIFIED, f"paste: timeout, {verdict or 'not-seen'}"
            )
        late = now - fire_at > LATE_S
        await self.store.transition(delivery.id, DeliveryState.TYPED, late=late)
        outcome = await self.submit_and_verify(
            delivery.id, pane.pane_id, paste.text, pane.pane_pid, profile, until
        )
        self._last_pasted[checkin.id] = self._wall().timestamp()
        return outcome

    def _note_typed(self, pane_id: str) -> None:
        now = time.monotonic()
        self._pane_last[pane_id] = now
        if len(self._pane_last) > 1024:  # forget panes whose gap has long passed
            horizon = now - self.settings.min_gap_s
            self._pane_last = {k: t for k, t in self._pane_last.items() if t > horizon}

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
        Raises :class:`_TextLost` when the server or that program is gone before the Enter.
        ``until`` (a wall time): an Enter or a look that timed out waits for tmux to answer again
        until then, since a frozen server still presses the Enter it was sent when it wakes.
        """
        if profile.knows_input:
            refusal = await self._await_paste_shown(pane_id, text, profile, pane_pid)
            if refusal is not None:
                return await self._finish(delivery_id, DeliveryState.UNVERIFIED, refusal)
        presses = 0
        while True:
            try:
                await self._typist.enter((pane_id, pane_pid))
            except ServerMissing:
                if presses:  # the first Enter may have submitted it: never type it again
                    return await self._finish(delivery_id, DeliveryState.UNVERIFIED, SERVER_LOST)
                raise _TextLost(SERVER_LOST) from None
            except PaneReplaced:
                if presses:
                    return await self._finish(delivery_id, DeliveryState.UNVERIFIED, PANE_REPLACED)
                raise _TextLost(PANE_REPLACED) from None
            except PaneInMode as exc:
                # Someone went into copy mode after the paste: the Enter would go to the mode.
                # Wait for it to end (or end it, by the copy_mode setting), then press it.
                if not await self._await_mode_end(pane_id, until):
                    return await self._finish(
                        delivery_id, DeliveryState.UNVERIFIED, f"enter: {exc.reason}"
                    )
                continue
            except TmuxTimeout as exc:
                # Sent, and maybe pressed when the server wakes: look once it answers.
                if not await self._await_answer(until):
                    return await self._finish(
                        delivery_id, DeliveryState.UNVERIFIED, f"enter: {exc.reason}"
                    )
            except TmuxError as exc:
                return await self._finish(
                    delivery_id, DeliveryState.UNVERIFIED, f"enter: {exc.reason}"
                )
            presses += 1
            await self.store.transition(
                delivery_id,
                DeliveryState.SUBMITTED,
                reason=None if presses == 1 else "enter-again",
                attempt=presses > 1,
            )
            await asyncio.sleep(self.settings.verify_delay_s)
            try:
                verdict = await self._judge_patiently(pane_id, text, profile, until, pane_pid)
                if verdict == _SWALLOWED and presses < profile.enters:
                    # Rendering may lag the Enter: only a second look that still shows our
                    # text alone in the input area makes another Enter.
                    await asyncio.sleep(self.settings.verify_delay_s)
                    verdict = await self._judge(pane_id, text, profile, pane_pid)
            except TmuxError as exc:
                return await self._finish(
                    delivery_id, DeliveryState.UNVERIFIED, f"verify: {exc.reason}"
                )
            if verdict is None:
                return await self._finish(delivery_id, DeliveryState.VERIFIED, None)
            if verdict != _SWALLOWED or presses >= profile.enters:
                return await self._finish(delivery_id, DeliveryState.UNVERIFIED, verdict)
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
        """:meth:`_judge`, and once more after tmux answers again if a look timed out."""
        try:
            return await self._judge(pane_id, text, profile, pane_pid)
        except TmuxTimeout:
            if not await self._await_answer(until):
                raise
            return await self._judge(pane_id, text, profile, pane_pid)

    async def _await_mode_end(self, pane_id: str, until: float | None) -> bool:
        """After an Enter refused for a pane in a mode: True once the pane left it (waited for
        within ``until``, or cancelled under ``copy_mode = "cancel"``), else False."""
        if until is None:
            return False
        try:
            pane = await self.tmux.resolve(parse_target(pane_id))
            pane = await self._leave_copy_mode(pane, until)
        except TmuxError:
            return False
        return not pane.in_mode

    async def _await_answer(self, until: float | None) -> bool:
        """After a tmux call timed out: wait (bounded by the wall time ``until``) for the server
        to answer again; False when it did not, or is gone."""
        attempt = 0
        while until is not None:
            try:
                await self.tmux.run("display-message", "-p", "")
                return True
            except ServerMissing:
                return False
            except TmuxError:
                attempt += 1
                wait = self._backoff(attempt)
                if self._wall().timestamp() + wait > until:
                    return False
                log.info("delivery.tmux_silent", attempt=attempt, wait_s=round(wait, 3))
                await asyncio.sleep(wait)  # committed: a stop does not cut this short
        return False

    async def _judge(
        self, pane_id: str, text: str, profile: Profile, pane_pid: int | None = None
    ) -> str | None:
        """After an Enter: None when submitted, else the reason it is not known to be.

        With ``pane_pid`` (the program the text was typed into), a pane that runs another
        program now is never "submitted": an empty screen then says nothing about our text.
        """
        screen = await self._typist.look(pane_id)
        if pane_pid is not None and screen.pane_pid not in (None, pane_pid):
            return "pane-replaced-after-enter"
        if not profile.knows_input:
            # No input area is known: the end of the text must have left the cursor line.
            tail = _tail(text)
            return _SWALLOWED if tail and tail in screen.cursor_line else None
        area = read_input(profile, screen.rows)
        if area is None:
            return "input-unknown"
        if area.empty:
            return None
        return _SWALLOWED if holds(area, text) else "input-changed"

    async def _input_area(self, pane_id: str, profile: Profile) -> InputArea | None:
        screen = await self._typist.look(pane_id)
        return read_input(profile, screen.rows)

    async def _await_paste_shown(
        self, pane_id: str, text: str, profile: Profile, pane_pid: int | None
    ) -> str | None:
        """Wait (``paste_show_s`` at most) until the pasted text, and nothing else, shows in the
        input area; None then, else why no Enter may follow (other text there, no input area).

        Raises :class:`_TextLost` when the server, or the program that got the paste, is gone:
        the text went with them.
        """
        until = time.monotonic() + max(self.settings.paste_show_s, 0.0)
        while True:
            try:
                area = await self._input_area(pane_id, profile)
            except ServerMissing:
                raise _TextLost(SERVER_LOST) from None
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
        """Raise :class:`_TextLost` when the pane no longer runs the program that got the text."""
        try:
            pane = await self.tmux.resolve(parse_target(pane_id))
        except ServerMissing:
            raise _TextLost(SERVER_LOST) from None
        except TmuxError:
            return  # gone or unreadable: the Enter, or the verdict, will say
        if pane_pid is not None and pane.pane_pid != pane_pid:
            raise _TextLost(PANE_REPLACED)

    async def _await_empty_input(
        self, delivery_id: int, pane: PaneInfo, profile: Profile, deadline: float
    ) -> str | None:
        """The input guard: None when the input area is empty (or none is known), else the
        reason to skip, after waiting for it to empty within the grace window."""
        if not profile.knows_input:
            return None
        waited = False
        while True:
            area = await self._input_area(pane.pane_id, profile)
            if area is not None and area.empty:
                return None
            now = self._wall().timestamp()
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
            await self._sleep_or_defer(min(0.5, deadline - now))

    async def _profile_of(self, pane_id: str) -> Profile:
        """The profile of the program in the pane now (for rows settled after a crash)."""
        pane = await self.tmux.resolve(parse_target(pane_id))
        fg = await asyncio.to_thread(foreground_guard, pane, self.settings.shells)
        return self.settings.profile_for(fg)

    async def _leave_copy_mode(self, pane: PaneInfo, deadline: float) -> PaneInfo:
        if not pane.in_mode:
            return pane
        if self.settings.copy_mode == "cancel":
            await self.tmux.cancel_mode(pane.pane_id)
            log.info("delivery.copy_mode_cancelled", pane=pane.pane_id)
            return await self.tmux.resolve(parse_target(pane.pane_id))
        log.info("delivery.copy_mode_wait", pane=pane.pane_id)
        while pane.in_mode and self._wall().timestamp() < deadline:
            await self._sleep_or_defer(0.2)
            pane = await self.tmux.resolve(parse_target(pane.pane_id))
        return pane

    def _busy_for(self, pane: PaneInfo, idle_s: float) -> bool:
        # tmux 3.3a keeps activity per window (#{window_activity}), not per pane, in whole
        # seconds rounded down: the last output may be up to a second later than it says.
        return self._wall().timestamp() - (pane.activity + 1) < idle_s

    async def _busy(self, pane: PaneInfo, profile: Profile, idle_s: float) -> bool:
        """Busy: output within ``idle_s``, or the profile's "working" mark on screen (an agent
        waiting on a slow API prints nothing for a while, yet is not idle)."""
        if self._busy_for(pane, idle_s):
            return True
        if profile.pattern("busy") is None:
            return False
        area = await self._input_area(pane.pane_id, profile)
        return area is not None and area.busy

    async def _await_quiet(
        self, checkin: CheckIn, pane: PaneInfo, profile: Profile, deadline: float
    ) -> PaneInfo:
        """With ``idle_wait``, look again until the pane is quiet or the grace window ends.

        An agent that is working is never interrupted; one that has stalled gets its nudge at the
        first quiet moment (REFERENCE failures 16-17).
        """
        assert checkin.idle_s is not None
        while checkin.idle_wait and await self._busy(pane, profile, checkin.idle_s):
            now = self._wall().timestamp()
            if now >= deadline:
                break
            # Look again when it would be quiet, or within a second: output may stop any time.
            # A profile's working mark costs a screen read per look: not more than 5 a second.
            floor = 0.2 if profile.pattern("busy") is not None else 0.05
            wait = min(max(pane.activity + 1 + checkin.idle_s - now, floor), 1.0, deadline - now)
            await self._sleep_or_defer(wait)
            pane = await self.tmux.resolve(parse_target(pane.pane_id))
        return pane

    def _backoff(self, attempt: int) -> float:
        base = min(self.settings.retry_base_s * 2.0 ** (attempt - 1), self.settings.retry_max_s)
        return base * random.uniform(0.5, 1.0)

    async def _sleep_or_defer(self, seconds: float) -> None:
        if seconds <= 0:
            if self.stopping.is_set():
                raise _Deferred
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), timeout=seconds)
        if self.stopping.is_set():
            raise _Deferred

    async def _record_crash(self, delivery_id: int, exc: Exception) -> None:
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
                await self._finish(delivery_id, state, reason)
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
                await asyncio.sleep(self._backoff(attempt))

    async def _finish(self, delivery_id: int, state: DeliveryState, reason: str | None) -> Delivery:
        return await self.store.transition(delivery_id, state, reason=reason)

    # -- after a crash -------------------------------------------------------------------------

    async def recover(self) -> int:
        """Resolve the journal rows a previous run left in flight; returns how many there were.

        ``claimed`` rows never reached a pane: they are delivered (or skipped when past grace).
        A ``typing`` row whose staged buffer is still loaded was never pasted: it is pasted now
        (``paste-buffer -d``, so at most once). Other rows that reached ``typing`` or later are
        settled by looking at the pane, never by typing the body again: text still on the input
        line gets its Enter; anything else is ``unverified``. At most one copy of an occurrence
        ever reaches a pane. Buffers of ours that belong to no row in flight are deleted.
        """
        rows = await self.store.in_flight()
        try:
            staged = await self._typist.staged()
        except TmuxError:
            staged = set()  # unknown: such rows are settled by looking at the pane, as before
        # Kept: the buffers of typing rows (committed, maybe never pasted) and of a running
        # `asched send`. A claimed row of ours is staged afresh when it is delivered.
        checkins = {row.id: await self.store.get_checkin(row.checkin_id) for row in rows}
        live: set[str] = set()
        for row in rows:
            owner = checkins[row.id]
            if row.state is DeliveryState.TYPING or (owner is not None and owner.origin == "send"):
                live.add(self._typist.buffer(row.id))
        await self.tmux.delete_buffers(sorted(staged - live))
        self._staged_at_start = staged & live
        for row in rows:
            checkin = checkins[row.id]
            log.info("delivery.recovering", delivery_id=row.id, state=str(row.state))
            if checkin is None and row.state is DeliveryState.CLAIMED:
                # Removed while it waited: nothing of it was typed, and nothing will be.
                await self._finish(row.id, DeliveryState.SKIPPED, REMOVED)
            elif checkin is None:
                await self._finish(row.id, DeliveryState.FAILED, "checkin-removed")
            elif row.state is DeliveryState.CLAIMED:
                late_s = self._wall().timestamp() - row.due_at.timestamp()
                if checkin.paused and checkin.origin != "send":
                    await self._finish(row.id, DeliveryState.SKIPPED, PAUSED)
                elif checkin.origin == "send":
                    # `asched send` delivers its own row, without the lock: never take it over
                    # while it may still be at work; end it once it surely is not.
                    if late_s > checkin.grace_s + SEND_SLACK_S:
                        await self._finish(row.id, DeliveryState.FAILED, "sender-gone")
                elif late_s > checkin.grace_s and checkin.catch_up is CatchUp.SKIP:
                    await self._finish(row.id, DeliveryState.SKIPPED, "missed")
                else:
                    self.submit(checkin, row)
            elif (
                checkin.origin != "send"
                or row.started_at.timestamp()
                < self._wall().timestamp() - (checkin.grace_s + SEND_SLACK_S)
            ):
                # Until it is settled, it counts as a delivery not typed yet: the scheduler must
                # not add a catch-up of its own for the same stretch (see catching_up).
                self._hold_untyped(row)
                task = self._track(self._settle(checkin, row), f"recover-{row.id}")
                task.add_done_callback(functools.partial(self._release_settled, row.id))
        return len(rows)

    def _release_settled(self, delivery_id: int, _task: asyncio.Task[None]) -> None:
        self._release_untyped(delivery_id)

    async def _settle(self, checkin: CheckIn, row: Delivery) -> None:
        try:
            if row.pane is None:
                await self._settle_locked(checkin, row)
                return
            # A fresh delivery to this pane must not paste between our look and our Enter.
            async with self._pane_locks.hold(row.pane):
                await self._settle_locked(checkin, row)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must cost one row, not leave it in flight unseen
            log.error("delivery.crashed", delivery_id=row.id, error=repr(exc), exc_info=exc)
            await self._record_crash(row.id, exc)

    async def _settle_locked(self, checkin: CheckIn, row: Delivery) -> None:
        text = with_prefix(self.settings.prefix, checkin.message)
        pane = row.pane
        buffer = self._typist.buffer(row.id)
        if (
            row.state is DeliveryState.TYPING
            and pane is not None
            and buffer in self._staged_at_start
        ):
            # Committed to and never pasted: paste it now, unless its policy says it is too late.
            late_s = self._wall().timestamp() - row.due_at.timestamp()
            if late_s > checkin.grace_s and checkin.catch_up is CatchUp.SKIP:
                await self.tmux.delete_buffers([buffer])
                await self._finish(row.id, DeliveryState.SKIPPED, "missed")
            else:
                await self._paste_staged(checkin, row, pane, text, buffer)
            return
        await self._settle_by_looking(checkin, row, pane, text)

    async def _settle_by_looking(
        self, checkin: CheckIn, row: Delivery, pane: str | None, text: str
    ) -> None:
        if pane is None:
            await self._finish(row.id, DeliveryState.UNVERIFIED, "interrupted")
            return
        profile = GENERIC
        try:
            profile = await self._profile_of(pane)
            verdict = await self._judge(pane, text, profile)
        except TmuxError as exc:
            verdict = f"look: {exc.reason}"
        if row.state is DeliveryState.SUBMITTED:
            state = DeliveryState.VERIFIED if verdict is None else DeliveryState.UNVERIFIED
            await self._finish(row.id, state, verdict)
            return
        if verdict != _SWALLOWED:
            await self._finish(row.id, DeliveryState.UNVERIFIED, f"interrupted-{row.state}")
            return
        if row.state is DeliveryState.TYPING:
            late = self._wall().timestamp() - row.due_at.timestamp() > LATE_S
            await self.store.transition(row.id, DeliveryState.TYPED, late=late)
        try:
            await self.submit_and_verify(row.id, pane, text, profile=profile)
        except _TextLost as lost:
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
            pane = await self.tmux.resolve(parse_target(pane_id))
        except ServerMissing:
            # The server that held the buffer and the pane is gone, and the text with them.
            await self._reclaim(checkin, row, SERVER_LOST)
            return
        except TmuxError as exc:
            skip = (DeliveryState.FAILED, exc.reason)
        else:
            fg = await asyncio.to_thread(foreground_guard, pane, self.settings.shells)
            profile = self.settings.profile_for(fg)
            if pane.dead:
                skip = (DeliveryState.FAILED, "pane-dead")
            elif pane.in_mode:
                skip = (DeliveryState.SKIPPED, "copy-mode")
            elif fg.shell or fg.starting:
                skip = (DeliveryState.SKIPPED, "shell")
            elif profile.knows_input:
                # The input guard, on one look: a restart does not wait for a person's text.
                try:
                    area = await self._input_area(pane_id, profile)
                except ServerMissing:
                    await self._reclaim(checkin, row, SERVER_LOST)
                    return
                except TmuxError as exc:
                    area, skip = None, (DeliveryState.FAILED, exc.reason)
                if skip is None and (area is None or not area.empty):
                    reason = "input-busy" if area is not None else "input-unknown"
                    skip = (DeliveryState.SKIPPED, reason)
        if skip is not None:
            await self.tmux.delete_buffers([buffer])
            await self._finish(row.id, *skip)
            return
        try:
            await self.tmux.paste_buffer(pane_id, buffer, pane.pane_pid)
        except BufferMissing:
            # Pasted meanwhile (an orphaned client of the last run finishing): look, never retype.
            await self._settle_by_looking(checkin, row, pane_id, text)
            return
        except PaneReplaced:  # nothing pasted, and the target may name a new pane: again
            await self._reclaim(checkin, row, PANE_REPLACED)
            return
        except PaneDead as exc:  # nothing pasted, buffer deleted
            await self._finish(row.id, DeliveryState.FAILED, exc.reason)
            return
        except TargetMissing:  # gone: nothing pasted, and the target may name a new pane
            await self._reclaim(checkin, row, PANE_REPLACED)
            return
        except TmuxError as exc:
            await self.tmux.delete_buffers([buffer])
            await self._finish(row.id, DeliveryState.UNVERIFIED, f"paste: {exc.reason}")
            return
        pasted_at = self._wall().timestamp()
        self._last_pasted[checkin.id] = pasted_at
        self._note_typed(pane_id)
        late = pasted_at - row.due_at.timestamp() > LATE_S
        await self.store.transition(row.id, DeliveryState.TYPED, late=late)
        await asyncio.sleep(self.settings.settle_for(profile, fg.names))
        try:
            await self.submit_and_verify(row.id, pane_id, text, pane.pane_pid, profile)
        except _TextLost as lost:
            await self._reclaim(checkin, row, lost.reason)

    async def _reclaim(self, checkin: CheckIn, row: Delivery, reason: str) -> None:
        """The text is lost with its server or program (``reason`` in TEXT_LOST): deliver the
        occurrence afresh."""
        again = await self.store.transition(
            row.id, DeliveryState.CLAIMED, reason=reason, attempt=True
        )
        self.submit(checkin, again)

    def _track(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda _t: self.on_finished())
        return task


# The verdict of a look after an Enter that found the text still alone in the input area.
_SWALLOWED = "text-still-in-input"


def with_prefix(prefix: str, message: str) -> str:
    """The text typed for ``message``: the ``[delivery] prefix`` before it, unless the message
    already carries it (check-ins imported from Tmux-Orchestrator keep the text it typed,
    "SCHEDULED CHECK-IN: <note>"; an empty note is the prefix's words alone): never twice."""
    if not prefix or message.startswith(prefix) or message == prefix.rstrip(" \t:>-"):
        return message
    return prefix + message


def _tail(text: str, width: int = 40) -> str:
    """The last non-empty line of ``text``, at most ``width`` characters from its end.

    Verification looks for this on the cursor line; a short tail survives prompts and wrapping.
    """
    lines = [ln.rstrip() for ln in text.splitlines() if ln.strip()]
    return lines[-1][-width:] if lines else ""
