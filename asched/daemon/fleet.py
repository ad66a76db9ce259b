"""Declarative check-ins: a ``[[checkin]]`` entry gives every matching tmux window its check-in.

The reference scheduler left new sessions without check-ins for hours (docs/OLD-SCHEDULER.md,
failure 12). Here the daemon looks at tmux every few seconds (one ``list-windows -a`` call, only
when the config has entries), creates the check-in of each entry for each window that matches it,
changes it when the entry changes (a reload), and retires it when the window is gone. Its rows have
origin ``config`` and the key ``config:<entry>:<session>:<window index>``; check-ins that users or
agents added are never touched.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from asched.core.logs import get_logger
from asched.core.models import CheckIn, Cron, Every, NewCheckIn, Rule
from asched.core.triggers import next_due
from asched.core.zones import local_zone_name
from asched.daemon.config import Entry
from asched.tmux.client import TmuxClient
from asched.tmux.errors import TmuxError

log = get_logger()

ORIGIN = "config"
ROLE_OPTION = "@asched_role"
POLL_S = 3.0


@dataclass(frozen=True, slots=True)
class Window:
    """A tmux window as the reconciler sees it."""

    session: str
    index: int
    name: str
    role: str


class FleetStore(Protocol):
    """The store calls the reconciler makes."""

    async def list_by_origin(self, origin: str) -> list[CheckIn]: ...

    async def add_checkin(self, new: NewCheckIn) -> CheckIn: ...

    async def remove_by_key(self, key: str) -> bool: ...


async def list_windows(tmux: TmuxClient) -> list[Window]:
    """Every window on the server with its ``@asched_role`` (one client call)."""
    mark = secrets.token_hex(6)
    fmt = f"{mark}\t#{{session_name}}\t#{{window_index}}\t#{{{ROLE_OPTION}}}\t#{{window_name}}"
    call = await tmux.run("list-windows", "-a", "-F", fmt)
    if call.rc != 0:
        raise TmuxError(f"list-windows: {call.err}")
    windows = []
    for record in call.out.split(mark + "\t")[1:]:
        # The window name comes last: it is the one field that may hold a tab.
        session, index, role, name = record.rstrip("\n").split("\t", 3)
        if index.isdigit():
            windows.append(Window(session, int(index), name, role))
    return windows


def _rule(entry: Entry, now: datetime, local_zone: str) -> tuple[Rule, datetime | None]:
    if entry.every_s is not None:
        first = now + timedelta(seconds=entry.every_s)
        return Every(entry.every_s, first), first
    assert entry.cron is not None
    # No tz in the entry: the system's zone, the rule of `asched add --cron` without --tz.
    rule = Cron(entry.cron, entry.tz or local_zone)
    return rule, next_due(rule, now)


def _same_rule(a: Rule, b: Rule) -> bool:
    # An interval's anchor is when it was created; what the entry controls is the interval.
    if isinstance(a, Every) and isinstance(b, Every):
        return a.interval_s == b.interval_s
    return a == b


def desired(entries: tuple[Entry, ...], windows: list[Window]) -> dict[str, tuple[Entry, str]]:
    """key -> (entry, target) for every (entry, window) that matches."""
    out: dict[str, tuple[Entry, str]] = {}
    for entry in entries:
        for w in windows:
            if entry.matches(w.session, w.name, w.role):
                out[f"config:{entry.name}:{w.session}:{w.index}"] = (
                    entry,
                    f"{w.session}:{w.index}",
                )
    return out


async def reconcile(
    store: FleetStore,
    entries: tuple[Entry, ...],
    windows: list[Window],
    now: datetime,
    local_zone: str | None = None,
) -> int:
    """Bring the ``config`` check-ins in line with ``entries`` x ``windows``; returns changes.

    ``local_zone`` (default: the system's, looked up now) is the zone of cron entries without a
    ``tz``; looked up on each round, so a changed system zone moves them without a reload.
    """
    zone = local_zone if local_zone is not None else local_zone_name()
    want = desired(entries, windows)
    have = {c.key: c for c in await store.list_by_origin(ORIGIN) if c.key is not None}
    changes = 0
    for key, (entry, target) in want.items():
        current = have.get(key)
        rule, first = _rule(entry, now, zone)
        if current is not None and (
            current.message == entry.message
            and current.target == target
            and _same_rule(current.rule, rule)
            and (current.grace_s, current.catch_up, current.jitter_s)
            == (entry.grace_s, entry.catch_up, entry.jitter_s)
        ):
            continue
        await store.add_checkin(
            NewCheckIn(
                target=target,
                message=entry.message,
                rule=rule,
                next_due=first,
                key=key,
                grace_s=entry.grace_s,
                catch_up=entry.catch_up,
                jitter_s=entry.jitter_s,
                origin=ORIGIN,
                # A change of the entry must not undo `asched pause` on this target.
                paused=current.paused if current is not None else False,
            )
        )
        log.info("fleet.checkin_set", key=key, target=target, entry=entry.name)
        changes += 1
    for key in have.keys() - want.keys():
        await store.remove_by_key(key)
        log.info("fleet.checkin_retired", key=key)
        changes += 1
    return changes


async def run_fleet(
    store: FleetStore,
    tmux: TmuxClient,
    entries: Callable[[], tuple[Entry, ...]],
    changed: Callable[[], None],
    stopping: asyncio.Event,
    poke: asyncio.Event,
    poll_s: float = POLL_S,
) -> None:
    """Reconcile every ``poll_s``, and at once when ``poke`` is set (a reload), until stopping."""
    settled_empty = False  # reconciled with no entries: nothing left to create or retire
    while not stopping.is_set():
        poke.clear()
        current = entries()
        if current or not settled_empty:
            settled_empty = await _round(store, tmux, current, changed)
        # No entries and nothing left to retire: only a reload can change that, so an idle
        # daemon without [[checkin]] entries does not wake every few seconds.
        await _first(stopping, poke, wait_s=None if settled_empty else poll_s)


async def _round(
    store: FleetStore,
    tmux: TmuxClient,
    current: tuple[Entry, ...],
    changed: Callable[[], None],
) -> bool:
    """One reconcile; True when it succeeded with no entries at all."""
    try:
        # With no entries there is nothing to look for, but rows of a removed entry retire.
        windows = await list_windows(tmux) if current else []
    except TmuxError as exc:
        # No server, or it failed to answer: keep the check-ins as they are rather than
        # retire and recreate every one of them around a tmux restart.
        log.debug("fleet.tmux_unavailable", reason=exc.reason)
        return False
    try:
        if await reconcile(store, current, windows, datetime.now(UTC)):
            changed()
    except Exception as exc:  # a busy database, a bad entry: try again next round
        log.error("fleet.reconcile_failed", error=repr(exc))
        return False
    return not current


async def _first(*events: asyncio.Event, wait_s: float | None) -> None:
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=wait_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
