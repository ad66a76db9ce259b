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
from asched.core.models import NOT_CLAIMED
from asched.tmux.client import TmuxClient
from asched.tmux.errors import PaneDead, PaneReplaced, TargetMissing, TmuxTimeout
from asched.tmux.panes import Screen
from asched.tmux.targets import Target, check_body

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

    async def stage(self, paste: Paste) -> None:
        """Load the body into its buffer, then commit ``typing`` (batched with this loop turn's
        other stagings: one load, one commit). Raises :class:`NotOurs` or :class:`Withdrawn`
        when the row may not be typed; then nothing is staged."""
        await self._stages.submit(paste)

    async def paste(self, paste: Paste) -> None:
        """``paste-buffer -d`` the staged body into its pane (only into the program the checks
        saw); batched with this loop turn's other pastes into one tmux client."""
        await self._pastes.submit(paste)

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

    async def _paste_many(self, batch: list[Paste]) -> list[BaseException | None]:
        outcomes = await self.tmux.paste_buffers(
            [(p.pane_id, p.buffer, p.pane_pid) for p in batch], [p.target for p in batch]
        )
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
