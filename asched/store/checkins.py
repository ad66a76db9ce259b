"""The schedule's table: add, replace, read, list, remove and pause check-ins; imported keys.

Adding with a ``key`` that exists replaces that check-in in place (see :mod:`asched.store.store`).
Removing a check-in keeps its journal rows.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Final

from asched.core.errors import UsageError
from asched.core.models import CheckIn, Delivery, NewCheckIn, to_ms
from asched.store.connection import StoreConnection
from asched.store.rows import (
    SELECT_CHECKINS,
    UPSERT_CHECKIN,
    checkin_from_row,
    checkin_params,
    delivery_from_row,
)
from asched.store.schema import IN_FLIGHT_WHERE

# The upsert's own INSERT with "keep the existing row" instead of "replace it", derived from it
# so that the two statements can never list different columns.
_INSERT_NEW: Final = UPSERT_CHECKIN.partition("ON CONFLICT")[0] + "ON CONFLICT (key) DO NOTHING"


class CheckInTable(StoreConnection):
    """The check-in operations of :class:`~asched.store.store.Store` (the ``checkins`` table)."""

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
        params = checkin_params(new._replace(next_due=None), self._now_ms())
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
                # constant fragments only: the in-flight states come from the state machine
                "DELETE FROM checkins WHERE next_due_ms IS NULL AND updated_ms < ? AND id NOT IN "  # noqa: S608
                "(SELECT checkin_id FROM deliveries" + IN_FLIGHT_WHERE + ")",
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
