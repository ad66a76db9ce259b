"""The store's contract, run against both Store and AsyncStore on real SQLite files."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from asched.core.errors import NotFoundError, StoreError, UsageError
from asched.core.models import CatchUp, CheckIn, Cron, Every, NewCheckIn, Once, from_ms, to_ms
from asched.core.states import (
    PANE_REPLACED,
    SERVER_LOST,
    DeliveryState,
    allowed_next,
    needs_reason,
)
from asched.store import rows, schema
from asched.store.async_store import AsyncStore
from asched.store.store import Store

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
S = DeliveryState


def at(seconds: float) -> datetime:
    """T0 plus ``seconds``."""
    return T0 + timedelta(seconds=seconds)


def new(**kw: Any) -> NewCheckIn:
    """A one-shot check-in due at T0 unless overridden."""
    fields: dict[str, Any] = {"target": "work:1", "message": "check in", "rule": Once(T0)}
    fields["next_due"] = kw.pop("next_due", T0)
    fields.update(kw)
    return NewCheckIn(**fields)


class FakeClock:
    """The store's clock for created/updated/started times; records the threads that read it."""

    def __init__(self) -> None:
        self.now = at(-3600)
        self.threads: set[str] = set()

    def __call__(self) -> datetime:
        self.threads.add(threading.current_thread().name)
        return self.now


class SyncAsAsync:
    """Presents a Store with AsyncStore's interface, so that one suite covers both."""

    def __init__(self, store: Store) -> None:
        self.sync = store

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.sync, name)
        if not callable(attr):
            return attr

        async def call(*args: Any, **kwargs: Any) -> Any:
            return attr(*args, **kwargs)

        return call

    async def aclose(self) -> None:
        self.sync.close()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "asched.db"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["Store", "AsyncStore"])
async def store(request: pytest.FixtureRequest, db: Path, clock: FakeClock) -> AsyncIterator[Any]:
    if request.param == "Store":
        s: Any = SyncAsAsync(Store.open(db, clock=clock))
    else:
        s = await AsyncStore.open(db, clock=clock)
    yield s
    await s.aclose()


@pytest.fixture
def raw(db: Path) -> Iterator[Callable[[], sqlite3.Connection]]:
    """Opens plain sqlite3 connections to the test DB, as a manual edit would."""
    conns: list[sqlite3.Connection] = []

    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(db, isolation_level=None, timeout=5)
        conns.append(conn)
        return conn

    yield connect
    for conn in conns:
        conn.close()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def plans(conn: sqlite3.Connection, statements: list[str]) -> list[str]:
    """EXPLAIN QUERY PLAN lines of each statement (as traced, with values inlined)."""
    lines = []
    for sql in statements:
        lines += [str(r[3]) for r in conn.execute("EXPLAIN QUERY PLAN " + sql)]
    return lines


# -- opening -------------------------------------------------------------------------------------


async def test_fresh_db_is_created_migrated_and_empty(store: Any, db: Path, raw: Any) -> None:
    assert await store.count_checkins() == 0
    assert await store.next_due_time() is None
    assert await store.list_checkins() == []
    assert await store.in_flight() == []
    conn = raw()
    assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.LATEST_VERSION >= 2
    assert conn.execute("PRAGMA application_id").fetchone()[0] == schema.APPLICATION_ID
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_files_are_0600_even_with_a_loose_umask(db: Path, clock: FakeClock) -> None:
    old = os.umask(0o022)  # the CLI's usual umask; the daemon has 0077
    try:
        for opener in ("sync", "async"):
            if db.exists():
                db.unlink()
            if opener == "sync":
                s: Any = SyncAsAsync(Store.open(db, clock=clock))
            else:
                s = await AsyncStore.open(db, clock=clock)
            await s.add_checkin(new())  # a write: the -wal and -shm files exist now
            for suffix in ("", "-wal", "-shm"):
                path = Path(f"{db}{suffix}")
                assert path.exists()
                assert path.stat().st_mode & 0o777 == 0o600, (opener, suffix)
            await s.aclose()
    finally:
        os.umask(old)


def test_existing_loose_db_is_tightened(db: Path) -> None:
    Store.open(db).close()
    db.chmod(0o644)
    with Store.open(db):
        assert db.stat().st_mode & 0o777 == 0o600


def test_empty_existing_file_is_initialised(db: Path) -> None:
    db.touch()
    with Store.open(db) as s:
        assert s.count_checkins() == 0
        assert s.add_checkin(new()).id == 1


def test_missing_directory_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot create"):
        Store.open(tmp_path / "nope" / "asched.db")


async def test_async_store_runs_everything_on_its_own_thread(db: Path, clock: FakeClock) -> None:
    async with await AsyncStore.open(db, clock=clock) as s:
        c = await s.add_checkin(new())
        await s.claim(c.id, T0, None)
        assert clock.threads == {"asched-store_0"}
        assert s.path == db
    await s.aclose()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        await s.count_checkins()


async def test_async_open_failure_leaves_no_thread(tmp_path: Path) -> None:
    before = {t.name for t in threading.enumerate()}
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"definitely not sqlite" * 10)
    with pytest.raises(StoreError):
        await AsyncStore.open(bad)
    time.sleep(0.05)
    assert {t.name for t in threading.enumerate()} - before == set()


# -- refusing what is not ours ---------------------------------------------------------------------


def test_newer_schema_is_refused_and_untouched(db: Path) -> None:
    with Store.open(db) as s:
        s.add_checkin(new())
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute(f"PRAGMA user_version = {schema.LATEST_VERSION + 5}")
    conn.close()
    before = sha256(db)
    for _ in range(2):
        with pytest.raises(StoreError) as err:
            Store.open(db)
        assert str(err.value) == (
            f"{db} was written by a newer asched (schema {schema.LATEST_VERSION + 5}, "
            f"this asched knows up to {schema.LATEST_VERSION}); not touching it"
        )
    assert sha256(db) == before
    assert not Path(f"{db}-wal").exists()  # not even opened by SQLite


def test_newer_schema_only_in_the_wal_is_refused_and_untouched(db: Path) -> None:
    # A newer asched that is still running (or crashed) may have its version bump only in the
    # WAL: the header looks fine, so the read-only and in-transaction checks must catch it.
    Store.open(db).close()
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("PRAGMA wal_autocheckpoint = 0")
    writer.execute(f"PRAGMA user_version = {schema.LATEST_VERSION + 1}")
    before = sha256(db)
    try:
        with pytest.raises(StoreError, match="newer asched"):
            Store.open(db)
        assert sha256(db) == before
    finally:
        writer.close()


@pytest.mark.parametrize(
    "content",
    [os.urandom(4096), b"hello, I am a text file\n", b"SQLite format 3\x00" + os.urandom(200)],
    ids=["random", "text", "fake-header"],
)
def test_non_sqlite_file_is_refused_and_untouched(db: Path, content: bytes) -> None:
    db.write_bytes(content)
    with pytest.raises(StoreError, match="not"):
        Store.open(db)
    assert db.read_bytes() == content


def test_foreign_sqlite_db_is_refused_and_untouched(db: Path) -> None:
    # The old scheduler's database: a plain SQLite file with its own table.
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE tasks (id INTEGER PRIMARY KEY, next_run TEXT, note TEXT)")
    conn.execute("INSERT INTO tasks (next_run, note) VALUES ('2026-01-01 10:00', 'hi')")
    conn.commit()
    conn.close()
    before = sha256(db)
    with pytest.raises(StoreError, match=r"not asched's \(tables: tasks\)"):
        Store.open(db)
    assert sha256(db) == before


def test_foreign_wal_db_is_refused_and_untouched(db: Path) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.close()
    before = sha256(db)
    with pytest.raises(StoreError, match="not asched's"):
        Store.open(db)
    assert sha256(db) == before


def test_other_application_id_is_refused_and_untouched(db: Path) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA application_id = 1234")
    conn.execute("CREATE TABLE checkins (x)")
    conn.close()
    before = sha256(db)
    with pytest.raises(StoreError, match="application_id 0x4d2"):
        Store.open(db)
    assert sha256(db) == before


def test_ours_without_tables_is_refused(db: Path) -> None:
    Store.open(db).close()
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("DROP TABLE deliveries")
    conn.close()
    with pytest.raises(StoreError, match="without tables deliveries"):
        Store.open(db)


# -- migrations ------------------------------------------------------------------------------------


def test_v1_database_migrates_to_latest_with_rows_intact(db: Path) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("BEGIN")
    for statement in schema.SCHEMA_V1:
        conn.execute(statement)
    conn.execute(f"PRAGMA application_id = {schema.APPLICATION_ID}")
    conn.execute("PRAGMA user_version = 1")
    conn.execute(
        "INSERT INTO checkins (key, target, message, kind, interval_s, anchor_ms, next_due_ms, "
        "grace_s, catch_up, jitter_s, remaining, paused, created_ms, updated_ms) "
        "VALUES ('k', 'work:1', 'every minute', 'every', 60, ?, ?, 30, 'skip', 1.5, 3, 0, ?, ?)",
        (to_ms(T0), to_ms(at(60)), to_ms(T0), to_ms(T0)),
    )
    conn.execute(
        "INSERT INTO deliveries (checkin_id, target, due_ms, state, started_ms) "
        "VALUES (1, 'work:1', ?, 'claimed', ?)",
        (to_ms(T0), to_ms(T0)),
    )
    conn.execute("COMMIT")
    conn.close()

    with Store.open(db) as s:
        c = s.get_by_key("k")
        assert c is not None
        assert (c.id, c.target, c.message, c.rule) == (1, "work:1", "every minute", Every(60, T0))
        assert (c.next_due, c.grace_s, c.catch_up, c.jitter_s) == (at(60), 30.0, CatchUp.SKIP, 1.5)
        assert (c.remaining, c.paused, c.origin) == (3, False, "user")
        assert [(d.checkin_id, d.state) for d in s.in_flight()] == [(1, S.CLAIMED)]
        # v2 is usable: a new row with another origin
        assert s.add_checkin(new(origin="config")).origin == "config"
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.LATEST_VERSION
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'index'")}
    assert "checkins_target" in indexes
    conn.close()
    with Store.open(db) as s:  # a second open finds nothing to do
        assert s.count_checkins() == 2


def test_a_failing_migration_changes_nothing(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    for statement in schema.SCHEMA_V1:
        conn.execute(statement)
    conn.execute(f"PRAGMA application_id = {schema.APPLICATION_ID}")
    conn.execute("PRAGMA user_version = 1")
    conn.close()
    broken = (schema.SCHEMA_V1, (*schema.SCHEMA_V2, "THIS IS NOT SQL"))
    monkeypatch.setattr(schema, "MIGRATIONS", broken)
    with pytest.raises(StoreError):
        Store.open(db)
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    columns = {r[1] for r in conn.execute("PRAGMA table_info(checkins)")}
    assert "origin" not in columns
    conn.close()


# -- check-ins -------------------------------------------------------------------------------------


async def test_add_and_get_round_trip(store: Any, clock: FakeClock) -> None:
    spec = new(
        rule=Cron("*/15 9-17 * * 1-5", "Europe/Berlin"),
        next_due=at(900),
        key="standup",
        grace_s=60,
        catch_up=CatchUp.ONCE,
        jitter_s=2.5,
        remaining=5,
        until=at(86400),
        origin="agent",
    )
    c = await store.add_checkin(spec)
    assert isinstance(c, CheckIn)
    assert c == await store.get_checkin(c.id) == await store.get_by_key("standup")
    assert (c.rule, c.next_due, c.last_due, c.key) == (spec.rule, at(900), None, "standup")
    assert (c.grace_s, c.catch_up, c.jitter_s, c.remaining) == (60.0, CatchUp.ONCE, 2.5, 5)
    assert (c.until, c.paused, c.origin) == (at(86400), False, "agent")
    assert c.created_at == c.updated_at == clock.now
    assert await store.get_checkin(c.id + 1) is None
    assert await store.get_by_key("nope") is None


async def test_list_orders_by_next_due_with_done_last(store: Any) -> None:
    late = await store.add_checkin(new(next_due=at(300)))
    done = await store.add_checkin(new(next_due=None))
    soon = await store.add_checkin(new(next_due=at(60), target="other:1"))
    tie = await store.add_checkin(new(next_due=at(300)))
    assert [c.id for c in await store.list_checkins()] == [soon.id, late.id, tie.id, done.id]
    assert [c.id for c in await store.list_checkins("other:1")] == [soon.id]
    assert await store.list_checkins("nobody") == []
    assert await store.count_checkins() == 4


async def test_key_replaces_in_place(store: Any, clock: FakeClock) -> None:
    first = await store.add_checkin(new(key="next", next_due=at(600), message="first"))
    await store.claim(first.id, at(600), None)
    other = await store.add_checkin(new(key="another"))
    clock.now = at(700)
    second = await store.add_checkin(
        new(
            key="next", target="work:2", message="second", rule=Every(60, at(900)), next_due=at(900)
        )
    )
    assert second.id == first.id  # same row, history stays in one place
    assert (second.target, second.message, second.rule) == ("work:2", "second", Every(60, at(900)))
    assert second.next_due == at(900)
    assert second.last_due is None  # reset by the replacement
    assert second.created_at == first.created_at
    assert second.updated_at == at(700)
    assert await store.count_checkins() == 2
    assert (await store.get_checkin(other.id)).key == "another"
    assert [d.checkin_id for d in await store.history(checkin_id=first.id)] == [first.id]


async def test_invalid_check_ins_are_usage_errors_and_write_nothing(store: Any) -> None:
    naive = datetime(2026, 1, 1, 12, 0)  # deliberately naive
    bad = [
        new(target=""),
        new(target="   "),
        new(message=""),
        new(key=""),
        new(origin=""),
        new(next_due=naive),
        new(rule=Once(naive)),
        new(rule=Every(0, T0)),
        new(rule=Every(-5, T0)),
        new(rule=Cron("", "UTC")),
        new(rule=Cron("* * * * *", "")),
        new(grace_s=-1),
        new(jitter_s=float("nan")),
        new(grace_s=float("inf")),
        new(remaining=-1),
        new(remaining=0),  # nothing left but still a next due time
        new(next_due=at(100), until=at(50)),
        new(next_due=datetime(1970, 1, 21, tzinfo=UTC)),  # seconds taken for milliseconds
    ]
    for spec in bad:
        with pytest.raises(UsageError):
            await store.add_checkin(spec)
    with pytest.raises(UsageError):
        await store.add_many([new(), new(target="")])  # all or nothing
    assert await store.count_checkins() == 0


async def test_remove_keeps_history(store: Any) -> None:
    a = await store.add_checkin(new(rule=Every(60, T0), key="a"))
    b = await store.add_checkin(new())
    d = await store.claim(a.id, T0, at(60))
    assert await store.remove_checkin(a.id) is True
    assert await store.remove_checkin(a.id) is False
    assert await store.get_checkin(a.id) is None
    assert await store.remove_by_key("a") is False
    assert [h.id for h in await store.history(checkin_id=a.id)] == [d.id]
    assert [h.id for h in await store.history(target="work:1")] == [d.id]
    # the in-flight delivery can still record how it ended
    assert (await store.transition(d.id, S.FAILED, reason="check-in removed")).state == S.FAILED
    # ids are never reused, so old journal rows never describe a new check-in
    c = await store.add_checkin(new())
    assert c.id > b.id
    assert await store.remove_by_key("nope") is False
    k = await store.add_checkin(new(key="k"))
    assert await store.remove_by_key("k") is True
    assert await store.get_checkin(k.id) is None


async def test_pause_and_resume(store: Any, clock: FakeClock) -> None:
    a = await store.add_checkin(new(next_due=at(10)))
    b = await store.add_checkin(new(next_due=at(20)))
    c = await store.add_checkin(new(next_due=at(5), target="other:1"))
    clock.now = at(1)
    assert await store.set_paused(c.id, True) is True
    assert await store.set_paused(c.id, True) is True  # idempotent
    assert await store.set_paused(9999, True) is False
    got = await store.get_checkin(c.id)
    assert got.paused and got.updated_at == at(1)
    assert await store.next_due_time() == at(10)
    assert [x.id for x in await store.due_checkins(at(100))] == [a.id, b.id]
    assert await store.claim(c.id, at(5), None) is None  # a paused check-in is not claimed
    assert await store.set_paused_for_target("work:1", True) == 2
    assert await store.next_due_time() is None
    assert await store.due_checkins(at(100)) == []
    assert await store.set_paused_for_target("nobody", True) == 0
    assert await store.set_paused(c.id, False) is True
    assert await store.next_due_time() == at(5)  # resuming keeps next_due: the misfire policy
    assert await store.set_paused_for_target("work:1", False) == 2
    assert [x.id for x in await store.due_checkins(at(100))] == [c.id, a.id, b.id]


async def test_due_and_next_due(store: Any) -> None:
    ids = [(await store.add_checkin(new(next_due=at(s)))).id for s in (30, 10, 20, 40)]
    await store.add_checkin(new(next_due=None))
    assert await store.next_due_time() == at(10)
    assert [c.id for c in await store.due_checkins(at(20))] == [ids[1], ids[2]]  # <= now
    assert [c.id for c in await store.due_checkins(at(100), limit=3)] == [ids[1], ids[2], ids[0]]
    assert await store.due_checkins(at(9)) == []
    with pytest.raises(ValueError, match="limit"):
        await store.due_checkins(at(9), limit=0)


# -- claiming --------------------------------------------------------------------------------------


async def test_claim_journals_and_advances_atomically(store: Any, clock: FakeClock) -> None:
    c = await store.add_checkin(new(rule=Every(60, T0), key="m"))
    clock.now = at(2)
    d = await store.claim(c.id, T0, at(60), late=True)
    assert d is not None
    assert (d.checkin_id, d.due_at, d.state, d.late, d.attempts) == (c.id, T0, S.CLAIMED, True, 0)
    assert (d.started_at, d.finished_at, d.reason, d.pane) == (at(2), None, None, None)
    after = await store.get_checkin(c.id)
    assert (after.next_due, after.last_due, after.updated_at) == (at(60), T0, at(2))
    assert await store.in_flight() == [d]
    assert await store.get_delivery(d.id) == d
    assert await store.get_delivery(d.id + 1) is None
    # the same occurrence again: already taken (next_due moved on), nothing written
    assert await store.claim(c.id, T0, at(60)) is None
    assert await store.claim(c.id, T0, at(120)) is None
    assert (await store.get_checkin(c.id)).next_due == at(60)
    assert len(await store.history()) == 1
    # a stale view of a check-in that was edited meanwhile
    assert await store.claim(c.id, at(30), at(90)) is None
    assert await store.claim(9999, T0, None) is None


async def test_claim_is_idempotent_per_occurrence_across_a_key_replacement(store: Any) -> None:
    c = await store.add_checkin(new(key="next"))
    assert await store.claim(c.id, T0, None) is not None
    again = await store.add_checkin(new(key="next", rule=Every(60, T0)))  # same id, same T0
    assert again.id == c.id
    assert await store.claim(c.id, T0, at(60)) is None  # that occurrence was delivered already
    after = await store.get_checkin(c.id)
    assert after.next_due == at(60)  # but it moves on, so the scheduler cannot spin on it
    assert len(await store.history(checkin_id=c.id)) == 1
    assert await store.claim(c.id, at(60), at(120)) is not None


async def test_one_shot_is_done_after_its_claim(store: Any) -> None:
    c = await store.add_checkin(new())
    assert await store.claim(c.id, T0, None) is not None
    done = await store.get_checkin(c.id)
    assert (done.next_due, done.last_due) == (None, T0)  # kept, visible as done
    assert await store.next_due_time() is None
    assert await store.due_checkins(at(10**6)) == []
    assert [x.id for x in await store.list_checkins()] == [c.id]


async def test_claim_counts_down_and_stops(store: Any) -> None:
    c = await store.add_checkin(new(rule=Every(60, T0), remaining=2))
    await store.claim(c.id, T0, at(60))
    assert (await store.get_checkin(c.id)).remaining == 1
    # the caller computed a next occurrence, but the count ran out: done regardless
    await store.claim(c.id, at(60), at(120), state=S.SKIPPED, reason="missed")
    done = await store.get_checkin(c.id)
    assert (done.remaining, done.next_due) == (0, None)
    # explicit remaining, and unlimited stays unlimited
    u = await store.add_checkin(new(rule=Every(60, T0)))
    await store.claim(u.id, T0, at(60))
    assert (await store.get_checkin(u.id)).remaining is None
    await store.claim(u.id, at(60), at(120), remaining=7)
    assert (await store.get_checkin(u.id)).remaining == 7
    with pytest.raises(ValueError, match="remaining"):
        await store.claim(u.id, at(120), at(180), remaining=-1)


async def test_claim_stops_at_until(store: Any) -> None:
    c = await store.add_checkin(new(rule=Every(60, T0), until=at(90)))
    await store.claim(c.id, T0, at(60))
    await store.claim(c.id, at(60), at(120))
    assert (await store.get_checkin(c.id)).next_due is None


async def test_claim_as_skipped_or_failed_is_final(store: Any, clock: FakeClock) -> None:
    c = await store.add_checkin(new(rule=Every(60, T0)))
    clock.now = at(3600)
    d = await store.claim(c.id, T0, at(3660), state=S.SKIPPED, reason="missed by 1h", late=True)
    assert (d.state, d.reason, d.late, d.finished_at) == (S.SKIPPED, "missed by 1h", True, at(3600))
    assert await store.in_flight() == []
    f = await store.claim(c.id, at(3660), at(3720), state=S.FAILED, reason="target gone")
    assert f.state == S.FAILED
    with pytest.raises(ValueError, match="reason"):
        await store.claim(c.id, at(3720), at(3780), state=S.SKIPPED)
    with pytest.raises(ValueError, match="claim starts"):
        await store.claim(c.id, at(3720), at(3780), state=S.TYPING)


async def test_claim_refuses_a_next_due_that_does_not_move_forward(store: Any) -> None:
    # docs/OLD-SCHEDULER.md, failure 1: a one-shot rescheduled at now+0, delivered forever.
    c = await store.add_checkin(new(rule=Every(60, T0)))
    for bad in (T0, at(-60)):
        with pytest.raises(ValueError, match="later than"):
            await store.claim(c.id, T0, bad)
    assert (await store.get_checkin(c.id)).next_due == T0
    assert await store.history() == []


async def test_reschedule_is_optimistic(store: Any) -> None:
    c = await store.add_checkin(new(rule=Every(60, T0), next_due=at(600), until=at(700)))
    assert await store.reschedule(c.id, at(600), at(120)) is True
    assert (await store.get_checkin(c.id)).next_due == at(120)
    assert await store.reschedule(c.id, at(600), at(60)) is False  # stale expectation
    assert await store.reschedule(9999, at(120), at(60)) is False
    assert await store.reschedule(c.id, at(120), at(800)) is True  # past until: done
    assert (await store.get_checkin(c.id)).next_due is None
    assert await store.history() == []


async def test_prune_finished(store: Any, clock: FakeClock) -> None:
    old = await store.add_checkin(new())
    await store.claim(old.id, T0, None, state=S.SKIPPED, reason="missed")  # done, journaled
    busy = await store.add_checkin(new())
    d = await store.claim(busy.id, T0, None)  # done but still in flight
    live = await store.add_checkin(new(next_due=at(60)))
    clock.now = at(10)
    fresh = await store.add_checkin(new(next_due=None))  # done, but changed after the cut-off
    assert await store.prune_finished(at(5)) == 1
    assert {c.id for c in await store.list_checkins()} == {busy.id, live.id, fresh.id}
    assert len(await store.history()) == 2
    await store.transition(d.id, S.FAILED, reason="gone")
    assert await store.prune_finished(at(5)) == 1


# -- the delivery state machine --------------------------------------------------------------------


async def test_happy_path_transitions(store: Any, clock: FakeClock) -> None:
    c = await store.add_checkin(new())
    d = await store.claim(c.id, T0, None)
    d = await store.transition(d.id, S.CLAIMED, reason="pane not found", attempt=True)
    assert (d.state, d.attempts, d.reason) == (S.CLAIMED, 1, "pane not found")
    d = await store.transition(d.id, S.TYPING, pane="%3", attempt=True)
    assert (d.state, d.attempts, d.reason, d.pane) == (S.TYPING, 2, None, "%3")
    d = await store.transition(d.id, S.TYPED)
    assert d.pane == "%3"  # kept once set
    d = await store.transition(d.id, S.SUBMITTED)
    assert d.finished_at is None and await store.in_flight() == [d]
    clock.now = at(5)
    d = await store.transition(d.id, S.VERIFIED)
    assert (d.state, d.finished_at) == (S.VERIFIED, at(5))
    assert await store.in_flight() == []
    assert await store.history() == [d]


@pytest.mark.parametrize(
    ("path", "illegal"),
    [
        ([], S.TYPED),  # claimed -> typed skips typing
        ([], S.SUBMITTED),
        ([], S.VERIFIED),
        ([], S.UNVERIFIED),
        ([S.TYPING], S.CLAIMED),  # backwards
        ([S.TYPING], S.TYPING),
        ([S.TYPING], S.VERIFIED),
        ([S.TYPING, S.TYPED], S.TYPING),
        ([S.TYPING, S.TYPED, S.SUBMITTED], S.TYPED),
        ([S.TYPING, S.TYPED, S.SUBMITTED, S.VERIFIED], S.UNVERIFIED),  # out of a final state
        ([S.TYPING, S.TYPED, S.SUBMITTED, S.UNVERIFIED], S.VERIFIED),
        ([S.TYPING, S.UNVERIFIED], S.FAILED),
    ],
)
async def test_illegal_transitions_are_refused(
    store: Any, path: list[DeliveryState], illegal: DeliveryState
) -> None:
    c = await store.add_checkin(new())
    d = await store.claim(c.id, T0, None)
    for state in path:
        d = await store.transition(d.id, state)
    with pytest.raises(ValueError, match="illegal transition"):
        await store.transition(d.id, illegal, reason="x")
    assert await store.get_delivery(d.id) == d  # unchanged


@pytest.mark.parametrize(
    "path", [[], [S.TYPING], [S.TYPING, S.TYPED], [S.TYPING, S.TYPED, S.SUBMITTED]]
)
@pytest.mark.parametrize("end", [S.FAILED, S.SKIPPED])
async def test_failed_or_skipped_from_any_live_state(
    store: Any, path: list[DeliveryState], end: DeliveryState
) -> None:
    c = await store.add_checkin(new())
    d = await store.claim(c.id, T0, None)
    for state in path:
        d = await store.transition(d.id, state)
    with pytest.raises(ValueError, match="needs a reason"):
        await store.transition(d.id, end)
    d = await store.transition(d.id, end, reason="tmux timed out")
    assert (d.state, d.reason) == (end, "tmux timed out")
    assert d.finished_at is not None
    with pytest.raises(ValueError, match="illegal"):
        await store.transition(d.id, S.FAILED, reason="again")


@pytest.mark.parametrize("path", [[S.TYPING], [S.TYPING, S.TYPED]])
async def test_back_to_claimed_only_when_the_server_was_lost(
    store: Any, path: list[DeliveryState]
) -> None:
    c = await store.add_checkin(new())
    d = await store.claim(c.id, T0, None)
    for state in path:
        d = await store.transition(d.id, state)
    with pytest.raises(ValueError, match="illegal transition"):
        await store.transition(d.id, S.CLAIMED, reason="timeout", attempt=True)
    d = await store.transition(d.id, S.CLAIMED, reason=SERVER_LOST, attempt=True)
    assert (d.state, d.reason, d.attempts) == (S.CLAIMED, SERVER_LOST, 1)
    # Claimed again, it may be typed again (and only from there).
    assert (await store.transition(d.id, S.TYPING)).state == S.TYPING


async def test_typing_or_typed_may_end_unverified(store: Any) -> None:
    c = await store.add_checkin(new(rule=Every(60, T0)))
    a = await store.claim(c.id, T0, at(60))
    await store.transition(a.id, S.TYPING)
    assert (await store.transition(a.id, S.UNVERIFIED, reason="crashed")).state == S.UNVERIFIED
    b = await store.claim(c.id, at(60), at(120))
    await store.transition(b.id, S.TYPING)
    await store.transition(b.id, S.TYPED)
    assert (await store.transition(b.id, S.UNVERIFIED)).state == S.UNVERIFIED


async def test_unknown_delivery_is_not_found(store: Any) -> None:
    with pytest.raises(NotFoundError):
        await store.transition(42, S.TYPING)


async def test_history_filters_and_order(store: Any) -> None:
    a = await store.add_checkin(new(rule=Every(60, T0)))
    b = await store.add_checkin(new(rule=Every(60, T0), target="other:1"))
    for i in range(3):
        await store.claim(a.id, at(60 * i), at(60 * (i + 1)))
        await store.claim(b.id, at(60 * i), at(60 * (i + 1)))
    everything = await store.history()
    assert [d.due_at for d in everything] == [at(120)] * 2 + [at(60)] * 2 + [T0] * 2
    assert [d.checkin_id for d in everything[:2]] == [b.id, a.id]  # newest first, ties by id
    assert [d.due_at for d in await store.history(checkin_id=a.id)] == [at(120), at(60), T0]
    assert {d.checkin_id for d in await store.history(target="other:1")} == {b.id}
    assert await store.history(checkin_id=a.id, target="other:1") == []
    assert len(await store.history(limit=4)) == 4
    with pytest.raises(ValueError, match="limit"):
        await store.history(limit=0)


def test_no_method_leaves_a_transaction_open(db: Path, raw: Any) -> None:
    with Store.open(db) as s:
        c = s.add_checkin(new())
        d = s.claim(c.id, T0, None)
        with pytest.raises(ValueError, match="illegal"):
            s.transition(d.id, S.VERIFIED)
        with pytest.raises(UsageError):
            s.add_checkin(new(target=""))
        assert not s._conn.in_transaction
        other = raw()
        other.execute("PRAGMA busy_timeout = 0")
        other.execute("BEGIN IMMEDIATE")  # would fail at once if the store still held the lock
        other.execute("ROLLBACK")


# -- CHECK constraints against raw writes (docs/OLD-SCHEDULER.md, failure 10) --------------------


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE checkins SET next_due_ms = '2026-01-01'",
        "UPDATE checkins SET next_due_ms = '2026-01-01 10:00:00'",
        "UPDATE checkins SET next_due_ms = 1767225600",  # seconds, not milliseconds
        "UPDATE checkins SET next_due_ms = 1767225600000000",  # microseconds
        "UPDATE checkins SET next_due_ms = 1767225600000.5",
        "UPDATE checkins SET last_due_ms = 'yesterday'",
        "UPDATE checkins SET target = ''",
        "UPDATE checkins SET target = NULL",
        "UPDATE checkins SET message = ''",
        "UPDATE checkins SET kind = 'hourly'",
        "UPDATE checkins SET kind = 'every'",  # every without interval and anchor
        "UPDATE checkins SET kind = 'cron'",
        "UPDATE checkins SET at_ms = NULL",  # once without its time
        "UPDATE checkins SET interval_s = 60",  # once with an interval
        "UPDATE checkins SET grace_s = -1",
        "UPDATE checkins SET grace_s = 'long'",
        "UPDATE checkins SET jitter_s = -0.5",
        "UPDATE checkins SET catch_up = 'all'",
        "UPDATE checkins SET paused = 2",
        "UPDATE checkins SET paused = 'yes'",
        "UPDATE checkins SET remaining = -1",
        "UPDATE checkins SET remaining = 0",  # exhausted but still has a next due time
        "UPDATE checkins SET until_ms = next_due_ms - 1",
        "UPDATE checkins SET key = ''",
        "UPDATE checkins SET origin = ''",
        "INSERT INTO checkins (target, message, kind, interval_s, anchor_ms, grace_s, "
        "catch_up, jitter_s, created_ms, updated_ms) "
        "VALUES ('w', 'm', 'every', 0, 1767225600000, 0, 'skip', 0, 0, 0)",
        "UPDATE deliveries SET state = 'done'",
        "UPDATE deliveries SET state = 'failed'",  # failed needs a reason and finished_ms
        "UPDATE deliveries SET finished_ms = 1",  # finished but still claimed
        "UPDATE deliveries SET late = 3",
        "UPDATE deliveries SET attempts = -1",
        "UPDATE deliveries SET due_ms = '2026-01-01'",
        "INSERT INTO deliveries (checkin_id, target, due_ms, state, started_ms) "
        "VALUES (999, 'w', 1767225600000, 'claimed', 0)",  # no such check-in
        "INSERT INTO deliveries (checkin_id, target, due_ms, state, started_ms) "
        "SELECT checkin_id, target, due_ms, 'claimed', 0 FROM deliveries",  # duplicate
    ],
)
def test_check_constraints_reject_bad_rows(db: Path, raw: Any, sql: str) -> None:
    with Store.open(db) as s:
        c = s.add_checkin(new())
        s.claim(c.id, T0, None)
        s.add_checkin(new(next_due=at(60)))
    conn = raw()
    before = conn.execute("SELECT * FROM checkins").fetchall()
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute(sql)
    assert conn.execute("SELECT * FROM checkins").fetchall() == before


def test_a_final_delivery_cannot_be_rewritten_even_by_hand(db: Path, raw: Any) -> None:
    with Store.open(db) as s:
        c = s.add_checkin(new())
        d = s.claim(c.id, T0, None, state=S.SKIPPED, reason="missed")
    with pytest.raises(sqlite3.IntegrityError, match="final state"):
        raw().execute("UPDATE deliveries SET state = 'claimed', finished_ms = NULL")
    with Store.open(db) as s:
        assert s.get_delivery(d.id) == d


ROUTES = {
    S.CLAIMED: [],
    S.TYPING: [S.TYPING],
    S.TYPED: [S.TYPING, S.TYPED],
    S.SUBMITTED: [S.TYPING, S.TYPED, S.SUBMITTED],
    S.VERIFIED: [S.TYPING, S.TYPED, S.SUBMITTED, S.VERIFIED],
    S.UNVERIFIED: [S.TYPING, S.UNVERIFIED],
    S.FAILED: [S.FAILED],
    S.SKIPPED: [S.SKIPPED],
}


def test_every_delivery_state_is_storable(db: Path) -> None:
    # A new DeliveryState needs a migration of the deliveries CHECK: this test will say so.
    assert set(ROUTES) == set(DeliveryState)
    with Store.open(db) as s:
        c = s.add_checkin(new(rule=Every(60, T0)))
        for i, (state, route) in enumerate(ROUTES.items()):
            d = s.claim(c.id, at(60 * i), at(60 * i + 60))
            for step in route:
                d = s.transition(d.id, step, reason="r")
            assert s.get_delivery(d.id).state is state


@pytest.mark.parametrize("reason", [None, "r", SERVER_LOST, PANE_REPLACED])
def test_the_store_allows_exactly_the_moves_of_the_state_machine(
    db: Path, reason: str | None
) -> None:
    # Every (from, to) pair against asched.core.states, the one definition; the DDL's trigger and
    # CHECKs must not refuse a move the state machine allows.
    with Store.open(db) as s:
        c = s.add_checkin(new(rule=Every(60, T0)))
        slot = 0
        for current, route in ROUTES.items():
            for target in DeliveryState:
                d = s.claim(c.id, at(60 * slot), at(60 * slot + 60))
                slot += 1
                for step in route:
                    d = s.transition(d.id, step, reason="r")
                legal = target in allowed_next(current, reason)
                if legal and not (needs_reason(target) and not reason):
                    assert s.transition(d.id, target, reason=reason).state is target
                else:
                    with pytest.raises(ValueError, match=r"illegal transition|needs a reason"):
                        s.transition(d.id, target, reason=reason)
                    assert s.get_delivery(d.id) == d


# The journal's state lists as released in schema v1, spelled out: the DDL generates them from
# asched.core.states, and released DDL is frozen (existing databases keep it in sqlite_schema).
# If this fails, a state changed: that needs a migration step, not an edit of these literals.
RELEASED_STATE_SQL = [
    """        state       TEXT NOT NULL CHECK (state IN ('claimed', 'typing', 'typed', 'submitted',
                    'verified', 'unverified', 'failed', 'skipped')),""",
    """        CONSTRAINT finished_iff_final CHECK ((finished_ms IS NULL)
            = (state IN ('claimed', 'typing', 'typed', 'submitted'))),
        CONSTRAINT failure_has_reason CHECK (state NOT IN ('failed', 'skipped')
            OR length(reason) > 0)""",
    "    WHEN OLD.state IN ('verified', 'unverified', 'failed', 'skipped')"
    " AND NEW.state IS NOT OLD.state",
    """    CREATE INDEX deliveries_in_flight ON deliveries (id)
    WHERE state IN ('claimed', 'typing', 'typed', 'submitted')""",
]
# sha256 of every released migration statement, joined by "\n--\n" (schema 3, as released).
RELEASED_MIGRATIONS_SHA256 = "7c05f576e6f8dd137bc6118385ac4e111d5680d81b0787023604be52dadeebda"


def test_the_generated_state_sql_is_the_released_text(db: Path, raw: Any) -> None:
    assert schema.IN_FLIGHT_WHERE == " WHERE state IN ('claimed', 'typing', 'typed', 'submitted')"
    v1 = "\n".join(schema.SCHEMA_V1)
    for fragment in RELEASED_STATE_SQL:
        assert fragment in v1
    joined = "\n--\n".join(sql for step in schema.MIGRATIONS[:3] for sql in step)
    assert hashlib.sha256(joined.encode()).hexdigest() == RELEASED_MIGRATIONS_SHA256
    with Store.open(db):
        pass
    stored = "\n".join(
        r[0] for r in raw().execute("SELECT sql FROM sqlite_schema WHERE sql IS NOT NULL")
    )
    for fragment in RELEASED_STATE_SQL:
        assert fragment.strip() in stored


def test_milliseconds_round_trip_over_the_whole_range() -> None:
    rng = random.Random(7)
    for ms in [rows.MIN_MS, rows.MAX_MS] + [
        rng.randrange(rows.MIN_MS, rows.MAX_MS) for _ in range(20000)
    ]:
        assert to_ms(from_ms(ms)) == ms


# -- scale and concurrency -------------------------------------------------------------------------


def test_100k_check_ins_stay_fast(db: Path, raw: Any) -> None:
    rng = random.Random(1)
    now = at(0)
    specs = [
        new(
            target=f"s{i % 50}:{i % 7}",
            rule=Every(60 + i % 3600, T0),
            next_due=at(rng.randrange(-300, 30 * 86400)),
            paused=i % 10 == 0,
        )
        for i in range(100_000)
    ]
    with Store.open(db) as s:
        started = time.perf_counter()
        assert s.add_many(specs) == 100_000
        insert_s = time.perf_counter() - started
        assert s.count_checkins() == 100_000

        traced: list[str] = []
        s._conn.set_trace_callback(traced.append)
        started = time.perf_counter()
        first = s.next_due_time()
        next_s = time.perf_counter() - started
        started = time.perf_counter()
        due = s.due_checkins(now)
        due_s = time.perf_counter() - started
        c = due[0]
        s.claim(c.id, c.next_due, now + timedelta(days=60))
        s.in_flight()
        s.history(checkin_id=c.id)
        s.history(target=c.target)
        s.history()
        s.list_checkins(c.target)
        s._conn.set_trace_callback(None)

        expected = min(x.next_due for x in specs if not x.paused and x.next_due is not None)
        assert first == expected
        assert 0 < len(due) <= 1000
        assert all(not x.paused and x.next_due <= now for x in due)
        assert next_s < 0.5 and due_s < 0.5, (next_s, due_s)
        assert insert_s < 15, insert_s
    # every hot query is an index search, never a full table scan
    reads = [sql for sql in traced if sql.lstrip().upper().startswith("SELECT")]
    for line in plans(raw(), reads):
        assert not (line.startswith("SCAN") and "INDEX" not in line), line


WORKER = """
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from asched.core.models import NewCheckIn, Once
from asched.store.store import Store

path, worker, count = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
t0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
with Store.open(path) as store:
    for i in range(count):
        due = t0 + timedelta(milliseconds=worker * 1000 + i)
        store.add_checkin(NewCheckIn(f"w{worker}:1", f"message {i}", Once(due), due))
"""


def _run_workers(db: Path, workers: int, count: int) -> list[subprocess.CompletedProcess[str]]:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(db), str(w), str(count)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(workers)
    ]
    done = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        done.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    return done


def test_concurrent_writers_never_see_database_is_locked(db: Path) -> None:
    with Store.open(db) as s:  # exists and is migrated before the race starts
        s.add_checkin(new(next_due=at(-1)))

    stop = threading.Event()
    claimed: list[int] = []
    errors: list[BaseException] = []

    def claimer() -> None:  # the daemon: claims and journals while the CLI processes add
        try:
            with Store.open(db) as daemon:
                while True:
                    finished = stop.is_set()
                    for c in daemon.due_checkins(at(3600)):
                        d = daemon.claim(c.id, c.next_due, None)
                        if d is not None:
                            daemon.transition(d.id, S.TYPING)
                            claimed.append(c.id)
                    if finished:
                        return
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=claimer)
    thread.start()
    try:
        results = _run_workers(db, workers=8, count=50)
    finally:
        stop.set()
        thread.join(timeout=30)
    for r in results:
        assert r.returncode == 0 and r.stderr == "", r.stderr
    assert errors == []
    with Store.open(db) as s:
        assert s.count_checkins() == 401
        assert len(set(claimed)) == len(claimed) == 401  # each occurrence claimed exactly once
        assert len(s.in_flight()) == 401
        assert s.due_checkins(at(3600)) == []


def test_concurrent_first_opens_of_a_fresh_db(db: Path) -> None:
    results = _run_workers(db, workers=8, count=5)
    for r in results:
        assert r.returncode == 0 and r.stderr == "", r.stderr
    with Store.open(db) as s:
        assert s.count_checkins() == 40
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.LATEST_VERSION
    conn.close()


async def test_async_store_serves_concurrent_tasks(db: Path) -> None:
    async with await AsyncStore.open(db) as s:
        added = await asyncio.gather(*(s.add_checkin(new(next_due=at(i))) for i in range(50)))
        assert len({c.id for c in added}) == 50
        results = await asyncio.gather(*(s.claim(c.id, c.next_due, None) for c in added * 2))
        assert sum(r is not None for r in results) == 50  # each occurrence once


def test_mark_typing_refuses_rows_that_are_not_claimed(db: Path) -> None:
    with Store.open(db) as s:
        now = datetime.now(UTC)
        mine = s.add_claimed(new(), now)[1]
        theirs = s.add_claimed(new(), now)[1]
        s.transition(theirs.id, S.TYPING, pane="%1")
        assert s.mark_typing([(mine.id, "%2"), (theirs.id, "%2")]) == {theirs.id: "not-claimed"}
        got = s.get_delivery(mine.id)
        assert got is not None and (got.state, got.pane) == (S.TYPING, "%2")
        other = s.get_delivery(theirs.id)
        assert other is not None and other.pane == "%1"  # untouched


def test_mark_typing_skips_rows_of_paused_or_removed_checkins(db: Path) -> None:
    # A pause or an rm that lands while an occurrence waits (for its due time, a budget, a frozen
    # server) stops it at the commit to "typing": the row ends skipped, and nothing is typed.
    with Store.open(db) as s:
        rows = {}
        for name in ("kept", "paused", "removed"):
            c = s.add_checkin(new(message=name, next_due=at(0)))
            d = s.claim(c.id, at(0), None)
            assert d is not None
            rows[name] = (c, d)
        s.set_paused(rows["paused"][0].id, True)
        s.remove_checkin(rows["removed"][0].id)
        ids = [(d.id, "%1") for _c, d in rows.values()]
        assert s.mark_typing(ids) == {
            rows["paused"][1].id: "paused",
            rows["removed"][1].id: "removed",
        }
        got = {name: s.get_delivery(d.id) for name, (_c, d) in rows.items()}
        assert {n: (g.state, g.reason) for n, g in got.items() if g} == {
            "kept": (S.TYPING, None),
            "paused": (S.SKIPPED, "paused"),
            "removed": (S.SKIPPED, "removed"),
        }
        assert all(
            g is not None and g.finished_at is not None for n, g in got.items() if n != "kept"
        )


def test_a_checkin_with_an_occurrence_in_flight_is_not_due_again(db: Path) -> None:
    # One occurrence at a time: while one is held up, the next slot waits (and is not offered as
    # the next wake-up either, or the loop would spin on it); it is due again once that one ends.
    with Store.open(db) as s:
        c = s.add_checkin(new(rule=Every(60, at(0)), next_due=at(0)))
        other = s.add_checkin(new(message="other", next_due=at(30)))
        d = s.claim(c.id, at(0), at(60))
        assert d is not None
        assert [x.id for x in s.due_checkins(at(90))] == [other.id]
        assert s.next_due_time() == at(30)
        s.transition(d.id, S.TYPING, pane="%1")
        assert [x.id for x in s.due_checkins(at(90))] == [other.id]
        s.transition(d.id, S.UNVERIFIED, reason="paste: timeout")
        assert [x.id for x in s.due_checkins(at(90))] == [other.id, c.id]
        assert s.next_due_time() == at(30)


def test_a_late_paste_marks_the_row_late_and_never_unmarks_it(db: Path) -> None:
    with Store.open(db) as s:
        c = s.add_checkin(new(next_due=at(0)))
        d = s.claim(c.id, at(0), None)
        assert d is not None and not d.late
        s.transition(d.id, S.TYPING, pane="%1")
        assert s.transition(d.id, S.TYPED, late=True).late
        assert s.transition(d.id, S.SUBMITTED).late
