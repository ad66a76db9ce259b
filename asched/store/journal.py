"""The delivery journal: what is due, claiming occurrences, and moving deliveries along.

An occurrence ``(check-in id, generation, due time)`` is journaled at most once, ever; a claim
advances its check-in in the same transaction. Each move of a delivery is checked against the
state machine of :mod:`asched.core.states` and committed before the caller's next side effect.
"""

from __future__ import annotations

import enum
import sqlite3
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Final, Literal, NamedTuple

from asched.core.errors import NotFoundError
from asched.core.models import NOT_CLAIMED, PAUSED, REMOVED, CheckIn, Delivery, from_ms, to_ms
from asched.core.states import CLAIM_STATES, DeliveryState, allowed_next, needs_reason
from asched.store.connection import StoreConnection
from asched.store.rows import (
    SELECT_CHECKINS,
    SELECT_DELIVERIES,
    checkin_from_row,
    delivery_from_row,
    time_ms,
)
from asched.store.schema import IN_FLIGHT_WHERE


class _Default(enum.Enum):
    DECREMENT = "decrement"


DECREMENT: Final = _Default.DECREMENT
"""Default of ``claim(remaining=...)``: one occurrence less, unless the count is unlimited."""


class Claim(NamedTuple):
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


class DeliveryJournal(StoreConnection):
    """The scheduling and journal operations of :class:`~asched.store.store.Store`."""

    # -- scheduling --------------------------------------------------------------------------------

    def next_due_time(self) -> datetime | None:
        """The earliest next_due of the check-ins that are not paused and have no occurrence in
        flight, or None (an index walk; the in-flight set is the journal's few open rows)."""
        row = self._conn.execute(
            # constant fragments only: the in-flight states come from the state machine
            "SELECT next_due_ms FROM checkins WHERE paused = 0 AND next_due_ms IS NOT NULL "  # noqa: S608
            "AND id NOT IN (SELECT checkin_id FROM deliveries"
            + IN_FLIGHT_WHERE
            + ") ORDER BY next_due_ms LIMIT 1"
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
            "FROM deliveries" + IN_FLIGHT_WHERE + ") ORDER BY next_due_ms, id LIMIT ?",
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
        if c.state not in CLAIM_STATES:
            raise ValueError(f"a claim starts as claimed, skipped or failed, not {c.state}")
        if needs_reason(c.state) and not c.reason:
            raise ValueError(f"a {c.state} occurrence needs a reason")
        due_ms = to_ms(c.due_at)
        next_ms = None if c.next_due is None else time_ms("next_due", c.next_due)
        if next_ms is not None and next_ms <= due_ms:
            # docs/OLD-SCHEDULER.md, failure 1: a one-shot "rescheduled" at now+0 looped forever.
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

        Legal (as :mod:`asched.core.states` defines them): claimed -> typing -> typed ->
        submitted -> verified | unverified; typing and typed -> unverified; claimed -> claimed (to
        record a failed attempt before a retry); typing and typed -> claimed with a ``TEXT_LOST``
        reason only (the server or the pane's program went away, and the text with it); any
        non-final state -> failed | skipped (``reason`` required). Anything else, including any
        move out of a final state, raises ValueError. ``reason`` replaces the row's reason (None
        clears it); ``pane`` is kept once set; ``attempt`` adds one to ``attempts``; reaching a
        final state sets ``finished_at``; ``late`` marks the row late (never unmarks: a paste found
        late after a claim in time). An unknown id raises :class:`NotFoundError`.
        """
        state = DeliveryState(state)
        if needs_reason(state) and not reason:
            raise ValueError(f"a {state} delivery needs a reason")
        with self._write() as conn:
            row = conn.execute(
                "SELECT state FROM deliveries WHERE id = ?", (delivery_id,)
            ).fetchone()
            if row is None:
                raise NotFoundError(f"no delivery with id {delivery_id}")
            current = DeliveryState(row["state"])
            if state not in allowed_next(current, reason):
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

    def confirm(self, delivery_id: int) -> bool:
        """Record that the agent reported this delivery's text as a prompt it received (now).

        Whatever the row's state: the report may come after the row is final. Written once;
        returns False when the row does not exist or was confirmed already.
        """
        with self._write() as conn:
            done = conn.execute(
                "UPDATE deliveries SET confirmed_ms = ? WHERE id = ? AND confirmed_ms IS NULL",
                (self._now_ms(), delivery_id),
            )
            return done.rowcount == 1

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
