"""``asched pause`` and ``resume``: one check-in (ID, ``--key``), or every one of a target.

A paused check-in keeps its place in the schedule; the daemon is woken after every change so that
it re-plans at once.
"""

from __future__ import annotations

import argparse

from asched.cli.actions import pause_one, pause_target
from asched.cli.selection import canonical_target, next_text, one_of, selector
from asched.cli.shared import current_time, state_dir
from asched.cli.views import checkin_json, print_json
from asched.core.errors import EXIT_OK


def _set_paused(args: argparse.Namespace, paused: bool) -> int:
    if args.target is not None:
        if args.id is not None or args.key is not None:
            raise one_of(args.command)
        return _set_paused_target(args, paused)
    checkin_id, key = selector(args)
    before, after = pause_one(state_dir(args), checkin_id, key, paused)
    if args.json:
        print_json(checkin_json(after))
        return EXIT_OK
    if before.paused == paused:
        state_text = "already paused" if paused else "not paused"
        print(f"check-in {after.id} for {after.target} is {state_text}")
    elif paused:
        print(f"paused check-in {after.id} for {after.target}")
    else:
        print(f"resumed check-in {after.id} for {after.target}, {next_text(after, current_time())}")
    return EXIT_OK


def _set_paused_target(args: argparse.Namespace, paused: bool) -> int:
    """``pause/resume --target T``: every check-in of one target, changed in one write."""
    target = canonical_target(args.target)
    assert target is not None
    before, after = pause_target(state_dir(args), target, paused)
    changed = {c.id for c in before if c.paused != paused}
    if args.json:
        print_json(
            {
                "target": target,
                "paused": paused,
                "changed": len(changed),
                "checkins": [checkin_json(c) for c in after],
            }
        )
        return EXIT_OK
    verb = "paused" if paused else "resumed"
    if not changed:
        if len(after) == 1:
            print(f"the check-in for {target} is {'already paused' if paused else 'not paused'}")
        elif paused:
            print(f"all {len(after)} check-ins for {target} are already paused")
        else:
            print(f"none of the {len(after)} check-ins for {target} is paused")
        return EXIT_OK
    unchanged = len(after) - len(changed)
    tail = ""
    if unchanged:
        was = "was" if unchanged == 1 else "were"
        tail = f" ({unchanged} already paused)" if paused else f" ({unchanged} {was} not paused)"
    if not paused:
        upcoming = [c for c in after if c.id in changed and c.next_due is not None]
        if upcoming:
            tail += f", {next_text(upcoming[0], current_time())}"  # listed soonest first
    print(f"{verb} {_count_text(len(changed))} for {target}{tail}")
    return EXIT_OK


def _count_text(n: int) -> str:
    return f"{n} check-in" if n == 1 else f"{n} check-ins"


def cmd_pause(args: argparse.Namespace) -> int:
    """``asched pause``."""
    return _set_paused(args, True)


def cmd_resume(args: argparse.Namespace) -> int:
    """``asched resume``."""
    return _set_paused(args, False)
