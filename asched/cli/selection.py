"""Which check-ins a command line means (``ID``, ``--key``, ``--target``), and how its next
time reads; shared by ``rm``, ``pause``, ``resume`` and ``history``."""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import TYPE_CHECKING

from asched.cli.views import duration_text, local_time
from asched.core.errors import NotFoundError, UsageError
from asched.core.models import CheckIn
from asched.core.paths import validate_name
from asched.tmux.targets import parse_target

if TYPE_CHECKING:
    from asched.store.store import Store


def whole(text: str, what: str, hint: str) -> int:
    """A positive whole number typed by the user; UsageError (exit 2) for anything else."""
    stripped = text.strip()
    if not (stripped.isascii() and stripped.isdigit()) or len(stripped) > 18 or int(stripped) < 1:
        raise UsageError(f"bad {what} {text!r}: expected {hint}")
    return int(stripped)


def parse_id(text: str) -> int:
    """A check-in id typed by the user; UsageError for anything else."""
    return whole(text, "check-in id", "a number as shown by asched ls")


def canonical_target(text: str | None) -> str | None:
    """A --target filter spelled the way ``add`` stores targets (``work:=3`` stays a name)."""
    if text is None:
        return None
    return str(parse_target(text))


def selector(args: argparse.Namespace) -> tuple[int | None, str | None]:
    """(id, key) from ``ID`` or ``--key``: exactly one of them."""
    return select(args.command, args.id, args.key)


def select(command: str, id_text: str | None, key: str | None) -> tuple[int | None, str | None]:
    """(id, key) of the check-in ``command`` acts on, from an id as typed or a key: exactly one of
    them; UsageError otherwise."""
    if (id_text is None) == (key is None):
        choices = "ID or --key KEY"
        if command in ("pause", "resume"):
            choices = "ID, --key KEY or --target T"
        raise UsageError(f"{command}: give a check-in {choices} (one of them)")
    if key is not None:
        if not key:
            raise UsageError("empty --key")
        return None, validate_name(key, "--key")
    assert id_text is not None
    return parse_id(id_text), None


def one_of(command: str) -> UsageError:
    """The error of ``pause``/``resume`` given more than one of ID, ``--key`` and ``--target``."""
    return UsageError(f"{command}: give a check-in ID, --key KEY or --target T (one of them)")


def find(store: Store, checkin_id: int | None, key: str | None) -> CheckIn:
    """The selected check-in; NotFoundError when there is none."""
    if checkin_id is not None:
        found = store.get_checkin(checkin_id)
    else:
        found = None if key is None else store.get_by_key(key)
    if found is None:
        raise not_found(checkin_id, key)
    return found


def not_found(checkin_id: int | None, key: str | None) -> NotFoundError:
    """The error for a check-in id or key that names none."""
    what = f"id {checkin_id}" if checkin_id is not None else f"key {key!r}"
    return NotFoundError(f"no check-in with {what}")


def next_text(c: CheckIn, now: datetime) -> str:
    """``next <local time> (in 5m)``, ``... (overdue by 5m)`` or ``nothing left to do``."""
    if c.next_due is None:
        return "nothing left to do"
    left = (c.next_due - now).total_seconds()
    when = f"in {duration_text(left)}" if left >= 0 else f"overdue by {duration_text(-left)}"
    return f"next {local_time(c.next_due)} ({when})"
