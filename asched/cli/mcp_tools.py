"""What the tools of ``asched mcp`` do, with no MCP in it: the calling agent's check-ins.

The server (:mod:`asched.cli.mcp_server`) runs as a child of the agent (Claude Code, Gemini CLI)
and inherits its environment, so ``$TMUX_PANE`` names the agent's own pane: the default target of
every tool, stored as that pane id (as ``asched next`` does). Each method validates with the
command line's own code (:mod:`asched.cli.addplan`, :mod:`asched.cli.selfsched`,
:mod:`asched.cli.selection`) and does the work through :mod:`asched.cli.actions`, so it fails with
the same :class:`~asched.core.errors.UsageError` text as the command line for the same input and
wakes the daemon after every write. Results are JSON-able dicts made with
:mod:`asched.cli.views`' helpers, plus a ``summary`` line in the command line's words.

"Its check-ins" (the default of ``list_checkins``, ``pause``/``resume`` and ``history``) are the
check-ins aimed at the agent's pane: stored with its pane id, keyed on it by ``next``, or named by
a target that names that pane on the daemon's tmux server now (one ``list-panes`` call).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from asched.cli import actions, lookup
from asched.cli.addplan import AddRequest, plan_checkin
from asched.cli.selection import canonical_target, next_text, one_of, parse_id, select, whole
from asched.cli.selfsched import calling_pane, next_key, plan_next, set_next
from asched.cli.shared import current_time, nowhere_text
from asched.cli.views import checkin_json, delivery_json, duration_text, local_time
from asched.core.models import CheckIn

__all__ = ["DEFAULT_HISTORY_LIMIT", "AgentTools"]

DEFAULT_HISTORY_LIMIT = 20
ORIGIN = "mcp"  # checkins.origin of what schedule_checkin stores (set_next_checkin's: "next")
JSON = dict[str, Any]


class AgentTools:
    """The check-in tools of one agent: ``state`` is the state directory (as the command line
    finds it), or how to find it, ``env`` the agent's environment (``TMUX_PANE``)."""

    def __init__(self, state: Path | Callable[[], Path], env: Mapping[str, str]) -> None:
        self._state = state
        self.env = env

    @property
    def state(self) -> Path:
        """The state directory. Found again at each use when given as a function: the server
        lives as long as the agent's session, and a daemon started meanwhile (which publishes
        its state directory: asched/daemon/published.py) must be the one the tools write to."""
        return self._state() if callable(self._state) else self._state

    # -- writing -------------------------------------------------------------------------------

    def schedule(
        self,
        message: str,
        target: str | None = None,
        delay: str | None = None,
        at: str | None = None,
        every: str | None = None,
        cron: str | None = None,
        tz: str | None = None,
        key: str | None = None,
        count: int | None = None,
        until: str | None = None,
        grace: str = "5m",
        catch_up: str = "skip",
        if_idle: str | None = None,
        when_idle: str | None = None,
    ) -> JSON:
        """``asched add``: ``delay`` is ``--in``; the target defaults to the calling pane."""
        now = current_time()
        request = AddRequest(
            target=calling_pane(self.env, "add") if target is None else target,
            message=message,
            at=at,
            in_=delay,
            every=every,
            cron=cron,
            tz=tz,
            occurrences=None if count is None else str(count),
            until=until,
            key=key,
            grace=grace,
            catch_up=catch_up,
            if_idle=if_idle,
            when_idle=when_idle,
        )
        new = plan_checkin(request, now)._replace(origin=ORIGIN)
        stored, replaced, no_daemon = actions.store_checkin(self.state, new)
        verb = "replaced" if replaced else "added"
        summary = f"{verb} check-in {stored.id} for {stored.target}, {next_text(stored, now)}"
        result = {**checkin_json(stored), "replaced": replaced, "summary": summary}
        return _with_warning(result, no_daemon, nowhere_text(self.state, stored.target))

    def set_next(self, delay: str, message: str, target: str | None = None) -> JSON:
        """``asched next DUR MESSAGE [--target T]``: the target's one next check-in."""
        now = current_time()
        new = plan_next(delay, message, target, now, self.env)
        done = set_next(self.state, new)
        stored, due = done.stored, new.next_due
        assert due is not None
        verb = "replaced the next check-in" if done.replaced else "set the next check-in"
        paused = " (paused: resume_checkins to deliver it)" if stored.paused else ""
        summary = (
            f"{verb} of {stored.target} (id {stored.id}): in"
            f" {duration_text((due - now).total_seconds())}, at {local_time(due)}{paused}"
        )
        result = {**checkin_json(stored), "replaced": done.replaced, "summary": summary}
        nowhere = None  # a pane id: tmux was not asked (as by `asched next`)
        if done.found is not None:
            nowhere = nowhere_text(self.state, stored.target, done.found)
        return _with_warning(result, done.no_daemon, nowhere)

    def cancel(self, checkin_id: int | None = None, key: str | None = None) -> JSON:
        """``asched rm ID`` or ``asched rm --key KEY``."""
        which, key = select("rm", _id_text(checkin_id), key)
        gone = actions.remove(self.state, which, key)
        return {**checkin_json(gone), "summary": f"removed check-in {gone.id} for {gone.target}"}

    def pause(
        self,
        paused: bool,
        checkin_id: int | None = None,
        key: str | None = None,
        target: str | None = None,
    ) -> JSON:
        """``asched pause|resume ID | --key KEY | --target T``; with none of them, the check-ins
        of the calling pane."""
        command = "pause" if paused else "resume"
        verb = "paused" if paused else "resumed"
        if checkin_id is not None or key is not None:
            if target is not None:
                raise one_of(command)
            which, key = select(command, _id_text(checkin_id), key)
            before, after = actions.pause_one(self.state, which, key, paused)
            summary = f"{verb} check-in {after.id} for {after.target}"
            if before.paused == paused:
                summary = f"check-in {after.id} is {'already paused' if paused else 'not paused'}"
            return {**checkin_json(after), "changed": before.paused != paused, "summary": summary}
        if target is not None:
            canonical = canonical_target(target)
            assert canonical is not None
            was, now = actions.pause_target(self.state, canonical, paused)
        else:
            canonical = calling_pane(self.env, command)
            was = self._mine(canonical)
            if not was:
                raise actions.none_for(canonical)
            now = actions.pause_ids(self.state, [c.id for c in was], paused)
        changed = sum(1 for c in was if c.paused != paused)
        return {
            "target": canonical,
            "paused": paused,
            "changed": changed,
            "checkins": [checkin_json(c) for c in now],
            "summary": f"{verb} {changed} of {len(now)} check-ins for {canonical}",
        }

    # -- reading -------------------------------------------------------------------------------

    def checkins(
        self, target: str | None = None, all_targets: bool = False, finished: bool = False
    ) -> JSON:
        """``asched ls [--target T] [--all]``; by default the calling pane's check-ins."""
        pane = None
        if all_targets:
            checkins = actions.read_checkins(self.state, None)
        elif target is not None:
            checkins = actions.read_checkins(self.state, canonical_target(target))
        else:
            pane = calling_pane(self.env, "ls")
            checkins = self._mine(pane)
        shown = checkins if finished else [c for c in checkins if c.next_due is not None]
        return {
            "pane": pane,
            "checkins": [checkin_json(c) for c in shown],
            "finished_hidden": len(checkins) - len(shown),
        }

    def history(
        self,
        checkin_id: int | None = None,
        target: str | None = None,
        all_targets: bool = False,
        limit: int = DEFAULT_HISTORY_LIMIT,
    ) -> JSON:
        """``asched history [ID] [--target T] [--limit N]``; with neither an ID nor a target nor
        ``all_targets``, the deliveries to the calling pane."""
        which = None if checkin_id is None else parse_id(str(checkin_id))
        canonical = canonical_target(target)
        rows = whole(str(limit), "--limit", "a number of rows, at least 1")
        if which is not None or canonical is not None or all_targets:
            deliveries = actions.read_history(self.state, which, canonical, rows)
        else:
            pane = calling_pane(self.env, "history")
            others = [c.id for c in self._mine(pane) if c.target != pane]
            deliveries = actions.read_history_of(self.state, pane, others, rows)
        return {"deliveries": [delivery_json(d) for d in deliveries]}

    def _mine(self, pane: str) -> list[CheckIn]:
        """The check-ins aimed at ``pane`` (a pane id): see the module's docstring."""
        checkins = actions.read_checkins(self.state, None)
        others = {c.target for c in checkins if not c.target.startswith("%")}
        named: dict[str, str] = {}
        if others:
            socket = lookup.tmux_socket(self.state, lookup.environ())
            named = lookup.panes_named(sorted(others), socket) or {}
        key = next_key(pane)
        return [c for c in checkins if pane in (c.target, named.get(c.target)) or c.key == key]


def _id_text(checkin_id: int | None) -> str | None:
    return None if checkin_id is None else str(checkin_id)


def _with_warning(result: JSON, *warnings: str | None) -> JSON:
    """``result`` with a ``warning``: the warnings that there are, in one line."""
    text = "; ".join(w for w in warnings if w is not None)
    return {**result, "warning": text} if text else result
