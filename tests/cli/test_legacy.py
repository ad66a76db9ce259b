"""``asched import-legacy``: the old scheduler's tasks table, imported once, its file untouched.

Every source database here is built by the test with the reference's schema; SQLite's dynamic
typing lets rows hold NULL or text where the old scheduler expected numbers, as real ones did.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from asched.cli.legacy_plan import DEFAULT_MESSAGE
from asched.cli.legacy_source import source_id
from asched.core.models import CheckIn, Every, NewCheckIn, Once
from asched.core.paths import DB_NAME
from asched.store.store import Store
from tests.cliharness import Result, assert_usage_error, stored

pytestmark = pytest.mark.usefixtures("wakes")  # tests/cliharness.py


SCHEMA = (
    "CREATE TABLE tasks (id INTEGER PRIMARY KEY, session_name TEXT, agent_role TEXT,"
    " window_index INTEGER, next_run REAL, interval_minutes INTEGER, note TEXT, last_run REAL,"
    " retry_count INTEGER DEFAULT 0)"
)
COLUMNS = (
    "session_name", "agent_role", "window_index", "next_run", "interval_minutes", "note",
    "last_run", "retry_count",
)  # fmt: skip
OLD = "SCHEDULED CHECK-IN: "  # what the old scheduler typed before a note
_AHEAD = object()  # row()'s default next_run: ten minutes from when the row is made


@pytest.fixture
def src(tmp_path: Path) -> Path:
    """A directory of its own for source databases: the state lives beside it, not in it."""
    path = tmp_path / "src"
    path.mkdir()
    return path


def make_db(path: Path, rows: Sequence[tuple[Any, ...]], schema: str = SCHEMA) -> Path:
    """A source database with the reference's schema holding ``rows`` (values of COLUMNS)."""
    with closing(sqlite3.connect(path)) as conn:
        conn.execute(schema)
        marks = ", ".join("?" * len(COLUMNS))
        conn.executemany(f"INSERT INTO tasks ({', '.join(COLUMNS)}) VALUES ({marks})", rows)
        conn.commit()
    return path


def row(
    session: Any = "proj",
    window: Any = 0,
    next_run: Any = _AHEAD,
    interval: Any = 30,
    note: Any = "status check",
    role: Any = "developer",
    last_run: Any = None,
    retry_count: Any = 0,
) -> tuple[Any, ...]:
    if next_run is _AHEAD:
        next_run = time.time() + 600
    return (session, role, window, next_run, interval, note, last_run, retry_count)


@contextmanager
def untouched(db: Path) -> Iterator[None]:
    """Asserts that ``db`` and its directory are exactly as before: same bytes, same files."""

    def snapshot() -> tuple[str, list[str], int]:
        digest = hashlib.sha256(db.read_bytes()).hexdigest()
        return digest, sorted(p.name for p in db.parent.iterdir()), db.stat().st_mtime_ns

    before = snapshot()
    yield
    assert snapshot() == before


def by_key(state: Path) -> dict[str, CheckIn]:
    return {c.key: c for c in stored(state) if c.key is not None}


def report(result: Result) -> dict[str, Any]:
    assert result.code == 0, result
    data: dict[str, Any] = json.loads(result.out)
    return data


def rows_by_id(data: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {r["row"]: r for r in data["rows"]}


def mixed(now: float) -> list[tuple[Any, ...]]:
    """The mixed table of the "done when": good rows and every kind of bad one."""
    return [
        row(note="hourly status", interval=60, next_run=now + 600),  # 1 recurring, first ahead
        row(window=1, note="every 30m, behind", interval=30, next_run=now - 7000),  # 2 next slot
        row(window=2, note="future one-shot", interval=0, next_run=now + 1800),  # 3
        row(window=2, note="NULL next_run", next_run=None),  # 4
        row(window=2, note="string next_run", next_run="2024-05-01 10:00:00"),  # 5
        row(window=3, note="disabled", retry_count=-1),  # 6 imported paused
        row(session="bad:name", note="colon in session"),  # 7
        row(session="bad.name", note="dot in session"),  # 8
        row(window=None, note="NULL window"),  # 9
        row(window=1, note="15h-old one-shot", interval=0, next_run=now - 15 * 3600),  # 10 past
        row(session=None, note="NULL session"),  # 11
        row(session="", note="empty session"),  # 12
        row(note="hourly status", interval=60, next_run=now + 900),  # 13 duplicate of 1
        row(window=4, note="", interval=10),  # 14 default message
    ]


IMPORTED = {1, 2, 3, 6, 14}


def test_import_mixed_table(run: Any, state: Path, src: Path, wakes: list[Path]) -> None:
    now = time.time()
    db = make_db(src / "task_queue.db", mixed(now))
    ident = source_id(db)
    start = datetime.now(UTC).replace(microsecond=0)
    with untouched(db):
        data = report(run("import-legacy", str(db), "--json"))
    assert not (src / "task_queue.db-wal").exists()
    assert not (src / "task_queue.db-shm").exists()
    assert data["source_id"] == ident and data["dry_run"] is False
    assert data["counts"] == {
        "imported": 5, "would-import": 0, "already-imported": 0, "skipped": 9,
    }  # fmt: skip
    rows = rows_by_id(data)
    assert {n for n, r in rows.items() if r["status"] == "imported"} == IMPORTED
    reasons = {n: r["reason"] for n, r in rows.items() if r["status"] == "skipped"}
    assert reasons[4] == "next_run is NULL"
    assert reasons[5] == "next_run is text '2024-05-01 10:00:00', not epoch seconds"
    assert "'bad:name' cannot contain ':' or '.'" in reasons[7]
    assert "'bad.name' cannot contain ':' or '.'" in reasons[8]
    assert reasons[9] == "window_index is NULL, not a window number"
    assert reasons[10].startswith("one-shot already past (due 15h ago)")
    assert reasons[11] == "session_name is NULL"
    assert "empty tmux session name" in reasons[12]
    assert reasons[13] == "duplicate of row 1 (same target, note and schedule)"
    assert wakes == [state]

    checkins = by_key(state)
    key = {n: rows[n]["key"] for n in IMPORTED}
    assert set(checkins) == set(key.values())
    assert all(re.fullmatch(r"legacy:[0-9a-f]{16}", k) for k in key.values())
    c1, c2, c3, c6, c14 = (checkins[key[n]] for n in (1, 2, 3, 6, 14))
    assert all(c.origin == "legacy" for c in checkins.values())
    # The text the old scheduler typed (a [delivery] prefix of the same words is not doubled).
    assert (c1.target, c1.message, c1.paused) == ("proj:0", OLD + "hourly status", False)
    assert isinstance(c1.rule, Every) and c1.rule.interval_s == 3600
    assert c1.next_due == c1.rule.anchor  # still ahead: first at next_run
    assert c1.next_due is not None
    assert abs(c1.next_due.timestamp() - (now + 600)) < 0.001
    # Behind: the next slot after now on the old cadence, not a replay of the missed ones.
    assert isinstance(c2.rule, Every) and c2.next_due is not None
    assert start < c2.next_due <= datetime.now(UTC) + timedelta(minutes=30)
    slots = (c2.next_due - c2.rule.anchor) / timedelta(minutes=30)
    assert slots == 4  # at now + 200 s: on the old cadence, and the first one still ahead
    assert isinstance(c3.rule, Once) and c3.next_due == c3.rule.at
    assert (c3.target, c3.message) == ("proj:2", OLD + "future one-shot")
    assert (c6.target, c6.paused) == ("proj:3", True)
    assert "retry_count -1" in " ".join(rows[6]["remarks"])
    assert (c14.target, c14.message) == ("proj:4", DEFAULT_MESSAGE)


def test_second_run_imports_nothing_twice(run: Any, state: Path, src: Path) -> None:
    db = make_db(src / "task_queue.db", mixed(time.time()))
    with untouched(db):
        first = report(run("import-legacy", str(db), "--json"))
        before = stored(state)
        second = report(run("import-legacy", str(db), "--json"))
        human = run("import-legacy", str(db))
    assert stored(state) == before  # nothing re-written, not even updated_at
    assert second["counts"]["imported"] == 0
    assert second["counts"]["already-imported"] == first["counts"]["imported"] == 5
    assert {r["row"] for r in second["rows"] if r["status"] == "already-imported"} == IMPORTED
    # The same rows are skipped for the same reasons: the duplicate stays a duplicate.
    skipped = [(r["row"], r["reason"]) for r in second["rows"] if r["status"] == "skipped"]
    assert skipped == [(r["row"], r["reason"]) for r in first["rows"] if r["status"] == "skipped"]
    assert "0 imported, 5 already imported, 9 skipped." in human.out


def test_dry_run_writes_nothing(run: Any, state: Path, src: Path, wakes: list[Path]) -> None:
    db = make_db(src / "task_queue.db", mixed(time.time()))
    with untouched(db):
        data = report(run("import-legacy", str(db), "--dry-run", "--json"))
        assert not state.exists()
        human = run("import-legacy", str(db), "--dry-run")
    assert data["dry_run"] is True
    assert data["counts"]["would-import"] == 5 and data["counts"]["imported"] == 0
    planned = rows_by_id(data)[1]["planned"]
    assert planned["target"] == "proj:0" and planned["rule"]["kind"] == "every"
    assert "5 would be imported" in human.out and "Dry run: nothing was written." in human.out
    assert not state.exists()
    assert wakes == []
    # With an existing state: still nothing written, and imported rows are recognised.
    assert report(run("import-legacy", str(db), "--json"))["counts"]["imported"] == 5
    before = stored(state)
    again = report(run("import-legacy", str(db), "--dry-run", "--json"))
    assert again["counts"]["already-imported"] == 5
    assert stored(state) == before


def test_human_report(run: Any, src: Path) -> None:
    db = make_db(src / "task_queue.db", mixed(time.time()))
    result = run("import-legacy", str(db))
    assert result.code == 0, result
    lines = result.out.splitlines()
    assert lines[0].split() == ["ROW", "TARGET", "ROLE", "RESULT", "DETAIL"]
    line_of = {int(line.split()[0]): line for line in lines[1:15]}
    assert "imported" in line_of[1] and "every 1h" in line_of[1]
    assert "skipped" in line_of[4] and line_of[4].endswith("next_run is NULL")
    assert "paused: disabled in the old scheduler" in line_of[6]
    assert "duplicate of row 1" in line_of[13]
    assert f"14 rows in {db} (source id {source_id(db)}): 5 imported" in result.out
    assert "Keep the old scheduler stopped" in result.out


def test_one_shots_near_now(run: Any, state: Path, src: Path) -> None:
    now = time.time()
    db = make_db(
        src / "t.db",
        [
            row(interval=0, note="missed by 2 min: still delivered, late", next_run=now - 120),
            row(interval=0, note="missed by 10 min: too old", next_run=now - 600),
            row(interval=0, note="already ran", next_run=now + 60, last_run=now + 60),
            row(interval=0, note="ran before it was rescheduled", next_run=now + 60, last_run=now),
        ],
    )
    rows = rows_by_id(report(run("import-legacy", str(db), "--json")))
    assert [rows[n]["status"] for n in (1, 2, 3, 4)] == [
        "imported", "skipped", "skipped", "imported",
    ]  # fmt: skip
    assert rows[2]["reason"].startswith("one-shot already past (due 10m")
    assert rows[3]["reason"] == "one-shot that already ran (last_run >= next_run)"
    late = rows[1]["checkin"]
    assert late["rule"]["kind"] == "once" and late["grace_s"] == 300.0


def test_odd_values(run: Any, src: Path) -> None:
    now = time.time()
    db = make_db(
        src / "t.db",
        [
            row(interval=0.5, note="half-minute interval"),  # 1 REAL in an INTEGER column
            row(interval=-5, note="negative interval"),  # 2
            row(interval=None, note="NULL interval"),  # 3
            row(interval="often", note="text interval"),  # 4
            row(next_run=(now + 600) * 1000, note="milliseconds"),  # 5
            row(next_run="1700000000x", note="junk text"),  # 6
            row(next_run=b"\x00\x01", note="blob"),  # 7
            row(window=1.5, note="fractional window"),  # 8
            row(window="developer", note="a role where the window goes"),  # 9
            row(note=b"\xff\xfe not utf-8"),  # 10 a blob note
            row(note="bell\x07"),  # 11
            row(retry_count="x", note="text retry_count"),  # 12
            row(retry_count=None, note="NULL retry_count is fine"),  # 13
            row(session="my project", note="a space is a valid session name"),  # 14
            row(interval=0.001, note="interval under a second"),  # 15
        ],
    )
    rows = rows_by_id(report(run("import-legacy", str(db), "--json")))
    assert rows[1]["status"] == "imported"
    assert rows[1]["checkin"]["rule"]["interval_s"] == 30
    reasons = {n: r["reason"] for n, r in rows.items()}
    assert reasons[2] == "interval_minutes is negative (-5)"
    assert reasons[3] == "interval_minutes is NULL"
    assert reasons[4] == "interval_minutes is text 'often'"
    assert "is not a time from 2000 to 9999 in epoch seconds" in reasons[5]
    assert reasons[6] == "next_run is text '1700000000x', not epoch seconds"
    assert reasons[7] == "next_run is a blob"
    assert reasons[8] == "window_index is 1.5, not a window number"
    assert reasons[9] == "window_index is text 'developer', not a window number"
    assert reasons[10] == "note is a blob"
    assert reasons[11].startswith("note: message contains control characters")
    assert reasons[12] == "retry_count is text 'x', not a whole number"
    assert rows[13]["status"] == "imported"
    assert rows[14]["status"] == "imported" and rows[14]["target"] == "my project:0"
    assert reasons[15] == "interval_minutes 0.001 is under a second"


def test_text_that_is_not_utf8(run: Any, src: Path) -> None:
    db = make_db(src / "t.db", [row(note="fine"), row(window=1)])
    with closing(sqlite3.connect(db)) as conn:
        # A TEXT value with invalid UTF-8 bytes, as a C program could have written it.
        conn.execute("UPDATE tasks SET note = CAST(x'ff41' AS TEXT) WHERE id = 2")
        conn.commit()
    rows = rows_by_id(report(run("import-legacy", str(db), "--json")))
    assert rows[1]["status"] == "imported"
    assert rows[2]["reason"] == "note is text that is not UTF-8"


def test_pile_up_warning(run: Any, src: Path) -> None:
    # Each old schedule_with_note.sh call made another recurring task for the same window.
    db = make_db(src / "t.db", [row(note=f"note {i}", interval=15) for i in range(5)])
    data = report(run("import-legacy", str(db), "--json"))
    assert data["counts"]["imported"] == 5
    assert data["warnings"] == [
        "proj:0 gets 5 recurring check-ins (the old self-scheduling piled them up?);"
        " review them with: asched ls --target proj:0"
    ]


def test_wal_mode_source_and_special_path(run: Any, state: Path, src: Path) -> None:
    folder = src / "dir with space?#%"
    folder.mkdir()
    db = make_db(folder / "task_queue.db", [row()])
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA journal_mode = WAL").fetchone()[0] == "wal"
    assert sorted(p.name for p in folder.iterdir()) == ["task_queue.db"]
    with untouched(db):
        data = report(run("import-legacy", str(db), "--json"))
    assert data["counts"]["imported"] == 1
    assert data["source"] == str(db)


# What the old CLI does on every `scheduler.py --add`: a write in WAL mode, then an exit without
# closing the connection, which leaves the committed row in the -wal (no process running).
_LEAVE_WAL = """
import os, sqlite3, sys
conn = sqlite3.connect(sys.argv[1])
conn.execute("PRAGMA journal_mode = WAL")
conn.execute("INSERT INTO tasks (session_name, window_index, next_run, interval_minutes, note)"
             " VALUES ('late', 1, ?, 30, 'added last')", (float(sys.argv[2]),))
conn.commit()
os._exit(0)
"""


def test_rows_left_in_a_wal_by_a_stopped_scheduler_are_imported(
    run: Any, state: Path, src: Path
) -> None:
    # The old scheduler leaves its last rows in task_queue.db-wal after every --add. They are
    # read through a private copy: imported, and the source, -wal included, stays as it was.
    db = make_db(src / "task_queue.db", [row()])
    subprocess.run([sys.executable, "-c", _LEAVE_WAL, str(db), str(time.time() + 600)], check=True)
    wal = Path(f"{db}-wal")
    assert wal.stat().st_size > 0
    wal_bytes = wal.read_bytes()
    with untouched(db):
        data = report(run("import-legacy", str(db), "--json"))
    assert wal.read_bytes() == wal_bytes
    assert data["counts"]["imported"] == 2
    assert {c.message for c in stored(state)} >= {OLD + "added last"}


def _bad_sources(src: Path) -> dict[str, Path]:
    text = src / "notes.txt"
    text.write_text("not a database\n" * 20)
    empty = src / "empty.db"
    empty.touch()
    other = src / "other.db"
    with closing(sqlite3.connect(other)) as conn:
        conn.execute("CREATE TABLE jobs (id INTEGER PRIMARY KEY)")
    narrow = src / "narrow.db"
    with closing(sqlite3.connect(narrow)) as conn:
        conn.execute("CREATE TABLE tasks (id INTEGER PRIMARY KEY, session_name TEXT, note TEXT)")
    truncated = src / "truncated.db"
    make_db(src / "full.db", [row() for _ in range(200)])
    truncated.write_bytes((src / "full.db").read_bytes()[:150])
    fifo = src / "fifo.db"
    os.mkfifo(fifo)
    return {
        "fifo": fifo,
        "missing": src / "nope.db",
        "directory": src,
        "text": text,
        "empty": empty,
        "other": other,
        "narrow": narrow,
        "truncated": truncated,
    }


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("fifo", "is not a regular file"),
        ("missing", "no such file"),
        ("directory", "is a directory"),
        ("text", "is not an SQLite database"),
        ("empty", "is not an SQLite database"),
        ("other", "has no tasks table"),
        ("narrow", "the tasks table has no column window_index, next_run, interval_minutes"),
        ("truncated", "database disk image is malformed"),
    ],
)
def test_bad_sources(run: Any, state: Path, src: Path, name: str, message: str) -> None:
    path = _bad_sources(src)[name]
    result = run("import-legacy", str(path))
    assert_usage_error(result)
    assert message in result.err
    assert not state.exists()
    assert not Path(f"{path}-wal").exists() and not Path(f"{path}-shm").exists()


def test_bad_source_changes_an_existing_state_not(run: Any, state: Path, src: Path) -> None:
    good = make_db(src / "good.db", [row()])
    assert report(run("import-legacy", str(good), "--json"))["counts"]["imported"] == 1
    before = stored(state)
    files = sorted(p.name for p in state.iterdir())
    assert_usage_error(run("import-legacy", str(src / "nope.db")))
    assert stored(state) == before
    assert sorted(p.name for p in state.iterdir()) == files


def test_help_teaches(run: Any) -> None:
    result = run("import-legacy", "--help")
    assert result.code == 0
    assert "examples:" in result.out and "--dry-run" in result.out
    assert "interval_minutes = 0" in result.out


def test_store_add_new_never_replaces(state: Path) -> None:
    """The store call behind the import: insert by key, or leave the existing row alone."""
    state.mkdir(mode=0o700)
    due = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)

    def new(key: str | None, message: str) -> NewCheckIn:
        return NewCheckIn(target="w:0", message=message, rule=Once(due), next_due=due, key=key)

    with Store.open(state / DB_NAME) as store:
        first = store.add_new([new("a", "one"), new("b", "two")])
        assert [c.message if c else None for c in first] == ["one", "two"]
        again = store.add_new([new("a", "changed"), new("c", "three")])
        assert again[0] is None and again[1] is not None and again[1].message == "three"
        assert {c.key: c.message for c in store.list_checkins()} == {
            "a": "one", "b": "two", "c": "three",
        }  # fmt: skip
        with pytest.raises(ValueError, match="needs a key"):
            store.add_new([new(None, "keyless")])
        assert store.count_checkins() == 3


def test_disabled_rows_keep_their_rhythm_not_the_year_ahead(
    run: Any, state: Path, src: Path
) -> None:
    # The old scheduler disabled a task with retry_count -1 and next_run a year ahead. Imported
    # paused, its first slot is the next of its rhythm from now (resume goes on from there, not
    # 52 weeks away); a disabled one-shot has no due time left and is skipped with the reason.
    now = time.time()
    year_on = now + 365 * 86400 + 7 * 60  # disabled 7 minutes past a 30-minute slot
    db = make_db(
        src / "task_queue.db",
        [
            row(next_run=year_on, interval=30, note="every half hour", retry_count=-1),
            row(next_run=year_on, interval=0, note="one-shot", retry_count=-1),
        ],
    )
    data = report(run("import-legacy", str(db), "--json"))
    rows = rows_by_id(data)
    assert rows[2]["status"] == "skipped" and "disabled" in rows[2]["reason"], rows[2]
    (c,) = [c for c in stored(state) if c.message == OLD + "every half hour"]
    assert c.paused and c.next_due is not None
    ahead = c.next_due.timestamp() - now
    assert 0 < ahead <= 30 * 60, ahead
    assert round(year_on - c.next_due.timestamp()) % (30 * 60) == 0  # same rhythm


def test_a_copy_elsewhere_imports_nothing_twice_and_removed_stays_removed(
    run: Any, state: Path, src: Path
) -> None:
    # The identity of a row is what it says, not where its file lies: a copy of the database in
    # another directory is "already imported". And a check-in the user removed stays removed.
    db = make_db(src / "task_queue.db", [row(note="kept"), row(window=1, note="removed")])
    first = report(run("import-legacy", str(db), "--json"))
    assert first["counts"]["imported"] == 2
    elsewhere = src / "backup"
    elsewhere.mkdir()
    copy = elsewhere / "task_queue.db"
    shutil.copy(db, copy)
    again = report(run("import-legacy", str(copy), "--json"))
    assert again["counts"] == {
        "imported": 0, "would-import": 0, "already-imported": 2, "skipped": 0,
    }  # fmt: skip
    gone = next(c for c in stored(state) if c.message.endswith("removed"))
    assert run("rm", str(gone.id)).code == 0
    third = report(run("import-legacy", str(copy), "--json"))
    by_row = rows_by_id(third)
    assert by_row[2]["status"] == "already-imported" and "removed since" in by_row[2]["reason"]
    assert third["counts"]["imported"] == 0
    assert [c.message for c in stored(state)] == [OLD + "kept"]


def test_twins_of_a_removed_or_skipped_row(run: Any, state: Path, src: Path) -> None:
    # Rows that differ only where the import does not look (the role) are one check-in: after the
    # user removed it, its twin does not bring it back. A row that cannot be imported (next_run as
    # text) does not hide a valid twin of it.
    db = make_db(
        src / "task_queue.db",
        [
            row(note="twin", role="developer"),
            row(note="twin", role=None),
            row(window=2, note="fixed later", next_run="2024-05-01 10:00:00"),
            row(window=2, note="fixed later"),
        ],
    )
    first = rows_by_id(report(run("import-legacy", str(db), "--json")))
    assert [first[n]["status"] for n in (1, 2, 3, 4)] == [
        "imported", "skipped", "skipped", "imported",
    ]  # fmt: skip
    assert "duplicate of row 1" in first[2]["reason"]
    gone = next(c for c in stored(state) if c.message == OLD + "twin")
    assert run("rm", str(gone.id)).code == 0
    again = report(run("import-legacy", str(db), "--json"))
    assert again["counts"]["imported"] == 0
    assert sorted(c.message for c in stored(state)) == [OLD + "fixed later"]


def test_checkins_an_older_asched_imported_are_found_from_a_copy(
    run: Any, state: Path, src: Path
) -> None:
    # An older asched keyed imports by the file's path and rowid and stored the bare note. A copy
    # of that file elsewhere finds them by what they say, and a removal after that sticks.
    db = make_db(src / "task_queue.db", [row(note="from before")])
    due = datetime.now(UTC) + timedelta(minutes=10)
    state.mkdir(mode=0o700)
    with Store.open(state / "asched.db") as store:
        store.add_new(
            [
                NewCheckIn(
                    target="proj:0",
                    message="from before",
                    rule=Every(1800, due),
                    next_due=due,
                    key=f"legacy:{source_id(db)}:1",
                    origin="legacy",
                )
            ]
        )
    copy = src / "copy"
    copy.mkdir()
    shutil.copy(db, copy / "task_queue.db")
    data = report(run("import-legacy", str(copy / "task_queue.db"), "--json"))
    assert data["counts"] == {
        "imported": 0, "would-import": 0, "already-imported": 1, "skipped": 0,
    }  # fmt: skip
    (old,) = stored(state)
    assert run("rm", str(old.id)).code == 0
    assert report(run("import-legacy", str(db), "--json"))["counts"]["imported"] == 0


def test_a_symlink_to_a_database_with_a_wal_reads_the_wal(run: Any, state: Path, src: Path) -> None:
    # SQLite names the -wal after the link's target: the rows there are read through the link.
    db = make_db(src / "task_queue.db", [row()])
    subprocess.run([sys.executable, "-c", _LEAVE_WAL, str(db), str(time.time() + 600)], check=True)
    link_dir = src / "elsewhere"
    link_dir.mkdir()
    link = link_dir / "tasks.db"
    link.symlink_to(db)
    data = report(run("import-legacy", str(link), "--dry-run", "--json"))
    assert data["counts"]["would-import"] == 2
    assert sorted(p.name for p in link_dir.iterdir()) == ["tasks.db"]
