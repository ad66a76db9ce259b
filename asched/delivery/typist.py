"""Work that falls due together is done together: one journal commit, few tmux clients.

A burst (100 check-ins due at one instant in 100 panes) would otherwise start 100 tmux clients for
the pastes, 100 for the Enters and 100 for the checks; on two cores that takes a few hundred
milliseconds and starves everything else on the machine. :class:`TickBatcher` gathers the calls
made in one turn of the event loop and runs them as one batch; a lone call keeps the plain path.

Whatever the batch, each delivery's ``typing`` row is committed before its first byte can reach
a pane, and a paste that tmux did not perform is reported as not pasted, never guessed. Bodies
are staged in named tmux buffers before that commit (see :class:`Typist`), so that a restarted
daemon can tell a paste that happened from one that did not.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from asched.core.errors import UsageError
from asched.core.logs import get_logger
from asched.core.models import NOT_CLAIMED
from asched.delivery.pacing import Instants
from asched.tmux.client import PasteLine, TmuxClient
from asched.tmux.errors import PaneDead, PaneReplaced, TargetMissing, TmuxTimeout
from asched.tmux.panes import Screen
from asched.tmux.targets import Target, check_body

log = get_logger()

# How long before an instant the path its pastes take is woken up (:meth:`Typist._warm`): long
# enough for the look to be through tmux (about 0.5 ms cold), short enough that nothing goes
# back to sleep in between.
WARM_S = 0.002

Q = TypeVar("Q")
R = TypeVar("R")


class TickBatcher(Generic[Q, R]):
    """Runs the items submitted in the same loop turn through ``run`` as one list.

    ``run`` returns one result or exception per item, in order. It runs to its end even when a
    submitter is cancelled: what it did must reach every caller's bookkeeping.
    """

    def __init__(
        self, run: Callable[[list[Q]], Awaitable[list[R | BaseException]]], turns: int = 3
    ) -> None:
        self._run = run
        self._turns = turns
        self._pending: list[tuple[Q, asyncio.Future[R]]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, item: Q) -> R:
        """Add ``item`` to the current batch; returns its result or raises its exception."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[R] = loop.create_future()
        # A submitter cancelled meanwhile (a stop) no longer awaits its result: consume it, or
        # asyncio prints "Future exception was never retrieved" on stderr at exit.
        done.add_done_callback(_consume)
        self._pending.append((item, done))
        if len(self._pending) == 1:
            task = loop.create_task(self._flush(), name="tick-batch")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await asyncio.shield(done)

    async def _flush(self) -> None:
        # Let the other callers of this instant reach submit() first.
        for _ in range(self._turns):
            await asyncio.sleep(0)
        batch, self._pending = self._pending, []
        try:
            results = await self._run([item for item, _ in batch])
        except asyncio.CancelledError:
            for _, done in batch:
                done.cancel()
            raise
        except BaseException as exc:
            results = [exc] * len(batch)
        for (_, done), result in zip(batch, results, strict=True):
            if isinstance(result, BaseException):
                done.set_exception(result)
            else:
                done.set_result(result)


def _consume(done: asyncio.Future[Any]) -> None:
    if not done.cancelled():
        done.exception()


async def _as_results(one: Awaitable[None]) -> list[BaseException | None]:
    """A single paste's outcome as the one-item list of :meth:`Typist._send_now`."""
    try:
        await one
    except Exception as exc:
        return [exc]
    return [None]


class TypingJournal(Protocol):
    """The one store call the paste batch makes."""

    async def mark_typing(self, items: list[tuple[int, str]]) -> dict[int, str]: ...


class NotOurs(Exception):
    """The row was not ``claimed`` any more: another process is delivering it. Hands off."""


class Withdrawn(Exception):
    """The check-in was paused or removed while its occurrence waited: the row is now skipped
    with ``reason``, and nothing is typed."""

    def __init__(self, delivery_id: int, reason: str) -> None:
        super().__init__(f"delivery {delivery_id}: {reason}")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Paste:
    """One body for one pane, for one delivery, through the tmux buffer ``buffer``."""

    delivery_id: int
    pane_id: str
    text: str
    buffer: str
    pane_pid: int | None = None  # the program the checks looked at; the paste goes only to it
    target: Target | None = None  # and only while this target still names that pane


def buffer_prefix(spool: Path) -> str:
    """The buffer-name prefix of one state directory: daemons of several state directories may
    share a tmux server, and a restarted daemon must find its predecessor's buffers."""
    digest = hashlib.sha256(str(spool.resolve()).encode("utf-8", "surrogateescape")).hexdigest()
    return f"as{digest[:8]}"


class Typist:
    """Stages, pastes, Enters and looks at panes, batched per loop turn.

    :meth:`stage` loads a body into a tmux buffer named after its delivery and then commits
    ``typing``, ahead of the due time; :meth:`paste` (``paste-buffer -d``, which deletes the
    buffer) is then the one tmux call left for the due time. So after a crash, a ``typing`` row
    whose buffer is still loaded was never pasted and can be pasted now, and one whose buffer is
    gone was: exactly once, whenever the daemon died.
    """

    def __init__(self, store: TypingJournal, tmux: TmuxClient, spool: Path) -> None:
        self.store = store
        self.tmux = tmux
        self.spool = spool
        self.prefix = buffer_prefix(spool)
        self._stages = TickBatcher[Paste, None](self._stage_batch)
        # One turn: the pastes of one instant are woken in one go (pacing.Instants) and reach
        # submit() in the same turn; each turn of waiting costs about 0.05 ms of due -> pasted.
        self._pastes = TickBatcher[Paste, None](self._paste_batch, turns=1)
        # (pane id, the pid of its program when the text was pasted, or None when not known)
        self._enters = TickBatcher[tuple[str, int | None], None](self._enter_batch)
        self._looks = TickBatcher[str, Screen](self._look_batch)
        # Pastes armed for an instant (delivery id -> the paste and the latest wall time it may
        # still be made at), and those already sent at their instant (delivery id -> the task
        # of the instant's outcomes and the item's index in it).
        self._armed: dict[float, dict[int, tuple[Paste, float, PasteLine]]] = {}
        self._fired: dict[int, tuple[asyncio.Future[list[BaseException | None]], int]] = {}

    async def stage(self, paste: Paste) -> None:
        """Load the body into its buffer, then commit ``typing`` (batched with this loop turn's
        other stagings: one load, one commit). Raises :class:`NotOurs` or :class:`Withdrawn`
        when the row may not be typed; then nothing is staged."""
        await self._stages.submit(paste)

    async def paste(self, paste: Paste) -> None:
        """``paste-buffer -d`` the staged body into its pane (only into the program the checks
        saw); batched with this loop turn's other pastes into one tmux client. A paste that was
        :meth:`arm`-ed and sent at its instant is not sent again: this returns its outcome."""
        fired = self._fired.pop(paste.delivery_id, None)
        if fired is None:
            # Not sent by its instant (no control client, a late ring, held up): it never will
            # be now, whatever rings later. A paste goes out once.
            self.disarm(paste)
            await self._pastes.submit(paste)
            return
        outcomes, index = fired
        result = (await asyncio.shield(outcomes))[index]
        if result is not None:
            raise result

    def arm(self, paste: Paste, when: float, until: float, instants: Instants) -> None:
        """Send ``paste`` in the loop step in which the wall-clock instant ``when`` comes (with
        the other pastes armed for it, in one control-client write), unless that is past
        ``until``. The delivery then calls :meth:`paste` as ever, which returns the outcome of
        the paste already sent; when nothing could be sent (no control client attached), it
        sends it itself."""
        try:
            # Made now, not at the instant: the instant's step only writes.
            made = self.tmux.paste_line(
                paste.pane_id, paste.buffer, paste.pane_pid, target=paste.target
            )
        except UsageError:
            return  # not armed: the usual paste raises it, as it always did
        armed = self._armed.get(when)
        if armed is None:
            armed = self._armed[when] = {}
            instants.on_ring(when - WARM_S, lambda _now: self._warm(when))
            instants.on_ring(when, lambda now: self._fire(when, now))
        armed[paste.delivery_id] = (paste, until, made)

    def disarm(self, paste: Paste) -> None:
        """Forget an armed paste that will not be waited for (its delivery was cancelled). One
        already sent stays sent: a restart then finds its buffer gone, as after a crash."""
        for armed in self._armed.values():
            armed.pop(paste.delivery_id, None)
        self._fired.pop(paste.delivery_id, None)

    def sent(self, paste: Paste) -> bool:
        """True when ``paste`` was sent at its instant (its outcome is pending or known)."""
        return paste.delivery_id in self._fired

    def _warm(self, when: float) -> None:
        """Shortly before the instant ``when``: one look at a pane of its pastes, through the
        control client, so that tmux's server, its client and this process have just run when
        the pastes come (a paste into a server that had slept for the lead took 0.4 ms longer,
        most of it cold caches: docs/BENCHMARKS.md). The answer is not needed."""
        armed = self._armed.get(when)
        if not armed:
            return
        paste = next(iter(armed.values()))[0]
        sent = self.tmux.send_now("display-message", "-p", "-t", paste.pane_id, "#{pane_dead}")
        if sent is not None:
            sent.add_done_callback(_consume)

    def _fire(self, when: float, now: float) -> None:
        """The instant ``when`` has come: send its armed pastes, all in this step."""
        armed = self._armed.pop(when, {})
        due = [(paste, made) for paste, until, made in armed.values() if now <= until]
        if not due:
            return
        try:
            outcomes = self._send_now(due)
        except Exception as exc:
            # A bug, not a tmux answer: nothing was sent; the deliveries paste the usual way.
            log.error("typist.fire_failed", error=repr(exc))
            return
        if outcomes is None:
            return
        outcomes.add_done_callback(_consume)
        for index, (paste, _made) in enumerate(due):
            self._fired[paste.delivery_id] = (outcomes, index)

    def _send_now(
        self, due: list[tuple[Paste, PasteLine]]
    ) -> asyncio.Future[list[BaseException | None]] | None:
        """The pastes of ``due`` written to the control client now, and the task of their
        outcomes (one exception or None each); None when nothing was sent. The process gives
        up its CPU right after the write, to the tmux server it woke (``yield_cpu``)."""
        if len(due) == 1:
            p, made = due[0]
            one = self.tmux.paste_buffer_now(
                p.pane_id, p.buffer, p.pane_pid, target=p.target, made=made, yield_cpu=True
            )
            if one is None:
                return None
            return asyncio.ensure_future(_as_results(one))
        pastes = [p for p, _made in due]
        many = self.tmux.paste_buffers_now(
            [(p.pane_id, p.buffer, p.pane_pid) for p in pastes],
            [p.target for p in pastes],
            yield_cpu=True,
        )
        if many is None:
            return None
        return asyncio.ensure_future(self._paste_many(pastes, many))

    async def enter(self, pane: tuple[str, int | None]) -> None:
        """Press Enter in ``(pane id, pid of its program when pasted, or None)``; batched."""
        await self._enters.submit(pane)

    async def look(self, pane_id: str) -> Screen:
        """The pane's screen now; batched with this loop turn's other looks."""
        return await self._looks.submit(pane_id)

    def prepare(
        self,
        delivery_id: int,
        pane_id: str,
        text: str,
        pane_pid: int | None = None,
        target: Target | None = None,
    ) -> Paste:
        """The paste of ``text`` for this delivery (its buffer name is derived from its id)."""
        return Paste(delivery_id, pane_id, text, self.buffer(delivery_id), pane_pid, target)

    def buffer(self, delivery_id: int) -> str:
        """The tmux buffer a delivery's body is staged in."""
        return f"{self.prefix}-{delivery_id}"

    async def unstage(self, paste: Paste) -> None:
        """Drop a staged body that will not be pasted (best-effort)."""
        await self.tmux.delete_buffers([paste.buffer])

    async def staged(self) -> set[str]:
        """The buffers of ours the tmux server holds (none when it is not running)."""
        return await self.tmux.buffer_names(self.prefix + "-")

    async def _stage_batch(self, batch: list[Paste]) -> list[BaseException | None]:
        results: dict[int, BaseException | None] = {}
        for n, p in enumerate(batch):
            try:
                check_body(p.text)  # a bad body fails alone
            except UsageError as exc:
                results[n] = exc
        todo = [n for n in range(len(batch)) if n not in results]
        if not todo:
            return [results.get(n) for n in range(len(batch))]
        try:
            await self.tmux.load_buffers(
                [(batch[n].buffer, batch[n].text) for n in todo], self.spool
            )
        except Exception as exc:
            results.update((n, exc) for n in todo)
            return [results.get(n) for n in range(len(batch))]
        # Loaded: now commit "typing" (raises for every item when it cannot be journaled, and
        # then nothing is typed). From here a crash leaves the paste to the next daemon.
        try:
            refused = await self.store.mark_typing(
                [(batch[n].delivery_id, batch[n].pane_id) for n in todo]
            )
        except BaseException:
            await self.tmux.delete_buffers([batch[n].buffer for n in todo])
            raise
        for n in todo:
            why = refused.get(batch[n].delivery_id)
            if why == NOT_CLAIMED:
                results[n] = NotOurs(f"delivery {batch[n].delivery_id} is not claimed")
            elif why is not None:
                results[n] = Withdrawn(batch[n].delivery_id, why)
        if refused:
            await self.tmux.delete_buffers([p.buffer for p in batch if p.delivery_id in refused])
        return [results.get(n) for n in range(len(batch))]

    async def _paste_batch(self, batch: list[Paste]) -> list[BaseException | None]:
        if len(batch) == 1:
            return [await self._single(batch[0])]
        return await self._paste_many(batch)

    async def _paste_many(
        self, batch: list[Paste], sent: Awaitable[list[str]] | None = None
    ) -> list[BaseException | None]:
        if sent is None:
            sent = self.tmux.paste_buffers(
                [(p.pane_id, p.buffer, p.pane_pid) for p in batch], [p.target for p in batch]
            )
        outcomes = await sent
        results: list[BaseException | None] = []
        for p, outcome in zip(batch, outcomes, strict=True):
            if outcome == "pasted":
                results.append(None)
            elif outcome == "dead":
                results.append(PaneDead(f"{p.pane_id}: the pane is dead"))
            elif outcome == "replaced":
                results.append(PaneReplaced(f"{p.pane_id}: another program than {p.pane_pid}"))
            elif outcome == "unknown":
                results.append(TmuxTimeout(f"{p.pane_id}: paste: the tmux client timed out"))
            else:
                # tmux never pasted it (its buffer is still loaded): a single paste says why.
                results.append(await self._single(p))
        return results

    async def _single(self, p: Paste) -> BaseException | None:
        try:
            await self.tmux.paste_buffer(p.pane_id, p.buffer, p.pane_pid, target=p.target)
        except Exception as exc:
            return exc
        return None

    async def _enter_batch(self, items: list[tuple[str, int | None]]) -> list[BaseException | None]:
        if len(items) == 1:
            await self.tmux.send_enter(*items[0])
            return [None]
        panes = [pane for pane, _ in items]
        outcomes = await self.tmux.send_enter_many(panes, [pid for _, pid in items])
        failures = {"dead": PaneDead, "replaced": PaneReplaced}
        results: list[BaseException | None] = []
        for (pane, pid), outcome in zip(items, outcomes, strict=True):
            if outcome == "entered":
                results.append(None)
            elif outcome in failures:
                results.append(failures[outcome](f"{pane}: {outcome}"))
            else:
                # No marker: its guard failed (a missing pane stops the rest of a client's
                # list), or tmux stopped before it. A single call says which.
                try:
                    await self.tmux.send_enter(pane, pid)
                    results.append(None)
                except Exception as exc:
                    results.append(exc)
        return results

    async def _look_batch(self, panes: list[str]) -> list[Screen | BaseException]:
        if len(panes) == 1:
            return [await self.tmux.screen(panes[0])]
        screens = await self.tmux.screens(panes)
        return [
            screen if screen is not None else TargetMissing(f"{pane}: cannot read the pane")
            for pane, screen in zip(panes, screens, strict=True)
        ]
