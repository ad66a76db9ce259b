"""Plain data shared by every layer: rules, check-ins and deliveries.

The delivery states and their transitions are defined in :mod:`asched.core.states`.

Times are timezone-aware ``datetime`` objects in UTC everywhere above the store; the store keeps
them as integer milliseconds since the epoch so that a CHECK constraint can reject anything else.

The records are named tuples, immutable like a frozen dataclass (``_replace`` makes a changed
copy): defining a frozen dataclass took about 1 ms each on this project's machine, and importing
:mod:`dataclasses` (inspect, ast, dis) 8-13 ms, at every start of the command line and the daemon
(tests/cli/test_imports.py keeps dataclasses off the paths of the commands agents call).
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import NamedTuple

from asched.core.states import DeliveryState


class Once(NamedTuple):
    """A one-shot check-in due at ``at`` (UTC)."""

    at: datetime


class Every(NamedTuple):
    """Every ``interval_s`` seconds, aligned on ``anchor`` (UTC, the first occurrence)."""

    interval_s: int
    anchor: datetime


class Cron(NamedTuple):
    """A five-field cron expression evaluated in the IANA zone ``tz``."""

    expr: str
    tz: str


Rule = Once | Every | Cron


class CatchUp(enum.StrEnum):
    """What to do with an occurrence that was missed by more than its grace window."""

    SKIP = "skip"
    ONCE = "once"


# Why a claimed occurrence was not typed after all: its check-in was paused or removed while it
# waited (for its due time, a rate budget, quiet, a retry). Skipped with this reason at the
# commit to "typing", in the same transaction, so a pause is never overtaken by a paste.
PAUSED = "paused"
REMOVED = "removed"
# Store.mark_typing's answer for a row that another process is delivering (not a journal reason).
NOT_CLAIMED = "not-claimed"
# A paste made later than its due time (plus its jitter) by more than this is journaled late.
LATE_S = 1.0


class NewCheckIn(NamedTuple):
    """What a caller asks the store to keep; the store assigns id and timestamps."""

    target: str
    message: str
    rule: Rule
    next_due: datetime | None
    key: str | None = None
    grace_s: float = 300.0
    catch_up: CatchUp = CatchUp.SKIP
    jitter_s: float = 0.0
    remaining: int | None = None
    until: datetime | None = None
    paused: bool = False
    origin: str = "user"
    idle_s: float | None = None  # deliver only after the pane was quiet this long
    idle_wait: bool = False  # wait (within grace) for that quiet moment instead of skipping


class CheckIn(NamedTuple):
    """A stored check-in: one row of the schedule."""

    id: int
    target: str
    message: str
    rule: Rule
    next_due: datetime | None
    last_due: datetime | None
    key: str | None
    grace_s: float
    catch_up: CatchUp
    jitter_s: float
    remaining: int | None
    until: datetime | None
    paused: bool
    origin: str
    created_at: datetime
    updated_at: datetime
    idle_s: float | None = None
    idle_wait: bool = False


class Delivery(NamedTuple):
    """One occurrence of a check-in in the journal."""

    id: int
    checkin_id: int
    due_at: datetime
    state: DeliveryState
    reason: str | None
    late: bool
    pane: str | None
    attempts: int
    started_at: datetime
    finished_at: datetime | None
    target: str = ""  # as it was when the occurrence was claimed
    # When the agent itself reported this text as a prompt it received (its hooks), if it did.
    confirmed_at: datetime | None = None


def utc(ts: datetime) -> datetime:
    """Return ``ts`` as an aware UTC datetime; naive values are refused, never guessed."""
    if ts.tzinfo is None:
        raise ValueError("naive datetime: a time zone is required")
    return ts.astimezone(UTC)


def to_ms(ts: datetime) -> int:
    """Milliseconds since the epoch, the store's representation of a time."""
    return round(utc(ts).timestamp() * 1000)


def from_ms(ms: int) -> datetime:
    """The inverse of :func:`to_ms`."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC)
