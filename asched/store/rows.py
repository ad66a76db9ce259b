"""Rows <-> models: the column lists, the check-in upsert and its validation, and the mappings.

The statements here name their columns (never ``SELECT *``): the row layout is part of the
contract with the DDL in :mod:`asched.store.schema`. Times are stored as INTEGER milliseconds (UTC)
within the range the schema's CHECKs allow; :func:`time_ms` refuses anything else before SQLite.
"""

from __future__ import annotations

import math
import sqlite3
from datetime import datetime
from typing import Final

from asched.core.errors import UsageError
from asched.core.models import (
    CatchUp,
    CheckIn,
    Cron,
    Delivery,
    Every,
    NewCheckIn,
    Once,
    Rule,
    from_ms,
    to_ms,
)
from asched.core.states import DeliveryState

MIN_MS: Final = 946684800000  # 2000-01-01T00:00:00Z, the schema's lower bound for times
MAX_MS: Final = 253402300799999  # 9999-12-31T23:59:59.999Z, its upper bound

# Column lists spelled out (never SELECT *): the row layout is part of the contract with the DDL.
SELECT_CHECKINS: Final = (
    "SELECT id, key, target, message, kind, at_ms, interval_s, anchor_ms, cron_expr, tz, "
    "next_due_ms, last_due_ms, grace_s, catch_up, jitter_s, remaining, until_ms, paused, origin, "
    "idle_s, idle_wait, created_ms, updated_ms FROM checkins"
)
SELECT_DELIVERIES: Final = (
    "SELECT id, checkin_id, due_ms, state, reason, late, pane, attempts, started_ms, finished_ms, "
    "target, confirmed_ms "
    "FROM deliveries"
)

# Insert, or replace in place the row with the same key: id and created_ms stay, last_due resets.
UPSERT_CHECKIN: Final = """
    INSERT INTO checkins (key, target, message, kind, at_ms, interval_s, anchor_ms, cron_expr, tz,
        next_due_ms, grace_s, catch_up, jitter_s, remaining, until_ms, paused, origin,
        idle_s, idle_wait, created_ms, updated_ms)
    VALUES (:key, :target, :message, :kind, :at_ms, :interval_s, :anchor_ms, :cron_expr, :tz,
        :next_due_ms, :grace_s, :catch_up, :jitter_s, :remaining, :until_ms, :paused, :origin,
        :idle_s, :idle_wait, :now, :now)
    ON CONFLICT (key) DO UPDATE SET target = excluded.target, message = excluded.message,
        kind = excluded.kind, at_ms = excluded.at_ms, interval_s = excluded.interval_s,
        anchor_ms = excluded.anchor_ms, cron_expr = excluded.cron_expr, tz = excluded.tz,
        next_due_ms = excluded.next_due_ms, last_due_ms = NULL, grace_s = excluded.grace_s,
        catch_up = excluded.catch_up, jitter_s = excluded.jitter_s,
        remaining = excluded.remaining, until_ms = excluded.until_ms, paused = excluded.paused,
        origin = excluded.origin, idle_s = excluded.idle_s, idle_wait = excluded.idle_wait,
        updated_ms = excluded.updated_ms
"""


def time_ms(name: str, value: datetime) -> int:
    """``value`` as stored milliseconds; UsageError if naive or outside the schema's range."""
    try:
        ms = to_ms(value)
    except (ValueError, OverflowError, OSError) as exc:
        raise UsageError(f"{name}: {exc}") from exc
    if not MIN_MS <= ms <= MAX_MS:
        raise UsageError(f"{name}: {value.isoformat()} is outside 2000-01-01 .. 9999-12-31")
    return ms


def _opt_ms(name: str, value: datetime | None) -> int | None:
    return None if value is None else time_ms(name, value)


def _nonempty(name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise UsageError(f"{name} must be a non-empty string")
    return value


def _seconds(name: str, value: float) -> float:
    if isinstance(value, bool) or not math.isfinite(value) or not 0 <= value < 1e12:
        raise UsageError(f"{name} must be a finite number of seconds >= 0, not {value!r}")
    return float(value)


def checkin_params(new: NewCheckIn, now_ms: int) -> dict[str, object]:
    """Validate ``new`` and return the parameters of :data:`UPSERT_CHECKIN`.

    The CHECK constraints refuse the same rows; checking here first turns a would-be
    IntegrityError into a :class:`UsageError` that names the wrong field.
    """
    rule: Rule = new.rule
    p: dict[str, object] = dict.fromkeys(("at_ms", "interval_s", "anchor_ms", "cron_expr", "tz"))
    if isinstance(rule, Once):
        p.update(kind="once", at_ms=time_ms("at", rule.at))
    elif isinstance(rule, Every):
        interval = rule.interval_s
        if isinstance(interval, bool) or not isinstance(interval, int) or interval <= 0:
            raise UsageError(
                f"interval must be a positive whole number of seconds, not {interval!r}"
            )
        p.update(kind="every", interval_s=interval, anchor_ms=time_ms("anchor", rule.anchor))
    elif isinstance(rule, Cron):
        p.update(kind="cron", cron_expr=_nonempty("cron expression", rule.expr))
        p["tz"] = _nonempty("time zone", rule.tz)
    else:
        raise UsageError(f"unknown rule {rule!r}")
    next_ms = _opt_ms("next due", new.next_due)
    until_ms = _opt_ms("until", new.until)
    remaining = new.remaining
    if remaining is not None:
        if isinstance(remaining, bool) or not isinstance(remaining, int) or remaining < 0:
            raise UsageError(f"count must be a whole number >= 0, not {remaining!r}")
        if remaining == 0 and next_ms is not None:
            raise UsageError("a check-in with a count of 0 left cannot have a next due time")
    if next_ms is not None and until_ms is not None and next_ms > until_ms:
        raise UsageError("the first occurrence is after --until: nothing would ever be delivered")
    if new.key is not None:
        _nonempty("key", new.key)
    p.update(
        key=new.key,
        target=_nonempty("target", new.target),
        message=_nonempty("message", new.message),
        next_due_ms=next_ms,
        grace_s=_seconds("grace", new.grace_s),
        catch_up=CatchUp(new.catch_up).value,
        jitter_s=_seconds("jitter", new.jitter_s),
        remaining=remaining,
        until_ms=until_ms,
        paused=int(bool(new.paused)),
        origin=_nonempty("origin", new.origin),
        idle_s=None if new.idle_s is None else _seconds("idle", new.idle_s),
        idle_wait=int(bool(new.idle_wait)),
        now=now_ms,
    )
    return p


def _opt_dt(ms: int | None) -> datetime | None:
    return None if ms is None else from_ms(ms)


def checkin_from_row(row: sqlite3.Row) -> CheckIn:
    """A row of :data:`SELECT_CHECKINS` as a :class:`CheckIn`."""
    kind = row["kind"]
    rule: Rule
    if kind == "once":
        rule = Once(from_ms(row["at_ms"]))
    elif kind == "every":
        rule = Every(int(row["interval_s"]), from_ms(row["anchor_ms"]))
    else:
        rule = Cron(row["cron_expr"], row["tz"])
    return CheckIn(
        id=row["id"],
        target=row["target"],
        message=row["message"],
        rule=rule,
        next_due=_opt_dt(row["next_due_ms"]),
        last_due=_opt_dt(row["last_due_ms"]),
        key=row["key"],
        grace_s=float(row["grace_s"]),
        catch_up=CatchUp(row["catch_up"]),
        jitter_s=float(row["jitter_s"]),
        remaining=row["remaining"],
        until=_opt_dt(row["until_ms"]),
        paused=bool(row["paused"]),
        origin=row["origin"],
        idle_s=None if row["idle_s"] is None else float(row["idle_s"]),
        idle_wait=bool(row["idle_wait"]),
        created_at=from_ms(row["created_ms"]),
        updated_at=from_ms(row["updated_ms"]),
    )


def delivery_from_row(row: sqlite3.Row) -> Delivery:
    """A row of :data:`SELECT_DELIVERIES` as a :class:`Delivery`."""
    return Delivery(
        id=row["id"],
        checkin_id=row["checkin_id"],
        due_at=from_ms(row["due_ms"]),
        state=DeliveryState(row["state"]),
        reason=row["reason"],
        late=bool(row["late"]),
        pane=row["pane"],
        attempts=row["attempts"],
        started_at=from_ms(row["started_ms"]),
        finished_at=_opt_dt(row["finished_ms"]),
        target=row["target"],
        confirmed_at=_opt_dt(row["confirmed_ms"]),
    )
