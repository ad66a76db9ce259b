"""The work of the data commands on the store, with no printing: ``add``, ``ls``, ``rm``,
``pause``, ``resume`` and ``history``.

The command line (:mod:`asched.cli.checkins`, :mod:`asched.cli.pausing`) and the MCP server
(:mod:`asched.cli.mcp_tools`) call the same functions, so both open the store alike (never
creating anything to read it), wake the daemon after every write, and fail with the same
one-line messages. Inputs are validated before the store is opened.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from asched.cli.selection import find, not_found
from asched.cli.shared import open_existing, open_for_write, wake, wake_or_warn
from asched.core.errors import NotFoundError
from asched.core.models import CheckIn, Delivery, NewCheckIn

__all__ = [
    "Stored",
    "none_for",
    "pause_ids",
    "pause_one",
    "pause_target",
    "read_checkins",
    "read_history",
    "read_history_of",
    "read_history_with_messages",
    "remove",
    "store_checkin",
]


class Stored(NamedTuple):
    """What :func:`store_checkin` stored."""

    checkin: CheckIn
    replaced: bool  # it replaced the check-in with the same key
    no_daemon: str | None  # the warning when no daemon runs on the state directory


def store_checkin(state: Path, new: NewCheckIn) -> Stored:
    """Store a planned check-in (an upsert when it has a key) and wake the daemon."""
    with open_for_write(state) as store:
        # Only for the wording ("replaced"); the upsert itself is one atomic statement.
        replaced = new.key is not None and store.get_by_key(new.key) is not None
        stored = store.add_checkin(new)
    return Stored(stored, replaced, wake_or_warn(state))


def read_checkins(state: Path, target: str | None) -> list[CheckIn]:
    """Every check-in (of ``target``, canonical, when given), soonest first; no database: none."""
    store = open_existing(state)
    if store is None:
        return []
    with store:
        return store.list_checkins(target)


def remove(state: Path, checkin_id: int | None, key: str | None) -> CheckIn:
    """Remove the check-in of ``checkin_id`` or ``key`` and wake the daemon; returns it as it was.
    NotFoundError when there is none."""
    store = open_existing(state)
    if store is None:
        raise not_found(checkin_id, key)
    with store:
        gone = find(store, checkin_id, key)
        # By id even for a key: what was found is what gets removed, and what is reported.
        if not store.remove_checkin(gone.id):
            raise not_found(gone.id, None)
    wake(state)
    return gone


def pause_one(
    state: Path, checkin_id: int | None, key: str | None, paused: bool
) -> tuple[CheckIn, CheckIn]:
    """Pause (or resume) one check-in and wake the daemon; returns it before and after."""
    store = open_existing(state)
    if store is None:
        raise not_found(checkin_id, key)
    with store:
        before = find(store, checkin_id, key)
        after = store.get_checkin(before.id) if store.set_paused(before.id, paused) else None
    if after is None:  # removed between the two statements
        raise not_found(before.id, None)
    wake(state)
    return before, after


def pause_target(state: Path, target: str, paused: bool) -> tuple[list[CheckIn], list[CheckIn]]:
    """Pause (or resume) every check-in of ``target`` (canonical) in one write and wake the
    daemon; returns them before and after. NotFoundError when the target has none."""
    store = open_existing(state)
    before: list[CheckIn] = []
    after: list[CheckIn] = []
    if store is not None:
        with store:
            before = store.list_checkins(target)
            if before:
                store.set_paused_for_target(target, paused)
                after = store.list_checkins(target)
    if not before:
        raise none_for(target)
    wake(state)
    return before, after


def none_for(target: str) -> NotFoundError:
    """The error for a target that has no check-ins."""
    return NotFoundError(f"no check-ins for target {target} (asched ls shows the targets)")


def read_history(
    state: Path, checkin_id: int | None, target: str | None, limit: int
) -> list[Delivery]:
    """The latest ``limit`` deliveries, newest first, of one check-in and/or one target.
    NotFoundError for an id that names no check-in and has no deliveries."""
    return read_history_with_messages(state, checkin_id, target, limit, messages=False)[0]


def read_history_with_messages(
    state: Path, checkin_id: int | None, target: str | None, limit: int, *, messages: bool = True
) -> tuple[list[Delivery], dict[int, str]]:
    """:func:`read_history`, and the message of each of their check-ins that is still stored,
    by check-in id (the journal keeps no text: a removed check-in's is gone, a replaced one's
    is the new text)."""
    store = open_existing(state)
    if store is None:
        return [], {}
    texts: dict[int, str] = {}
    with store:
        rows = store.history(checkin_id, target, limit)
        if checkin_id is not None and not rows and store.get_checkin(checkin_id) is None:
            raise NotFoundError(f"no check-in with id {checkin_id} and no deliveries for it")
        for wanted in dict.fromkeys(d.checkin_id for d in rows) if messages else ():
            checkin = store.get_checkin(wanted)
            if checkin is not None:
                texts[wanted] = checkin.message
    return rows, texts


def pause_ids(state: Path, ids: Sequence[int], paused: bool) -> list[CheckIn]:
    """Pause (or resume) the check-ins of ``ids`` and wake the daemon; returns those still
    there, after (one removed meanwhile is left out)."""
    store = open_existing(state)
    if store is None:
        return []
    with store:
        after = [store.get_checkin(i) if store.set_paused(i, paused) else None for i in ids]
    wake(state)
    return [c for c in after if c is not None]


def read_history_of(
    state: Path, target: str, checkin_ids: Sequence[int], limit: int
) -> list[Delivery]:
    """The latest ``limit`` deliveries, newest first, claimed for ``target`` or made for one of
    ``checkin_ids`` (check-ins aimed at the same pane under another name)."""
    store = open_existing(state)
    if store is None:
        return []
    with store:
        rows = {d.id: d for d in store.history(None, target, limit)}
        for checkin_id in checkin_ids:
            rows.update((d.id, d) for d in store.history(checkin_id, None, limit))
    return sorted(rows.values(), key=lambda d: (d.due_at, d.id), reverse=True)[:limit]
