"""Pastes that fall due together are typed together: one journal commit and one tmux call.

A burst (100 check-ins due at one instant in 100 panes) would otherwise start 100 tmux clients,
which on two cores takes a few hundred milliseconds; gathered, it is one client (about 12 ms here,
TMUX.md). A lone paste keeps the plain path: the body on stdin of one client call.

Whatever the batch, each delivery's ``typing`` row is committed before its first byte can reach
a pane, and a paste that tmux did not perform is reported as not pasted, never guessed.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from asched.tmux import PaneDead, TmuxClient, TmuxError

_RUN = secrets.token_hex(3)


class TypingJournal(Protocol):
    """The one store call the batcher makes."""

    async def mark_typing(self, items: list[tuple[int, str]]) -> None: ...


@dataclass(slots=True)
class _Request:
    delivery_id: int
    pane_id: str
    text: str
    done: asyncio.Future[None] = field(repr=False)

    @property
    def buffer(self) -> str:
        # Unique per delivery, and per daemon: two state dirs may share one tmux server.
        return f"as{_RUN}-{self.delivery_id}"


class PasteBatcher:
    """Collects :meth:`paste` calls made in the same loop turn and performs them together."""

    def __init__(self, store: TypingJournal, tmux: TmuxClient, spool: Path) -> None:
        self.store = store
        self.tmux = tmux
        self.spool = spool
        self._pending: list[_Request] = []
        self._flushing: set[asyncio.Task[None]] = set()

    async def paste(self, delivery_id: int, pane_id: str, text: str) -> None:
        """Journal ``typing``, then paste ``text`` into ``pane_id``.

        Raises what :meth:`TmuxClient.paste` raises: TargetMissing/PaneDead when nothing was
        pasted, another TmuxError (a timeout) when it is unknown whether anything was.
        """
        loop = asyncio.get_running_loop()
        request = _Request(delivery_id, pane_id, text, loop.create_future())
        self._pending.append(request)
        if len(self._pending) == 1:
            task = loop.create_task(self._flush(), name="paste-batch")
            self._flushing.add(task)
            task.add_done_callback(self._flushing.discard)
        # The flush runs to its end even if this caller is cancelled: the journal must hear
        # about every paste that happened.
        await asyncio.shield(request.done)

    async def _flush(self) -> None:
        # Let the other deliveries due in this instant reach paste() first.
        for _ in range(3):
            await asyncio.sleep(0)
        batch, self._pending = self._pending, []
        try:
            await self.store.mark_typing([(r.delivery_id, r.pane_id) for r in batch])
        except Exception as exc:
            for r in batch:
                r.done.set_exception(exc)
            return
        if len(batch) == 1:
            await self._single(batch[0])
            return
        try:
            outcomes = await self.tmux.paste_many(
                [(r.pane_id, r.text, r.buffer) for r in batch], self.spool
            )
        except TmuxError as exc:
            for r in batch:
                r.done.set_exception(exc)
            return
        retry = []
        for r, outcome in zip(batch, outcomes, strict=True):
            if outcome == "pasted":
                r.done.set_result(None)
            elif outcome == "dead":
                r.done.set_exception(PaneDead(f"{r.pane_id}: the pane is dead"))
            else:
                retry.append(r)  # tmux never got to it: a plain paste is safe and says why
        await asyncio.gather(*(self._single(r) for r in retry))

    async def _single(self, r: _Request) -> None:
        try:
            await self.tmux.paste(r.pane_id, r.text, r.buffer)
        except Exception as exc:
            r.done.set_exception(exc)
        else:
            r.done.set_result(None)
