"""``asched next``: an agent sets its own next check-in, replacing the one it set before.

The reference scheduler's self-scheduling either broke (an agent forgot to reschedule) or piled up
(each call created another *recurring* task; docs/OLD-SCHEDULER.md, failure 13). ``next`` stores
exactly one one-shot check-in per pane under the key ``next:<pane id>`` (the pane the target names
when tmux answers, else ``next:<canonical target>``), so a second call replaces the first instead of
adding to it, however the pane was spelled.

Inside tmux the target defaults to the calling pane, ``$TMUX_PANE`` (``%N``), stored as the pane
id: the daemon delivers to that pane wherever it moves, and never to a sibling that happens to be
active in the window later. Outside tmux a target must be given.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from asched.cli.addplan import AddRequest, plan_checkin
from asched.cli.shared import (
    current_time,
    open_for_write,
    state_dir,
    wake_or_warn,
    warn_if_no_daemon,
    warn_if_nowhere,
)
from asched.cli.views import checkin_json, duration_text, local_time, one_line, print_json
from asched.core.errors import EXIT_OK, UsageError
from asched.core.models import CheckIn, NewCheckIn
from asched.core.triggers import parse_duration
from asched.tmux.targets import parse_target

if TYPE_CHECKING:
    from asched.cli.lookup import Found

__all__ = [
    "KEY_PREFIX",
    "ORIGIN",
    "NextStored",
    "add_next_command",
    "calling_pane",
    "next_key",
    "plan_next",
    "set_next",
]

KEY_PREFIX = "next:"
ORIGIN = "next"  # checkins.origin: set by an agent about itself, not by a person or the config

NEXT_DESCRIPTION = """\
Set the next check-in of a tmux pane: MESSAGE is typed into it once, DUR from now.
There is one "next check-in" per target: calling this again replaces it (the id stays),
so an agent that reschedules itself after every check-in never piles them up.

Inside tmux the target is the calling pane ($TMUX_PANE, a pane id like %5) unless --target
is given; outside tmux --target is required. A running daemon is woken to re-plan at once."""

NEXT_EPILOG = """\
examples:
  asched next 30m "status report please"             from inside the agent's own pane
  asched next 1h30m "check the build" --target work:0.1
  asched next 20m "review PR feedback" --json        prints the stored check-in

DUR is a time span as systemd writes it: 90s, 20m or 20min, 1.5h, 1h 30min, 2d (a bare
number is refused: seconds or minutes?). The check-in is stored under the key
next:PANE, the pane id the target names when tmux answers (else next:TARGET), so %5, work:0
and work:0.0 share one; a window of several panes keys on the window, next:work:0 (see
asched ls); `asched rm --key next:%5` drops it. If the pane's
next check-in is paused (asched pause --target), the replacement stays paused. A pane id
names a pane of one tmux server: the daemon must use that server (its default, or
--tmux-socket).
Exit 2, with nothing written, for a bad DUR, MESSAGE or target, or when outside tmux
without --target.
"""


def next_key(target: str) -> str:
    """The key of ``target``'s next check-in; ``target`` must already be canonical."""
    return KEY_PREFIX + target


def calling_pane(env: Mapping[str, str], command: str = "next") -> str:
    """The pane this process runs in, from ``$TMUX_PANE`` (canonical, ``%N``); UsageError, whose
    text starts with ``command``, outside tmux."""
    pane = env.get("TMUX_PANE", "")
    if not pane:
        raise UsageError(
            f"{command}: not inside tmux ($TMUX_PANE is not set);"
            " give --target session:window[.pane]"
        )
    try:
        return str(parse_target(pane))
    except UsageError:
        raise UsageError(
            f"{command}: $TMUX_PANE is {pane!r}, not a pane id; give --target"
        ) from None


def plan_next(
    duration: str,
    message: str,
    target: str | None,
    now: datetime,
    env: Mapping[str, str] | None = None,
) -> NewCheckIn:
    """The one-shot check-in ``asched next`` stores; UsageError (nothing stored) on bad input.

    ``target`` None means the calling pane (``env``, default ``os.environ``, ``TMUX_PANE``).
    """
    if target is None:
        canonical = calling_pane(os.environ if env is None else env)
    else:
        canonical = str(parse_target(target))  # one key per pane, however it is spelled
    try:
        seconds = parse_duration(duration)
    except UsageError as exc:
        raise UsageError(f"next: DUR: {exc}") from None
    if seconds < 1:
        # "Now" would make a self-scheduling agent message itself in a loop (docs/OLD-SCHEDULER.md,
        # failures 16-17).
        raise UsageError(f"next: DUR {duration!r} is zero; give a delay of at least 1s")
    request = AddRequest(
        target=canonical, message=message, in_=f"{seconds}s", key=next_key(canonical)
    )
    return plan_checkin(request, now)._replace(origin=ORIGIN)


def add_next_command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """Add ``next`` to the CLI's subparsers."""
    p = sub.add_parser(
        "next",
        parents=[common],
        help="set (or replace) the next check-in of a pane, e.g. from inside it",
        description=NEXT_DESCRIPTION,
        epilog=NEXT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("duration", metavar="DUR", help="how long from now: 90s, 20min, 1.5h, 2d")
    p.add_argument("message", metavar="MESSAGE", help="the text typed into the pane")
    p.add_argument(
        "--target",
        metavar="T",
        help="the pane: session:window[.pane] or %%N (default: the calling pane, $TMUX_PANE)",
    )
    p.add_argument(
        "--any-case",
        action="store_true",
        help="a window name that names no window but one in another case names that one"
        " (orch:developer -> orch:Developer, as Tmux-Orchestrator's scripts did)",
    )
    p.add_argument("--json", action="store_true", help="print the stored check-in as JSON")
    p.set_defaults(handler=_cmd_next)


class NextStored(NamedTuple):
    """What :func:`set_next` stored."""

    stored: CheckIn
    replaced: bool  # it took the place of the target's previous next check-in
    found: Found | None  # what tmux said about a target that is not a pane id (None: not asked)
    no_daemon: str | None  # the warning when no daemon runs on the state directory


def set_next(state: Path, new: NewCheckIn, any_case: bool = False) -> NextStored:
    """Store ``new`` (from :func:`plan_next`) as its target's one next check-in, keyed on the pane
    the target names now, and wake the daemon. ``any_case``: see ``--any-case``."""
    found = None
    if not new.target.startswith("%"):
        # Lazy: `next` from inside the agent's own pane ($TMUX_PANE, a pane id) never asks tmux,
        # and the look-up loads subprocess and the tmux modules.
        from asched.cli import lookup

        # One next check-in per pane, however it is named: %5, orch:0 and orch:0.0 share the key
        # of the pane they name now (the target itself stays as given).
        socket = lookup.tmux_socket(state, lookup.environ())
        found = lookup.look_up(new.target, socket)
        if any_case and found.pane_id is None and len(found.near) == 1:
            new = new._replace(target=found.near[0])
            found = lookup.look_up(new.target, socket)
        if found.key is not None:
            new = new._replace(key=next_key(found.key))
    key = new.key
    assert key is not None
    with open_for_write(state) as store:
        previous = store.get_by_key(key)
        if previous is not None and previous.paused:
            # A paused agent stays paused even though it keeps rescheduling itself. (A pause
            # landing between this read and the write below is lost; the window is a few ms.)
            new = new._replace(paused=True)
        stored = store.add_checkin(new)
    return NextStored(stored, previous is not None, found, wake_or_warn(state))


def _cmd_next(args: argparse.Namespace) -> int:
    now = current_time()
    new = plan_next(args.duration, args.message, args.target, now)
    state = state_dir(args)
    result = set_next(state, new, args.any_case)
    stored, due = result.stored, new.next_due
    assert due is not None
    warn_if_no_daemon(result.no_daemon)
    if result.found is not None:
        warn_if_nowhere(state, stored.target, result.found)
    if args.json:
        print_json({**checkin_json(stored), "replaced": result.replaced})
        return EXIT_OK
    left = duration_text((due - now).total_seconds())
    verb = "replaced the next check-in" if result.replaced else "set the next check-in"
    paused = f" (paused: asched resume --target {stored.target})" if stored.paused else ""
    print(
        f"{verb} of {stored.target} (id {stored.id}): in {left}, at {local_time(due)}"
        f"{paused}: {one_line(stored.message)}"
    )
    return EXIT_OK
