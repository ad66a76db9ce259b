"""``asched import-legacy``: the old scheduler's ``tasks`` table, turned into check-ins once.

The source file is only ever read: it is opened as ``file:...?mode=ro&immutable=1``, which makes
SQLite take no lock and create nothing beside it (not even ``-wal``/``-shm``), so importing from
the live directory of a stopped Tmux-Orchestrator leaves it byte for byte as it was. The old CLI
leaves a ``-wal`` with committed rows behind after every ``--add`` (it exits without closing its
connection); an immutable open would read past them, so such a file is read through a private
copy of the main file and its ``-wal`` (or hot ``-journal``), made in a temporary directory of
our own: SQLite applies them to the copy, and nothing is written next to the source.

Decisions (each one answers a failure in REFERENCE.md):

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

import argparse
import enum
import hashlib
import json
import math
import os
import re
import shutil
import sqlite3
import stat
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

from asched.cli.commands import _now, _open_existing, _open_for_write, _state_dir, _wake
from asched.cli.views import (
    checkin_json,
    duration_text,
    iso,
    local_time,
    print_json,
    print_lines,
    render_table,
    rule_json,
    terminal_width,
)
from asched.core.errors import EXIT_OK, UsageError
from asched.core.models import CheckIn, Every, NewCheckIn, Once, Rule, from_ms, to_ms, utc
from asched.core.paths import path_arg
from asched.core.triggers import MAX_DURATION_S, format_duration, next_due
from asched.store.rows import MAX_MS, MIN_MS, checkin_params
from asched.tmux.targets import Target, check_body

__all__ = [
    "DEFAULT_MESSAGE",
    "ORIGIN",
    "Outcome",
    "Status",
    "Task",
    "plan_import",
    "read_tasks",
    "register",
    "source_id",
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

_MAGIC: Final = b"SQLite format 3\x00"
_ROW_KEY: Final = re.compile(r"legacy:[0-9a-f]{16}")  # the keys of this asched (see row_id)
_REQUIRED: Final = ("session_name", "window_index", "next_run", "interval_minutes", "note")
_OPTIONAL: Final = ("agent_role", "last_run", "retry_count")

DESCRIPTION: Final = """\
Import the check-ins of Tmux-Orchestrator's scheduler (its SQLite file with a `tasks` table,
usually task_queue.db) as asched check-ins. PATH is only read, never written: no lock, no
-wal/-shm files. Rows that cannot be imported are listed with the reason and left alone.
Running it again imports nothing twice. Stop the old scheduler first: both would deliver."""

EPILOG: Final = """\
examples:
  asched import-legacy ~/Tmux-Orchestrator/task_queue.db --dry-run   see what would happen
  asched import-legacy ~/Tmux-Orchestrator/task_queue.db             do it
  asched import-legacy task_queue.db --json                          the report as JSON

how rows map (target session_name:window_index, message "SCHEDULED CHECK-IN: <note>", as
the old scheduler typed it; a [delivery] prefix of the same words is not added again):
  interval_minutes > 0    every interval; first at next_run, or the next slot after now
  interval_minutes = 0    once at next_run; more than 5 min in the past: skipped (not replayed)
  retry_count < 0         imported paused (it was disabled), first at the next slot from now;
                          asched resume ID to start it (a disabled one-shot is skipped)
  empty note              the old default: "SCHEDULED CHECK-IN: Time for your regular status
                          update"
  identical rows          imported once, the others reported as duplicates
The check-ins get the key legacy:<row id> (a hash of what the row says: a copy of the file
elsewhere imports nothing twice) and origin "legacy" (see asched ls). A check-in removed
after its import is not imported again. A -wal left by the old scheduler is read (through a
private copy) and never changed.
Exit 2, with nothing written, when PATH is not such a database.
"""


class Status(enum.StrEnum):
    """What became of one row."""

    IMPORTED = "imported"
    WOULD_IMPORT = "would-import"  # --dry-run, or not yet written
    ALREADY = "already-imported"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class BadText:
    """A TEXT value that is not UTF-8, kept as bytes so that one bad row cannot stop the read."""

    raw: bytes


@dataclass(frozen=True, slots=True)
class Task:
    """One row of the old ``tasks`` table, values exactly as SQLite returned them."""

    rowid: int
    session_name: object
    agent_role: object
    window_index: object
    next_run: object
    interval_minutes: object
    note: object
    last_run: object
    retry_count: object


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


# -- reading the source ----------------------------------------------------------------------------


def source_id(path: Path) -> str:
    """A short stable id of the source database: a hash of its resolved path."""
    resolved = os.path.realpath(path)
    return hashlib.sha256(os.fsencode(resolved)).hexdigest()[:12]


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


def _decode(raw: bytes) -> object:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return BadText(raw)


def _check_file(path: Path) -> None:
    """UsageError unless ``path`` is a readable SQLite file."""
    try:
        regular = stat.S_ISREG(path.stat().st_mode)
    except OSError:
        regular = True  # let the open below report it (missing, no permission)
    if not regular and not path.is_dir():
        # A FIFO or a device would block or stream forever; neither is a database.
        raise UsageError(f"{path} is not a regular file")
    try:
        with path.open("rb") as fh:
            header = fh.read(len(_MAGIC))
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a directory, not the old scheduler's database") from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    if header != _MAGIC:
        raise UsageError(f"{path} is not an SQLite database")


def _pending(path: Path) -> list[str]:
    """The suffixes of the companions that hold changes not yet in ``path`` (-wal, -journal)."""
    found = []
    for suffix in ("-wal", "-journal"):
        try:
            if Path(f"{path}{suffix}").stat().st_size > 0:
                found.append(suffix)
        except OSError:
            continue
    return found


def read_tasks(path: Path) -> list[Task]:
    """Every row of the ``tasks`` table at ``path``, by rowid; UsageError if it has none.

    Opens the file read-only and immutable: no lock is taken and no file is created or changed.
    When a ``-wal`` or ``-journal`` beside it holds changes, reads a private copy of the three
    instead (see the module's docstring).
    """
    path = Path(path).absolute()
    _check_file(path)
    real = Path(os.path.realpath(path))  # SQLite names the -wal after a symlink's target
    pending = _pending(real)
    if not pending:
        return _read(f"{path.as_uri()}?mode=ro&immutable=1", shown=path)
    try:
        scratch = tempfile.TemporaryDirectory(prefix="asched-import-")
    except OSError as exc:
        raise UsageError(f"cannot make a temporary copy of {path}: {exc.strerror or exc}") from None
    with scratch as tmp:
        copy = Path(tmp) / "tasks.db"
        try:
            shutil.copyfile(real, copy)
            for suffix in pending:
                shutil.copyfile(f"{real}{suffix}", f"{copy}{suffix}")
        except OSError as exc:
            raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
        return _read(copy.as_uri(), shown=path)


def _read(uri: str, *, shown: Path) -> list[Task]:
    """The rows of ``tasks`` through ``uri``; errors name ``shown`` (the user's file)."""
    path = shown
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        raise UsageError(f"cannot open {path}: {exc}") from None
    try:
        conn.text_factory = _decode
        columns = {str(r[1]) for r in conn.execute("PRAGMA table_info(tasks)").fetchall()}
        if not columns:
            raise UsageError(f"{path} has no tasks table: not Tmux-Orchestrator's scheduler")
        missing = [c for c in _REQUIRED if c not in columns]
        if missing:
            raise UsageError(f"{path}: the tasks table has no column {', '.join(missing)}")
        # Only names from the constants above reach the SQL text.
        picked = [c if c in columns else "NULL" for c in (*_REQUIRED, *_OPTIONAL)]
        rows = conn.execute(f"SELECT rowid, {', '.join(picked)} FROM tasks ORDER BY rowid")  # noqa: S608
        tasks = []
        for rowid, session, window, next_run, interval, note, role, last_run, retries in rows:
            tasks.append(
                Task(rowid, session, role, window, next_run, interval, note, last_run, retries)
            )
        return tasks
    except sqlite3.Error as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
    finally:
        conn.close()


# -- one row ---------------------------------------------------------------------------------------


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


# -- the command -----------------------------------------------------------------------------------


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """Add ``import-legacy`` to the CLI's subparsers."""
    p = sub.add_parser(
        "import-legacy",
        parents=[common],
        help="import Tmux-Orchestrator's scheduled tasks (reads its database only)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("path", metavar="PATH", help="the old scheduler's database (task_queue.db)")
    p.add_argument("--dry-run", action="store_true", help="report what would happen; write nothing")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument(
        "-l", "--full", action="store_true", help="do not shorten columns to the terminal width"
    )
    p.set_defaults(handler=_cmd_import_legacy)


def _write(state: Path, outcomes: list[Outcome]) -> list[Outcome]:
    """Store the planned check-ins whose keys are still free; the outcomes as they turned out."""
    todo = [i for i, o in enumerate(outcomes) if o.status is Status.WOULD_IMPORT]
    # Found under a key of an older asched: remember this one too, so that a removal sticks.
    seen = [
        o.key
        for o in outcomes
        if o.status is Status.ALREADY and o.checkin is not None and o.checkin.key != o.key
    ]
    if not todo and not seen:
        return outcomes
    done = list(outcomes)
    with _open_for_write(state) as store:
        store.remember_imported(seen)
        planned = [o.planned for o in (outcomes[i] for i in todo) if o.planned is not None]
        results = store.add_new(planned, remember=True)
        for i, stored in zip(todo, results, strict=True):
            if stored is not None:
                done[i] = replace(outcomes[i], status=Status.IMPORTED, checkin=stored)
            else:  # another import got there between our look and our write
                found = store.get_by_key(outcomes[i].key)
                done[i] = replace(
                    outcomes[i],
                    status=Status.ALREADY,
                    checkin=found,
                    reason=None if found is not None else GONE,
                )
    return done


def _cmd_import_legacy(args: argparse.Namespace) -> int:
    path = Path(path_arg(args.path, "PATH"))
    tasks = read_tasks(path)  # every problem with PATH ends here, before the state is touched
    ident = source_id(path)
    now = _now()
    state = _state_dir(args)
    store = _open_existing(state)
    if store is None:
        outcomes = plan_import(tasks, ident, now, lambda _key: None)
    else:
        with store:
            earlier = [
                c
                for c in store.list_checkins()
                if c.origin == ORIGIN and c.key is not None and not _ROW_KEY.fullmatch(c.key)
            ]
            outcomes = plan_import(tasks, ident, now, store.get_by_key, store.was_imported, earlier)
    if not args.dry_run:
        outcomes = _write(state, outcomes)
        if any(o.status is Status.IMPORTED for o in outcomes):
            _wake(state)
    warnings = pile_ups(outcomes)
    if args.json:
        _print_json(path, ident, args.dry_run, outcomes, warnings)
    else:
        _print_report(path, ident, args.dry_run, outcomes, warnings, args.full)
    return EXIT_OK


def _outcome_json(o: Outcome) -> dict[str, Any]:
    planned = None
    if o.planned is not None and o.checkin is None:
        p = o.planned
        planned = {
            "target": p.target,
            "message": p.message,
            "rule": rule_json(p.rule),
            "next_due": iso(p.next_due),
            "paused": p.paused,
        }
    return {
        "row": o.row,
        "key": o.key,
        "status": o.status.value,
        "target": o.target,
        "agent_role": o.role,
        "reason": o.reason,
        "remarks": list(o.remarks),
        "checkin": None if o.checkin is None else checkin_json(o.checkin),
        "planned": planned,
    }


def _counts(outcomes: Sequence[Outcome]) -> dict[str, int]:
    counts = Counter(o.status.value for o in outcomes)
    return {s.value: counts.get(s.value, 0) for s in Status}


def _print_json(
    path: Path,
    ident: str,
    dry_run: bool,
    outcomes: Sequence[Outcome],
    warnings: Sequence[str],
) -> None:
    print_json(
        {
            "source": str(Path(path).absolute()),
            "source_id": ident,
            "dry_run": dry_run,
            "counts": _counts(outcomes),
            "rows": [_outcome_json(o) for o in outcomes],
            "warnings": list(warnings),
        }
    )


def _detail(o: Outcome) -> str:
    if o.status is Status.SKIPPED:
        return o.reason or ""
    if o.status is Status.ALREADY:
        return o.reason or "" if o.checkin is None else f"as check-in {o.checkin.id}"
    c = o.checkin
    rule = c.rule if c is not None else o.planned.rule if o.planned is not None else None
    due = c.next_due if c is not None else o.planned.next_due if o.planned is not None else None
    parts = [] if c is None else [f"id {c.id}"]
    if isinstance(rule, Every):
        parts.append(f"every {format_duration(rule.interval_s)}")
    elif rule is not None:
        parts.append("once")
    if due is not None:
        parts.append(f"next {local_time(due)}")
    return ", ".join(parts) + "".join(f"; {r}" for r in o.remarks)


_RESULT_TEXT: Final = {
    Status.IMPORTED: "imported",
    Status.WOULD_IMPORT: "would import",
    Status.ALREADY: "already imported",
    Status.SKIPPED: "skipped",
}


def _print_report(
    path: Path,
    ident: str,
    dry_run: bool,
    outcomes: Sequence[Outcome],
    warnings: Sequence[str],
    full: bool,
) -> None:
    rows = [
        [str(o.row), o.target or "-", o.role or "-", _RESULT_TEXT[o.status], _detail(o)]
        for o in outcomes
    ]
    headers = ["ROW", "TARGET", "ROLE", "RESULT", "DETAIL"]
    lines = render_table(headers, rows, terminal_width(full), right=frozenset({0})) if rows else []
    n = _counts(outcomes)
    new = n[Status.IMPORTED.value] + n[Status.WOULD_IMPORT.value]
    verb = "would be imported" if dry_run else "imported"
    rows_text = "1 row" if len(outcomes) == 1 else f"{len(outcomes)} rows"
    summary = (
        f"{rows_text} in {path} (source id {ident}): {new} {verb},"
        f" {n[Status.ALREADY.value]} already imported, {n[Status.SKIPPED.value]} skipped."
    )
    tail = [summary]
    if dry_run:
        tail.append("Dry run: nothing was written.")
    tail += [f"warning: {w}" for w in warnings]
    if new:
        tail.append("Keep the old scheduler stopped: it would deliver these check-ins too.")
    print_lines([*lines, *([""] if lines else []), *tail])
