"""The store's connection and its file: open (check, create, migrate), WAL, identity, close.

:class:`StoreConnection` owns the one sqlite3 connection of a :class:`~asched.store.store.Store`
and the write transaction every write runs in; the check-in table and the delivery journal build
on it. Every write is one short ``BEGIN IMMEDIATE`` transaction (see :mod:`asched.store.store`).
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Final, Self

from asched.core.errors import StoreError, StoreReplaced
from asched.core.models import to_ms
from asched.store import schema

BUSY_TIMEOUT_MS: Final = 5000
Clock = Callable[[], datetime]


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


class StoreConnection:
    """One SQLite connection to the store's file, and the file's identity; thread-bound.

    The base of :class:`~asched.store.store.Store`: it opens, checks and closes the file and runs
    the write transactions; the tables' operations are added by the classes built on it.
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
    def open(cls, path: Path, *, clock: Clock | None = None) -> Self:
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
