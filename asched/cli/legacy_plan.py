"""How the old scheduler's rows become check-ins: one verdict per row, nothing written.

Decisions (each one answers a failure in docs/OLD-SCHEDULER.md):

* A row becomes the check-in keyed ``legacy:<row id>``, a hash of what the row says (session,
  window, role, note, interval, and the due time of a one-shot), so a second run, from the same
  file or a copy of it elsewhere, imports nothing twice ("already imported"). The keys ever
  imported are remembered: a check-in removed after the import stays removed.
* ``interval_minutes > 0``: every interval, aligned on ``next_run``; the first one at ``next_run``
  when that is still ahead, else at the next slot after now. Missed slots are not replayed.
* ``interval_minutes == 0`` (one-shot): imported when ``next_run`` is ahead, or behind by at most
  the default grace (5 min: the old scheduler was just stopped), which the daemon then delivers
  late. Older ones are skipped as "already past": a check-in due 15 h ago is noise, not news
  (failure 21). One with ``last_run >= next_run`` already ran and is skipped.
* ``retry_count < 0`` (how the old scheduler marked a disabled task) imports the check-in paused:
  visible in ``asched ls``, delivered only after ``asched resume`` (failure 15).
* A note imports as the text the old scheduler typed, ``SCHEDULED CHECK-IN: <note>``, and an
  empty one as its default text, :data:`DEFAULT_MESSAGE`. A ``[delivery] prefix`` of the same
  words is not added again.
* Identical rows (same target, message and rule) import once; the rest are reported as
  duplicates (failures 1 and 2 left thousands of copies in such tables).
* A target that gets more than :data:`PILE_UP` recurring check-ins is named in a warning: the
  old self-scheduling made a recurring task per call (failure 13); they are imported all the
  same, since each may be wanted, and ``asched ls --target`` shows them.
* Everything else that asched cannot store as it is (NULL or text ``next_run``, a window index
  that is not a whole number, a session name tmux cannot have, control characters in the note,
  non-UTF-8 text) is reported with the reason and skipped; nothing is guessed (failure 10).
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from asched.cli.legacy_source import BadText, Task
from asched.cli.views import duration_text
from asched.core.errors import UsageError
from asched.core.models import CheckIn, Every, NewCheckIn, Once, Rule, from_ms, to_ms, utc
from asched.core.triggers import MAX_DURATION_S, next_due
from asched.store.rows import MAX_MS, MIN_MS, checkin_params
from asched.tmux.targets import Target, check_body

__all__ = [
    "DEFAULT_MESSAGE",
    "GONE",
    "ORIGIN",
    "ROW_KEY",
    "Outcome",
    "Status",
    "pile_ups",
    "plan_import",
    "plan_task",
    "row_id",
]

ORIGIN: Final = "legacy"
KEY_PREFIX: Final = "legacy:"
# The old scheduler typed "SCHEDULED CHECK-IN: <note>", and this for an empty note.
LEGACY_PREFIX: Final = "SCHEDULED CHECK-IN: "
DEFAULT_MESSAGE: Final = LEGACY_PREFIX + "Time for your regular status update"
GONE: Final = "imported before, and removed since: not imported again"
ONE_SHOT_GRACE_S: Final = 300.0  # the default --grace of asched add
# More recurring check-ins than this for one target looks like the old self-scheduling pile-up
# (each schedule_with_note.sh call made another recurring task): worth a warning.
PILE_UP: Final = 3
ROW_KEY: Final = re.compile(r"legacy:[0-9a-f]{16}")  # the keys of this asched (see row_id)


class Status(enum.StrEnum):
    """What became of one row."""

    IMPORTED = "imported"
    WOULD_IMPORT = "would-import"  # --dry-run, or not yet written
    ALREADY = "already-imported"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class Outcome:
    """The verdict on one row: its key, status, why, and the check-in it became or would become."""

    row: int
    key: str
    status: Status
    target: str | None = None
    role: str | None = None
    reason: str | None = None  # why it was skipped
    remarks: tuple[str, ...] = ()  # what to know about an imported one
    planned: NewCheckIn | None = None
    checkin: CheckIn | None = None


class _Skip(Exception):
    """A row that cannot be imported; the message is the reason shown to the user."""


# -- one row ---------------------------------------------------------------------------------------


def row_id(task: Task) -> str:
    """A short id of what a row says, wherever its file lies: session, window, role, note,
    interval, and the due time of a one-shot (a recurring row's next_run moves on as it runs)."""
    one_shot = _number(task.interval_minutes) == 0
    said = [
        task.session_name,
        task.window_index,
        task.agent_role,
        task.note,
        task.interval_minutes,
        task.next_run if one_shot else None,
    ]
    text = json.dumps(said, default=repr, ensure_ascii=True, sort_keys=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:16]


def _shown(value: object) -> str:
    """A value as a reason names it: NULL, text '...', a blob, a number."""
    if value is None:
        return "NULL"
    if isinstance(value, BadText):
        return "text that is not UTF-8"
    if isinstance(value, bytes):
        return "a blob"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:39] + "…"
        return f"text {shown!r}"
    return repr(value)


def _number(value: object) -> float | None:
    """A finite int or float value; None for anything else."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        as_float = float(value)
        return as_float if math.isfinite(as_float) else None
    return None


def _target(task: Task) -> str:
    session, window = task.session_name, task.window_index
    if not isinstance(session, str):
        raise _Skip(f"session_name is {_shown(session)}")
    if not isinstance(window, int):
        raise _Skip(f"window_index is {_shown(window)}, not a window number")
    try:
        return str(Target(session=session, window=window))
    except UsageError as exc:
        raise _Skip(f"no such tmux target: {exc}") from None


def _target_or_none(task: Task) -> str | None:
    """The row's target for the report, when it has a valid one."""
    try:
        return _target(task)
    except _Skip:
        return None


def _due(task: Task) -> datetime:
    value = task.next_run
    seconds = _number(value)
    if seconds is None:
        if isinstance(value, str):
            raise _Skip(f"next_run is {_shown(value)}, not epoch seconds")
        raise _Skip(f"next_run is {_shown(value)}")
    ms = round(seconds * 1000)
    if not MIN_MS <= ms <= MAX_MS:
        raise _Skip(f"next_run {value!r} is not a time from 2000 to 9999 in epoch seconds")
    return from_ms(ms)


def _interval_s(task: Task) -> int:
    minutes = _number(task.interval_minutes)
    if minutes is None:
        raise _Skip(f"interval_minutes is {_shown(task.interval_minutes)}")
    if minutes < 0:
        raise _Skip(f"interval_minutes is negative ({task.interval_minutes!r})")
    seconds = round(minutes * 60)
    if minutes > 0 and seconds < 1:
        raise _Skip(f"interval_minutes {task.interval_minutes!r} is under a second")
    if seconds > MAX_DURATION_S:
        raise _Skip(f"interval_minutes {task.interval_minutes!r} is over ten years")
    return seconds


def _message(task: Task) -> tuple[str, tuple[str, ...]]:
    note = task.note
    if note is None or (isinstance(note, str) and not note.strip()):
        return DEFAULT_MESSAGE, (f"empty note: message {DEFAULT_MESSAGE!r}",)
    if not isinstance(note, str):
        raise _Skip(f"note is {_shown(note)}")
    try:
        check_body(note)
    except UsageError as exc:
        raise _Skip(f"note: {exc}") from None
    # What the old scheduler typed; a [delivery] prefix of the same words is not added again.
    return LEGACY_PREFIX + note, ()


def _disabled(task: Task) -> bool:
    retries = task.retry_count
    if retries is None:
        return False
    if not isinstance(retries, int):
        raise _Skip(f"retry_count is {_shown(retries)}, not a whole number")
    return retries < 0


def _rule(task: Task, now: datetime, disabled: bool = False) -> tuple[Rule, datetime]:
    due = _due(task)
    interval = _interval_s(task)
    if interval > 0:
        if disabled and due > now:
            # Disabling set next_run a year ahead (the old scheduler's way): keep the rhythm,
            # not the year. The first slot is the next one from now, so `asched resume` goes on
            # at the next slot rather than 52 weeks away.
            k = math.floor((now - due).total_seconds() / interval) + 1
            due += timedelta(seconds=k * interval)  # the first slot of its rhythm after now
        rule: Rule = Every(interval, due)
        first = due if due > now else next_due(rule, now)
        if first is None:
            raise _Skip("no occurrence of this interval lies before the year 10000")
        return rule, first
    if disabled:
        # Its due time was overwritten with "a year from when it was disabled": nothing to
        # deliver it at, and nothing is guessed.
        raise _Skip("one-shot disabled in the old scheduler (its next_run was moved a year on)")
    last_run = _number(task.last_run)
    if last_run is not None and round(last_run * 1000) >= to_ms(due):
        raise _Skip("one-shot that already ran (last_run >= next_run)")
    late = (now - due).total_seconds()
    if late > ONE_SHOT_GRACE_S:
        raise _Skip(f"one-shot already past (due {duration_text(late)} ago): not replayed")
    return Once(due), due


def plan_task(task: Task, key: str, now: datetime) -> tuple[NewCheckIn, tuple[str, ...]]:
    """The check-in ``task`` becomes and remarks about it; :class:`_Skip` when it cannot be one."""
    target = _target(task)
    message, remarks = _message(task)
    paused = _disabled(task)
    rule, first = _rule(task, utc(now), paused)
    if paused:
        remarks += (f"paused: disabled in the old scheduler (retry_count {task.retry_count})",)
    new = NewCheckIn(
        target=target,
        message=message,
        rule=rule,
        next_due=first,
        key=key,
        grace_s=ONE_SHOT_GRACE_S,
        paused=paused,
        origin=ORIGIN,
    )
    try:
        checkin_params(new, 0)  # the store's own checks, so that the write cannot refuse it
    except UsageError as exc:
        raise _Skip(str(exc)) from None
    return new, remarks


# -- the whole table -------------------------------------------------------------------------------


def _signature(target: str, message: str, rule: Rule) -> tuple[object, ...]:
    """What makes two rows the same check-in: where, what, and when (an interval's anchor aside,
    since copies of one recurring task were created at different times)."""
    when: object = rule.interval_s if isinstance(rule, Every) else rule
    return (target, message, type(rule).__name__, when)


def plan_import(
    tasks: Sequence[Task],
    ident: str,
    now: datetime,
    existing: Callable[[str], CheckIn | None],
    removed: Callable[[str], bool] = lambda _key: False,
    earlier: Sequence[CheckIn] = (),
) -> list[Outcome]:
    """The verdict on every row, in rowid order; ``existing(key)`` looks up imported ones,
    ``removed(key)`` says whether a key was imported once (and its check-in removed since), and
    ``earlier`` are check-ins an older asched imported under path-based keys (they count by what
    they say: a copy of the file elsewhere finds them too).

    Nothing is written: importable rows come back as :attr:`Status.WOULD_IMPORT`.
    """
    first_of: dict[tuple[object, ...], int] = {}
    key_of: dict[str, int] = {}
    older = _older_signatures(earlier)
    out: list[Outcome] = []
    for task in tasks:
        key = f"{KEY_PREFIX}{row_id(task)}"
        role = task.agent_role if isinstance(task.agent_role, str) else None
        if key in key_of:  # says exactly what an earlier row (found or imported) says
            reason = f"duplicate of row {key_of[key]} (same target, note and schedule)"
            target = _target_or_none(task)
            out.append(Outcome(task.rowid, key, Status.SKIPPED, target, role, reason=reason))
            continue
        # Imported by an asched from before row ids: keyed by the file's path and the rowid.
        found = existing(key) or existing(f"{KEY_PREFIX}{ident}:{task.rowid}")
        if found is not None:
            # It still counts, so that a second run skips the same duplicates.
            first_of.setdefault(_signature(found.target, found.message, found.rule), task.rowid)
            key_of.setdefault(key, task.rowid)
            out.append(Outcome(task.rowid, key, Status.ALREADY, found.target, role, checkin=found))
            continue
        try:
            new, remarks = plan_task(task, key, now)
        except _Skip as skip:
            # Not counted as seen: a valid twin further down is still imported.
            target = _target_or_none(task)
            out.append(Outcome(task.rowid, key, Status.SKIPPED, target, role, reason=str(skip)))
            continue
        signature = _signature(new.target, new.message, new.rule)
        before = older.get(signature)
        if removed(key) or before is not None:
            # Imported once (removed since, or by an older asched): its twins are duplicates.
            first_of.setdefault(signature, task.rowid)
            key_of.setdefault(key, task.rowid)
            why = GONE if before is None else None
            out.append(
                Outcome(
                    task.rowid, key, Status.ALREADY, new.target, role, reason=why, checkin=before
                )
            )
            continue
        original = first_of.setdefault(signature, task.rowid)
        if original == task.rowid:
            key_of[key] = task.rowid
        else:
            reason = f"duplicate of row {original} (same target, note and schedule)"
            out.append(Outcome(task.rowid, key, Status.SKIPPED, new.target, role, reason=reason))
            continue
        out.append(
            Outcome(
                task.rowid, key, Status.WOULD_IMPORT, new.target, role, remarks=remarks, planned=new
            )
        )
    return out


def _older_signatures(earlier: Sequence[CheckIn]) -> dict[tuple[object, ...], CheckIn]:
    """Signatures of check-ins an older asched imported. It stored the bare note (and
    "SCHEDULED CHECK-IN" for an empty one): each is also matched as the text typed now."""
    found: dict[tuple[object, ...], CheckIn] = {}
    for c in earlier:
        texts = {c.message, LEGACY_PREFIX + c.message}
        if c.message == LEGACY_PREFIX.rstrip(": "):
            texts.add(DEFAULT_MESSAGE)
        for text in texts:
            found.setdefault(_signature(c.target, text, c.rule), c)
    return found


def pile_ups(outcomes: Sequence[Outcome]) -> list[str]:
    """Warnings for targets that get more than :data:`PILE_UP` recurring check-ins."""
    counts: Counter[str] = Counter()
    for o in outcomes:
        rule = o.planned.rule if o.planned is not None else None
        if o.status in (Status.IMPORTED, Status.WOULD_IMPORT) and isinstance(rule, Every):
            counts[o.target or ""] += 1
    return [
        f"{target} gets {n} recurring check-ins (the old self-scheduling piled them up?);"
        f" review them with: asched ls --target {target}"
        for target, n in sorted(counts.items())
        if n > PILE_UP
    ]
