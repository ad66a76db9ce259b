"""The one data-access layer for the CLI and the daemon: the schedule and the delivery journal.

:class:`Store` is synchronous and thread-bound (the CLI uses it directly). :class:`AsyncStore` runs
a Store on one dedicated thread so that a slow fsync never stalls the daemon's event loop.

Every write is one short ``BEGIN IMMEDIATE`` transaction and no method leaves a transaction open:
the delivery engine calls tmux between two journal transitions, and a transaction held across that
would make every other writer wait (the old scheduler's "database is locked"). WAL lets readers
proceed during a write; the busy timeout makes concurrent writers queue instead of failing.

Decisions worth knowing (see also :mod:`asched.schema`):

* Adding with a ``key`` that exists replaces that check-in in place: same id and created time, every
  other field overwritten, ``last_due`` reset. The id stays so that ``history ID`` of a "replace my
  next check-in" chain stays in one place.
* An occurrence ``(check-in id, generation, due time)`` is journaled at most once, ever, even
  across a key replacement that happens to reuse a due time that was already delivered. The
  generation moves on only when :meth:`Store.reschedule` re-bases after a backward clock jump.
* A check-in whose rule is exhausted (one-shot delivered, count used up, past ``until``) stays
  as a row with ``next_due`` NULL: ``ls`` shows it as done; :meth:`Store.prune_finished` drops
  old ones.
* Removing a check-in keeps its journal rows (no cascade); their ``target`` is recorded on the row.
"""

from __future__ import annotations

import contextlib
import enum
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal, Self

from asched.core.errors import NotFoundError, StoreError, StoreReplaced, UsageError
from asched.core.models import (
    NOT_CLAIMED,
    PAUSED,
    REMOVED,
    TEXT_LOST,
    CheckIn,
    Delivery,
    DeliveryState,
    NewCheckIn,
    from_ms,
    to_ms,
)
from asched.store import schema
from asched.store.schema import (
    IN_FLIGHT_WHERE,
    SELECT_CHECKINS,
    SELECT_DELIVERIES,
    UPSERT_CHECKIN,
    checkin_from_row,
    checkin_params,
    delivery_from_row,
    time_ms,
)

BUSY_TIMEOUT_MS: Final = 5000
Clock = Callable[[], datetime]


# Legal moves of the delivery state machine. Staying in CLAIMED is allowed to record a failed
# attempt before typing (retried with backoff). TYPING/TYPED may end UNVERIFIED: after a crash the
# pane may not tell whether the text went through, and "unknown" must never lead to a re-type.
_NEXT: Final[dict[DeliveryState, frozenset[DeliveryState]]] = {
    DeliveryState.CLAIMED: frozenset({DeliveryState.CLAIMED, DeliveryState.TYPING}),
    DeliveryState.TYPING: frozenset({DeliveryState.TYPED, DeliveryState.UNVERIFIED}),
    DeliveryState.TYPED: frozenset({DeliveryState.SUBMITTED, DeliveryState.UNVERIFIED}),
    # submitted -> submitted: one more Enter for a swallowed one (reason "enter-again").
    DeliveryState.SUBMITTED: frozenset(
        {DeliveryState.SUBMITTED, DeliveryState.VERIFIED, DeliveryState.UNVERIFIED}
    ),
}
_ABORT_STATES: Final = frozenset({DeliveryState.FAILED, DeliveryState.SKIPPED})
# The one way back: typing or typed -> claimed, and only with a TEXT_LOST reason, when the tmux
# server or the pane's program went away before the Enter and took the text along (delivery.py).
_BACK_TO_CLAIMED: Final = frozenset({DeliveryState.TYPING, DeliveryState.TYPED})
_CLAIM_STATES: Final = frozenset({DeliveryState.CLAIMED, *_ABORT_STATES})
# The upsert's own INSERT with "keep the existing row" instead of "replace it", derived from it
# so that the two statements can never list different columns.
_INSERT_NEW: Final = UPSERT_CHECKIN.partition("ON CONFLICT")[0] + "ON CONFLICT (key) DO NOTHING"


class _Default(enum.Enum):
    DECREMENT = "decrement"


DECREMENT: Final = _Default.DECREMENT
"""Default of ``claim(remaining=...)``: one occurrence less, unless the count is unlimited."""


@dataclass(frozen=True, slots=True)
class Claim:
    """One occurrence to claim; the arguments of :meth:`Store.claim` as data."""

    checkin_id: int
    due_at: datetime
    next_due: datetime | None
    state: DeliveryState = DeliveryState.CLAIMED
    reason: str | None = None
    late: bool = False
    remaining: int | Literal[_Default.DECREMENT] | None = DECREMENT


_Prepared = tuple[
    int,
    int,
    int | None,
    DeliveryState,
    str | None,
    bool,
    int | Literal[_Default.DECREMENT] | None,
]


def _system_clock() -> datetime:
    return datetime.now(UTC)


def _enable_wal(conn: sqlite3.Connection) -> str:
    """``PRAGMA journal_mode = WAL``, retried while another connection holds the fresh file.

    Switching to WAL needs the file to itself for a moment, and SQLite answers "database is
    locked" at once, without its busy handler, when another process is opening the same fresh
    database (seen 1 in about 100 runs of a CLI racing a starting daemon).
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def wal_path(path: Path) -> Path:
    """SQLite's write-ahead log beside the database ``path``."""
    return path.with_name(path.name + "-wal")


def file_id(path: Path) -> tuple[int, int] | None:
    """(device, inode) of ``path``, or None when there is no such file."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


class Store:
    """The schedule and the delivery journal in one SQLite file; synchronous and thread-bound.

    Create it with :meth:`open`; use it from the thread that opened it. Times go in and come out as
    aware UTC datetimes; the file holds integer milliseconds.
    """

    def __init__(self, conn: sqlite3.Connection, path: Path, clock: Clock) -> None:
        """Wrap an already prepared connection; use :meth:`open` instead."""
        self._conn = conn
        self._path = path
        self._clock = clock
        # Which files this connection uses, to notice them removed or replaced (check_file).
        self.identity = file_id(path)
        self._wal_identity = file_id(wal_path(path))
        self._shm_identity = file_id(path.with_name(path.name + "-shm"))

    @classmethod
    def open(cls, path: Path, *, clock: Clock | None = None) -> Store:
        """Open (creating with mode 0600 if missing) and migrate the database at ``path``.

        Refuses with :class:`StoreError`, leaving the file untouched, anything that is not an asched
        database: not SQLite, a foreign SQLite database, or a schema from a newer asched.
        ``clock`` supplies created/updated/started times (tests pass a fake one).
        """
        path = Path(path)
        schema.create_private(path)
        schema.check_header(path)
        schema.check_readonly(path)
        try:
            conn = sqlite3.connect(
                path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=True
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open {path}: {exc}") from exc
        try:
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA foreign_keys = ON")
            # NORMAL is safe with WAL (a power cut may lose the last commits, never the database)
            # and saves an fsync per commit.
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA trusted_schema = OFF")
            mode = _enable_wal(conn)
            if str(mode).lower() != "wal":
                raise StoreError(
                    f"{path}: cannot use WAL mode (got {mode}); is it on a network fs?"
                )
            schema.migrate(conn, path)
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StoreError(f"cannot use {path}: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        schema.make_private(path)
        return cls(conn, path, clock or _system_clock)

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    @property
    def wal_identity(self) -> tuple[int, int] | None:
        """(device, inode) of the -wal this connection uses (None before it exists)."""
        return self._wal_identity

    def check_file(self) -> None:
        """Raise :class:`StoreReplaced` when the file at :attr:`path` (or its -wal) is no longer
        the one this connection uses: removed, or replaced by a ``mv`` or a restore.

        A CLI would then write into a file this process never reads, or, worse, combine another
        main file with this connection's -wal. Only ``stat`` calls: cheap enough for every pass.
        """
        now = file_id(self._path)
        if now != self.identity:
            what = "removed" if now is None else "replaced"
            raise StoreReplaced(f"{self._path} was {what} under the running daemon")
        if self._shm_identity is None:
            self._shm_identity = file_id(self._path.with_name(self._path.name + "-shm"))
        wal = file_id(wal_path(self._path))
        if self._wal_identity is None:
            self._wal_identity = wal  # created since the open
        elif wal != self._wal_identity:
            what = "removed" if wal is None else "replaced"
            raise StoreReplaced(f"{wal_path(self._path)} was {what} under the running daemon")

    def close(self) -> None:
        """Close the connection (idempotent); SQLite checkpoints the WAL if it is the last one.

        When the main file was replaced or removed under this connection, SQLite leaves our -wal
        and -shm at the path (measured: SQLite 3.40), where the next opener would apply our
        frames to the new main file. So our log is checkpointed into our own (old) file first,
        and our -wal and -shm are removed from the path while they are still ours (looked at
        before the close: after it, a new file could reuse their inode numbers).
        """
        try:
            self.check_file()
        except StoreReplaced:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            main_moved = file_id(self._path) != self.identity
            shm = self._path.with_name(self._path.name + "-shm")
            pairs = ((wal_path(self._path), self._wal_identity), (shm, self._shm_identity))
            ours = [
                path
                for path, mine in pairs
                if main_moved and mine is not None and file_id(path) == mine
            ]
            self._conn.close()
            for path in ours:
                with contextlib.suppress(OSError):
                    path.unlink()
            return
        self._conn.close()

    def __enter__(self) -> Self:
        """Use as ``with Store.open(path) as store:``."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the store."""
        self.close()

    def _now_ms(self) -> int:
        return to_ms(self._clock())

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """Run the body in one short IMMEDIATE transaction; roll back on any exception.

        IMMEDIATE takes the write lock up front, so the busy timeout applies while waiting for it,
        and a read snapshot can never turn stale mid-transaction (SQLITE_BUSY_SNAPSHOT, which no
        busy timeout retries).
        """
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise StoreError(f"{self._path}: cannot start a write ({exc})") from exc
        try:
            yield conn
            conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise StoreError(f"{self._path}: write failed ({exc})") from exc
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    # -- check-ins ---------------------------------------------------------------------------------

    def add_checkin(self, new: NewCheckIn) -> CheckIn:
        """Insert ``new``, or replace in place the check-in that has the same ``key``.

        A replacement keeps the id and created time, overwrites every other field and resets
        ``last_due``. Invalid input raises :class:`UsageError` and writes nothing.
        """
        params = checkin_params(new, self._now_ms())
        try:
            with self._write() as conn:
                # Read the row back rather than trust RETURNING, which reports values before
                # column affinity applies (300 instead of the stored 300.0).
                (checkin_id,) = conn.execute(UPSERT_CHECKIN + " RETURNING id", params).fetchone()
                row = conn.execute(SELECT_CHECKINS + " WHERE id = ?", (checkin_id,)).fetchone()
        except sqlite3.IntegrityError as exc:
            raise UsageError(f"invalid check-in: {exc}") from exc
        return checkin_from_row(row)

    def add_claimed(self, new: NewCheckIn, due_at: datetime) -> tuple[CheckIn, Delivery]:
        """Store a one-off check-in already claimed for ``due_at`` (``asched send``), atomically.

        The row is born done (next_due NULL), so no scheduler can claim it as well: the caller
        owns the one delivery.
        """
        if new.key is not None:
            raise ValueError("a claimed one-off check-in has no key")
        due_ms = to_ms(due_at)
        params = checkin_params(replace(new, next_due=None), self._now_ms())
        try:
            with self._write() as conn:
                (checkin_id,) = conn.execute(UPSERT_CHECKIN + " RETURNING id", params).fetchone()
                conn.execute(
                    "UPDATE checkins SET last_due_ms = ? WHERE id = ?", (due_ms, checkin_id)
                )
                row = conn.execute(SELECT_CHECKINS + " WHERE id = ?", (checkin_id,)).fetchone()
                inserted = conn.execute(
                    "INSERT INTO deliveries (checkin_id, target, due_ms, state, started_ms) "
                    "VALUES (?, ?, ?, 'claimed', ?) RETURNING *",
                    (checkin_id, new.target, due_ms, self._now_ms()),
                ).fetchone()
        except sqlite3.IntegrityError as exc:
            raise UsageError(f"invalid check-in: {exc}") from exc
        return checkin_from_row(row), delivery_from_row(inserted)

    def add_many(self, news: Iterable[NewCheckIn]) -> int:
        """Add (or replace by key) many check-ins in one transaction; return how many were given.

        For imports, declarative defaults and benchmarks. All or nothing.
        """
        now = self._now_ms()
        rows = [checkin_params(new, now) for new in news]
        try:
            with self._write() as conn:
                conn.executemany(UPSERT_CHECKIN, rows)
        except sqlite3.IntegrityError as exc:
            raise UsageError(f"invalid check-in: {exc}") from exc
        return len(rows)

    def add_new(
        self, news: Sequence[NewCheckIn], *, remember: bool = False
    ) -> list[CheckIn | None]:
        """Insert the keyed check-ins whose key is still free, in one transaction; never replace.

        One answer per item, in order: the stored check-in, or None when its key already existed
        (``import-legacy`` run twice imports nothing twice). Every item needs a key. With
        ``remember``, a key stored this way once is never stored again, even after its check-in
        was removed (see :meth:`was_imported`).
        """
        if any(new.key is None for new in news):
            raise ValueError("add_new needs a key on every check-in")
        now = self._now_ms()
        rows = [(new.key, checkin_params(new, now)) for new in news]
        out: list[CheckIn | None] = []
        try:
            with self._write() as conn:
                for key, params in rows:
                    if remember:
                        fresh = conn.execute(
                            "INSERT INTO imported_keys (key, imported_ms) VALUES (?, ?) "
                            "ON CONFLICT (key) DO NOTHING",
                            (key, now),
                        ).rowcount
                        if not fresh:
                            out.append(None)
                            continue
                    inserted = conn.execute(_INSERT_NEW + " RETURNING id", params).fetchone()
                    found = None
                    if inserted is not None:
                        found = conn.execute(
                            SELECT_CHECKINS + " WHERE id = ?", (inserted[0],)
                        ).fetchone()
                    out.append(None if found is None else checkin_from_row(found))
        except sqlite3.IntegrityError as exc:
            raise UsageError(f"invalid check-in: {exc}") from exc
        return out

    def remember_imported(self, keys: Sequence[str]) -> None:
        """Record ``keys`` as imported (see :meth:`was_imported`) without storing check-ins."""
        if not keys:
            return
        now = self._now_ms()
        with self._write() as conn:
            conn.executemany(
                "INSERT INTO imported_keys (key, imported_ms) VALUES (?, ?) "
                "ON CONFLICT (key) DO NOTHING",
                [(k, now) for k in keys],
            )

    def was_imported(self, key: str) -> bool:
        """True when :meth:`add_new` stored ``key`` with ``remember`` (removed since or not)."""
        row = self._conn.execute("SELECT 1 FROM imported_keys WHERE key = ?", (key,)).fetchone()
        return row is not None

    def get_checkin(self, checkin_id: int) -> CheckIn | None:
        """The check-in with this id, or None."""
        row = self._conn.execute(SELECT_CHECKINS + " WHERE id = ?", (checkin_id,)).fetchone()
        return None if row is None else checkin_from_row(row)

    def get_by_key(self, key: str) -> CheckIn | None:
        """The check-in with this key, or None."""
        row = self._conn.execute(SELECT_CHECKINS + " WHERE key = ?", (key,)).fetchone()
        return None if row is None else checkin_from_row(row)

    def list_checkins(self, target: str | None = None) -> list[CheckIn]:
        """All check-ins (or one target's), soonest first; done ones (next_due None) last."""
        order = " ORDER BY next_due_ms IS NULL, next_due_ms, id"
        if target is None:
            rows = self._conn.execute(SELECT_CHECKINS + order).fetchall()
        else:
            where = " WHERE target = ?"
            rows = self._conn.execute(SELECT_CHECKINS + where + order, (target,)).fetchall()
        return [checkin_from_row(r) for r in rows]

    def list_by_origin(self, origin: str) -> list[CheckIn]:
        """The check-ins one creator made (``config`` for declarative ones), by id."""
        rows = self._conn.execute(
            SELECT_CHECKINS + " WHERE origin = ? ORDER BY id", (origin,)
        ).fetchall()
        return [checkin_from_row(r) for r in rows]

    def count_checkins(self) -> int:
        """How many check-ins exist, done ones included."""
        return int(self._conn.execute("SELECT count(*) FROM checkins").fetchone()[0])

    def remove_checkin(self, checkin_id: int) -> bool:
        """Delete a check-in; its journal rows stay. False if there was no such id."""
        with self._write() as conn:
            return conn.execute("DELETE FROM checkins WHERE id = ?", (checkin_id,)).rowcount > 0

    def remove_by_key(self, key: str) -> bool:
        """Delete the check-in with this key; its journal rows stay. False if there was none."""
        with self._write() as conn:
            return conn.execute("DELETE FROM checkins WHERE key = ?", (key,)).rowcount > 0

    def prune_finished(self, before: datetime) -> int:
        """Delete done check-ins (next_due None) last changed before ``before``; return the count.

        Check-ins with a delivery still in flight are kept: the engine needs their message.
        """
        with self._write() as conn:
            return conn.execute(
                "DELETE FROM checkins WHERE next_due_ms IS NULL AND updated_ms < ? AND id NOT IN "
                "(SELECT checkin_id FROM deliveries "
                "WHERE state IN ('claimed', 'typing', 'typed', 'submitted'))",
                (to_ms(before),),
            ).rowcount

    def set_paused(self, checkin_id: int, paused: bool) -> bool:
        """Pause or resume one check-in. True if the id exists (whether or not it changed).

        Resuming does not touch next_due: an occurrence missed while paused meets the misfire
        policy like any other.
        """
        with self._write() as conn:
            conn.execute(
                "UPDATE checkins SET paused = ?, updated_ms = ? WHERE id = ? AND paused <> ?",
                (int(paused), self._now_ms(), checkin_id, int(paused)),
            )
            found = conn.execute("SELECT 1 FROM checkins WHERE id = ?", (checkin_id,)).fetchone()
        return found is not None

    def set_paused_for_target(self, target: str, paused: bool) -> int:
        """Pause or resume every current check-in of ``target``; return how many it has.

        Check-ins added later are not affected.
        """
        with self._write() as conn:
            conn.execute(
                "UPDATE checkins SET paused = ?, updated_ms = ? WHERE target = ? AND paused <> ?",
                (int(paused), self._now_ms(), target, int(paused)),
            )
            row = conn.execute("SELECT count(*) FROM checkins WHERE target = ?", (target,))
            return int(row.fetchone()[0])

    # -- scheduling --------------------------------------------------------------------------------

    def next_due_time(self) -> datetime | None:
        """The earliest next_due of the check-ins that are not paused and have no occurrence in
        flight, or None (an index walk; the in-flight set is the journal's few open rows)."""
        row = self._conn.execute(
            "SELECT next_due_ms FROM checkins WHERE paused = 0 AND next_due_ms IS NOT NULL "
            "AND id NOT IN (SELECT checkin_id FROM deliveries "
            "WHERE state IN ('claimed', 'typing', 'typed', 'submitted')) "
            "ORDER BY next_due_ms LIMIT 1"
        ).fetchone()
        return None if row is None else from_ms(row[0])

    def due_checkins(self, now: datetime, limit: int = 1000) -> list[CheckIn]:
        """Check-ins not paused whose next_due <= ``now``, soonest first, at most ``limit``.

        A check-in whose last occurrence is still in flight (held up by a frozen server, copy
        mode, a rate budget, a wait for quiet) is not due again until that one ends: one
        occurrence at a time, so a hold never piles up copies that flood the pane after it. The
        slots missed meanwhile meet the misfire policy once, like any other missed slot.
        """
        if limit < 1:
            raise ValueError(f"limit must be >= 1, not {limit}")
        rows = self._conn.execute(
            SELECT_CHECKINS
            + " WHERE paused = 0 AND next_due_ms <= ? AND id NOT IN (SELECT checkin_id "
            "FROM deliveries WHERE state IN ('claimed', 'typing', 'typed', 'submitted')) "
            "ORDER BY next_due_ms, id LIMIT ?",
            (to_ms(now), limit),
        ).fetchall()
        return [checkin_from_row(r) for r in rows]

    def claim(
        self,
        checkin_id: int,
        due_at: datetime,
        next_due: datetime | None,
        *,
        state: DeliveryState = DeliveryState.CLAIMED,
        reason: str | None = None,
        late: bool = False,
        remaining: int | Literal[_Default.DECREMENT] | None = DECREMENT,
    ) -> Delivery | None:
        """Journal occurrence ``due_at`` of a check-in and advance it to ``next_due``, atomically.

        Returns None, journaling nothing, if the check-in is gone, paused, or its next_due is no
        longer ``due_at`` (someone else claimed it, or it was edited): re-read and decide again.
        If this occurrence was journaled before (a key replacement reused a delivered due time), the
        check-in is still advanced so the scheduler cannot spin on it, and None is returned.

        ``state`` is CLAIMED to deliver, or SKIPPED/FAILED with a ``reason`` (a misfire past grace,
        a gone target); those rows are final at once. ``next_due`` is None when the rule is
        exhausted; it must be later than ``due_at``, and it becomes None by itself when the count
        runs out or it passes ``until``. ``remaining`` defaults to one less (every journaled
        occurrence counts, skipped ones too); pass a number, or None for unlimited, to set it.
        """
        claim = Claim(checkin_id, due_at, next_due, state, reason, late, remaining)
        prepared = self._check_claim(claim)
        now = self._now_ms()
        with self._write() as conn:
            return self._claim_in(conn, now, *prepared)

    def claim_many(self, claims: Iterable[Claim]) -> list[Delivery | None]:
        """Several :meth:`claim` calls in one transaction (a burst of check-ins due at once).

        Each item is checked and applied exactly as :meth:`claim` would; the answers come back in
        order. One transaction instead of hundreds keeps a burst's last claim close to its due time.
        """
        prepared = [self._check_claim(c) for c in claims]
        now = self._now_ms()
        with self._write() as conn:
            return [self._claim_in(conn, now, *p) for p in prepared]

    @staticmethod
    def _check_claim(c: Claim) -> _Prepared:
        if c.state not in _CLAIM_STATES:
            raise ValueError(f"a claim starts as claimed, skipped or failed, not {c.state}")
        if c.state in _ABORT_STATES and not c.reason:
            raise ValueError(f"a {c.state} occurrence needs a reason")
        due_ms = to_ms(c.due_at)
        next_ms = None if c.next_due is None else time_ms("next_due", c.next_due)
        if next_ms is not None and next_ms <= due_ms:
            # REFERENCE failure 1: a one-shot "rescheduled" at now+0 looped forever.
            raise ValueError(f"next_due {c.next_due} must be later than due_at {c.due_at}")
        if c.remaining is not DECREMENT and c.remaining is not None and c.remaining < 0:
            raise ValueError(f"remaining must be >= 0, not {c.remaining}")
        return (c.checkin_id, due_ms, next_ms, c.state, c.reason, c.late, c.remaining)

    def _claim_in(
        self,
        conn: sqlite3.Connection,
        now: int,
        checkin_id: int,
        due_ms: int,
        next_ms: int | None,
        state: DeliveryState,
        reason: str | None,
        late: bool,
        remaining: int | Literal[_Default.DECREMENT] | None,
    ) -> Delivery | None:
        row = conn.execute(
            "SELECT target, paused, next_due_ms, remaining, until_ms, generation "
            "FROM checkins WHERE id = ?",
            (checkin_id,),
        ).fetchone()
        if row is None or row["paused"] or row["next_due_ms"] != due_ms:
            return None
        left = row["remaining"] if remaining is DECREMENT else remaining
        if remaining is DECREMENT and left is not None:
            left = max(left - 1, 0)
        until_ms = row["until_ms"]
        if left == 0 or (next_ms is not None and until_ms is not None and next_ms > until_ms):
            next_ms = None
        conn.execute(
            "UPDATE checkins SET next_due_ms = ?, last_due_ms = ?, remaining = ?, "
            "updated_ms = ? WHERE id = ?",
            (next_ms, due_ms, left, now, checkin_id),
        )
        seen = conn.execute(
            "SELECT 1 FROM deliveries WHERE checkin_id = ? AND generation = ? AND due_ms = ?",
            (checkin_id, row["generation"], due_ms),
        ).fetchone()
        if seen is not None:
            return None
        inserted = conn.execute(
            "INSERT INTO deliveries (checkin_id, generation, target, due_ms, state, reason, "
            "late, started_ms, finished_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *",
            (
                checkin_id,
                row["generation"],
                row["target"],
                due_ms,
                state.value,
                reason,
                int(late),
                now,
                now if state.final else None,
            ),
        ).fetchone()
        return delivery_from_row(inserted)

    def reschedule(
        self, checkin_id: int, expected_next: datetime | None, new_next: datetime | None
    ) -> bool:
        """Move a check-in's next_due from ``expected_next`` to ``new_next`` without journaling.

        For re-basing after the wall clock went back: the check-in's generation moves on, so the
        wall times that come round again are new occurrences, not duplicates of journaled ones.
        Optimistic like :meth:`claim`: False, changing nothing, if the check-in is gone or its
        next_due is no longer ``expected_next``. A ``new_next`` past ``until`` or after the count
        ran out becomes None (done).
        """
        expected_ms = None if expected_next is None else to_ms(expected_next)
        new_ms = None if new_next is None else time_ms("next due", new_next)
        with self._write() as conn:
            row = conn.execute(
                "SELECT next_due_ms, remaining, until_ms FROM checkins WHERE id = ?", (checkin_id,)
            ).fetchone()
            if row is None or row["next_due_ms"] != expected_ms:
                return False
            until_ms = row["until_ms"]
            if row["remaining"] == 0 or (
                new_ms is not None and until_ms is not None and new_ms > until_ms
            ):
                new_ms = None
            conn.execute(
                "UPDATE checkins SET next_due_ms = ?, generation = generation + 1, "
                "updated_ms = ? WHERE id = ?",
                (new_ms, self._now_ms(), checkin_id),
            )
        return True

    # -- the journal -------------------------------------------------------------------------------

    def transition(
        self,
        delivery_id: int,
        state: DeliveryState,
        *,
        reason: str | None = None,
        pane: str | None = None,
        attempt: bool = False,
        late: bool = False,
    ) -> Delivery:
        """Move a delivery along its state machine and commit, before the caller's next side effect.

        Legal: claimed -> typing -> typed -> submitted -> verified | unverified; typing and typed
        -> unverified; claimed -> claimed (to record a failed attempt before a retry); typing and
        typed -> claimed with a ``TEXT_LOST`` reason only (the server or the pane's program went
        away, and the text with it); any non-final
        state -> failed | skipped (``reason`` required). Anything else, including any move out of a
        final state, raises ValueError. ``reason`` replaces the row's reason (None clears it);
        ``pane`` is kept once set; ``attempt`` adds one to ``attempts``; reaching a final state
        sets ``finished_at``; ``late`` marks the row late (never unmarks: a paste found late after
        a claim in time). An unknown id raises :class:`NotFoundError`.
        """
        state = DeliveryState(state)
        if state in _ABORT_STATES and not reason:
            raise ValueError(f"a {state} delivery needs a reason")
        with self._write() as conn:
            row = conn.execute(
                "SELECT state FROM deliveries WHERE id = ?", (delivery_id,)
            ).fetchone()
            if row is None:
                raise NotFoundError(f"no delivery with id {delivery_id}")
            current = DeliveryState(row["state"])
            allowed = _NEXT.get(current, frozenset()) | (
                frozenset() if current.final else _ABORT_STATES
            )
            if current in _BACK_TO_CLAIMED and reason in TEXT_LOST:
                allowed |= {DeliveryState.CLAIMED}
            if state not in allowed:
                raise ValueError(f"delivery {delivery_id}: illegal transition {current} -> {state}")
            now = self._now_ms()
            updated = conn.execute(
                "UPDATE deliveries SET state = ?, reason = ?, pane = coalesce(?, pane), "
                "attempts = attempts + ?, late = max(late, ?), finished_ms = ? "
                "WHERE id = ? AND state = ? RETURNING *",
                (
                    state.value,
                    reason,
                    pane,
                    int(attempt),
                    int(late),
                    now if state.final else None,
                    delivery_id,
                    current.value,
                ),
            ).fetchone()
        return delivery_from_row(updated)

    def mark_typing(self, items: list[tuple[int, str]]) -> dict[int, str]:
        """``claimed -> typing`` (with the pane) for several deliveries in one transaction.

        For a burst typed at once. Only a claimed row of a check-in that is still there and not
        paused may start typing. The others come back as id -> why, and the caller must not type
        them: ``NOT_CLAIMED`` (another process is delivering it; the row is untouched), or
        ``PAUSED``/``REMOVED`` (the row is now skipped with that reason).
        """
        refused: dict[int, str] = {}
        with self._write() as conn:
            now = self._now_ms()
            for delivery_id, pane in items:
                cur = conn.execute(
                    "UPDATE deliveries SET state = 'typing', pane = ? "
                    "WHERE id = ? AND state = 'claimed' AND EXISTS (SELECT 1 FROM checkins c "
                    "WHERE c.id = deliveries.checkin_id AND c.paused = 0)",
                    (pane, delivery_id),
                )
                if cur.rowcount == 1:
                    continue
                row = conn.execute(
                    "SELECT d.state, c.paused FROM deliveries d "
                    "LEFT JOIN checkins c ON c.id = d.checkin_id WHERE d.id = ?",
                    (delivery_id,),
                ).fetchone()
                if row is None or row["state"] != DeliveryState.CLAIMED.value:
                    refused[delivery_id] = NOT_CLAIMED
                    continue
                why = REMOVED if row["paused"] is None else PAUSED
                conn.execute(
                    "UPDATE deliveries SET state = 'skipped', reason = ?, finished_ms = ? "
                    "WHERE id = ? AND state = 'claimed'",
                    (why, now, delivery_id),
                )
                refused[delivery_id] = why
        return refused

    def get_delivery(self, delivery_id: int) -> Delivery | None:
        """The journal row with this id, or None."""
        row = self._conn.execute(SELECT_DELIVERIES + " WHERE id = ?", (delivery_id,)).fetchone()
        return None if row is None else delivery_from_row(row)

    def in_flight(self) -> list[Delivery]:
        """Deliveries not in a final state (claimed, typing, typed, submitted), oldest first."""
        rows = self._conn.execute(SELECT_DELIVERIES + IN_FLIGHT_WHERE + " ORDER BY id").fetchall()
        return [delivery_from_row(r) for r in rows]

    def history(
        self, checkin_id: int | None = None, target: str | None = None, limit: int = 100
    ) -> list[Delivery]:
        """Journal rows, newest due time first, optionally of one check-in and/or one target.

        ``target`` matches the target a delivery was claimed for, so the history of a removed or
        retargeted check-in is still found.
        """
        if limit < 1:
            raise ValueError(f"limit must be >= 1, not {limit}")
        clauses: list[str] = []
        args: list[Any] = []
        if checkin_id is not None:
            clauses.append("checkin_id = ?")
            args.append(checkin_id)
        if target is not None:
            clauses.append("target = ?")
            args.append(target)
        where = " WHERE " + " AND ".join(clauses) if clauses else ""  # constant fragments only
        rows = self._conn.execute(
            SELECT_DELIVERIES + where + " ORDER BY due_ms DESC, id DESC LIMIT ?", (*args, limit)
        ).fetchall()
        return [delivery_from_row(r) for r in rows]
