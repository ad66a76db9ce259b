"""The database schema: DDL, migrations, and the checks before touching a file.

Rows <-> models (the column lists, the upsert, validation) live in :mod:`asched.store.rows`.

The schema version lives in ``PRAGMA user_version`` and our identity in ``PRAGMA application_id``.
``MIGRATIONS[n]`` takes a database from version ``n`` to ``n + 1``; a fresh file runs all of them,
so a fresh database and a migrated one are built by the same statements (docs/OLD-SCHEDULER.md,
failure 11: a fresh database once crashed because a column was only ever created by a one-off fix).

Old steps are frozen: once released, a step's SQL never changes, because databases that already ran
it exist. A schema change is a new step appended to ``MIGRATIONS``.

Times are INTEGER milliseconds since the epoch (UTC). Every time column carries a CHECK on its type
and on a plausible range (2000-01-01 up to the end of year 9999), so that a datetime string, a value
in seconds or in microseconds is refused at write time (docs/OLD-SCHEDULER.md, failure 10: strings
written into ``next_run`` silently stopped every check-in), and every stored value converts back to
a datetime.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Final

from asched.core.errors import StoreError
from asched.core.states import (
    ABORT_STATES,
    FINAL_STATES,
    IN_FLIGHT_STATES,
    DeliveryState,
    in_order,
)

# "asch" in ASCII: marks a file as ours, so that a foreign database is never migrated by accident.
APPLICATION_ID: Final = 0x61736368


def sql_states(states: frozenset[DeliveryState]) -> str:
    """``states`` as SQL string literals separated by ", ", in declaration order."""
    return ", ".join(f"'{state.value}'" for state in in_order(states))


# The state sets of the journal's CHECKs, trigger and partial index, generated from the one
# definition of the state machine (asched.core.states). Released DDL is frozen: these must render
# exactly the text of the released statements (a test compares them), so a new state comes with a
# migration step, never by changing what these render.
_IN_FLIGHT: Final = sql_states(IN_FLIGHT_STATES)
_FINAL: Final = sql_states(FINAL_STATES)
_ABORT: Final = sql_states(ABORT_STATES)
IN_FLIGHT_SQL: Final = f"state IN ({_IN_FLIGHT})"
# The WHERE of the partial index deliveries_in_flight: a query must repeat it to be able to use it.
IN_FLIGHT_WHERE: Final = " WHERE " + IN_FLIGHT_SQL

# Schema version 1: the first released schema. Frozen (see the module docstring); tests build a v1
# database from it to exercise the migration to the current version.
SCHEMA_V1: Final[tuple[str, ...]] = (
    """
    CREATE TABLE checkins (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        key         TEXT UNIQUE
                    CHECK (key IS NULL OR (typeof(key) = 'text' AND length(key) > 0)),
        target      TEXT NOT NULL CHECK (typeof(target) = 'text' AND length(target) > 0),
        message     TEXT NOT NULL CHECK (typeof(message) = 'text' AND length(message) > 0),
        kind        TEXT NOT NULL CHECK (kind IN ('once', 'every', 'cron')),
        at_ms       INTEGER CHECK (at_ms IS NULL OR (typeof(at_ms) = 'integer'
                    AND at_ms BETWEEN 946684800000 AND 253402300799999)),
        interval_s  INTEGER CHECK (interval_s IS NULL OR (typeof(interval_s) = 'integer'
                    AND interval_s > 0)),
        anchor_ms   INTEGER CHECK (anchor_ms IS NULL OR (typeof(anchor_ms) = 'integer'
                    AND anchor_ms BETWEEN 946684800000 AND 253402300799999)),
        cron_expr   TEXT CHECK (cron_expr IS NULL OR (typeof(cron_expr) = 'text'
                    AND length(trim(cron_expr)) > 0)),
        tz          TEXT CHECK (tz IS NULL OR (typeof(tz) = 'text' AND length(tz) > 0)),
        next_due_ms INTEGER CHECK (next_due_ms IS NULL OR (typeof(next_due_ms) = 'integer'
                    AND next_due_ms BETWEEN 946684800000 AND 253402300799999)),
        last_due_ms INTEGER CHECK (last_due_ms IS NULL OR (typeof(last_due_ms) = 'integer'
                    AND last_due_ms BETWEEN 946684800000 AND 253402300799999)),
        grace_s     REAL NOT NULL
                    CHECK (typeof(grace_s) = 'real' AND grace_s >= 0 AND grace_s < 1e12),
        catch_up    TEXT NOT NULL CHECK (catch_up IN ('skip', 'once')),
        jitter_s    REAL NOT NULL
                    CHECK (typeof(jitter_s) = 'real' AND jitter_s >= 0 AND jitter_s < 1e12),
        remaining   INTEGER CHECK (remaining IS NULL OR (typeof(remaining) = 'integer'
                    AND remaining >= 0)),
        until_ms    INTEGER CHECK (until_ms IS NULL OR (typeof(until_ms) = 'integer'
                    AND until_ms BETWEEN 946684800000 AND 253402300799999)),
        paused      INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0, 1)),
        generation  INTEGER NOT NULL DEFAULT 0
                    CHECK (typeof(generation) = 'integer' AND generation >= 0),
        created_ms  INTEGER NOT NULL CHECK (typeof(created_ms) = 'integer'),
        updated_ms  INTEGER NOT NULL CHECK (typeof(updated_ms) = 'integer'),
        CONSTRAINT rule_once CHECK (kind <> 'once' OR (at_ms IS NOT NULL
            AND interval_s IS NULL AND anchor_ms IS NULL AND cron_expr IS NULL AND tz IS NULL)),
        CONSTRAINT rule_every CHECK (kind <> 'every' OR (interval_s IS NOT NULL
            AND anchor_ms IS NOT NULL AND at_ms IS NULL AND cron_expr IS NULL AND tz IS NULL)),
        CONSTRAINT rule_cron CHECK (kind <> 'cron' OR (cron_expr IS NOT NULL AND tz IS NOT NULL
            AND at_ms IS NULL AND interval_s IS NULL AND anchor_ms IS NULL)),
        CONSTRAINT exhausted_has_no_next CHECK (remaining IS NULL OR remaining > 0
            OR next_due_ms IS NULL),
        CONSTRAINT next_within_until CHECK (until_ms IS NULL OR next_due_ms IS NULL
            OR next_due_ms <= until_ms)
    )
    """,
    # The scheduler's one hot query: the earliest next_due among rows that are not paused.
    "CREATE INDEX checkins_due ON checkins (paused, next_due_ms)",
    # An occurrence is (checkin_id, generation, due_ms). The generation moves on when the scheduler
    # re-bases a check-in after the wall clock went back: wall times then come round again, and an
    # occurrence at a repeated wall time is a new one, not a duplicate of the delivered one.
    # No foreign key to checkins on purpose: the journal outlives a removed check-in (history,
    # and an in-flight delivery must still be able to record how it ended). AUTOINCREMENT on
    # checkins.id guarantees an id is never reused, so old rows are never misattributed. The
    # trigger below still refuses a journal row for a check-in that does not exist.
    f"""
    CREATE TABLE deliveries (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        checkin_id  INTEGER NOT NULL CHECK (typeof(checkin_id) = 'integer'),
        target      TEXT NOT NULL CHECK (typeof(target) = 'text' AND length(target) > 0),
        due_ms      INTEGER NOT NULL CHECK (typeof(due_ms) = 'integer'
                    AND due_ms BETWEEN 946684800000 AND 253402300799999),
        state       TEXT NOT NULL CHECK (state IN ({_IN_FLIGHT},
                    {_FINAL})),
        reason      TEXT CHECK (reason IS NULL OR typeof(reason) = 'text'),
        late        INTEGER NOT NULL DEFAULT 0 CHECK (late IN (0, 1)),
        pane        TEXT CHECK (pane IS NULL OR (typeof(pane) = 'text' AND length(pane) > 0)),
        attempts    INTEGER NOT NULL DEFAULT 0
                    CHECK (typeof(attempts) = 'integer' AND attempts >= 0),
        started_ms  INTEGER NOT NULL CHECK (typeof(started_ms) = 'integer'),
        finished_ms INTEGER CHECK (finished_ms IS NULL OR typeof(finished_ms) = 'integer'),
        generation  INTEGER NOT NULL DEFAULT 0 CHECK (typeof(generation) = 'integer'),
        UNIQUE (checkin_id, generation, due_ms),
        CONSTRAINT finished_iff_final CHECK ((finished_ms IS NULL)
            = ({IN_FLIGHT_SQL})),
        CONSTRAINT failure_has_reason CHECK (state NOT IN ({_ABORT})
            OR length(reason) > 0)
    )
    """,
    """
    CREATE TRIGGER deliveries_need_checkin BEFORE INSERT ON deliveries
    WHEN NOT EXISTS (SELECT 1 FROM checkins WHERE id = NEW.checkin_id)
    BEGIN SELECT RAISE(ABORT, 'deliveries.checkin_id names no check-in'); END
    """,
    # The journal is evidence: a final state is never rewritten, whoever writes.
    f"""
    CREATE TRIGGER deliveries_final_is_final BEFORE UPDATE OF state ON deliveries
    WHEN OLD.state IN ({_FINAL}) AND NEW.state IS NOT OLD.state
    BEGIN SELECT RAISE(ABORT, 'a delivery in a final state cannot change state'); END
    """,
    # in_flight() (crash recovery) reads only the few non-final rows of a long journal.
    f"""
    CREATE INDEX deliveries_in_flight ON deliveries (id)
    WHERE {IN_FLIGHT_SQL}
    """,
    # history(target=...) and history() newest first; history(checkin_id) uses the UNIQUE index.
    "CREATE INDEX deliveries_target ON deliveries (target, due_ms)",
    "CREATE INDEX deliveries_due ON deliveries (due_ms)",
)

# Schema version 2: who created a check-in ('user' from the CLI, 'config' for declarative defaults,
# an agent's name...), so that config reloads can replace their own rows and never a user's; and an
# index for the per-target operations (pause a target, list a target).
SCHEMA_V2: Final[tuple[str, ...]] = (
    """
    ALTER TABLE checkins ADD COLUMN origin TEXT NOT NULL DEFAULT 'user'
        CHECK (typeof(origin) = 'text' AND length(origin) > 0)
    """,
    "CREATE INDEX checkins_target ON checkins (target)",
    # The fleet reconciler reads its own rows (origin 'config') every few seconds.
    "CREATE INDEX checkins_origin ON checkins (origin)",
    # Idle-aware check-ins: deliver only when the pane has been quiet for idle_s seconds;
    # idle_wait: wait (inside grace) for such a moment instead of skipping the occurrence.
    """
    ALTER TABLE checkins ADD COLUMN idle_s REAL
        CHECK (idle_s IS NULL OR (typeof(idle_s) = 'real' AND idle_s > 0 AND idle_s < 1e9))
    """,
    """
    ALTER TABLE checkins ADD COLUMN idle_wait INTEGER NOT NULL DEFAULT 0
        CHECK (idle_wait IN (0, 1) AND (idle_wait = 0 OR idle_s IS NOT NULL))
    """,
)

# Schema version 3: the keys import-legacy ever stored, so that a check-in the user removed is not
# imported again by a later run (from the same file or a copy of it).
SCHEMA_V3: Final[tuple[str, ...]] = (
    """
    CREATE TABLE imported_keys (
        key         TEXT PRIMARY KEY CHECK (typeof(key) = 'text' AND length(key) > 0),
        imported_ms INTEGER NOT NULL CHECK (typeof(imported_ms) = 'integer')
    ) WITHOUT ROWID
    """,
)

# Schema version 4: the agent's own word that it received a delivery's text (a Claude Code
# UserPromptSubmit hook reported this exact prompt from the pane). Beside the state, not a state:
# it may arrive after the row is final (an agent that was busy takes a queued prompt when its turn
# ends), and it is written once.
SCHEMA_V4: Final[tuple[str, ...]] = (
    """
    ALTER TABLE deliveries ADD COLUMN confirmed_ms INTEGER
        CHECK (confirmed_ms IS NULL OR typeof(confirmed_ms) = 'integer')
    """,
    """
    CREATE TRIGGER deliveries_confirmed_once BEFORE UPDATE OF confirmed_ms ON deliveries
    WHEN OLD.confirmed_ms IS NOT NULL AND NEW.confirmed_ms IS NOT OLD.confirmed_ms
    BEGIN SELECT RAISE(ABORT, 'a delivery is confirmed once'); END
    """,
)

MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (SCHEMA_V1, SCHEMA_V2, SCHEMA_V3, SCHEMA_V4)
LATEST_VERSION: Final = len(MIGRATIONS)

_TABLES: Final = frozenset({"checkins", "deliveries"})
_MAGIC: Final = b"SQLite format 3\x00"
_HEADER_SIZE: Final = 100


def _refuse(path: Path, app_id: int, version: int, tables: frozenset[str] | None) -> None:
    """Raise StoreError unless (application_id, user_version, tables) describe a DB we may migrate.

    ``tables`` is None when only the file header was read; table checks then wait for SQLite.
    """
    if app_id not in (0, APPLICATION_ID):
        raise StoreError(
            f"{path} is not an asched database (application_id {app_id:#x}); not touching it"
        )
    if app_id == APPLICATION_ID and version > LATEST_VERSION:
        raise StoreError(
            f"{path} was written by a newer asched (schema {version}, this asched knows up to "
            f"{LATEST_VERSION}); not touching it"
        )
    if tables is None:
        return
    if app_id == 0:
        # Only an empty file may become ours; anything with content belongs to someone else.
        if tables or version != 0:
            names = ", ".join(sorted(tables)) or "none"
            raise StoreError(
                f"{path} is an SQLite database but not asched's (tables: {names}); not touching it"
            )
        return
    if version == 0 and tables:
        raise StoreError(f"{path} is marked as asched's but has no schema version; not touching it")
    if version > 0 and not tables >= _TABLES:
        missing = ", ".join(sorted(_TABLES - tables))
        raise StoreError(
            f"{path} is an asched database (schema {version}) without tables {missing}; "
            "not touching it"
        )


def check_header(path: Path) -> None:
    """Refuse a file that is not SQLite, or is someone else's or a newer asched's, from its header.

    Reading the 100-byte header is the only way to look without any side effect: even a read-only
    SQLite connection creates -wal/-shm files next to a WAL database. The header can be stale when
    a WAL file holds newer pages, and it lists no tables, so :func:`check_readonly` and then
    :func:`migrate` (inside its transaction) look again.
    """
    try:
        with path.open("rb") as fh:
            header = fh.read(_HEADER_SIZE)
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if not header:
        return  # a new, empty file: SQLite will create the database in it
    if len(header) < _HEADER_SIZE or header[:16] != _MAGIC:
        raise StoreError(f"{path} is not an SQLite database; not touching it")
    version = int.from_bytes(header[60:64], "big", signed=True)
    app_id = int.from_bytes(header[68:72], "big", signed=True)
    _refuse(path, app_id, version, None)


def inspect(conn: sqlite3.Connection, path: Path) -> int:
    """Return the schema version of the database behind ``conn``; StoreError if it is not ours."""
    app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    rows = conn.execute(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    ).fetchall()
    _refuse(path, app_id, version, frozenset(str(r[0]) for r in rows))
    return version


def check_readonly(path: Path) -> None:
    """Inspect ``path`` through a read-only connection, which can never write the database."""
    uri = f"{path.absolute().as_uri()}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open {path}: {exc}") from exc
    try:
        # One read transaction: the pragmas and the table list must come from the same snapshot,
        # or a migration committed between two reads looks like a foreign database.
        conn.execute("BEGIN")
        inspect(conn, path)
    except sqlite3.DatabaseError as exc:
        msg = f"{path} is not a usable SQLite database ({exc}); not touching it"
        raise StoreError(msg) from exc
    finally:
        conn.close()


def migrate(conn: sqlite3.Connection, path: Path) -> int:
    """Bring the database behind ``conn`` to :data:`LATEST_VERSION`; return the version found.

    Runs in one IMMEDIATE transaction, so concurrent openers (CLI calls racing a starting daemon)
    serialise here: the first migrates, the others re-read the version after it committed and find
    nothing to do. The version is re-checked inside the transaction because another process may
    have changed the file since the earlier checks looked.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        found = inspect(conn, path)
        for step in MIGRATIONS[found:]:
            for statement in step:
                conn.execute(statement)
        if found < LATEST_VERSION:
            # Both pragmas write the file header inside this transaction: all or nothing.
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {LATEST_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return found


def create_private(path: Path) -> None:
    """Create ``path`` empty with mode 0600 unless it exists, before SQLite ever opens it.

    SQLite would create it with 0644 & ~umask; the CLI may run with umask 022 and the database holds
    every message. O_EXCL also refuses to follow a symlink planted at the path.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        return
    except OSError as exc:
        raise StoreError(f"cannot create {path}: {exc.strerror or exc}") from exc
    os.close(fd)


def make_private(path: Path) -> None:
    """Give the database and its -wal/-shm companions mode 0600 (the daemon owns them).

    SQLite creates -wal/-shm with the database's own mode, so this mostly tightens a database
    created by an older tool; a companion that vanished meanwhile is fine.
    """
    for candidate in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            if candidate.stat().st_mode & 0o777 != 0o600:
                candidate.chmod(0o600)
        except FileNotFoundError:
            continue
        except PermissionError:
            continue  # not our file to change (e.g. root's DB read by a user): leave it as it is
