"""The old scheduler's database, read: Tmux-Orchestrator's ``tasks`` table, row by row.

The source file is only ever read: it is opened as ``file:...?mode=ro&immutable=1``, which makes
SQLite take no lock and create nothing beside it (not even ``-wal``/``-shm``), so importing from
the live directory of a stopped Tmux-Orchestrator leaves it byte for byte as it was. The old CLI
leaves a ``-wal`` with committed rows behind after every ``--add`` (it exits without closing its
connection); an immutable open would read past them, so such a file is read through a private
copy of the main file and its ``-wal`` (or hot ``-journal``), made in a temporary directory of
our own: SQLite applies them to the copy, and nothing is written next to the source.

Values are kept exactly as SQLite returns them; :mod:`asched.cli.legacy_plan` judges them.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from asched.core.errors import UsageError

__all__ = ["BadText", "Task", "read_tasks", "source_id"]

_MAGIC: Final = b"SQLite format 3\x00"
_REQUIRED: Final = ("session_name", "window_index", "next_run", "interval_minutes", "note")
_OPTIONAL: Final = ("agent_role", "last_run", "retry_count")


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


def source_id(path: Path) -> str:
    """A short stable id of the source database: a hash of its resolved path."""
    resolved = os.path.realpath(path)
    return hashlib.sha256(os.fsencode(resolved)).hexdigest()[:12]


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
