"""The store on its own thread, for the daemon: every call of :class:`Store`, awaitable.

A slow fsync must never stall the event loop (or the watchdog that runs on it), so the daemon's
store runs on one dedicated thread. The methods are generated from :class:`Store`'s, so the two
can never drift apart. Kept apart from store/store.py so that the CLI, which uses :class:`Store`
directly, does not import asyncio.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, Self, TypeVar

from asched.core.errors import StoreError
from asched.store.connection import Clock
from asched.store.store import Store

_P = ParamSpec("_P")
_T = TypeVar("_T")


def _on_thread(
    method: Callable[Concatenate[Store, _P], _T],
) -> Callable[Concatenate[AsyncStore, _P], Coroutine[Any, Any, _T]]:
    """Make an AsyncStore method that runs ``method`` on the store thread, same signature.

    Generating the mirror (instead of writing it out) keeps it from drifting from Store.
    """

    async def call(self: AsyncStore, /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        return await self._call(method, self._store, *args, **kwargs)

    call.__name__ = call.__qualname__ = method.__name__
    call.__doc__ = f"Async :meth:`Store.{method.__name__}`, run on the store thread."
    return call


class AsyncStore:
    """A :class:`Store` driven from asyncio: every call runs on one dedicated thread, in order.

    It has every query and write method of Store, as coroutines with the same signature. One
    thread because a sqlite3 connection belongs to the thread that made it, and because it
    serialises this process's writes without any lock. A cancelled call may still complete on the
    thread (a claim then shows up in :meth:`in_flight`, which is what crash recovery reads anyway).
    """

    def __init__(self, store: Store, executor: ThreadPoolExecutor) -> None:
        """Wrap a Store opened on ``executor``'s thread; use :meth:`open` instead."""
        self._store = store
        self._executor = executor
        self._closed = False

    @classmethod
    async def open(cls, path: Path, *, clock: Clock | None = None) -> AsyncStore:
        """Open the store on a new dedicated thread (see :meth:`Store.open`)."""
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="asched-store")
        loop = asyncio.get_running_loop()
        try:
            store = await loop.run_in_executor(
                executor, functools.partial(Store.open, path, clock=clock)
            )
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(store, executor)

    async def _call(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        if self._closed:
            raise StoreError("the store is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    @property
    def path(self) -> Path:
        """The database file."""
        return self._store.path

    @property
    def identity(self) -> tuple[int, int] | None:
        """(device, inode) of the database file this store opened."""
        return self._store.identity

    @property
    def wal_identity(self) -> tuple[int, int] | None:
        """(device, inode) of the -wal this store uses (None before it exists)."""
        return self._store.wal_identity

    def check_file(self) -> None:
        """:meth:`Store.check_file`, on the caller's thread (it only calls ``stat``)."""
        self._store.check_file()

    async def aclose(self) -> None:
        """Finish the calls already queued, close the connection and stop the thread."""
        if self._closed:
            return
        await self._call(Store.close, self._store)
        self._closed = True
        self._executor.shutdown(wait=True)  # the queue is empty: the thread exits at once

    async def __aenter__(self) -> Self:
        """Use as ``async with await AsyncStore.open(path) as store:``."""
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the store."""
        await self.aclose()

    add_checkin = _on_thread(Store.add_checkin)
    add_many = _on_thread(Store.add_many)
    add_new = _on_thread(Store.add_new)
    add_claimed = _on_thread(Store.add_claimed)
    get_checkin = _on_thread(Store.get_checkin)
    get_by_key = _on_thread(Store.get_by_key)
    list_checkins = _on_thread(Store.list_checkins)
    count_checkins = _on_thread(Store.count_checkins)
    list_by_origin = _on_thread(Store.list_by_origin)
    remove_checkin = _on_thread(Store.remove_checkin)
    remove_by_key = _on_thread(Store.remove_by_key)
    prune_finished = _on_thread(Store.prune_finished)
    set_paused = _on_thread(Store.set_paused)
    set_paused_for_target = _on_thread(Store.set_paused_for_target)
    next_due_time = _on_thread(Store.next_due_time)
    due_checkins = _on_thread(Store.due_checkins)
    claim = _on_thread(Store.claim)
    claim_many = _on_thread(Store.claim_many)
    reschedule = _on_thread(Store.reschedule)
    transition = _on_thread(Store.transition)
    mark_typing = _on_thread(Store.mark_typing)
    get_delivery = _on_thread(Store.get_delivery)
    confirm = _on_thread(Store.confirm)
    in_flight = _on_thread(Store.in_flight)
    history = _on_thread(Store.history)
